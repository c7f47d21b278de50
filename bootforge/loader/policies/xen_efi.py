"""Xen (xen.gz, Multiboot2 with the EFI boot-services and EFI64-entry tags)
started by GRUB x86_64-efi, up to the E820 map Xen derives from the EFI map
(xen-project/xen xen/arch/x86/efi/efi-boot.h, xen/common/efi/boot.c and
ebmalloc.c; GRUB's multiboot_elfxx.c relocatable path; seed 004).
Observed: Xen 4.17.7 (Debian), GRUB 2.06, OVMF 2022.11, q35 -m 512.

Rules:
- GRUB keeps boot services (tag 7) and places the relocatable image (tag 10:
  min 2 MiB, 2 MiB aligned, preference high) at the highest 2 MiB-aligned
  run of conventional memory that holds [lowest p_paddr, highest end):
  "Xen image load base address" is that address minus the lowest p_paddr
  (Xen's image base lies 2 MiB below its first segment). Below 4 GiB and
  2 MiB aligned (checked). Then the sections with sh_addr == 0 (lowest
  conventional pages), as for any Multiboot2 ELF.
- Modules: lowest conventional pages at/above 0x1000 (never boot-services
  memory, which stays in use).
- Trampoline: AllocatePages(AllocateMaxAddress, EfiLoaderData, PFN_UP(size),
  1 MiB): EDK2 takes the highest free pages below 1 MiB; failing that, the
  top of the highest conventional/boot-services region ending <= 1 MiB;
  neither: "No memory for trampoline". Its size is a property of the Xen
  build (trampoline_end - trampoline_start), given by the `trampoline_size`
  option (default 0x2000 - not printed by Xen, so not compared).
- ebmalloc: a static 1 MiB pool inside the image's .bss (bump allocator,
  "Out of static memory"): part of the image, nothing placed outside it.
- The E820 ("EFI RAM map:" on the console): Xen's table over the EFI map at
  its ExitBootServices (bootforge.memmap.convert.efi_to_e820(convention=
  "xen")): conventional, loader and boot-services memory -> RAM with WB, else
  unusable; ACPI reclaim -> ACPI, NVS -> NVS, the rest reserved; contiguous
  equal types merged, no sort. GRUB's and Xen's own allocations turn
  conventional pages into loader data, which converts to RAM as well, so the
  map before loading predicts it.
"""

from bootforge.errors import LoaderRefusal
from bootforge.formats.efi_memmap import EfiMemoryType
from bootforge.loader.alloc import align_down, align_up
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB
from bootforge.loader.policies.grub_efi import FREED_AT_EXIT, _with_loader_data, place_grub_heap
from bootforge.loader.policies.grub_pc import grub_module_size, relocatable_tag
from bootforge.loader.result import LoadResult
from bootforge.memmap.convert import efi_to_e820
from bootforge.memmap.model import MemoryRange
from bootforge.memmap.placement import Component, check_placement, check_trampoline, check_xen_image
from bootforge.schema import Field
from bootforge.verdict import check

SOURCE = "Xen 4.17 xen/arch/x86/efi/efi-boot.h + GRUB 2.06 multiboot_elfxx.c (x86_64-efi)"
PAGE = 4096
DEFAULT_TRAMPOLINE = 0x2000


OPTIONS = (
    Field("trampoline_size", int, DEFAULT_TRAMPOLINE, "bytes of Xen's real-mode trampoline "
          "(trampoline_end - trampoline_start of the Xen build; Xen does not print it)", min=0),
)


@loader_policy("xen-efi", firmware="uefi", protocol="xen", verdict="grub-mb2", source=SOURCE, verified=True,
               boot_medium="grub-efi-iso", options=OPTIONS,
               wrong_firmware="xen-efi needs an EFI platform (lsefimmap text, efi-bin, r820-efi, ...)",
               summary="Xen 4.17 xen.gz started by GRUB x86_64-efi `multiboot2`, up to its E820")
def load(req):
    k = req.kernel
    plat = req.platform
    if k.mb2 is None:
        raise LoaderRefusal("no multiboot header found")
    res = LoadResult(req.loader, "xen", plat, SOURCE)
    efi, conv = place_grub_heap(res, plat)
    conv = conv.clip(0x1000, 1 << 64)
    taken = []
    size = k.high - k.low
    tag = relocatable_tag(k)
    if tag is not None:
        if tag["align"] == 0:
            raise LoaderRefusal("relocatable tag has align 0 (no alignment can be met)")
        if size > tag["max_addr"] or tag["min_addr"] > tag["max_addr"] - size:
            raise LoaderRefusal("invalid min/max address and/or load size")
        pages = align_up(size, PAGE)
        finder = conv.highest if tag.get("preference") == 2 else conv.lowest
        base = finder(pages, tag["align"], tag["min_addr"], tag["max_addr"] + 1)
        if base is None:
            raise LoaderRefusal("couldn't find suitable memory target (Xen image)")
        rule = (f"GRUB relocatable: {'highest' if tag.get('preference') == 2 else 'lowest'} "
                f"{tag['align']:#x}-aligned conventional fit in [{tag['min_addr']:#x}, {tag['max_addr']:#x}]")
    else:
        base, pages, rule = k.low, align_up(size, PAGE), "fixed: ELF p_paddr"
        if not conv.is_free(base, pages):
            raise LoaderRefusal("couldn't find suitable memory target (Xen image)")
    conv.take(base, pages)
    taken.append((base, pages))
    image = res.place("Xen image (incl. the 1 MiB ebmalloc pool in .bss)", base, size,
                      tag["align"] if tag else PAGE, rule, "kernel")
    res.load_base = base - k.low     # Xen's image base lies below its first segment (p_paddr offset)
    for sec in k.unloaded_sections("grub"):
        at = conv.lowest(align_up(sec.size, PAGE), PAGE, 0x1000, GIB4)
        if at is None:
            raise LoaderRefusal("couldn't find suitable memory target (ELF section)")
        conv.take(at, align_up(sec.size, PAGE))
        taken.append((at, align_up(sec.size, PAGE)))
        res.place(f"ELF section {sec.index}", at, sec.size, PAGE, "GRUB: lowest conventional pages", "boot-info")
    mods = []
    for i, m in enumerate(req.modules):
        msize = grub_module_size(m)     # GRUB's module2 gunzips / unxz's
        at = conv.lowest(align_up(msize, PAGE), PAGE, 0x1000, GIB4)
        if at is None:
            raise LoaderRefusal(f"couldn't find suitable memory target (module {i} {m.loader_path})")
        conv.take(at, align_up(msize, PAGE))
        taken.append((at, align_up(msize, PAGE)))
        mods.append({"start": at, "end": at + msize, "cmdline": m.cmdline})
        res.place(f"module {i} {m.loader_path}", at, msize, PAGE, "lowest conventional pages", "module")
    res.modules = mods
    # Trampoline below 1 MiB.
    tsize = req.options["trampoline_size"]      # default from OPTIONS, filled in by run_policy
    tpages = align_up(tsize, PAGE)
    tramp = conv.highest(tpages, PAGE, 0, MIB)
    trule = "AllocatePages(AllocateMaxAddress, 1 MiB): highest free pages below 1 MiB"
    if tramp is None:
        best = None
        for r in efi.ranges:
            end = r.start + r.size
            if (r.type in FREED_AT_EXIT or r.type == EfiMemoryType.CONVENTIONAL) and end <= MIB and r.size >= tsize:
                cand = align_down(end - tsize, PAGE)
                if best is None or cand > best:
                    best = cand
        if best is None:
            raise LoaderRefusal("No memory for trampoline")
        tramp, trule = best, "map scan: top of the highest conventional/boot-services region ending <= 1 MiB"
    else:
        conv.take(tramp, tpages)
    taken.append((tramp, tpages))
    tr = res.place(f"trampoline ({tsize:#x} bytes, size assumed)", tramp, tsize, PAGE, trule, "loader")
    after = _with_loader_data(efi, taken)
    e820 = efi_to_e820(after, "xen")
    res.maps["efi-at-exit"] = after
    res.maps["e820"] = e820
    res.mmap = [(r.start, r.size, r.type) for r in e820.ranges]
    res.cmdline = req.cmdline
    res.notes.append(f"Xen image load base address (as Xen prints it): {res.load_base:#x}")
    res.grub_pages = [(a, n) for a, n in taken if a != tramp]
    res.notes.append("Xen prints this E820 as 'EFI RAM map:' and its base as 'Xen image load base address'")
    comps = [Component(p.name, p.start, p.end - p.start) for p in res.placements]
    # After ExitBootServices boot-services memory is free too (the trampoline may come from it).
    free_in = efi.replace([MemoryRange(r.start, r.size, EfiMemoryType.CONVENTIONAL if r.type in FREED_AT_EXIT
                                       else r.type, r.attributes)
                           for r in plat.memory_map.ranges])
    res.checks += [c for c in check_placement(free_in, free_in, comps)
                   if c.subject in ("placement-in-usable-memory", "placement-no-overlap")]
    res.checks.append(check_xen_image(Component(image.name, image.start, image.end - image.start)))
    res.checks.append(check_trampoline(Component(tr.name, tr.start, tr.end - tr.start)))
    res.checks.append(check("e820-from-efi", bool(res.mmap), f"{len(res.mmap)} E820 entries by Xen's table"))
    return res
