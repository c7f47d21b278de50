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
  equal types merged; then init_e820's sanitize_e820_map (xen/arch/x86/e820.c)
  sorts and merges it before "EFI RAM map:" is printed (OVMF lists q35's
  MMCONFIG window and the flash after the RAM above 4 GiB). GRUB's and Xen's
  own allocations turn conventional pages into loader data, which converts to
  RAM as well, so the map before loading predicts it.
"""

from bootforge.align import align_down, align_up
from bootforge.errors import FormatError, LoaderRefusal, RecipeError
from bootforge.formats.efi_memmap import EfiMemoryType
from bootforge.loader import ovmf_pages
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB
from bootforge.loader.policies.grub_efi import FREED_AT_EXIT, _with_loader_data, place_grub_heap
from bootforge.loader.policies.grub_pc import grub_module_size, relocatable_tag
from bootforge.loader.ovmf_pages import PAGE, pages_for, pool_pages
from bootforge.loader.result import LoadResult
from bootforge.machines.qemu_x86 import Q35_LOWMEM, Q35_LOWMEM_SPLIT
from bootforge.memmap.convert import efi_to_e820
from bootforge.memmap.model import MemoryRange
from bootforge.memmap.ops import sanitize
from bootforge.memmap.placement import Component, check_placement, check_trampoline, check_xen_image
from bootforge.pe.image import read_pe
from bootforge.schema import Field
from bootforge.verdict import check

SOURCE = "Xen 4.17 xen/arch/x86/efi/efi-boot.h + GRUB 2.06 multiboot_elfxx.c (x86_64-efi)"
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
    # Xen's table, then init_e820's sanitize_e820_map (sorted, merged) before it is printed.
    e820 = sanitize(efi_to_e820(after, "xen"))
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


# --- xen.efi started by OVMF from an ESP --------------------------------------------------

ESP_SOURCE = ("EDK2 edk2-stable202211 MdeModulePkg/Core/Dxe/Image/Image.c (CoreLoadPeImage) + Mem/Page.c, "
              "Pool.c; Xen 4.17 xen/common/efi/boot.c (efi_start, read_file), xen/arch/x86/efi/efi-boot.h")
# Xen's EFI loader reads dom0's files from the directory of its own image (get_parent_handle).
ESP_DIR = "/EFI/BOOT/"
ESP_IMAGE = ESP_DIR + "BOOTX64.EFI"
# The config file: the image's name with its extension replaced by .cfg (efi_start's
# point_tail loop; no load options from BdsDxe's removable-media boot, so no -cfg=).
ESP_CFG = ESP_DIR + "BOOTX64.cfg"
ESP_SECTION = "xen"
# read_file's AllocateMaxAddress limit: min(1 << (32 + PAGE_SHIFT), the direct map's size).
XEN_READ_MAX = (1 << 44) - 1
# OVMF's EFI map when BdsDxe starts the ESP's BOOTX64.EFI from the xen-esp medium
# (bootforge/qemu/xen_esp.py), by machine and memory class: derived from a real boot's
# map at Xen's ExitBootServices (tests/xen_efi_esp_capture.py).
ESP_CAPTURES = {("qemu-q35-ovmf", "low"): "esp-xen-512M", ("qemu-q35-ovmf", "high"): "esp-xen-3G"}
FOUR_GIB = 1 << 32


def esp_cfg(cmdline, modules):
    """Xen's BOOTX64.cfg (xen.efi's [global]/section syntax, efi_start): options= is Xen's
    command line, kernel= module 0 (its file name and dom0's command line), ramdisk= module 1;
    *modules* [(loader path, command line)]. The bytes are the prediction's input: read_file
    takes PFN_UP(size) pages for it."""
    lines = ["[global]", f"default={ESP_SECTION}", "", f"[{ESP_SECTION}]"]
    if cmdline:
        lines.append(f"options={cmdline}")
    for key, (name, args) in zip(("kernel", "ramdisk"), modules):
        lines.append(f"{key}={esp_name(name)} {args}".rstrip())
    return ("\n".join(lines) + "\n").encode()


def esp_cfg_text(req):
    """esp_cfg of a LoadRequest."""
    return esp_cfg(req.cmdline, [(m.loader_path, m.cmdline) for m in req.modules])


def esp_name(loader_path):
    """The name BOOTX64.cfg gives a module: relative to Xen's directory, where the medium puts it."""
    name = str(loader_path).replace("\\", "/")
    if name.upper().startswith(ESP_DIR):
        name = name[len(ESP_DIR):]
    if not name or "/" in name:
        raise RecipeError(f"xen-efi-esp: module {loader_path!r}: give a bare file name (Xen reads dom0's "
                          f"files from its own directory, {ESP_DIR})")
    return name


def _load_pe(pm, pe, file_size):
    """OVMF's LoadImage of the file (CoreLoadImageCommon, CoreLoadPeImage): the file into a Boot
    Services Data pool buffer; pages(SizeOfImage + SectionAlignment when that exceeds a page) of
    Loader Code, at the link address when it is >= 1 MiB and free, else AllocateAnyPages
    (top-down in the default bin); the image at that start rounded up to SectionAlignment;
    then the buffer freed. (start, pages, image base)."""
    buf = pm.allocate_pool("xen.efi file buffer", EfiMemoryType.BOOT_SERVICES_DATA, file_size)
    align = pe.section_alignment
    npages = pages_for(pe.size_of_image + (align if align > PAGE else 0))
    start = None
    if pe.image_base >= MIB and any(a <= pe.image_base and pe.image_base + npages * PAGE <= b
                                    for a, b in pm.of_type(EfiMemoryType.CONVENTIONAL)):
        start = pe.image_base
        pm._set(start, start + npages * PAGE, EfiMemoryType.LOADER_CODE)
    else:
        start = pm.allocate("xen.efi image", EfiMemoryType.LOADER_CODE, npages)
    if buf is None or start is None:
        raise LoaderRefusal("Out of resources (OVMF LoadImage: no room for xen.efi)")
    pm.free(buf[0], pool_pages(file_size))
    return start, npages, align_up(start, max(align, PAGE))


def esp_capture(plat):
    """OVMF's captured map for *plat* at Xen's start, moved to its low RAM; RecipeError without one."""
    ram = plat.memory_bytes
    machine = plat.qemu.name if plat.qemu is not None else None
    if machine is None or ram is None:
        raise RecipeError("xen-efi-esp predicts OVMF's page allocator: give --platform qemu-q35-ovmf:<mem> "
                          "(a map file has no capture of OVMF's allocations)")
    lowmem = Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram
    name = ESP_CAPTURES.get((machine, ovmf_pages.memory_class(ram, lowmem)))
    if name is None:
        raise RecipeError(f"xen-efi-esp: no capture of OVMF's map on {machine}")
    cap = ovmf_pages.read_capture(name)
    pm, held, _later = cap.at(lowmem)
    # The RAM above 4 GiB is this machine's (Capture.at moves only what lies below 4 GiB).
    pm.ranges = [[a, FOUR_GIB + ram - lowmem if a == FOUR_GIB and t == EfiMemoryType.CONVENTIONAL else b, t]
                 for a, b, t in pm.ranges]
    return cap, pm, held


@loader_policy("xen-efi-esp", firmware="uefi", protocol="xen", verdict=None, source=ESP_SOURCE, verified=True,
               boot_medium="xen-esp", options=OPTIONS,
               wrong_firmware="xen-efi-esp needs OVMF: --platform qemu-q35-ovmf:<mem>",
               summary="Xen 4.17 xen.efi started by OVMF from an ESP (BOOTX64.EFI + BOOTX64.cfg), up to its E820")
def load_esp(req):
    """xen.efi as the ESP's EFI/BOOT/BOOTX64.EFI: OVMF's LoadImage places the PE (not a loader's
    relocator), then Xen's EFI loader reads BOOTX64.cfg and dom0's kernel and ramdisk with
    AllocatePages(AllocateMaxAddress, EfiLoaderData), takes its trampoline below 1 MiB and exits
    boot services. Every allocation is replayed on OVMF's captured map (loader/ovmf_pages.py)."""
    plat = req.platform
    data = req.kernel.data
    if req.kernel.compressed:
        # LoadImage reads the file as it is (no decompression): a gzip'd xen.gz is no PE image.
        raise LoaderRefusal(f"not a PE image (OVMF LoadImage: Unsupported): the file is {req.kernel.compressed}-"
                            "compressed (xen.gz is for Multiboot loaders; OVMF starts xen.efi)")
    try:
        pe = read_pe(data)
    except FormatError as exc:
        raise LoaderRefusal(f"not a PE image (OVMF LoadImage: Unsupported): {exc.message}") from None
    if not req.modules:
        raise LoaderRefusal("No Dom0 kernel image specified.")
    if len(req.modules) > 2:
        raise RecipeError("xen-efi-esp: BOOTX64.cfg names dom0's kernel and ramdisk (kernel=, ramdisk=): "
                          f"{len(req.modules)} modules given")
    cap, pm, held = esp_capture(plat)
    for a, b in held:
        pm._set(a, b, EfiMemoryType.BOOT_SERVICES_DATA)
    res = LoadResult(req.loader, "xen", plat, ESP_SOURCE)
    rule = f"top-down AllocatePages on OVMF's captured map ({cap.name}; EDK2 Page.c CoreFindFreePages)"
    start, npages, base = _load_pe(pm, pe, len(data))
    for a, b in held:
        pm.free(a, (b - a) // PAGE)
    # efi_arch_load_addr_check (efi-boot.h): Xen runs where LoadImage put it.
    if (base + pe.size_of_image - 1) >> 32:
        raise LoaderRefusal("Xen must be loaded below 4Gb.")
    if base & (2 * MIB - 1):
        raise LoaderRefusal("Xen must be loaded at a 2Mb boundary.")
    res.place("xen.efi image (LoadImage: SizeOfImage + SectionAlignment of Loader Code)", start, npages * PAGE,
              PAGE, rule, "loader")
    res.place("Xen image (rounded up to SectionAlignment)", base, pe.size_of_image, max(pe.section_alignment, PAGE),
              "EDK2 CoreLoadPeImage: ImageAddress aligned up to SectionAlignment", "kernel")
    res.load_base = base
    cfg = esp_cfg_text(req)
    cfg_at = pm.allocate("BOOTX64.cfg", EfiMemoryType.LOADER_DATA, pages_for(len(cfg)), XEN_READ_MAX)
    mods = []
    for key, m in zip(("kernel", "ramdisk"), req.modules):
        at = pm.allocate(f"{key} {m.loader_path}", EfiMemoryType.LOADER_DATA, pages_for(m.size), XEN_READ_MAX)
        if at is None:
            raise LoaderRefusal(f"Allocation: {esp_name(m.loader_path)}")       # read_file's blexit word
        mods.append({"start": at, "end": at + m.size, "cmdline": m.cmdline, "name": esp_name(m.loader_path)})
        res.place(f"{key} {esp_name(m.loader_path)} (read_file, Loader Data)", at, m.size, PAGE, rule, "module")
    if cfg_at is not None:
        pm.free(cfg_at, pages_for(len(cfg)))            # efi_start frees the config before exiting
    res.modules = mods
    tsize = req.options["trampoline_size"]
    tramp = pm.allocate("trampoline", EfiMemoryType.LOADER_DATA, pages_for(tsize), MIB - 1)
    if tramp is None:
        raise LoaderRefusal("No memory for trampoline")
    res.place(f"trampoline ({tsize:#x} bytes, size assumed)", tramp, tsize, PAGE,
              "efi_arch_memory_setup: AllocatePages(AllocateMaxAddress 1 MiB, Loader Data)", "loader")
    exit_map = esp_exit_map(pm, plat.memory_map)
    res.maps["efi-at-exit"] = exit_map
    # Xen's table over the map in GetMemoryMap's order (OVMF lists the GCD's MMIO after the RAM
    # above 4 GiB), then init_e820's sanitize_e820_map (xen/arch/x86/e820.c: sorted, merged)
    # before it prints "EFI RAM map:".
    e820 = sanitize(efi_to_e820(exit_map, "xen"))
    res.maps["e820"] = e820
    res.mmap = [(r.start, r.size, r.type) for r in e820.ranges]
    res.cmdline = req.cmdline
    res.notes.append(f"Xen image load base address (as Xen prints it): {base:#x}")
    res.notes.append(f"BOOTX64.cfg ({len(cfg)} bytes) is what `verify` writes beside BOOTX64.EFI")
    comps = [Component(p.name, p.start, p.end - p.start) for p in res.placements
             if not p.name.startswith("xen.efi image")]
    res.checks.append(check_xen_image(Component("Xen image", base, pe.size_of_image)))
    res.checks += [c for c in check_placement(exit_map, exit_map, comps) if c.subject == "placement-no-overlap"]
    res.checks.append(check("e820-from-efi", bool(res.mmap), f"{len(res.mmap)} E820 entries by Xen's table"))
    return res


def esp_exit_map(pm, platform_map):
    """The replayed map at ExitBootServices as a MemoryMap in GetMemoryMap's order. Each piece
    takes the attributes of the platform map's descriptor it starts in (OVMF sets them per
    region: WB RAM, runtime, MMIO) and that descriptor's place in the order: CoreGetMemoryMap
    (EDK2 Mem/Page.c) lists the memory map by address, then the GCD's reserved and runtime MMIO
    entries (q35's MMCONFIG window and the flash, after the RAM above 4 GiB), as the platform
    map has them."""
    out = []
    ranges = platform_map.ranges
    for a, b, t in pm.ranges:
        at = next((i for i, r in enumerate(ranges) if r.start <= a < r.start + r.size), len(ranges))
        attr = ranges[at].attributes if at < len(ranges) else 0
        out.append((at, a, MemoryRange(a, b - a, EfiMemoryType(t), attr)))
    return platform_map.replace([r for _at, _a, r in sorted(out, key=lambda x: x[:2])])
