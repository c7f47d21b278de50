"""Rules several BIOS loaders share: what INT 12h / E820 give, and the checks.

(The firmware and verdict refusal every policy shares is bootforge.loader.policies.run_policy.)"""

from bootforge.errors import LoaderRefusal
from bootforge.formats.e820 import E820Type
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.memmap.ops import free_intervals, sanitize
from bootforge.memmap.placement import Component, check_low_page_untouched, check_placement
from bootforge.verdict import check
from bootforge.loader.alloc import FreeSpace
from bootforge.loader.image import aout_kludge_image
from bootforge.formats.multiboot import ELF_MAGIC

MIB = 1 << 20
GIB4 = 1 << 32


def ram_intervals(memory_map, lo=0, hi=1 << 64):
    """E820 type-1 ranges minus anything another range claims, clipped to [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b in free_intervals(memory_map) if min(b, hi) > max(a, lo)]


def mem_upper_kib(memory_map):
    """Length of the available range that starts at 1 MiB, less nothing, in KiB (GRUB, QEMU, Syslinux)."""
    for a, b in ram_intervals(memory_map):
        if a <= MIB < b:
            return (b - MIB) // 1024
    return 0


def mem_lower_kib(platform):
    """INT 12h (the BDA word at 0x413): what the BIOS loaders report as mem_lower."""
    if platform.int12_kib is not None:
        return platform.int12_kib
    for a, b in ram_intervals(platform.memory_map):
        if a == 0:
            return min(b, 0xA0000) // 1024
    return 0


def e820_entries(memory_map):
    """The E820 list as the BIOS returns it (order kept: INT 15h E820 walks its table)."""
    return [(r.start, r.size, r.type) for r in memory_map.ranges]


def claim_segments(result, free, kernel, words):
    """Kernel PT_LOAD segments at their p_paddr; *words* is the loader's refusal."""
    for i, (paddr, _filesz, memsz) in enumerate(kernel.segments):
        if not memsz:
            continue
        if not free.is_free(paddr, memsz):
            raise LoaderRefusal(f"{words} (segment {i} at [{paddr:#x}, {paddr + memsz:#x}) is not free memory)",
                                words=words)
        free.take(paddr, memsz)
        result.place(f"kernel segment {i}", paddr, memsz, 1, "fixed: ELF p_paddr", "kernel")


RETYPED_MAP = "input-retyped"


def output_map(memory_map, result, kinds=("kernel", "module", "mbi", "boot-info", "loader")):
    """The input map with every placement retyped (loader data: reserved in E820 terms)."""
    ranges = [MemoryRange(r.start, r.size, r.type) for r in memory_map.ranges]
    for p in result.placements:
        if p.kind in kinds and p.end > p.start:
            ranges.append(MemoryRange(p.start, p.end - p.start, E820Type.RESERVED))
    return sanitize(MemoryMap("e820", ranges, source="placed"))


def standard_checks(result, memory_map, hidden=()):
    comps = [Component(p.name, p.start, p.end - p.start) for p in result.placements
             if p.end > p.start and p.kind in ("kernel", "module", "mbi", "boot-info")]
    out_map = output_map(memory_map, result)
    # The input map with every placement retyped: a view for the checks and the picture, not
    # the map the kernel is given (that one is maps["handed-to-kernel"], LoadResult.to_json).
    result.maps[RETYPED_MAP] = out_map
    result.checks += check_placement(memory_map, out_map, comps, hidden=hidden)
    result.checks.append(check_low_page_untouched(comps))
    mods_ok = all(m["start"] % 4096 == 0 for m in result.modules)
    result.checks.append(check("modules-page-aligned", mods_ok, "every module starts on a 4 KiB boundary"
                               if mods_ok else "a module is not 4 KiB aligned"))
    below = all(m["end"] <= GIB4 for m in result.modules)
    result.checks.append(check("modules-below-4gib", below, "every module ends below 4 GiB" if below
                               else "a module ends above 4 GiB (a 32-bit field cannot say so)"))


def free_space(memory_map, lo=0, hi=GIB4):
    return FreeSpace(ram_intervals(memory_map, lo, hi))


def mb1_kludge_view(kernel):
    """*kernel* as a loader that honours the MB1 a.out kludge before the ELF headers sees it:
    GRUB 2.06 multiboot.c and QEMU hw/i386/multiboot.c take header flag 16's
    load_addr/load_end_addr/bss_end_addr/entry_addr even in an ELF file (grub-invaders'
    invaders.exec: loaded up to bss_end_addr, and GRUB then passes no section headers).
    Syslinux and iPXE try the ELF headers first and keep *kernel*."""
    mb1 = kernel.mb1
    if kernel.data[:4] != ELF_MAGIC or not mb1 or not mb1.get("aout_kludge") or not mb1.get("addresses"):
        return kernel
    given = kernel.given if kernel.given is not None else kernel.data
    flat = aout_kludge_image(kernel.path, given, kernel.data, kernel.compressed)
    flat.given = kernel.given
    return flat
