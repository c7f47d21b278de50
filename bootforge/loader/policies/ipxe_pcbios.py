"""iPXE (PC BIOS, as an option ROM) booting a Multiboot1 kernel (ipxe/ipxe
src/arch/x86/image/multiboot.c, interface/pcbios/memmap.c, basemem.c,
relocate.c; seed 000). Observed with Debian's pxe-e1000.rom (ipxe-qemu
1.0.0+git-20190125.36a4c85) under SeaBIOS over QEMU's own TFTP.

Rules:
- The kernel's segments at p_paddr; the modules after the kernel's highest
  segment end, each on a 4 KiB boundary, back to back (no gap page).
- Strings are "<URI> <args>": the kernel's first, then each module's,
  packed without alignment into mb_cmdlines.
- The MBI, the module list (up to 8), the mmap (up to 8 entries) and the
  loader name are static .bss16 arrays in iPXE's base-memory data segment:
  mbmodules, mbmemmap, mb_bootloader_name, mbinfo, mb_cmdlines. Where that
  segment lies is a property of the ROM build and of the FBMS (40:13) when
  iPXE installed: DATA16_BELOW_FBMS below is measured for this ROM, not
  derived.
- mmap: iPXE's own memory map (memmap.c): E820 type-1 regions only, merged;
  mem_lower/mem_upper from its regions at 0 and at 1 MiB. The regions
  iPXE hides through its INT 15h hook (its relocated image at the top of
  memory below 4 GiB, umalloc below it, base memory below 40:13) are not
  subtracted in what the kernel is given (observed).
- flags 0x24d: mem, cmdline, mods, mmap, loader name (no boot_device).

iPXE's own memory (seed 000), compared with real boots by the PXE probe (stubs/pxeprobe.S,
bootforge verify of a machine with devices; tests/test_ipxe_probe.py at 256M, 3584M, 5G, for
the outcomes boot (then PXENV_STOP_UNDI), boot-failure and san-boot; the "boot" of a Multiboot
kernel itself by the fidelity matrix's MBI/mmap comparisons):
- Boot entry (libprefix.S alloc_basemem): .data16 then .text16 below FBMS, in paragraphs
  (pxe-e1000.rom: 0x2f4 and 0x84, immediates of its prefix code), FBMS = the .text16 segment
  >> 6, truncated: 639 -> 625 KiB (14 KiB, not seed 000's 13). [FBMS*1024, 0xA0000) is hidden.
  PXENV+ and !PXE are at .text16:0780 and .text16:0720 (measured for this build).
- relocate.c: the 32-bit text/data/bss (_textdata_memsz: 0xa2270 bytes for pxe-e1000.rom)
  go to the top of the highest usable region below 0xfff00000 holding size + 4095, moved down
  so that the address keeps the old one's (the PMM decompression area's, 4 KiB aligned) mod 4096.
- memtop_umalloc.c: each downloaded file is a block below the image: an 8-byte header below
  the block's end, the block start rounded down to 4 KiB; the hidden region starts at the
  lowest header, rounded down to 4 KiB (hidemem.c rounds outward).
- e820mangler.S: while iPXE runs, INT 15h E820 cuts every entry to [0, FBMS*1K),
  [0xA0000, umalloc start), [umalloc end, text start), [text end, ...): hidden ranges are holes.
- Outcomes (option ipxe_outcome): "boot" (Multiboot exec) and "pxenv-stop-undi" remove the
  INT 15h hook (shutdown_boot -> unhide_etherboot): E820 is SeaBIOS's own again, while INT 12h
  and 40:13 keep the lowered FBMS (observed after PXENV_STOP_UNDI: E820 [0, 0x9fc00) RAM, INT 12h
  625); "boot-failure" returns base memory too; "san-boot" keeps everything hidden.
- PMM during POST (image source, decompression area): SeaBIOS's POST model, bootforge.post.
"""

import re
import struct
from dataclasses import dataclass

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal
from bootforge.formats.e820 import E820Type
from bootforge.formats.multiboot import MBI1_SIZE_WITHOUT_FRAMEBUFFER, MbiFlag, Multiboot1Info, Multiboot1MmapEntryFixed
from bootforge.loader import mbi
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import (
    GIB4, RETYPED_MAP, claim_segments, free_space, ram_intervals, standard_checks,
)
from bootforge.loader.result import LoadResult
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.memmap.placement import Component, check_bda_base_memory, check_ipxe_relocation, check_placement
from bootforge.schema import Field

SOURCE = "iPXE src/arch/x86/image/multiboot.c + interface/pcbios/memmap.c (pxe-e1000.rom 1.0.0+git-20190125)"
LOADER_NAME = "iPXE 1.0.0+git-20190125.36a4c85"
MBMODULES_IN_DATA16 = 0xC0         # mbmodules' offset in .data16 (measured for pxe-e1000.rom above)
MAX_MODULES = 8
MAX_MEMMAP = 8
TFTP_SERVER = "tftp://10.0.2.2/"    # QEMU user networking's TFTP server
IPXE_MAX_ADDR = 0xFFF00000
UMALLOC_HEADER = 8                  # memtop_umalloc.c struct external_memory: size_t size, int used
OUTCOMES = ("boot", "pxenv-stop-undi", "boot-failure", "san-boot")
OPTIONS = (
    Field("ipxe_textdata_size", int, None, "bytes of iPXE's 32-bit text+data+bss that relocate.c moves "
          "(default: the ROM's _textdata_memsz; pxe-e1000.rom 0xa2270)", min=0),
    Field("ipxe_basemem_kib", int, None, "KiB of base memory iPXE takes by lowering 40:13 (FBMS) (default: "
          "from the ROM's .text16/.data16 sizes; pxe-e1000.rom 639 -> 625)", min=0),
    Field("ipxe_old_start", int, 0, "where the 32-bit text/data lay before relocation (only its address "
          "mod 4096 is kept; the PMM decompression area is 4 KiB aligned)", min=0),
    Field("ipxe_outcome", str, "boot", "how iPXE ends, which decides the memory it gives back",
          choices=OUTCOMES),
)


@loader_policy("ipxe-pcbios-mb1", firmware="bios", protocol="multiboot1", verdict="ipxe-mb1", source=SOURCE,
               verified=True, boot_medium="ipxe-tftp", options=OPTIONS,
               wrong_firmware="ipxe-pcbios-mb1 runs on a BIOS platform",
               summary="iPXE PC-BIOS option ROM, `multiboot` over TFTP")
def load(req):
    k = req.kernel
    if k.mb1 is None:
        raise LoaderRefusal("Not a multiboot image: no multiboot header found")   # iPXE's ENOEXEC
    if len(req.modules) > MAX_MODULES:
        raise LoaderRefusal(f"iPXE passes at most {MAX_MODULES} Multiboot modules", words=None)
    res = LoadResult(req.loader, "multiboot1", req.platform, SOURCE)
    free = free_space(req.platform.memory_map, 0, GIB4)
    claim_segments(res, free, k, "Could not prepare segment")
    regions = ram_intervals(req.platform.memory_map)
    merged = []
    for a, b in regions:
        if merged and merged[-1][1] == a:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    merged = merged[:MAX_MEMMAP]
    res.mmap = [(a, b - a, E820Type.RAM) for a, b in merged]
    res.mem_lower = next(((b - a) // 1024 for a, b in merged if a == 0), 0)
    res.mem_upper = next(((b - 0x100000) // 1024 for a, b in merged if a <= 0x100000 < b), 0)
    build = IPXE_PXE_E1000
    base = ((req.platform.int12_kib or 639) * 64 - build.data16_paragraphs) * 16 + MBMODULES_IN_DATA16
    mods_addr, mmap_addr, name_addr, mbi_addr, strings = (base, base + 0x80, base + 0x140, base + 0x160,
                                                          base + 0x1C0)

    def uri(name):
        return name if "://" in name else TFTP_SERVER + name.lstrip("/")
    cmdline = f"{uri(req.kernel_loader_path)} {req.cmdline}".rstrip()
    pos = strings + len(cmdline.encode()) + 1
    at = align_up(k.high, 4096)
    mods = []
    for i, m in enumerate(req.modules):
        s = f"{uri(m.loader_path)} {m.cmdline}".rstrip()
        if not free.is_free(at, m.size):
            raise LoaderRefusal(f"Could not prepare segment for module {i} at [{at:#x}, {at + m.size:#x})")
        free.take(at, m.size)
        mods.append({"start": at, "end": at + m.size, "cmdline": s, "cmdline_addr": pos})
        res.place(f"module {i} {m.loader_path}", at, m.size, 4096, "after the kernel, page aligned, "
                  "back to back", "module")
        pos += len(s.encode()) + 1
        at = align_up(at + m.size, 4096)
    res.cmdline = cmdline
    res.modules = [{"start": m["start"], "end": m["end"], "cmdline": m["cmdline"], "cmdline_addr": m["cmdline_addr"]}
                   for m in mods]
    res.mbi_address = mbi_addr
    res.regions = {"mods": mods_addr, "mmap": mmap_addr, "loader": name_addr, "cmdline": strings}
    flags = MbiFlag.MEM | MbiFlag.CMDLINE | MbiFlag.MODS | MbiFlag.MMAP | MbiFlag.BOOT_LOADER_NAME    # 0x24d
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, 0, strings, len(mods), mods_addr,
                                 mmap_length=Multiboot1MmapEntryFixed.sizeof() * len(res.mmap), mmap_addr=mmap_addr,
                                 loader=name_addr)[:MBI1_SIZE_WITHOUT_FRAMEBUFFER]
    res.mbi_bytes += bytes(Multiboot1Info.sizeof() - MBI1_SIZE_WITHOUT_FRAMEBUFFER)
    res.place("iPXE .bss16 (mbmodules, mbmemmap, name, mbinfo, cmdlines)", base, 0x1C0 + 0x100, 16,
              "static in iPXE's base-memory data segment (measured for this ROM)", "mbi")
    hidden = ipxe_self(req, res, merged)
    res.structures = mbi.mb1_structures(res, k, LOADER_NAME)
    standard_checks(res, req.platform.memory_map)
    res.checks = [c for c in res.checks if c.subject != "placement-clear-of-hidden"]
    comps = [Component(p.name, p.start, p.end - p.start) for p in res.placements if p.kind in ("module", "kernel")]
    res.checks += [c for c in check_placement(req.platform.memory_map, res.maps[RETYPED_MAP], comps, hidden=hidden)
                   if c.subject == "placement-clear-of-hidden"]
    return res


@dataclass(frozen=True)
class IpxeBuild:
    """What places an iPXE ROM build's memory: immediates of its prefix code and two measured
    offsets (the PXE structures in .text16, printed by the PXE probe)."""
    textdata_size: int              # _textdata_memsz (romprefix.S: _textdata_memsz_pgh x 16)
    data16_paragraphs: int          # libprefix.S alloc_basemem: _data16_memsz_ppgh
    text16_paragraphs: int          # _text16_memsz_ppgh
    pxenv_offset: int = 0x780       # PXENV+ in .text16 (measured: pxeprobe, pxe-e1000.rom)
    ppxe_offset: int = 0x720        # !PXE in .text16 (measured)


# romprefix.S init: `movl $_textdata_memsz_pgh, %ecx` then `addl $0x20ff, %ecx`.
TEXTDATA_MEMSZ_PGH = re.compile(rb"\x66\xb9(....)\x66\x81\xc1\xff\x20\x00\x00", re.S)
# libprefix.S alloc_basemem: movw %fs:0x13,%ax; shlw $6,%ax; subw $data16,%ax; push; subw $text16,%ax; push; shrw $6
ALLOC_BASEMEM = re.compile(rb"\x64\xa1\x13\x00\xc1\xe0\x06\x2d(..)\x50\x2d(..)\x50\xc1\xe8\x06", re.S)
IPXE_PXE_E1000 = IpxeBuild(0xA2270, 0x2F4, 0x84)     # Debian's pxe-e1000.rom (1.0.0+git-20190125.36a4c85)


def ipxe_build_of(image_data):
    """The IpxeBuild of an iPXE legacy ROM image (its uncompressed prefix), or None when its
    prefix code is not the one read here."""
    t = TEXTDATA_MEMSZ_PGH.search(image_data)
    b = ALLOC_BASEMEM.search(image_data)
    if t is None or b is None:
        return None
    return IpxeBuild(struct.unpack("<I", t.group(1))[0] * 16, struct.unpack("<H", b.group(1))[0],
                     struct.unpack("<H", b.group(2))[0])


@dataclass
class IpxeMemory:
    fbms_before: int                # KiB
    fbms: int                       # KiB after alloc_basemem (INT 12h and 40:13 while iPXE runs)
    text16_segment: int
    data16_segment: int
    text: tuple                     # (start, end) of the relocated text/data/bss
    umalloc: list                   # [(name, start, end)] blocks, top down
    hidden: list                    # [(start, size)]: base memory, umalloc, text (4 KiB rounded)
    views: dict                     # "while-running", "after-<outcome>": MemoryMap
    int12_after: dict               # outcome -> INT 12h KiB afterwards

    @property
    def pxenv(self):
        return self.text16_segment, IPXE_PXE_E1000.pxenv_offset

    @property
    def ppxe(self):
        return self.text16_segment, IPXE_PXE_E1000.ppxe_offset


def ipxe_memory(e820, int12_kib, downloads, *, build=IPXE_PXE_E1000, old_start=0, textdata_size=None,
                basemem_kib=None):
    """iPXE's own memory on the BIOS map *e820* with INT 12h *int12_kib*, after downloading
    *downloads* [(name, bytes)] (seed 000; rules in the module docstring)."""
    size = build.textdata_size if textdata_size is None else textdata_size
    fbms_old = int12_kib
    data16 = fbms_old * 64 - build.data16_paragraphs
    text16 = data16 - build.text16_paragraphs
    if basemem_kib is not None:
        text16 = (fbms_old - basemem_kib) * 64
    fbms = text16 >> 6
    usable = []
    for r in e820.ranges:
        if r.type == E820Type.RAM:
            if usable and usable[-1][1] == r.start:
                usable[-1] = (usable[-1][0], r.start + r.size)
            else:
                usable.append((r.start, r.start + r.size))
    best = None
    for a, b in usable:
        b = min(b, IPXE_MAX_ADDR)
        if b - a >= size + 4095 and (best is None or a > best[0]):
            best = (a, b)
    if best is None:
        raise LoaderRefusal("iPXE: no memory to relocate to", words=None)
    new = best[1] - size
    new -= (new - old_start) % 4096
    text_hidden = (new // 4096 * 4096, align_up(new + size, 4096))
    top = bottom = text_hidden[0]
    blocks = []
    for name, n in downloads:
        ptr = bottom - UMALLOC_HEADER
        bottom = (ptr - n) // 4096 * 4096
        blocks.append((name, bottom, bottom + n))
    umalloc_start = (bottom - UMALLOC_HEADER) // 4096 * 4096 if blocks else top
    hidden = [(fbms * 1024, 0xA0000 - fbms * 1024), (umalloc_start, top - umalloc_start),
              (text_hidden[0], text_hidden[1] - text_hidden[0])]
    hidden = [(a, n) for a, n in hidden if n > 0]

    def view(hide):
        # e820mangler.S: every entry is cut to the windows outside the hidden ranges; what is
        # cut away is a hole (no entry), nothing is merged.
        out = []
        for r in e820.ranges:
            pieces = [(r.start, r.start + r.size)]
            for a, n in sorted(hide):
                pieces = [q for lo, hi in pieces for q in ((lo, min(hi, a)), (max(lo, a + n), hi)) if q[0] < q[1]]
            out += [MemoryRange(lo, hi - lo, r.type) for lo, hi in pieces]
        return e820.replace(out)
    views = {"while-running": view(hidden), "after-boot": e820, "after-pxenv-stop-undi": e820,
             "after-boot-failure": e820, "after-san-boot": view(hidden)}
    int12_after = {"boot": fbms, "pxenv-stop-undi": fbms, "boot-failure": fbms_old, "san-boot": fbms}
    return IpxeMemory(fbms_old, fbms, text16, data16, (new, new + size), blocks, hidden, views, int12_after)


def ipxe_self(req, res, usable):
    """Where iPXE itself lives (seed 000) and the E820 views INT 15h gives; returns hidden ranges."""
    opts = req.options       # defaults from OPTIONS filled in by run_policy
    outcome = opts["ipxe_outcome"]
    fbms_old = req.platform.int12_kib or 639
    downloads = [("kernel " + req.kernel_loader_path, req.kernel.file_size)] + \
                [(f"module {i} " + m.loader_path, m.size) for i, m in enumerate(req.modules)]
    old = int(opts["ipxe_old_start"])
    mem = ipxe_memory(req.platform.memory_map, fbms_old, downloads, old_start=old,
                      textdata_size=opts.get("ipxe_textdata_size"), basemem_kib=opts.get("ipxe_basemem_kib"))
    res.place("iPXE 16-bit code/data (base memory, 40:13 lowered)", mem.fbms * 1024, (fbms_old - mem.fbms) * 1024,
              1024, f"libprefix.S alloc_basemem: FBMS {fbms_old} -> {mem.fbms} KiB", "loader")
    text = res.place("iPXE text/data (relocated)", mem.text[0], mem.text[1] - mem.text[0], 4096,
                     "relocate.c: top of the highest usable region below 0xfff00000, keeping addr mod 4096",
                     "loader")
    for name, a, b in mem.umalloc:
        res.place(f"umalloc: downloaded {name}", a, b - a, 4096,
                  "memtop_umalloc.c: down from below the image, 8-byte header, 4 KiB aligned", "loader")
    res.maps["e820-while-ipxe-runs"] = mem.views["while-running"]
    res.maps[f"e820-after-{outcome}"] = mem.views[f"after-{outcome}"]
    res.checks.append(check_ipxe_relocation(old, Component(text.name, text.start, text.end - text.start)))
    res.checks.append(check_bda_base_memory(mem.fbms, mem.fbms * 1024))
    res.notes.append(f"iPXE's own regions for pxe-e1000.rom's build (options ipxe_textdata_size, "
                     f"ipxe_basemem_kib override); outcome {outcome!r}: E820 via INT 15h afterwards is "
                     f"maps['e820-after-{outcome}'], INT 12h {mem.int12_after[outcome]} KiB")
    # Placement is judged against everything iPXE holds while it copies the kernel in.
    return [] if outcome == "boot-failure" else mem.hidden
