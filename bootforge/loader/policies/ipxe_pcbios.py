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
"""

from bootforge.errors import RecipeError
from bootforge.loader import mbi
from bootforge.loader.alloc import align_up
from bootforge.loader.policies.common import (
    GIB4, claim_segments, free_space, ram_intervals, standard_checks,
)
from bootforge.loader.result import LoadResult

SOURCE = "iPXE src/arch/x86/image/multiboot.c + interface/pcbios/memmap.c (pxe-e1000.rom 1.0.0+git-20190125)"
LOADER_NAME = "iPXE 1.0.0+git-20190125.36a4c85"
DATA16_BELOW_FBMS = 0x2E80          # mbmodules = FBMS*1024 - this (measured for pxe-e1000.rom above)
MAX_MODULES = 8
MAX_MEMMAP = 8
TFTP_SERVER = "tftp://10.0.2.2/"    # QEMU user networking's TFTP server


def load(req):
    k = req.kernel
    if req.platform.firmware != "bios":
        raise RecipeError("ipxe-pcbios-mb1 runs on a BIOS platform")
    if k.mb1 is None:
        raise RecipeError("Not a multiboot image: no multiboot header found")   # iPXE's ENOEXEC
    if len(req.modules) > MAX_MODULES:
        raise RecipeError(f"iPXE passes at most {MAX_MODULES} Multiboot modules")
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
    res.mmap = [(a, b - a, 1) for a, b in merged]
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
            raise RecipeError(f"Could not prepare segment for module {i} at [{at:#x}, {at + m.size:#x})")
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
    res.mbi_bytes = mbi.mb1_info(0x24D, res.mem_lower, res.mem_upper, 0, strings, len(mods), mods_addr,
                                 mmap_length=24 * len(res.mmap), mmap_addr=mmap_addr, loader=name_addr)[:88] \
        + bytes(28)
    res.place("iPXE .bss16 (mbmodules, mbmemmap, name, mbinfo, cmdlines)", base, 0x1C0 + 0x100, 16,
              "static in iPXE's base-memory data segment (measured for this ROM)", "mbi")
    res.notes.append("iPXE's own relocated image, umalloc heap and hidden base memory are not placed here: "
                     "their sizes depend on the ROM build (the kernel is not told about them)")
    standard_checks(res, req.platform.memory_map)
    return res
