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

iPXE's own memory (seed 000; modelled, not compared with a real boot: iPXE
prints none of it). Sizes are options with defaults after seed 000:
- POST: two PMM areas (image source ~80 KiB, decompression area ~640 KiB),
  freed at the end of POST; the ~3 KiB prefix stays in the option-ROM area
  (never freed).
- Boot entry: ~13 KiB of base memory by lowering the BDA word 40:13 (FBMS);
  [FBMS*1024, 0xA0000) is hidden.
- relocate.c: the 32-bit text/data go to the highest usable region below
  0xfff00000 that holds size + 4095, at its top, moved down so that the
  address keeps the old one's value mod 4096.
- memtop_umalloc.c: umalloc (the downloaded kernel and modules) grows down
  from just below the relocated image, 4 KiB aligned.
- e820mangler.S: INT 15h E820 cuts every entry to [0, FBMS*1K),
  [0xA0000, umalloc start), [umalloc end, text start), [text end, ...)
  (hidden ranges rounded out to 4 KiB except base memory).
- Freeing (option ipxe_outcome): "boot" (Multiboot exec: the hook is
  removed, base memory stays taken), "pxenv-stop-undi" (same), "boot-failure"
  (everything returned), "san-boot" (nothing ever returned).
"""

from bootforge.errors import LoaderRefusal
from bootforge.formats.e820 import E820Type
from bootforge.formats.multiboot import MBI1_SIZE_WITHOUT_FRAMEBUFFER, MbiFlag, Multiboot1Info, Multiboot1MmapEntryFixed
from bootforge.loader import mbi
from bootforge.loader.alloc import align_up
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import (
    GIB4, RETYPED_MAP, claim_segments, free_space, ram_intervals, standard_checks,
)
from bootforge.loader.result import LoadResult
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.memmap.ops import sanitize
from bootforge.memmap.placement import Component, check_bda_base_memory, check_ipxe_relocation, check_placement
from bootforge.schema import Field

SOURCE = "iPXE src/arch/x86/image/multiboot.c + interface/pcbios/memmap.c (pxe-e1000.rom 1.0.0+git-20190125)"
LOADER_NAME = "iPXE 1.0.0+git-20190125.36a4c85"
DATA16_BELOW_FBMS = 0x2E80          # mbmodules = FBMS*1024 - this (measured for pxe-e1000.rom above)
MAX_MODULES = 8
MAX_MEMMAP = 8
TFTP_SERVER = "tftp://10.0.2.2/"    # QEMU user networking's TFTP server
IPXE_MAX_ADDR = 0xFFF00000
OUTCOMES = ("boot", "pxenv-stop-undi", "boot-failure", "san-boot")
OPTIONS = (
    Field("ipxe_textdata_size", int, 0x60000, "bytes of iPXE's 32-bit text+data that relocate.c moves "
          "(a property of the ROM build)", min=0),
    Field("ipxe_basemem_kib", int, 13, "KiB of base memory iPXE takes by lowering 40:13 (FBMS)", min=0),
    Field("ipxe_old_start", int, 0, "where the 32-bit text/data lay before relocation (only its address "
          "mod 4096 is kept)", min=0),
    Field("ipxe_pmm_source", int, 80 * 1024, "bytes of the POST PMM area holding the compressed image", min=0),
    Field("ipxe_pmm_decompress", int, 640 * 1024, "bytes of the POST PMM decompression area", min=0),
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
    base = (req.platform.int12_kib or 639) * 1024 - DATA16_BELOW_FBMS
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
    res.modules = [{"start": m["start"], "end": m["end"], "cmdline": m["cmdline"]} for m in mods]
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
    standard_checks(res, req.platform.memory_map)
    res.checks = [c for c in res.checks if c.subject != "placement-clear-of-hidden"]
    comps = [Component(p.name, p.start, p.end - p.start) for p in res.placements if p.kind in ("module", "kernel")]
    res.checks += [c for c in check_placement(req.platform.memory_map, res.maps[RETYPED_MAP], comps, hidden=hidden)
                   if c.subject == "placement-clear-of-hidden"]
    return res


def ipxe_self(req, res, usable):
    """Where iPXE itself lives (seed 000) and the E820 views INT 15h gives; returns hidden ranges."""
    opts = req.options       # defaults from OPTIONS filled in by run_policy
    outcome = opts["ipxe_outcome"]
    size = int(opts["ipxe_textdata_size"])
    fbms_old = req.platform.int12_kib or 639
    fbms = fbms_old - int(opts["ipxe_basemem_kib"])
    res.place("iPXE 16-bit code/data (base memory, 40:13 lowered)", fbms * 1024, (fbms_old - fbms) * 1024, 1024,
              f"basemem.c: FBMS {fbms_old} -> {fbms} KiB", "loader")
    # PMM during POST, from the top of the RAM below 4 GiB (SeaBIOS's temporary high zone).
    top = max((b for a, b in usable if b <= 1 << 32), default=0)
    pmm_src = top - int(opts["ipxe_pmm_source"])
    pmm_dec = pmm_src - int(opts["ipxe_pmm_decompress"])
    res.place("iPXE PMM image source (POST only)", pmm_src, int(opts["ipxe_pmm_source"]), 16,
              "PMM during POST, freed at the end of POST", "firmware")
    res.place("iPXE PMM decompression area (POST only)", pmm_dec, int(opts["ipxe_pmm_decompress"]), 16,
              "PMM during POST, freed at the end of POST", "firmware")
    best = None
    for a, b in usable:
        b = min(b, IPXE_MAX_ADDR)
        if b - a >= size + 4095 and (best is None or a > best[0]):
            best = (a, b)
    if best is None:
        raise LoaderRefusal("iPXE: no memory to relocate to", words=None)
    old = int(opts["ipxe_old_start"])
    new = best[1] - size
    new -= (new - old) % 4096
    text = res.place("iPXE text/data (relocated)", new, size, 4096,
                     "relocate.c: top of the highest usable region below 0xfff00000, keeping addr mod 4096",
                     "loader")
    # umalloc: downloaded kernel, then modules, growing down below the image.
    at = new // 4096 * 4096
    files = [("kernel " + req.kernel_loader_path, req.kernel.file_size)] + \
            [(f"module {i} " + m.loader_path, m.size) for i, m in enumerate(req.modules)]
    for name, n in files:
        at = (at - n) // 4096 * 4096
        res.place(f"umalloc: downloaded {name}", at, n, 4096, "memtop_umalloc.c: down from below the image",
                  "loader")
    umalloc = (at, new // 4096 * 4096)
    text_hidden = (new // 4096 * 4096, align_up(new + size, 4096))
    hidden = [(fbms * 1024, 0xA0000 - fbms * 1024), (umalloc[0], umalloc[1] - umalloc[0]),
              (text_hidden[0], text_hidden[1] - text_hidden[0])]
    e820 = req.platform.memory_map

    def view(hide):
        ranges = [MemoryRange(r.start, r.size, r.type) for r in e820.ranges]
        for a, n in hide:
            ranges.append(MemoryRange(a, n, E820Type.RESERVED))
        m = sanitize(MemoryMap("e820", ranges))
        # e820mangler leaves hidden ranges as holes, not reserved entries.
        return m.replace([r for r in m.ranges if not any(r.start >= a and r.start + r.size <= a + n
                                                          for a, n in hide if r.type == E820Type.RESERVED)])
    res.maps["e820-while-ipxe-runs"] = view(hidden)
    after = {"boot": hidden[:1], "pxenv-stop-undi": hidden[:1], "boot-failure": [], "san-boot": hidden}[outcome]
    res.maps[f"e820-after-{outcome}"] = view(after)
    res.checks.append(check_ipxe_relocation(old, Component(text.name, text.start, text.end - text.start)))
    res.checks.append(check_bda_base_memory(fbms, fbms * 1024))
    res.notes.append(f"iPXE's own regions use seed 000's sizes (options ipxe_textdata_size, ipxe_basemem_kib, "
                     f"...); outcome {outcome!r}: E820 via INT 15h afterwards is maps['e820-after-{outcome}']")
    return [] if outcome == "boot-failure" else hidden
