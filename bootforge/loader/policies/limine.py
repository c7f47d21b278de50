"""Limine 11.4.1 as a Multiboot1 (`protocol: multiboot1`) and Multiboot2
(`protocol: multiboot2`) loader, on BIOS (qemu-pc-seabios:<mem>) and UEFI
(qemu-q35-ovmf:<mem>). Rules from Limine's source (limine-bootloader/limine:
common/protos/multiboot1.c, multiboot2.c, common/lib/elsewhere.c, elf.c,
common/mm/pmm.s2.c, common/lib/acpi.c) as far as the 11.4.1 release binaries
agree (their strings), and from real Limine 11.4.1 boots. Checked by
tests/test_limine_fidelity.py (F: SeaBIOS MB1/MB2 x 128M-5G x 0/1/3 modules x
links 1m/16m; OVMF mb2/mb1v scenarios; reloc-*; mb1flat/mb2flat), by
tests/test_limine_policy.py (P: the captures tests/data/limine-*.dump) and by
tests/test_limine_refusals.py (R: malformed kernels booted).

Rules (source; scenarios):
- Refusals are Limine's panic strings: the file checks are the verdicts
  (bootforge.multiboot.verdicts.limine; R); here the machine-dependent ones:
  MB1 without the video header flag on UEFI: "multiboot1: Cannot use text mode
  with UEFI." (multiboot1.c; R mb1-text-mode-on-uefi, P); a required request
  for an EFI tag (11, 12, 17, 19, 20) on BIOS: "multiboot2: Requested tag `N`
  which is not supported" (multiboot2.c: those cases are `#if defined (UEFI)`;
  R mb2-requires-efi-mmap-on-bios); on UEFI a console flags tag asking for a
  console (bit 0) in EGA text (bit 1): "multiboot2: OS requested EGA text mode,
  but UEFI does not support it" (multiboot2.c; P test_ega_console_on_uefi_is_limines_panic,
  an OVMF capture); an
  MB2 kernel range that is not RAM:
  "multiboot2: Could not find viable load address for executable"
  (multiboot2.c, pmm.s2.c check_usable_memory; R mb2-relocatable-no-room).
- The kernel is one range (elf.c *_load_elsewhere): ELF = [lowest p_paddr,
  highest p_paddr + p_memsz) over PT_LOAD with p_memsz != 0, the entry moved
  from vaddr to paddr through its segment; the MB1 a.out kludge / MB2 address
  tag = [load_addr, + load size + bss) (MB2 load_addr -1: header_addr - header
  offset; multiboot1.c/multiboot2.c). Limine copies it there last (its
  relocation stub), so any RAM will do: usable, bootloader, kernel/modules and,
  on UEFI, loader and boot-services memory (check_usable_memory). F: every
  scenario; link=16m on OVMF lies in boot-services data; mb1flat, mb2flat.
- Relocatable MB2 kernels (header tag 10; multiboot2.c): align 0 refused;
  preference 0/1 from ALIGN_UP(min_addr, align) upwards, preference 2 from
  ALIGN_DOWN(max_addr - size, align) downwards, in align steps, until the whole
  range is RAM, within [min_addr, max_addr]; tag 21 (load base) is sent, the
  entry and every nonzero sh_addr in tag 9 move by the slide. F reloc-low
  (0x200000), reloc-any (0x1000 on BIOS: nothing keeps it off Limine's own low
  memory), reloc-high (0xff00000 at 256M); R align-0.
- Everything else goes through elsewhere_append() (elsewhere.c) in this order:
  the MBI (target 0x10000), each ELF section with sh_addr == 0 and a size (in
  section order; ELF kernels only), each module (configuration order). The
  target is ALIGN_UP(top of everything placed so far, 4 KiB) (the MBI asks for
  0x10000); a target overlapping a placed range moves to ALIGN_UP(its end,
  4 KiB); a target not wholly inside one usable (or bootloader-reclaimable)
  entry of Limine's memory map moves up 4 KiB, at most 0x10000 tries and never
  past 4 GiB, else "Cannot allocate module/elf sections/mbN info". F all, P
  test_elf_sections_where_limine_put_them (0x103000.. after a kernel ending at
  0x1020b0, modules from 0x106000; 21 MiB on OVMF for a kernel at 16 MiB),
  reloc-any (modules after the MBI's size bound at 0x10000).
- Limine's memory map for those targets (pmm.s2.c init_memmap): BIOS: the E820
  usable entries without [0, 0x1000) and [EBDA, 1 MiB); UEFI: conventional
  memory less the 64 MiB handed back to the firmware top-down below 4 GiB
  (boot-services memory is not usable for them). F link=16m on OVMF (the
  boot-services part; no run puts a target into the 64 MiB).
- MBI size bound: get_multiboot1_info_size() (16-byte pieces) and
  get_multiboot2_info_size() (every tag it may write, 256 mmap entries, 1024
  EFI descriptors, the DHCP packet). The MB1 info is laid out info, section
  headers, module list, module strings, command line, loader name, mmap (P
  test_mb1_regions_where_limine_put_them); the MB2 tags are 9 (ELF kernels),
  21 (relocatable), 3 per module, 1, 2, 20 (UEFI), 8, 15 (RSDP revision >= 2:
  OVMF, not SeaBIOS), 14, 13 (SMBIOS entry point), 12 (UEFI), 6, 4, 17 (UEFI),
  0 (F tags/flags; mbi size exact on BIOS).
- Framebuffer (multiboot1.c, multiboot2.c): MB2 without a framebuffer header
  tag: EGA text 80x25 on BIOS (tag 8, 32 bytes), the firmware's GOP mode on
  UEFI (1280x800x32 RGB under OVMF, tag of sizeof(struct) = 40 bytes); with
  one: that mode on BIOS; on UEFI the first GOP mode of exactly that size and
  depth in OVMF's list, else the EDID's 1280x800x32 (gop.c init_gop;
  bootforge.loader.video.limine_gop_choose; real boots in tests/data/uefi-video).
  MB1 without the video flag: text mode and no framebuffer flag on BIOS (flags
  0x26d), refusal on UEFI; with it: the mode asked for and flag 12 (P mb1v
  fixtures, F mb1v).
- The memory map handed over (pmm.s2.c get_raw_memmap): BIOS: the E820 list as
  the BIOS returned it (F mmap at every size); UEFI: Limine's conversion of the
  EFI map at ExitBootServices: loader, boot-services and conventional memory ->
  1, ACPI reclaim -> 3, ACPI NVS -> 4, everything else -> 2, sorted, only
  adjacent usable entries merged (reserved neighbours stay apart), the first
  page kept; Limine's own allocations are loader memory and so usable (P
  test_uefi_mmap_is_limines_conversion_of_tag17, F ovmf). More than 256
  entries: "multiboot2: too many memory map entries" / "multiboot1: Too many
  memory map entries." (P test_too_many_map_entries_is_limines_panic).
- mem_lower / mem_upper (pmm.s2.c mmap_get_info in 11.4.1, observed): the
  usable run from 0 (below 1 MiB) and the usable run from 1 MiB to the first
  hole, in KiB: 639 / 0x3fb80 under SeaBIOS at 256M, 0x2ffb80 at 5G (not the
  RAM above 4 GiB), 640 / 0x1c18 under OVMF at every size (P
  test_mem_upper_stops_at_the_first_hole, F all).
- Command lines are limine.conf's cmdline and module_string without the path;
  the MBI goes to 0x10000 on UEFI too (F all).

Not modelled (no real run checks it): Limine's own buffers (the kernel and
module files it read, top-down below 4 GiB) as obstacles for targets near the
top of RAM; a relocatable kernel overlapping Limine's allocations; tag 17 when
OVMF starts Limine from a medium other than a CD-ROM or bootforge's GPT disk
(those two: uefi_exit_map, byte-exact with the MBI size); firmware contents of tags 8, 12-15, 20 (sizes only); VBE mode
choice on BIOS for modes the firmware does not offer; the network tag (PXE boots);
on BIOS, low memory is one block here while Limine's map splits it at the end of
its stage 3 and conventional allocations (a target straddling such an edge moves
on in Limine); the 64 MiB UEFI reserve (source only).
"""

from bisect import bisect_right

from bootforge.align import align_down, align_up
from bootforge.errors import LoaderRefusal
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION, EfiMemoryType
from bootforge.formats.multiboot import (MB1_MMAP_ENTRY_STRIDE, MB2_MMAP_ENTRY_SIZE, Mb2HeaderTag,
                                         Mb2RelocatablePreference, Mb2Tag, MbiFlag, Multiboot1Info,
                                         Multiboot1Module)
from bootforge.loader import mbi
from bootforge.loader.alloc import FreeSpace, merge_intervals
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB, e820_entries, ram_intervals, standard_checks
from bootforge.loader.owned import limine_bios
from bootforge.loader.ovmf_media import TEMPLATE_MEDIUM, for_medium, template_block
from bootforge.loader.ovmf_pages import limine_exit_map, pool_pages
from bootforge.loader.result import LoadResult
from bootforge.loader.video import (QEMU_EDID_PREFERRED, blt_configure_size, limine_gop_choose,
                                    limine_query_modes, ovmf_gop_modes)
from bootforge.machines.qemu_x86 import Q35_LOWMEM, Q35_LOWMEM_SPLIT
from bootforge.memmap.io import write_map
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.multiboot.entry import loader_entry, moved_entry, translate
from bootforge.multiboot.headers import read_elf

VERSION = "11.4.1"
BRAND = f"Limine {VERSION}"
SOURCE = (f"Limine {VERSION} common/protos/multiboot1.c, multiboot2.c, common/lib/elsewhere.c, elf.c, "
          "common/mm/pmm.s2.c (checked against real Limine 11.4.1 boots on SeaBIOS and OVMF)")
MBI_TARGET = 0x10000
PAGE = 0x1000
MEMMAP_MAX = 256
EFI_MEMMAP_MAX = 1024
ELSEWHERE_RETRIES = 0x10000
FIRMWARE_RESERVE_MIB = 64           # pmm.s2.c init_memmap (UEFI): "leave 64MiB to the firmware below 4GiB"
DHCP_ACK_PACKET_LEN = 296           # pxe/pxe.h: the network tag the size bound counts
EBDA_DEFAULT = 0x9FC00
# What the firmware under QEMU gives Limine (observed): RSDP revision (a v2 RSDP adds tag 15),
# the SMBIOS 32-bit entry point length, the default graphics mode.
# A framebuffer request of 0x0 on BIOS: Limine's VBE setup takes the EDID's preferred mode
# (QEMU's stdvga reports 1280x800, bootforge.loader.video) at 32 bpp.
BIOS_AUTO_MODE = (*QEMU_EDID_PREFERRED, 32)
FIRMWARE_FACTS = {
    "bios": {"rsdp_v2": False, "smbios_entry_len": 0x1F, "gop_default": None},
    "uefi": {"rsdp_v2": True, "smbios_entry_len": 0x1F, "gop_default": (1280, 800, 32)},
}
E = EfiMemoryType
# pmm.s2.c pmm_reclaim_uefi_mem(raw = true) and init_memmap: EFI type -> the mmap type; any other -> reserved.
EFI_TO_MB = {E.LOADER_CODE: E820Type.RAM, E.LOADER_DATA: E820Type.RAM, E.BOOT_SERVICES_CODE: E820Type.RAM,
             E.BOOT_SERVICES_DATA: E820Type.RAM, E.CONVENTIONAL: E820Type.RAM, E.ACPI_RECLAIM: E820Type.ACPI,
             E.ACPI_NVS: E820Type.NVS}
# What check_usable_memory() takes for the kernel on UEFI (usable + EFI-reclaimable).
EFI_RAM = (E.LOADER_CODE, E.LOADER_DATA, E.BOOT_SERVICES_CODE, E.BOOT_SERVICES_DATA, E.CONVENTIONAL)
# multiboot2.c: these requests are served only `#if defined (UEFI)`.
EFI_ONLY_REQUESTS = {Mb2Tag.EFI32, Mb2Tag.EFI64, Mb2Tag.EFI_MMAP, Mb2Tag.EFI32_IH, Mb2Tag.EFI64_IH}
MB1_INFO_SIZE = Multiboot1Info.sizeof()         # 116, allocated as 128 (16-byte pieces)
MB1_MODULE_SIZE = Multiboot1Module.sizeof()
RSDP_V1_SIZE, RSDP_V2_SIZE = 20, 36             # struct rsdp: the tag 14 / tag 15 payloads
EGA_TEXT = dict(framebuffer_addr=0xB8000, framebuffer_pitch=160, framebuffer_width=80, framebuffer_height=25,
                framebuffer_bpp=16, framebuffer_type=2)
# RGB colour info Limine writes for a 32-bit GOP/VBE mode, padded to sizeof(struct multiboot_tag_framebuffer) = 40.
RGB_COLOR_INFO = bytes([16, 8, 8, 8, 0, 8, 0, 0])


def refuse(words, loader):
    return LoaderRefusal(words, loader=loader, words=words)


# ------------------------------------------------------------------ memory as Limine sees it

class Intervals:
    """Sorted disjoint [lo, hi) intervals with "is [a, b) inside one of them"."""

    def __init__(self, pairs):
        self.lo, self.hi = merge_intervals(pairs)

    def containing(self, start):
        i = bisect_right(self.lo, start) - 1
        return i if i >= 0 and start < self.hi[i] else None

    def holds(self, start, size):
        i = self.containing(start)
        return i is not None and start + size <= self.hi[i]

    def next_start(self, start):
        """The lowest interval start above *start*, or None."""
        i = bisect_right(self.lo, start)
        return self.lo[i] if i < len(self.lo) else None


def _ebda(platform):
    return platform.ebda or (platform.int12_kib * 1024 if platform.int12_kib else EBDA_DEFAULT)


def target_memory(platform):
    """Where elsewhere_append() may put a target: the usable entries of Limine's memory map."""
    m = platform.memory_map
    if platform.firmware == "bios":
        ebda = _ebda(platform)
        usable = []
        for a, b in ram_intervals(m):
            a = max(a, 0x1000)
            for lo, hi in ((a, min(b, ebda)), (max(a, MIB), b)):
                if hi > lo:
                    usable.append((lo, hi))
        return Intervals(usable)
    conv = FreeSpace((r.start, r.start + r.size) for r in m.ranges if r.type == E.CONVENTIONAL and r.size)
    for _ in range(FIRMWARE_RESERVE_MIB):
        at = conv.highest(MIB, PAGE, 0, GIB4)
        if at is None:
            break
        conv.take(at, MIB)
    return Intervals(conv.intervals())


def ram_memory(platform):
    """What check_usable_memory() accepts for the kernel: all RAM Limine's map knows
    (usable, bootloader-reclaimable, kernel/modules, and on UEFI EFI-reclaimable:
    loader and boot-services memory)."""
    m = platform.memory_map
    if platform.firmware == "bios":
        return Intervals((max(a, 0x1000), b) for a, b in ram_intervals(m))
    return Intervals((r.start, r.start + r.size) for r in m.ranges if r.type in EFI_RAM and r.size)


def handed_over_mmap(platform):
    """The mmap Limine writes (get_raw_memmap): E820 as read on BIOS, its EFI conversion on UEFI."""
    m = platform.memory_map
    if platform.firmware == "bios":
        return e820_entries(m)
    pieces = sorted((r.start, r.size, int(EFI_TO_MB.get(r.type, E820Type.RESERVED))) for r in m.ranges if r.size)
    out = []
    for a, s, t in pieces:
        if out and t == E820Type.RAM and out[-1][2] == t and out[-1][0] + out[-1][1] == a:
            out[-1] = (out[-1][0], out[-1][1] + s, t)
        else:
            out.append((a, s, t))
    return out


def mem_lower_upper(entries):
    """mmap_get_info() of 11.4.1 as observed: the usable run from 0 (below 1 MiB) and the
    usable run from 1 MiB to the first hole, in KiB."""
    usable = Intervals((a, a + s) for a, s, t in entries if t == E820Type.RAM)
    lower = upper = 0
    i = usable.containing(0)
    if i is not None:
        lower = min(usable.hi[i], MIB) // 1024
    i = usable.containing(MIB)
    if i is not None:
        upper = (usable.hi[i] - MIB) // 1024
    return lower, upper


# ------------------------------------------------------------------ elsewhere_append

class Elsewhere:
    """The ranges Limine will copy into place at the end (kernel, MBI, sections, modules)."""

    def __init__(self, memory, loader):
        self.ranges = []            # [(target, length, what)]
        self.memory = memory
        self.loader = loader

    def top(self):
        return max((t + n for t, n, _w in self.ranges), default=0)

    def add_fixed(self, target, length, what):
        self.ranges.append((target, length, what))

    def append(self, length, what, target=None, fail=""):
        """elsewhere_append(): the target it settles on, or LoaderRefusal(*fail*)."""
        if target is None:
            target = align_up(self.top(), PAGE)
        tries = ELSEWHERE_RETRIES
        while tries > 0:
            tries -= 1
            if target + length > GIB4:
                break
            hit = next(((t, n) for t, n, _w in self.ranges if t < target + length and target < t + n), None)
            if hit is not None:
                target = align_up(hit[0] + hit[1], PAGE)
                continue
            if length and not self.memory.holds(target, length):
                # elsewhere.c moves up 4 KiB a try; every try until the next usable entry fails
                # the same way, so go there at once (counting the tries).
                nxt = self.memory.next_start(target)
                if nxt is None:
                    break
                steps = -(-(nxt - target) // PAGE)
                tries -= steps - 1
                target += steps * PAGE
                continue
            self.ranges.append((target, length, what))
            return target
        raise refuse(fail, self.loader)


# ------------------------------------------------------------------ the kernel

def kernel_range(k, protocol):
    """(target, length, entry, kind): where the kernel goes before relocation."""
    mb1 = k.mb1 if protocol == "multiboot1" else None
    data = k.data
    if mb1 and mb1.get("aout_kludge") and mb1.get("addresses"):
        a = mb1["addresses"]
        return _kludge(data, mb1["offset"], a["header_addr"], a["load_addr"], a["load_end_addr"],
                       a["bss_end_addr"]) + (a["entry_addr"], "a.out kludge")
    if protocol == "multiboot2" and k.mb2:
        tags = {t["type"]: t for t in k.mb2.get("tags", [])}
        a = tags.get(Mb2HeaderTag.ADDRESS)
        if a is not None and "header_addr" in a:
            target, length = _kludge(data, k.mb2["offset"], a["header_addr"], a["load_addr"],
                                     a["load_end_addr"], a["bss_end_addr"])
            entry = tags.get(Mb2HeaderTag.ENTRY_ADDRESS)
            return target, length, entry["entry_addr"] if entry else None, "address tag"
    loads = [(p, m) for p, _f, m in k.segments if m]
    lo = min(p for p, _m in loads)
    hi = max(p + m for p, m in loads)
    entry = _elf_entry(k)
    if protocol == "multiboot2" and k.mb2:
        t3 = next((t for t in k.mb2.get("tags", []) if t["type"] == Mb2HeaderTag.ENTRY_ADDRESS), None)
        if t3 is not None:
            entry = t3["entry_addr"]
    return lo, hi - lo, entry, "ELF"


def _kludge(data, header_offset, header_addr, load_addr, load_end_addr, bss_end_addr):
    if load_addr == 0xFFFFFFFF:
        load_src, load_addr = 0, header_addr - header_offset
    else:
        load_src = header_offset - (header_addr - load_addr)
    load_size = (load_end_addr - load_addr) if load_end_addr else len(data) - load_src
    bss = (bss_end_addr - (load_addr + load_size)) if bss_end_addr else 0
    return load_addr, load_size + bss


def _elf_entry(k):
    """e_entry moved from vaddr to paddr through the first PT_LOAD holding it (elf.c)."""
    found = translate(read_elf(k.data), "limine")
    return found.address if found is not None else k.entry


def relocate(tag, target, length, ram, loader):
    """The base multiboot2.c chooses for a relocatable kernel (tag 10)."""
    words = "multiboot2: Could not find viable load address for executable"
    align, lo, hi = tag["align"], tag["min_addr"], tag["max_addr"]
    if align == 0:
        raise refuse("multiboot2: Relocatable tag has align=0", loader)
    if tag.get("preference") == Mb2RelocatablePreference.HIGH:
        if length > hi:
            raise refuse(words, loader)
        base = align_down(hi - length, align)
        while base >= lo:
            if ram.holds(base, length):
                return base
            # Skip the align steps whose range cannot end inside the RAM interval at or below
            # base (the loop would try and reject each of them).
            j = bisect_right(ram.lo, base) - 1
            if j < 0:
                break
            steps = max(1, -(-(base + length - ram.hi[j]) // align))
            if base - lo < steps * align:
                break
            base -= steps * align
        raise refuse(words, loader)
    base = align_up(lo, align)
    while base + length <= hi and base + length <= 1 << 33:
        if ram.holds(base, length):
            return base
        # Skip whole align steps to the next RAM interval (the same bases the loop would try).
        nxt = ram.next_start(base)
        if nxt is None or nxt <= base:
            break
        base += max(1, (nxt - base) // align) * align
    raise refuse(words, loader)


# ------------------------------------------------------------------ the prediction

def _header_flags(k, protocol):
    """What the kernel's header asks for: MB1 video flag and mode; MB2 fb tag, requests."""
    if protocol == "multiboot1":
        h = k.mb1 or {}
        return {"video": bool(h.get("video_mode")), "mode": h.get("video") or {}}
    tags = (k.mb2 or {}).get("tags", [])
    req = next((t for t in tags if t["type"] == Mb2HeaderTag.INFORMATION_REQUEST), None)
    console = next((t for t in tags if t["type"] == Mb2HeaderTag.CONSOLE_FLAGS), {})
    return {"fbtag": next((t for t in tags if t["type"] == Mb2HeaderTag.FRAMEBUFFER), None),
            "console": console.get("console_flags", 0),
            "requests": set() if req is None or req.get("optional") else set(req.get("requests", [])),
            "reloc": next((t for t in tags if t["type"] == Mb2HeaderTag.RELOCATABLE), None)}


def predict(req, protocol, loader):
    k = req.kernel
    plat = req.platform
    efi = plat.firmware == "uefi"
    facts = FIRMWARE_FACTS[plat.firmware]
    flags = _header_flags(k, protocol)
    if protocol == "multiboot1" and efi and not flags["video"]:
        raise refuse("multiboot1: Cannot use text mode with UEFI.", loader)
    if protocol == "multiboot2" and efi and flags["console"] & 3 == 3:
        # multiboot2.c (UEFI): console required (bit 0) and EGA text (bit 1) in the console flags tag.
        raise refuse("multiboot2: OS requested EGA text mode, but UEFI does not support it", loader)
    if protocol == "multiboot2" and not efi:
        bad = sorted(flags["requests"] & EFI_ONLY_REQUESTS)
        if bad:
            raise refuse(f"multiboot2: Requested tag `{bad[0]}` which is not supported", loader)
    if protocol == "multiboot2" and Mb2Tag.ACPI_NEW in flags["requests"] and not facts["rsdp_v2"]:
        # multiboot2.c: a required ACPI-new request with no v2 RSDP (SeaBIOS has only v1).
        raise refuse("multiboot2: XSDP requested but not found", loader)
    res = LoadResult(req.loader, protocol, plat, SOURCE)
    ram = ram_memory(plat)
    space = Elsewhere(target_memory(plat), loader)
    target, length, entry, how = kernel_range(k, protocol)
    res.load_base = target
    res.entry = loader_entry(k, protocol, "limine")
    reloc = flags.get("reloc")
    if reloc is not None:
        base = relocate(reloc, target, length, ram, loader)
        slide = base - target
        if entry is not None:
            entry += slide
        res.entry = moved_entry(res.entry, slide)
        target = base
        res.load_base = base
        res.place("kernel (relocatable image)", target, length, reloc["align"],
                  f"relocatable tag: [{reloc['min_addr']:#x}, {reloc['max_addr']:#x}] align {reloc['align']:#x} "
                  f"preference {reloc.get('preference', 0)}: "
                  f"{'highest' if reloc.get('preference') == Mb2RelocatablePreference.HIGH else 'lowest'} "
                  "base whose range is RAM", "kernel")
    else:
        slide = 0
        if protocol == "multiboot2" and not ram.holds(target, length):
            raise refuse("multiboot2: Could not find viable load address for executable", loader)
        res.place(f"kernel ({how}: one range)", target, length, 1,
                  "lowest p_paddr to highest p_paddr + p_memsz" if how == "ELF" else "load_addr to bss end",
                  "kernel")
    space.add_fixed(target, length, "kernel")
    elf_info = how == "ELF"
    mods_strings = [m.cmdline for m in req.modules]
    if protocol == "multiboot1":
        # get_multiboot1_info_size() (multiboot1.c): every piece rounded to 16 bytes.
        info_size = (align_up(MB1_INFO_SIZE, 16) + align_up(len(req.cmdline.encode()) + 1, 16)
                     + align_up(len(BRAND) + 1, 16) + (align_up(k.shentsize * k.shnum, 16) if elf_info else 0)
                     + align_up(MB1_MODULE_SIZE * len(req.modules), 16)
                     + align_up(sum(align_up(len(s.encode()) + 1, 16) for s in mods_strings), 16)
                     + align_up(MB1_MMAP_ENTRY_STRIDE * MEMMAP_MAX, 16))
    else:
        # get_multiboot2_info_size() (multiboot2.c): every tag Limine may write, rounded to 8.
        smbios = align_up(16 + facts["smbios_entry_len"], 8)
        info_size = (8 + align_up(8 + len(req.cmdline.encode()) + 1, 8) + align_up(8 + len(BRAND) + 1, 8)
                     + 32 + len(RGB_COLOR_INFO) + align_up(8 + RSDP_V2_SIZE, 8) + align_up(8 + RSDP_V1_SIZE, 8)
                     + align_up(20 + (k.shentsize * k.shnum if elf_info else 0), 8)
                     + sum(align_up(16 + len(s.encode()) + 1, 8) for s in mods_strings)
                     + 16 + smbios + 16 + align_up(16 + MB2_MMAP_ENTRY_SIZE * MEMMAP_MAX, 8)
                     + ((align_up(16 + EFI_DESCRIPTOR_DEFAULT_SIZE * EFI_MEMMAP_MAX, 8) + 16 + 16) if efi else 0)
                     + align_up(8 + DHCP_ACK_PACKET_LEN, 8) + 8)
    tag = "multiboot1" if protocol == "multiboot1" else "multiboot2"
    at = space.append(info_size, "mbi", MBI_TARGET, f"{tag}: Cannot allocate {'mb1' if tag == 'multiboot1' else 'mb2'} info")
    res.mbi_address = at
    res.place("Multiboot information (size bound)", at, info_size, 1,
              "elsewhere_append target 0x10000 (GRUB's spot), get_multiboot_info_size() bytes", "mbi")
    # ELF sections with sh_addr == 0: their data after everything placed so far; the others
    # keep sh_addr, moved with a relocated kernel (multiboot2.c adds reloc_slide).
    placed = {}
    if elf_info:
        mask = (1 << k.bits) - 1
        for s in k.sections:
            if s.addr != 0:
                if slide and protocol == "multiboot2":
                    placed[s.index] = (s.addr + slide) & mask
                continue
            if not s.size or s.offset > len(k.data) or s.size > len(k.data) - s.offset:
                continue
            placed[s.index] = space.append(s.size, f"section {s.index}", None, f"{tag}: Cannot allocate elf sections")
            res.place(f"ELF section {s.index}", placed[s.index], s.size, PAGE,
                      "elsewhere_append: ALIGN_UP(top of everything placed, 4 KiB)", "boot-info")
    shdrs = k.section_headers(placed) if elf_info else None
    mods = []
    for i, m in enumerate(req.modules):
        mat = space.append(m.size, f"module {i}", None, f"{tag}: Cannot allocate module")
        mods.append({"start": mat, "end": mat + m.size, "cmdline": m.cmdline})
        res.place(f"module {i} {m.loader_path}", mat, m.size, PAGE,
                  "elsewhere_append: ALIGN_UP(top of everything placed, 4 KiB), first usable fit", "module")
    res.modules = mods
    res.cmdline = req.cmdline
    entries = handed_over_mmap(plat)
    if len(entries) > MEMMAP_MAX:
        raise refuse("multiboot1: Too many memory map entries." if tag == "multiboot1"
                     else "multiboot2: too many memory map entries", loader)
    res.mmap = entries
    res.mem_lower, res.mem_upper = mem_lower_upper(entries)
    fb = _framebuffer(protocol, flags, efi, facts, loader)
    if protocol == "multiboot1":
        _mb1_bytes(res, k, req, shdrs, fb)
        res.structures = mbi.mb1_structures(res, k, BRAND)
    else:
        _mb2_bytes(res, k, req, shdrs, fb, facts, efi, reloc is not None)
    res.notes.append("tags/fields with firmware data (framebuffer address, RSDP, SMBIOS, EFI pointers, "
                     "tag 17's descriptors) are sized as the firmware gives them under QEMU; their bytes are zero")
    if not efi:
        # Limine's own memory at the entry (bootforge.loader.owned; tests/test_loader_owned.py).
        res.owned = limine_bios(res.mbi_address, len(res.mbi_bytes))
    check_map = MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in entries])
    standard_checks(res, check_map if efi else plat.memory_map)
    return res


def _framebuffer(protocol, flags, efi, facts, loader):
    """("ega",) | ("rgb", w, h, bpp) | None: what Limine sets and reports."""
    if protocol == "multiboot1":
        if not flags["video"]:
            return None
        mode = flags["mode"]
        if mode.get("mode_type", 0) == 0 or efi:
            w, h, d = mode.get("width", 0), mode.get("height", 0), mode.get("depth", 0)
            if efi:
                return _gop(w, h, d)
            return ("rgb", w, h, d) if w and h else ("rgb",) + (facts["gop_default"] or BIOS_AUTO_MODE)
        return ("ega",)
    fbtag = flags["fbtag"]
    if fbtag is None:
        return ("rgb",) + facts["gop_default"] if efi else ("ega",)
    w, h, d = fbtag.get("width", 0), fbtag.get("height", 0), fbtag.get("depth", 0)
    if efi:
        return _gop(w, h, d)
    return ("rgb", w, h, d) if w and h else ("rgb",) + (facts["gop_default"] or BIOS_AUTO_MODE)


def _gop(w, h, d):
    """The GOP mode Limine sets on OVMF for a w x h x d request (gop.c init_gop: exact, else
    the EDID's/preset 1280x800x32; bootforge.loader.video.limine_gop_choose)."""
    mode = limine_gop_choose(w, h, d)
    return ("rgb", mode.width, mode.height, mode.bpp)


def _framebuffer_fields(fb):
    if fb[0] == "ega":
        return dict(EGA_TEXT)
    return dict(framebuffer_addr=0, framebuffer_pitch=fb[1] * fb[3] // 8, framebuffer_width=fb[1],
                framebuffer_height=fb[2], framebuffer_bpp=fb[3], framebuffer_type=1)


def _mb1_bytes(res, k, req, shdrs, fb):
    """multiboot1.c: the info, then (16-byte pieces) section headers, module list, module
    strings, command line, loader name, mmap."""
    pos = res.mbi_address + align_up(MB1_INFO_SIZE, 16)
    regions = {}
    flags = MbiFlag.MEM | MbiFlag.CMDLINE | MbiFlag.MMAP | MbiFlag.BOOT_LOADER_NAME
    elf = (0, 0, 0, 0)
    if shdrs is not None:
        regions["shdr"] = pos
        elf = (k.shnum, k.shentsize, pos, k.shstrndx)
        pos += align_up(len(shdrs), 16)
        flags |= MbiFlag.ELF_SHDR
    mods_addr = 0
    if res.modules:
        mods_addr = regions["mods"] = pos
        pos += align_up(MB1_MODULE_SIZE * len(res.modules), 16)
        for m in res.modules:
            m["cmdline_addr"] = pos
            pos += align_up(len(m["cmdline"].encode()) + 1, 16)
        flags |= MbiFlag.MODS
    regions["cmdline"] = pos
    pos += align_up(len(req.cmdline.encode()) + 1, 16)
    regions["loader"] = pos
    pos += align_up(len(BRAND) + 1, 16)
    regions["mmap"] = pos
    framebuffer = None
    if fb is not None:
        flags |= MbiFlag.FRAMEBUFFER
        framebuffer = _framebuffer_fields(fb)
        if fb[0] != "ega":
            framebuffer["color_info"] = RGB_COLOR_INFO[:4]      # red and green; blue lies past the 116 bytes
    res.regions = regions
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, 0, regions["cmdline"], len(res.modules),
                                 mods_addr, elf, MB1_MMAP_ENTRY_STRIDE * len(res.mmap), regions["mmap"],
                                 regions["loader"], 0, (0, 0, 0, 0, 0, 0), framebuffer)


def _mb2_bytes(res, k, req, shdrs, fb, facts, efi, relocatable):
    """multiboot2.c's tag order: 9, 21, 3..., 1, 2, 20, 8, 15, 14, 13, 12, 6, 4, 17, 0."""
    tags = []
    if shdrs is not None:
        tags.append(mbi.mb2_tag_of(Mb2Tag.ELF_SECTIONS, num=k.shnum, entsize=k.shentsize, shndx=k.shstrndx,
                                   sections=shdrs))
    if relocatable:
        tags.append(mbi.mb2_tag_of(Mb2Tag.LOAD_BASE_ADDR, load_base_addr=res.load_base))
    tags += [mbi.mb2_module(m["start"], m["end"], m["cmdline"]) for m in res.modules]
    tags += [mbi.mb2_string(Mb2Tag.CMDLINE, req.cmdline), mbi.mb2_string(Mb2Tag.BOOT_LOADER_NAME, BRAND)]
    if efi:
        tags.append(mbi.mb2_tag_of(Mb2Tag.EFI64_IH, pointer=0))
    tags.append(mbi.mb2_tag_of(Mb2Tag.FRAMEBUFFER, reserved=0, **_framebuffer_fields(fb),
                               color_info=b"" if fb[0] == "ega" else RGB_COLOR_INFO))
    if facts["rsdp_v2"]:
        tags.append(mbi.mb2_tag_of(Mb2Tag.ACPI_NEW, rsdp=bytes(RSDP_V2_SIZE)))
    tags.append(mbi.mb2_tag_of(Mb2Tag.ACPI_OLD, rsdp=bytes(RSDP_V1_SIZE)))
    tags.append(mbi.mb2_tag_of(Mb2Tag.SMBIOS, major=0, minor=0, reserved=bytes(6),
                               tables=bytes(facts["smbios_entry_len"])))
    if efi:
        tags.append(mbi.mb2_tag_of(Mb2Tag.EFI64, pointer=0))
    tags.append(mbi.mb2_mmap(res.mmap))
    tags.append(mbi.mb2_tag_of(Mb2Tag.BASIC_MEMINFO, mem_lower=res.mem_lower, mem_upper=res.mem_upper))
    if efi:
        body = write_map(uefi_exit_map(res.platform, req.efi_medium, res.notes, fb, _gop_request(k)), "efi-bin", None,
                         {"descriptor_size": EFI_DESCRIPTOR_DEFAULT_SIZE})
        tags.append(mbi.mb2_tag_of(Mb2Tag.EFI_MMAP, descr_size=EFI_DESCRIPTOR_DEFAULT_SIZE,
                                   descr_vers=EFI_DESCRIPTOR_VERSION, map=body))
    res.mbi_bytes = mbi.mb2_info(tags)


def uefi_exit_map(plat, medium=None, notes=None, fb=None, request=None):
    """Tag 17's EFI map: the firmware's map at Limine's ExitBootServices. Under QEMU q35 + OVMF,
    the map captured on Limine's CD-ROM path (loader/ovmf_pages.py limine_exit_map: the same for
    any kernel and modules, moved with the memory size), and from another *medium* (an image's
    ovmf_media.EfiMedium: bootforge's GPT disk) that map as OVMF's disk stack leaves it there
    (ovmf_media.for_medium: its Boot Services Data block above Limine's image by the ESP's FAT
    cache and the partition children, Limine's pages under it moved with its bottom, and one more
    OVMF page above it on a disk; observed exact from bootforge's Limine GPT disk at 256M and
    512M); with an RGB framebuffer, that map after init_gop's GOP search for *request* (the kernel's
    width, height, depth: _with_gop_search); a platform given as a map file: that map."""
    if plat.qemu is not None and plat.memory_bytes is not None:
        ram = plat.memory_bytes
        got = limine_exit_map(plat.qemu.name, ram, Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram)
        if got is not None and medium is not None and medium != TEMPLATE_MEDIUM:
            shape = template_block(plat.memory_map.ranges)
            moved = None if shape is None else for_medium(got.ranges, medium, shape[0], shape[2])
            if moved is None:
                if notes is not None:
                    notes.append(f"tag 17: OVMF's map from this medium ({medium.kind}) has no rule here for this "
                                 f"memory size; the CD-ROM capture is shown")
            else:
                got = got.replace(moved)
        if got is not None and fb is not None and fb[0] == "rgb":
            got = _with_gop_search(got, request or (0, 0, 0), notes)
        if got is not None:
            return got
    return plat.memory_map


# Which of QemuVideoDxe's QueryMode records (loader/video.py limine_query_modes: one pool record per
# call, counted from the first call of Limine's init_gop) take a new pool page of Boot Services
# Data. A record is 36 bytes, 80 with the pool's head and tail, so the 128-byte bin of
# MdeModulePkg/Core/Dxe/Mem/Pool.c; when that bin is empty CoreAllocatePoolI carves a larger free
# block or gets a new page, so where the pages start depends on OVMF's pool as Limine finds it (the
# same on every boot). Measured at 256M from Limine's CD (tests/data/uefi-video/
# limine-gop-search-tag17.json): 32 calls (the default path) no new page, 33 (640x480x32) one,
# 39 (1024x768x32) and 40 (1152x864x32) one, 41 (1152x870x32) two, 43, 46 and 54 two, 62 (a size no
# mode has) two: the 33rd and the 41st call take a page, none up to the 62nd, the most any
# request makes on OVMF's 30 modes.
QUERY_MODE_NEW_POOL_PAGE = (33, 41)
QUERY_MODE_CALLS_MEASURED = 62


def _gop_request(k):
    """(width, height, depth) of the kernel's Multiboot2 framebuffer tag, zeros when absent."""
    tag = next((t for t in (k.mb2 or {}).get("tags", []) if t.get("type") == Mb2HeaderTag.FRAMEBUFFER), None)
    return (0, 0, 0) if tag is None else (tag.get("width") or 0, tag.get("height") or 0, tag.get("depth") or 0)


def _with_gop_search(efi_map, request, notes):
    """The exit map after Limine's init_gop (common/drivers/gop.c) on OVMF's GOP for *request*.
    Its QueryMode records take pool pages (QUERY_MODE_NEW_POOL_PAGE); a SetMode of a mode wider than
    mode 0 FreePools QemuVideoDxe's 2-page BLT configuration and AllocatePools the new size
    (loader/video.py blt_configure_size; OvmfPkg/QemuVideoDxe/Gop.c QemuVideoGraphicsOutputSetMode).
    Each page allocation is top-down (MdeModulePkg/Core/Dxe/Mem/Page.c): into the freed old
    configuration's pages when it fits there (they are above everything else free), else directly
    under the Boot Services Data OVMF took below Limine's image, and Limine's Loader Data allocated
    after init_gop goes that much lower. So 1920 (2 pages) takes the old place back and its two
    record pages go under Limine's image; 2048 and 2560 (3 pages) go under it and the two record
    pages after SetMode fill the old place. Real boots at 256M: 0, 1, 2 pages under Limine's image
    for the searches, 2 for 1920, 3 for 2048 and 2560 (also 2560 at 512M and from a GPT disk)."""
    walk = limine_query_modes(*request)
    if walk is None or walk[1] > QUERY_MODE_CALLS_MEASURED:
        if notes is not None:
            notes.append(f"tag 17: Limine's GOP search for {request} has no measured pool pages here; shown without them")
        return efi_map
    before, calls, mode = walk
    under = hole = 0
    events = [("record", n) for n in QUERY_MODE_NEW_POOL_PAGE if n <= before]
    if mode is not None and blt_configure_size(mode) > blt_configure_size(ovmf_gop_modes()[0]):
        events.append(("setmode", pool_pages(blt_configure_size(mode))))
    events += [("record", n) for n in QUERY_MODE_NEW_POOL_PAGE if before < n <= calls]
    old = pool_pages(blt_configure_size(ovmf_gop_modes()[0]))
    for what, n in events:
        pages = 1 if what == "record" else n
        if what == "setmode":
            hole = old
        if hole >= pages:
            hole -= pages
        else:
            under += pages
    if not under and not hole:
        return efi_map
    r = list(efi_map.ranges)
    at = next((i for i, x in enumerate(r) if x.type == EfiMemoryType.LOADER_CODE and x.start < 1 << 32), None)
    if (at is None or at < 3 or r[at - 1].type != EfiMemoryType.BOOT_SERVICES_DATA
            or r[at - 2].type != EfiMemoryType.LOADER_DATA or r[at - 3].type != EfiMemoryType.CONVENTIONAL
            or r[at - 3].size <= under * PAGE):
        if notes is not None:
            notes.append(f"tag 17: Limine's GOP search takes {under} pool pages under its image, but this map has "
                         f"not the shape it was observed in; shown without them")
        return efi_map
    free, late, bs = r[at - 3], r[at - 2], r[at - 1]
    step = under * PAGE
    r[at - 3:at] = [MemoryRange(free.start, free.size - step, free.type, free.attributes),
                    MemoryRange(late.start - step, late.size, late.type, late.attributes),
                    MemoryRange(bs.start - step, bs.size + step, bs.type, bs.attributes)]
    if hole and notes is not None:    # no request on OVMF's 30 modes leaves the old place part free
        notes.append(f"tag 17: {hole} pages of QemuVideoDxe's old BLT configuration would be free at exit; "
                     f"not modelled (never seen on a real boot)")
    if notes is not None:
        notes.append(f"tag 17: Limine's GOP search for {request} ({calls} QueryMode records"
                     f"{'' if mode is None else ', SetMode of mode %d' % mode.mode}) takes {under} Boot Services "
                     f"Data pages under OVMF's below Limine's image")
    return efi_map.replace(r)


@loader_policy("limine-mb1", firmware=("bios", "uefi"), protocol="multiboot1", verdict="limine-mb1", source=SOURCE,
               verified=True, boot_medium="limine-iso", summary="Limine 11.4.1 `protocol: multiboot1` (BIOS, UEFI)")
def load_mb1(req):
    return predict(req, "multiboot1", "limine-mb1")


# verify: on UEFI, Limine copies the EFI map it exits with into tag 17 and its size sets
# total_size. Under OVMF both are predicted byte for byte and counted: from Limine's CD-ROM
# (limine-iso, verify's medium, and bootforge's Limine ISO) the captured map, from bootforge's
# Limine GPT disk that map as OVMF's disk stack leaves it (uefi_exit_map; tests/test_ovmf_pages.py
# against the kept CD boots at 128M, 256M and 5G, tests/test_uefi_disk.py against the disk's).
@loader_policy("limine-mb2", firmware=("bios", "uefi"), protocol="multiboot2", verdict="limine-mb2", source=SOURCE,
               verified=True, boot_medium="limine-iso", summary="Limine 11.4.1 `protocol: multiboot2` (BIOS, UEFI)")
def load_mb2(req):
    return predict(req, "multiboot2", "limine-mb2")
