"""GRUB 2 x86_64-efi as a Multiboot2 loader (grub-core/loader/multiboot_mbi2.c,
lib/relocator.c with EFI firmware requests, mmap/efi/mmap.c; GRUB
2.06-13+deb12u2 on OVMF 2022.11 observed by the fidelity matrix).

Rules:
- Every relocator chunk is taken from the firmware with AllocatePages, so
  it occupies whole pages: kernel segments at their p_paddr (pages rounded
  out; conventional or, unless the kernel keeps boot services,
  boot-services memory), then each sh_addr == 0 section, each module, and at boot the MBI,
  each at the lowest page-aligned run of EfiConventionalMemory at or above
  0x1000 (below 4 GiB) that holds it. Observed on OVMF: three symbol
  sections at 0x1000, 0x2000, 0x3000, modules from 0x4000, below 1 MiB.
- Tag 6 (mmap) is GRUB's view of the EFI map at exit: Conventional, loader
  and boot-services memory -> 1, ACPI reclaim -> 3, ACPI NVS -> 4,
  unusable -> 5, persistent -> 7, runtime-services code -> 20 (GRUB's
  "code" type), everything else -> 2; sorted, adjacent equal types merged.
  Loader data and conventional memory both become type 1, so tag 6 is the
  same whether it is computed from the map before loading or from tag 17.
- mem_lower = the available range at 0, at most 640 KiB; mem_upper = the
  available range containing 1 MiB, minus 1 MiB.
- Without the EFI boot-services header tag (7) GRUB exits boot services and
  sends tags 6, 4 and 17; with it, boot services stay: no 6, 4, 17; tag 18
  and the image handle (20) instead.
"""

import re
from dataclasses import replace

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION, EfiMemoryType
from bootforge.formats.multiboot import FramebufferType, Mb2HeaderTag, Mb2RelocatablePreference, Mb2Tag
from bootforge.loader import mbi
from bootforge.loader.alloc import FreeSpace
from bootforge.loader.ovmf_media import bins_bottom, for_medium, template_block
from bootforge.loader.ovmf_pages import PageMap, pages_for, pool_pages
from bootforge.loader.policies import Comparison, loader_policy
from bootforge.loader.policies.common import GIB4, standard_checks
from bootforge.loader.policies.grub_pc import (PACKAGE_STRING, REFUSE, grub_module_size, UNWRITTEN_TAG_PADDING, elf_sections_tag,
                                               mb2_size_bound, relocatable_tag)
from bootforge.loader.result import LoadResult
from bootforge.loader.video import (OVMF_BLT_CONFIGURE_BELOW_LOWMEM, blt_configure_size, grub_gop_choose,
                                    grub_mode_string, ovmf_gop_modes)
from bootforge.machines.qemu_x86 import Q35_LOWMEM, Q35_LOWMEM_SPLIT
from bootforge.multiboot.entry import Entry, loader_entry, moved_entry
from bootforge.memmap.io import write_map
from bootforge.memmap.model import MemoryMap, MemoryRange

SOURCE = "GRUB 2.06 grub-core/loader/multiboot_mbi2.c, lib/relocator.c, mmap/efi/mmap.c (x86_64-efi)"
PAGE = 4096
GRUB_MEMORY_CODE = 20      # GRUB's grub_memory_type_t for runtime code (include/grub/memory.h), no E820 name
# grub-core/mmap/efi/mmap.c grub_efi_mmap_iterate: EFI type -> the type tag 6 carries; others reserved.
EFI_TO_MB = {
    EfiMemoryType.LOADER_CODE: E820Type.RAM, EfiMemoryType.LOADER_DATA: E820Type.RAM,
    EfiMemoryType.BOOT_SERVICES_CODE: E820Type.RAM, EfiMemoryType.BOOT_SERVICES_DATA: E820Type.RAM,
    EfiMemoryType.CONVENTIONAL: E820Type.RAM, EfiMemoryType.ACPI_RECLAIM: E820Type.ACPI,
    EfiMemoryType.ACPI_NVS: E820Type.NVS, EfiMemoryType.UNUSABLE: E820Type.UNUSABLE,
    EfiMemoryType.PERSISTENT: E820Type.PMEM, EfiMemoryType.RUNTIME_SERVICES_CODE: GRUB_MEMORY_CODE,
}
FREED_AT_EXIT = (EfiMemoryType.BOOT_SERVICES_CODE, EfiMemoryType.BOOT_SERVICES_DATA)


def grub_efi_mmap(efi_map):
    """Tag 6 entries GRUB derives from an EFI map."""
    pieces = sorted((r.start, r.size, int(EFI_TO_MB.get(r.type, E820Type.RESERVED))) for r in efi_map.ranges
                    if r.size)
    out = []
    for a, s, t in pieces:
        if out and out[-1][2] == t and out[-1][0] + out[-1][1] == a:
            out[-1] = (out[-1][0], out[-1][1] + s, t)
        else:
            out.append((a, s, t))
    return out


# grub-core/kern/efi/mm.c: the buffer grub_efi_mm_init holds two memory maps in while it counts
# (2 * BYTES_TO_PAGES (MEMORY_MAP_SIZE 0x3000) pages, allocated first, freed after the heap), the
# heap's bounds, and filter_memory_map's: conventional memory ending above 1 MiB, starting at or
# below GRUB_EFI_MAX_USABLE_ADDRESS, cut at BYTES_TO_PAGES_DOWN of that address.
GRUB_MEMORY_MAP_BUFFER_PAGES = 2 * 3
GRUB_MIN_HEAP_PAGES = 0x100000 // PAGE
GRUB_MAX_HEAP_PAGES = 1600 * 0x100000 // PAGE
GRUB_MAX_USABLE_PAGE = 0xFFFFFFFF // PAGE


def grub_efi_heap(efi_map):
    """Where GRUB 2.06 x86_64-efi puts its heap when it starts (grub-core/kern/efi/mm.c
    grub_efi_mm_init): one loader-code allocation of a quarter (total_pages >> 2) of the
    conventional pages filter_memory_map keeps (ending above 1 MiB, below 4 GiB) while its own
    6-page map buffer is allocated from them, from the top of the highest conventional range
    below 4 GiB that holds it. Observed exact on OVMF at 256M..5G and from bootforge's ISO
    (148-page GRUB image: 13579 pages, where the earlier "quarter of all, less 0x2a" gave 13578).
    Returns (start, size) or None."""
    conv = [(r.start, r.start + r.size) for r in efi_map.ranges
            if r.type == EfiMemoryType.CONVENTIONAL and r.start < GIB4]
    total = sum(min(b // PAGE, GRUB_MAX_USABLE_PAGE) - -(-a // PAGE) for a, b in conv if b > 0x100000)
    pages = min(max((total - GRUB_MEMORY_MAP_BUFFER_PAGES) >> 2, GRUB_MIN_HEAP_PAGES), GRUB_MAX_HEAP_PAGES)
    size = pages * PAGE
    for a, b in sorted(conv, reverse=True):
        b = min(b, GIB4)
        if b - a >= size:
            return b - size, size
    return None


def with_grub_heap(platform):
    """The platform's EFI map as GRUB's commands see it (its heap allocated), and the heap."""
    efi = platform.memory_map
    if platform.grub_heap_included:
        return efi, None
    heap = grub_efi_heap(efi)
    if heap is None:
        raise LoaderRefusal("GRUB: out of memory for its heap")
    out = []
    for r in efi.ranges:
        if r.type == EfiMemoryType.CONVENTIONAL and r.start <= heap[0] < r.start + r.size:
            if heap[0] > r.start:
                out.append(MemoryRange(r.start, heap[0] - r.start, r.type, r.attributes))
            out.append(MemoryRange(heap[0], heap[1], EfiMemoryType.LOADER_CODE, r.attributes))
            if heap[0] + heap[1] < r.start + r.size:
                out.append(MemoryRange(heap[0] + heap[1], r.start + r.size - heap[0] - heap[1], r.type,
                                       r.attributes))
        else:
            out.append(MemoryRange(r.start, r.size, r.type, r.attributes))
    return efi.replace(out), heap


def _available_runs(entries):
    return [(a, a + s) for a, s, t in entries if t == E820Type.RAM]


def place_grub_heap(result, platform):
    """Place GRUB's heap in *result*; return the EFI map GRUB then sees and its
    conventional memory (type 7) still free."""
    efi, heap = with_grub_heap(platform)
    if heap:
        result.place("GRUB heap", heap[0], heap[1], PAGE, "kern/efi/mm.c: a quarter of conventional memory "
                     "below 4 GiB, top-down", "loader")
    return efi, FreeSpace((r.start, r.start + r.size) for r in efi.ranges
                          if r.type == EfiMemoryType.CONVENTIONAL)


RSDP_V1, RSDP_V2 = 20, 36                     # struct grub_acpi_rsdp_v10 / v20 sizes


def efi_entry(k, keep_bs):
    """Where GRUB x86_64-efi jumps: the EFI amd64 entry tag (9) when the kernel keeps boot
    services (tag 7; multiboot_mbi2.c), else as on i386-pc (multiboot.entry, rule grub)."""
    tag9 = next((t for t in (k.mb2 or {}).get("tags", []) if t.get("type") == Mb2HeaderTag.ENTRY_ADDRESS_EFI64), None)
    if keep_bs and tag9 is not None:
        return Entry(tag9["entry_addr"], "MB2 EFI amd64 entry tag (9)")
    return loader_entry(k, "multiboot2", "grub")


def keeps_boot_services(k):
    """Whether the kernel asks GRUB to keep EFI boot services (MB2 header tag 7)."""
    return any(t.get("type") == Mb2HeaderTag.EFI_BOOT_SERVICES for t in (k.mb2 or {}).get("tags", []))


# verify: GRUB x86_64-efi jumps to tag 9's entry when boot services stay; its MBI size and the
# map's mem_lower/mem_upper come from the parametric OVMF profile (GRUB's own lsefimmap printout
# predicts them: tests/test_load_fidelity.py); tag 6 is GRUB's conversion of the tag 17 it hands over.
COMPARISON = Comparison(entry=lambda k: efi_entry(k, keeps_boot_services(k)), mbi_size=False,
                        mmap_from_tag17=True, profile_only=frozenset({"mem_lower", "mem_upper", "mmap_from_tag17"}),
                        unwritten_tag_padding=UNWRITTEN_TAG_PADDING)


@loader_policy("grub-efi-mb2", firmware="uefi", protocol="multiboot2", verdict="grub-mb2", source=SOURCE,
               verified=True, boot_medium="grub-efi-iso", comparison=COMPARISON,
               wrong_firmware="grub-efi-mb2 needs an EFI platform (an EFI map: lsefimmap text, efi-bin, "
                              "a dump's tag 17, r820-efi)",
               summary="GRUB 2.06 x86_64-efi `multiboot2`/`module2`")
def load(req):
    k = req.kernel
    plat = _with_grub_image(req.platform, req.efi_application, req.efi_medium)
    keep_bs = any(t.get("type") == Mb2HeaderTag.EFI_BOOT_SERVICES for t in (k.mb2 or {}).get("tags", []))
    reloc = relocatable_tag(k)
    res = LoadResult(req.loader, "multiboot2", plat, SOURCE)
    res.entry = efi_entry(k, keep_bs)
    efi, free = place_grub_heap(res, plat)
    free = free.clip(0x1000, GIB4)
    taken = []

    def take(name, at, size, rule, kind):
        _take(res, free, taken, name, at, size, rule, kind)

    res.load_base = k.low
    if reloc is not None:
        # multiboot_elfxx.c: the whole image (lowest p_paddr to highest end) as one chunk of
        # grub_relocator_alloc_chunk_align_safe in [min_addr, max_addr], aligned, highest or
        # lowest by preference, never in boot-services memory (avoid_efi_boot_services): the
        # conventional pages GRUB's heap left; the entry moves with it (multiboot_mbi2.c).
        size = k.high - k.low
        lo_, hi_, align = reloc["min_addr"], reloc["max_addr"], reloc["align"]
        if align == 0:
            raise LoaderRefusal("relocatable tag has align 0 (no alignment can be met)")
        if size > hi_ or lo_ > hi_ - size:
            raise LoaderRefusal("invalid min/max address and/or load size", words="invalid min/max address and/or "
                                "load size")
        pick = free.highest if reloc.get("preference") == Mb2RelocatablePreference.HIGH else free.lowest
        base = pick(align_up(size, PAGE), max(align, PAGE), max(lo_, 0x1000), min(hi_ + 1, GIB4))
        if base is None:
            raise LoaderRefusal(f"{REFUSE} (relocatable image, {size} bytes)", words=REFUSE)
        take("relocatable image", base, size, f"relocatable tag: [{lo_:#x}, {hi_:#x}] align {align:#x} "
             f"preference {reloc.get('preference')}: conventional pages only", "kernel")
        res.load_base = base
        res.entry = moved_entry(res.entry, base - k.low)

    def alloc(name, size, rule, kind, min_addr=0x1000):
        at = free.lowest(align_up(size, PAGE), PAGE, min_addr, GIB4)
        if at is None:
            raise LoaderRefusal(f"{REFUSE} ({name}, {size} bytes)", words=REFUSE)
        take(name, at, size, rule, kind)
        return at

    load_fixed_segments(res, k, efi, free, taken, alloc, k.segments if reloc is None else ())
    for s in k.unloaded_sections("grub"):
        alloc(f"ELF section {s.index}", s.size, "lowest conventional pages", "boot-info")
    mods = []
    for i, m in enumerate(req.modules):
        size = grub_module_size(m)      # gunzipped / unxz'd as GRUB's module2 loads it
        at = alloc(f"module {i} {m.loader_path}", size, "lowest conventional pages, 4 KiB", "module")
        mods.append({"start": at, "end": at + size, "cmdline": m.cmdline})
    res.modules = mods
    # The MBI buffer: grub_multiboot2_get_mbi_size() counts, besides every tag, the EFI map as
    # grub_efi_find_mmap_size() sizes it (the map's bytes now plus a page, page aligned), so the
    # buffer is a few pages (observed: 4 pages at 0x5000 for a 7176-byte MBI under OVMF).
    res.mmap = grub_efi_mmap(_with_loader_data(efi, taken))
    now = _with_loader_data(efi, taken)
    bound = (mb2_size_bound(res, k, len(req.cmdline.encode()) + 1) + 4 * 16
             + align_up(16 + align_up(len(now.ranges) * EFI_DESCRIPTOR_DEFAULT_SIZE + PAGE, PAGE), 8))
    at = alloc("Multiboot2 information", bound, f"lowest conventional pages of get_mbi_size() = {bound} bytes "
               "(with the EFI map size)", "mbi")
    res.mbi_address = at
    # The map the kernel is told about: the firmware map with GRUB's pages (the MBI's too) as
    # loader data, adjacent loader-data pages one descriptor (EDK2 CoreAddRange merges them).
    after = _with_blt_reconfigure(_with_gop_pool_page(_with_loader_data(efi, taken), k, plat, res), k, plat, res)
    res.maps["efi-at-exit"] = after
    res.mmap = grub_efi_mmap(after)
    runs = _available_runs(res.mmap)
    res.mem_lower = next((min(b - a, 640 * 1024) // 1024 for a, b in runs if a == 0), 0)
    res.mem_upper = next(((b - 0x100000) // 1024 for a, b in runs if a <= 0x100000 < b), 0)
    res.cmdline = req.cmdline
    tags = [mbi.mb2_tag_of(Mb2Tag.LOAD_BASE_ADDR, load_base_addr=res.load_base),
            mbi.mb2_string(Mb2Tag.CMDLINE, req.cmdline),
            mbi.mb2_string(Mb2Tag.BOOT_LOADER_NAME, PACKAGE_STRING)]
    tags += [mbi.mb2_module(m["start"], m["end"], m["cmdline"]) for m in mods]
    if not keep_bs:
        tags.append(mbi.mb2_mmap(res.mmap))
    tags.append(elf_sections_tag(k, res))
    if not keep_bs:
        tags.append(mbi.mb2_tag_of(Mb2Tag.BASIC_MEMINFO, mem_lower=res.mem_lower, mem_upper=res.mem_upper))
    tags += gop_framebuffer_tags(k, res)
    tags.append(mbi.mb2_tag_of(Mb2Tag.EFI64, pointer=0))
    # multiboot_mbi2.c: copies of the RSDP v1 (20 bytes) and v2 (36 bytes) OVMF has.
    tags.append(mbi.mb2_tag_of(Mb2Tag.ACPI_OLD, rsdp=bytes(RSDP_V1)))
    tags.append(mbi.mb2_tag_of(Mb2Tag.ACPI_NEW, rsdp=bytes(RSDP_V2)))
    if keep_bs:
        tags += [mbi.mb2_tag(Mb2Tag.EFI_BS, b""), mbi.mb2_tag_of(Mb2Tag.EFI64_IH, pointer=0)]
    else:
        size = EFI_DESCRIPTOR_DEFAULT_SIZE
        body = write_map(after, "efi-bin", None, {"descriptor_size": size})
        tags.append(mbi.mb2_tag_of(Mb2Tag.EFI_MMAP, descr_size=size, descr_vers=EFI_DESCRIPTOR_VERSION, map=body))
    res.mbi_bytes = mbi.mb2_info(tags)
    res.notes.append("tags 12 (system table) and 14/15 (ACPI) carry firmware data left zero here")
    if keep_bs:
        res.notes.append("kernel asks to keep boot services (header tag 7): no tags 6, 4, 17")
    ram = MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in grub_efi_mmap(after)])
    if keep_bs:     # no tags 6 and 4: the kernel is given no memory map and no mem_lower/mem_upper
        res.mmap, res.mem_lower, res.mem_upper = [], None, None
    res.maps["mmap"] = ram
    standard_checks(res, ram)
    return res


def _take(res, free, taken, name, at, size, rule, kind):
    """A relocator chunk of *size* bytes at *at*: whole pages from the firmware (AllocatePages)."""
    pages = align_up(size, PAGE)
    free.take(at, pages)
    taken.append((at, pages))
    res.place(name, at, size, PAGE, rule, kind)


def load_fixed_segments(res, k, efi, free, taken, alloc, segments):
    """Kernel segments at their p_paddr (GRUB x86_64-efi, multiboot_elfxx.c with both `multiboot`
    and `multiboot2`): the pages taken from *free* and listed in *taken*; a target outside
    conventional memory staged by *alloc* (name, size, rule, kind, min_addr)."""
    # A fixed target in conventional memory is allocated where it is; any other target (OVMF's
    # BootServicesData under a kernel linked at 16 MiB, ACPI NVS under tboot) is staged below.
    fixed_ok = FreeSpace((r.start, r.start + r.size) for r in efi.ranges if r.type == EfiMemoryType.CONVENTIONAL)
    staged = []
    for i, (p, _f, m) in enumerate(segments):
        if not m:
            continue
        lo, hi = p // PAGE * PAGE, align_up(p + m, PAGE)
        if not fixed_ok.is_free(lo, hi - lo):
            # grub_relocator_alloc_chunk_addr checks a fixed target against the other chunks
            # only (relocator.c): the bytes are staged elsewhere and copied over whatever the
            # firmware has there after ExitBootServices (observed: tboot at 0x800000 over
            # OVMF's ACPI NVS). A target outside every descriptor is copied to as well: OVMF's
            # page tables map the whole physical address space, so nothing faults; GRUB enters
            # the kernel with its bytes written nowhere (observed: a segment at 0x20000000 on a
            # 256 MiB q35, entered at 0x20000018 with EAX 0x36d76289 and the MBI at 0x4000,
            # then running through unassigned memory; no exception is printed). The placement
            # check (outside usable memory) reports it.
            staged.append((i, p, m))
            continue
        fixed_ok.take(lo, hi - lo)
        free.take_overlap(lo, hi - lo)
        taken.append((lo, hi - lo))
        res.place(f"kernel segment {i}", p, m, 1, "fixed: ELF p_paddr (AllocatePages at the address)", "kernel")
    for i, p, m in staged:
        res.place(f"kernel segment {i}", p, m, 1, "fixed: ELF p_paddr over firmware memory (copied there after "
                  "ExitBootServices)", "kernel")
        # The staging pages: the lowest free ones at or above the target (observed: 3 pages at
        # 0x1500000, just past the BootServicesData holding a kernel linked at 16 MiB).
        if free.lowest(align_up(m, PAGE), PAGE, p // PAGE * PAGE, GIB4) is not None:
            alloc(f"kernel segment {i} staging copy", m, "lowest conventional pages at or above the target "
                  "(relocator source)", "loader", min_addr=p // PAGE * PAGE)
        else:
            # None at or above the target (a target beyond RAM): the highest conventional pages
            # below 4 GiB (observed: the 28-byte segment at 0x20000000 on a 256 MiB q35 staged
            # in the page at 0xfe80000, the top of the highest conventional run).
            at = free.highest(align_up(m, PAGE), PAGE, 0x1000, GIB4)
            if at is None:
                raise LoaderRefusal(f"{REFUSE} (kernel segment {i} staging copy, {m} bytes)", words=REFUSE)
            _take(res, free, taken, f"kernel segment {i} staging copy", at, m, "highest conventional pages "
                  "below 4 GiB (none at or above the target; relocator source)", "loader")
        # The copy may lie in the target's own pages (observed: tboot's), but the target is one of
        # the relocator's chunks: the chunks after it (sections, modules, the MBI) keep off it.
        free.take_overlap(p // PAGE * PAGE, align_up(p + m, PAGE) - p // PAGE * PAGE)


def gop_framebuffer_tags(k, res):
    """Tag 8 GRUB x86_64-efi writes after tag 4 (multiboot_mbi2.c retrieve_video_parameters).
    A kernel with a required framebuffer header tag gets efi_gop and efi_uga in the image
    (bootforge's image builder and verify's medium, bootloaders/grub.py VIDEO_MODULES and
    asks_for_video: an optional tag gets none), and GRUB asks for
    "WxHxD,WxH,auto;auto" (multiboot.c set_console / set_video_mode), chosen from OVMF's GOP
    list (bootforge.loader.video.grub_gop_choose); no VBE tag on EFI. Without a framebuffer tag
    (or an optional one) no video module is loaded: GRUB says "no suitable video mode found."
    and writes no tag 8.
    The address is GOP's FrameBufferBase, the BAR OVMF's PCI enumeration gave the display: 0 here,
    declared firmware data by verify."""
    want = grub_video_request(k)
    if want is None:
        return []
    mode = grub_gop_choose(grub_mode_string(*want) + ";auto")
    if mode is None:
        return []
    res.notes.append(f"video: GRUB sets GOP mode {mode.mode} ({mode.width}x{mode.height}x{mode.bpp}, pitch "
                     f"{mode.pitch}) from OVMF's list")
    return [mbi.mb2_tag_of(Mb2Tag.FRAMEBUFFER, reserved=0, color_info=bytes(mode.rgb), framebuffer_addr=0,
                           framebuffer_pitch=mode.pitch, framebuffer_width=mode.width,
                           framebuffer_height=mode.height, framebuffer_bpp=mode.bpp,
                           framebuffer_type=FramebufferType.RGB)]


def gop_mode_scans(modestring, modes=None, current=0):
    """How many times GRUB's efi_gop walks every GOP mode with QueryMode for *modestring*
    (video/efi_gop.c grub_video_gop_setup, tried item by item as video.c grub_video_set_mode does):
    "auto" and an item of the current mode's size keep that mode without a walk; any other
    "WxH[xD]" item walks all modes, and the walk ends the string when a mode matched."""
    modes = ovmf_gop_modes() if modes is None else modes
    cur, scans = modes[current], 0
    for item in re.split(r"[,;]", modestring):
        item = item.strip()
        if item == "auto":
            return scans
        if item in ("", "text"):
            continue
        parts = [int(x) for x in item.split("x")]
        width, height, depth = parts[0], parts[1], (parts[2] if len(parts) > 2 else 0)
        if (cur.width, cur.height) == (width, height) and depth in (0, cur.bpp):
            return scans
        scans += 1
        if any((m.width, m.height) == (width, height) and depth in (0, m.bpp) for m in modes):
            return scans
    return scans


# Walks of OVMF's 30 modes whose leaked mode records the Boot Services Data pool OVMF has free
# when GRUB sets the video mode still holds (observed, 256M: one walk leaves the exit map as
# predicted, two add one BootServicesData page). Each QueryMode is QemuVideoDxe's AllocatePool
# of the mode information, which efi_gop never frees; 30 more of them fit in one new pool page.
GOP_WALKS_IN_FREE_POOL = 1


def _with_grub_image(plat, application, medium=None):
    """The OVMF platform with GRUB's own pages for the BOOTX64.EFI an image holds,
    *application* = (file size, SizeOfImage), started from *medium* (ovmf_media.EfiMedium), in
    place of the grub-mkrescue image and CD the template was printed from. OVMF's disk stack
    leaves its Boot Services Data block by the medium (ovmf_media.for_medium: 682 pages from
    bootforge's GPT disk, 728 from a CD, and one more page above it from a disk); LoadImage reads
    the file into a pool buffer (its own pages, ovmf_pages.pool_pages) at the top of the free
    memory under that block, puts the image (EFI_SIZE_TO_PAGES(SizeOfImage), loader code) under
    that and frees the buffer (conventional at exit). Observed at 256M from bootforge's ISO: a
    606208-byte BOOTX64.EFI gives 148 pages of loader code under 149 free pages; grub-mkrescue's
    159744 bytes give 39 under 40. GRUB's heap, a quarter of what is left (grub_efi_heap), follows."""
    if application is None or plat.qemu is None or plat.qemu.name != "qemu-q35-ovmf" or plat.grub_heap_included:
        return plat
    file_size, size_of_image = application
    ranges = plat.memory_map.ranges
    shape = template_block(ranges)
    if shape is None:
        return plat
    if medium is not None:
        moved = for_medium(ranges, medium, shape[0], shape[2])
        if moved is None:
            return plat
        ranges = moved
    # The template's GRUB image: its only loader code (the heap is folded into conventional memory).
    at = next(i for i, r in enumerate(ranges) if r.type == EfiMemoryType.LOADER_CODE and r.start < GIB4)
    below, image, buffer, block = ranges[at - 1:at + 3]
    buffer_size = pool_pages(file_size) * PAGE
    image_size = pages_for(size_of_image) * PAGE
    image_at = block.start - buffer_size - image_size
    if image_at <= below.start:
        return plat
    new = [MemoryRange(below.start, image_at - below.start, below.type, below.attributes),
           MemoryRange(image_at, image_size, image.type, image.attributes),
           MemoryRange(block.start - buffer_size, buffer_size, buffer.type, buffer.attributes)]
    return replace(plat, memory_map=plat.memory_map.replace(ranges[:at - 1] + new + ranges[at + 2:]))


def _with_gop_pool_page(efi_map, k, plat, res):
    """The exit map with the Boot Services Data pool page OVMF takes when GRUB's mode setting
    walks the GOP modes more often than its free pool holds (gop_mode_scans): one page at the top
    of the highest conventional memory below OVMF's default bin top (the runtime-data bin's start;
    EDK2 Page.c CoreFindFreePages, top-down: ovmf_pages.PageMap.allocate), as seen at 256M with
    requests 1000x1000x32 and 1024x768x24 at 0xe530000, under GRUB's own first page. Only on the
    OVMF machine."""
    want = grub_video_request(k)
    if want is None or plat.qemu is None or plat.qemu.name != "qemu-q35-ovmf":
        return efi_map
    if gop_mode_scans(grub_mode_string(*want) + ";auto") <= GOP_WALKS_IN_FREE_POOL:
        return efi_map
    ranges = efi_map.ranges
    top = bins_bottom(ranges)         # OVMF's bins at the top of low RAM: runtime data, then runtime code
    page = None if top is None else PageMap([[r.start, r.start + r.size, r.type] for r in ranges], top).allocate(
        "efi_gop's QueryMode records", EfiMemoryType.BOOT_SERVICES_DATA, 1)
    if page is None:
        res.notes.append("video: the Boot Services Data page OVMF's pool takes for GRUB's mode walks has no place "
                         "found in this map; tag 17 left without it")
        return efi_map
    hole = next(r for r in ranges if r.start <= page < r.start + r.size)
    out = []
    for r in ranges:
        if r is not hole:
            out.append(r)
            continue
        if page > r.start:
            out.append(MemoryRange(r.start, page - r.start, r.type, r.attributes))
        out.append(MemoryRange(page, PAGE, EfiMemoryType.BOOT_SERVICES_DATA, r.attributes))
        if page + PAGE < r.start + r.size:
            out.append(MemoryRange(page + PAGE, r.start + r.size - page - PAGE, r.type, r.attributes))
    merged = []
    for r in out:
        last = merged[-1] if merged else None
        if (last is not None and last.type == r.type == EfiMemoryType.BOOT_SERVICES_DATA
                and last.attributes == r.attributes and last.start + last.size == r.start
                and page in (r.start, last.start + last.size - PAGE)):
            merged[-1] = MemoryRange(last.start, last.size + r.size, r.type, r.attributes)
        else:
            merged.append(r)
    res.notes.append(f"video: GRUB's mode walks leak more QueryMode records than OVMF's free pool holds: one "
                     f"Boot Services Data page at {page:#x}")
    return efi_map.replace(merged)


def _retyped(ranges, start, size, typ):
    """*ranges* with [start, start + size) (inside one descriptor) of type *typ*, merged with
    neighbours of that type and attributes as EDK2's CoreAddRange merges them (Page.c)."""
    out = []
    for r in ranges:
        if not r.start <= start < r.start + r.size:
            out.append(r)
            continue
        if start > r.start:
            out.append(MemoryRange(r.start, start - r.start, r.type, r.attributes))
        out.append(MemoryRange(start, size, typ, r.attributes))
        if start + size < r.start + r.size:
            out.append(MemoryRange(start + size, r.start + r.size - start - size, r.type, r.attributes))
    at = next(i for i, r in enumerate(out) if r.start == start)
    lo, hi = at, at
    while lo > 0 and out[lo - 1].type == typ and out[lo - 1].attributes == out[at].attributes \
            and out[lo - 1].start + out[lo - 1].size == out[lo].start:
        lo -= 1
    while hi + 1 < len(out) and out[hi + 1].type == typ and out[hi + 1].attributes == out[at].attributes \
            and out[hi].start + out[hi].size == out[hi + 1].start:
        hi += 1
    merged = MemoryRange(out[lo].start, out[hi].start + out[hi].size - out[lo].start, typ, out[at].attributes)
    return out[:lo] + [merged] + out[hi + 1:]


def _with_blt_reconfigure(efi_map, k, plat, res):
    """The exit map after QemuVideoDxe's SetMode of the mode GRUB chose (loader/video.py
    blt_configure_size, Gop.c QemuVideoGraphicsOutputSetMode): a mode wider than the one set
    (OVMF's 1280x800) needs a bigger BLT configuration, so the old one's 2 pool pages are freed
    and the new size is allocated top-down (ovmf_pages.PageMap.allocate, below the default bin
    top). Up to 2026 pixels the 2 pages come back where they were (1920x1080: exit map unchanged);
    2048 and 2560 need 3, which go to the highest free 3 pages (observed at 256M for 2560x1440:
    the 3-page hole above OVMF's block, which then grows to 731, and 2 free pages at 0xe651000).
    Only on the OVMF machine, where the old buffer's place is observed (it moves with low RAM)."""
    want = grub_video_request(k)
    if want is None or plat.qemu is None or plat.qemu.name != "qemu-q35-ovmf" or plat.memory_bytes is None:
        return efi_map
    mode = grub_gop_choose(grub_mode_string(*want) + ";auto")
    current = ovmf_gop_modes()[0]
    if mode is None or blt_configure_size(mode) <= blt_configure_size(current):
        return efi_map
    ranges = efi_map.ranges
    old_pages = pool_pages(blt_configure_size(current))
    lowmem = Q35_LOWMEM if plat.memory_bytes >= Q35_LOWMEM_SPLIT else plat.memory_bytes
    old = lowmem - OVMF_BLT_CONFIGURE_BELOW_LOWMEM
    there = next((r for r in ranges if r.start == old), None)
    top = bins_bottom(ranges)
    if (there is None or there.type != EfiMemoryType.BOOT_SERVICES_DATA
            or there.size != old_pages * PAGE or top is None):
        res.notes.append(f"video: QemuVideoDxe's BLT configuration for {mode.width} pixels is reallocated, but its "
                         f"old place is not known in this map; tag 17 left without it")
        return efi_map
    ranges = _retyped(ranges, old, old_pages * PAGE, EfiMemoryType.CONVENTIONAL)
    pages = pool_pages(blt_configure_size(mode))
    at = PageMap([[r.start, r.start + r.size, r.type] for r in ranges], top).allocate(
        "QemuVideoDxe's BLT configuration", EfiMemoryType.BOOT_SERVICES_DATA, pages)
    if at is None:
        return efi_map
    res.notes.append(f"video: SetMode of {mode.width}x{mode.height} reallocates QemuVideoDxe's BLT configuration "
                     f"({blt_configure_size(mode)} bytes): {old_pages} pages at {old:#x} freed, {pages} at {at:#x}")
    return efi_map.replace(_retyped(ranges, at, pages * PAGE, EfiMemoryType.BOOT_SERVICES_DATA))


def grub_video_request(k):
    """(width, height, depth) of the kernel's required MB2 framebuffer header tag, or None."""
    tag = next((t for t in (k.mb2 or {}).get("tags", []) if t.get("type") == Mb2HeaderTag.FRAMEBUFFER), None)
    if tag is None or tag.get("optional"):
        return None
    return tag.get("width", 0), tag.get("height", 0), tag.get("depth", 0)


def _with_loader_data(efi, taken):
    """The EFI map with the pages GRUB allocated retyped to LoaderData, in the firmware's order:
    each descriptor's pieces where it was (EDK2's GetMemoryMap is not sorted by address: with RAM
    above 4 GiB, OVMF lists it before the MMIO descriptors below 4 GiB; observed at 3G)."""
    cuts = sorted(taken)
    out = []
    for r in efi.ranges:
        first = len(out)
        pieces = [(r.start, r.start + r.size)]
        if r.type in FREED_AT_EXIT or r.type == EfiMemoryType.CONVENTIONAL:
            for a, n in cuts:
                nxt = []
                for lo, hi in pieces:
                    if a + n <= lo or a >= hi:
                        nxt.append((lo, hi))
                        continue
                    if lo < a:
                        nxt.append((lo, a))
                    out.append(MemoryRange(max(lo, a), min(hi, a + n) - max(lo, a), EfiMemoryType.LOADER_DATA,
                                           r.attributes))
                    if a + n < hi:
                        nxt.append((a + n, hi))
                pieces = nxt
        for lo, hi in pieces:
            out.append(MemoryRange(lo, hi - lo, r.type, r.attributes))
        out[first:] = sorted(out[first:], key=lambda x: x.start)
    merged = []
    for r in out:
        last = merged[-1] if merged else None
        if (last is not None and last.type == r.type == EfiMemoryType.LOADER_DATA and last.attributes == r.attributes
                and last.start + last.size == r.start):
            merged[-1] = MemoryRange(last.start, last.size + r.size, r.type, r.attributes)
        else:
            merged.append(r)
    return MemoryMap("efi", merged, source="grub-efi")
