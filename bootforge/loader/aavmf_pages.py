"""AAVMF's page allocator as the arm64 Linux EFI stub meets it: Debian's qemu-efi-aarch64
2022.11 (ArmVirtQemu, edk2-stable202211) on qemu-virt-aarch64, replayed on a captured map with
the OVMF model's PageMap (bootforge/loader/ovmf_pages.py: the same DXE core,
MdeModulePkg/Core/Dxe/Mem/Page.c and Pool.c).

Rules (the sources', checked against the real boot kept in tests/data/aavmf/):
- The default bin: AnyPages and MaxAddress requests of Loader Code/Data go top-down below the
  memory-type bins ArmVirtQemu keeps at the top of RAM (ACPI reclaim, runtime code/data:
  CoreFindFreePages, as on OVMF). Observed at 1G: the bins start at 0x7c430000 and the
  conventional pages above them are never handed to the loader.
- LoadImage of a PE whose SectionAlignment exceeds a page (MdeModulePkg/Core/Dxe/Image/Image.c
  CoreLoadPeImage): EFI_SIZE_TO_PAGES(SizeOfImage + SectionAlignment) pages of Loader Code,
  AllocateAnyPages, the image at the first SectionAlignment boundary inside them (Debian's
  arm64 Image: 64 KiB, 0x2020 pages at 1G observed right below the bins). The removable-media
  file's buffer (BdsDxe's read of EFI/BOOT/BOOTAA64.EFI) lay above the bins on the observed
  boot, so it does not move the image; a capture is taken for one file size all the same.
- AllocatePool of a Loader Data size below a page takes one new page while the type's pool is
  empty (Pool.c CoreAllocatePoolI; 4 KiB granularity: Loader Data is not a runtime type).
- AllocatePool of EfiACPIReclaimMemory (the stub's map buffer: efi_get_memory_map with
  install_cfg_tbl, libstub mem.c) is served from AAVMF's ACPI-reclaim pool, which the ACPI
  tables' own pool allocations (AcpiTableDxe) shaped before, in a 64 KiB page of that bin that
  already exists: no page changes, and where the block lands is taken from the capture
  (observed, not modelled), for a map of the captured descriptor count (its request size
  follows GetMemoryMap's unmerged count, which the model does not track).
- GetMemoryMap (CoreGetMemoryMap, MergeMemoryMap): one descriptor per run of one type and
  attribute, the RAM ones followed by the runtime MMIO ones (the flash and the PL031 RTC on virt,
  observed); 48-byte descriptors, version 1.

A capture (bootforge/data/aavmf-pages/*.json, made by derive_capture() from the EFI map the
stub handed the kernel, read at the kernel's entry) is the firmware's map at the loader's start:
every Loader Code/Data piece of the exit map turned back into conventional memory. It holds
what the firmware itself fixes: the system table, the ACPI-reclaim pool block of the stub's map
buffer, the runtime MMIO descriptors. It is valid for its machine and boot path and, from an ESP,
the file size of the booted image (the firmware's own allocations before BDS follow the disk);
by QEMU -kernel for_inputs() moves it to other kernel, UKI and initrd sizes (the pools
QemuKernelLoaderFsDxe and LoadImage make of the files, counted in Pool.c's pages).

Other RAM sizes (Capture.at): what AAVMF allocates below its big conventional run (from
0x48000000 on virt: the DTB copy QEMU's one is moved to, PEI's allocations) stays where it is;
the run grows with the RAM and everything above it moves with the end of RAM. Observed: the 2G
exit map is the 1G one so moved, piece for piece, but for one Boot Services Data block above the
bins that is 2 pages larger (the loader never allocates there: the image, pool page, FDT, map
buffer and system table all moved by exactly the RAM difference). Taken only while RAM ends below
4 GiB (virt's RAM starts at 1 GiB: at most 3 GiB).
"""

import json
from dataclasses import dataclass, field
from importlib.resources import files

from bootforge.errors import RecipeError
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader.ovmf_pages import PAGE, POOL_HEAD, PageMap, pages_for

CAPTURE_DIR = files("bootforge").joinpath("data", "aavmf-pages")
DESCRIPTOR_SIZE = 48            # EFI_MEMORY_DESCRIPTOR as EDK2 reports it
DESCRIPTOR_VERSION = 1
RUNTIME_TYPES = (T.RUNTIME_SERVICES_CODE, T.RUNTIME_SERVICES_DATA)
# Pool.c POOL_TAIL (Signature, Reserved, Size: 16 bytes; the pool head AAVMF wrote before the
# stub's map buffer says Size 0x800 for a 0x7d8-byte request, observed)
POOL_TAIL_PADDED = 16


@dataclass
class Capture:
    name: str
    machine: str
    boot_path: str              # "esp": BdsDxe starting EFI/BOOT/BOOTAA64.EFI from a disk's ESP
    memory: int                 # -m of the captured boot
    inputs: dict                # {"file_size": ...}: what the captured map was made with
    default_top: int            # the bottom of the memory-type bins (mDefaultMaximumAddress + 1)
    ranges: list                # [[start, end, EfiMemoryType]] RAM, loader pieces returned
    other_descriptors: list     # [[type, start, pages, attribute]] the runtime MMIO ones
    system_table: int           # gST (EFI_SYSTEM_TABLE in AAVMF's runtime data)
    memmap_pool: dict           # {"descriptors": the exit map's count, "data": the buffer's address}
    source: str
    # QEMU -kernel: the span AAVMF holds above the image while LoadImage runs (the kernel file read
    # from QemuKernelLoaderFs; freed before StartImage), [[start, end]]
    held: list = field(default_factory=list)


    def at(self, memory):
        """This capture on the machine with *memory* bytes of RAM (see the module doc)."""
        delta = memory - self.memory
        run = max((r for r in self.ranges if r[2] == T.CONVENTIONAL), key=lambda r: r[1] - r[0])
        ranges = []
        for a, b, t in self.ranges:
            if a == run[0]:
                ranges.append([a, b + delta, t])
            elif a >= run[1]:
                ranges.append([a + delta, b + delta, t])
            else:
                ranges.append([a, b, t])
        pool = dict(self.memmap_pool, data=self.memmap_pool["data"] + delta)
        return Capture(self.name, self.machine, self.boot_path, memory, self.inputs, self.default_top + delta,
                       ranges, self.other_descriptors, self.system_table + delta, pool, self.source,
                       [[a + delta, b + delta] for a, b in self.held])


def read_capture(name):
    try:
        doc = json.loads(CAPTURE_DIR.joinpath(name + ".json").read_text())
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{name}: cannot read the AAVMF page capture: {exc}") from None
    return Capture(name, doc["machine"], doc["boot_path"], doc["memory"], doc["inputs"], doc["default_top"],
                   [[a, b, T(t)] for a, b, t in doc["ranges"]], doc["other_descriptors"], doc["system_table"],
                   doc["memmap_pool"], doc["source"], doc.get("held", []))


# (machine, boot path, with an initrd) -> capture
CAPTURES = {
    ("qemu-virt-aarch64", "esp", False): "esp-1G",
    # AAVMF's QEMU -kernel boot (ArmVirtPkg's QemuKernelLoaderFsDxe + GenericQemuLoadImageLib)
    ("qemu-virt-aarch64", "qemu-kernel", False): "qemu-kernel-1G",
    ("qemu-virt-aarch64", "qemu-kernel", True): "qemu-kernel-initrd-1G",
    # an arm64 UKI (systemd-stub 252, linuxaa64.efi.stub) as the ESP's EFI/BOOT/BOOTAA64.EFI, or as
    # AAVMF's QEMU -kernel (no -append, no -initrd: .cmdline and .initrd)
    ("qemu-virt-aarch64", "esp-uki", True): "esp-uki-1G",
    ("qemu-virt-aarch64", "qemu-kernel-uki", True): "qemu-kernel-uki-1G",
}
RAM_LIMIT = 1 << 32             # the moving rule holds while RAM ends below 4 GiB


# The paths on which AAVMF's QemuKernelLoaderFsDxe serves the booted file (QEMU -kernel).
QEMU_BLOB_PATHS = ("qemu-kernel", "qemu-kernel-uki")
# ArmVirtPkg/ArmVirt.dsc.inc PcdMemoryTypeEfiLoaderCode: the Loader Code bin's 20 pages, under the
# Boot Services Data bin (the bins' block starts 0x14 pages below where that bin's 12000 pages do).
LOADER_CODE_BIN_PAGES = 20


def pool_pages(size):
    """Pages of an AllocatePool(EfiBootServicesData) of *size* bytes served from pages of its own
    (MdeModulePkg/Core/Dxe/Mem/Pool.c CoreAllocatePoolI: ALIGN_VARIABLE(size) + POOL_OVERHEAD, the
    POOL_HEAD's 0x18 bytes and the 16-byte POOL_TAIL, in 4 KiB DEFAULT_PAGE_ALLOCATION_GRANULARITY:
    Boot Services Data is no runtime type). Observed: the freed LoadImage buffer of the 32956352-byte
    kernel still had its POOL_HEAD at the held span's bottom and its POOL_TAIL, both Size 0x1f6dfe8."""
    return pages_for(-(-size // 8) * 8 + POOL_HEAD + POOL_TAIL_PADDED)


# The medium the ESP capture (esp-1G) was booted from: (kind, the ESP's FAT type, GPT partitions) of
# bootforge's disk image (image/load.py _efi_medium). EnhancedFatDxe sizes its volume cache by the
# FAT type at mount (FatPkg DiskCache.c FatInitializeDiskCache), in the same bin.
ESP_CAPTURED_MEDIUM = ("disk", 16, 1)


def for_inputs(capture, file_size, initrd_size=0, medium=None):
    """*capture* made for the files the firmware was given: (capture, None), or (None, why).
    QEMU -kernel (OvmfPkg/QemuKernelLoaderFsDxe FetchBlob, at the driver's start): the kernel file
    (a UKI's too) and the initrd are each AllocatePool()ed as Boot Services Data, which ArmVirtQemu's
    12000-page Boot Services Data bin above the default bin serves top-down: the bottom of the bin's
    used block moves by the difference in their pool pages and its free run under it shrinks as
    much. LoadImage then reads the kernel file through that file system into a pool of its own
    (MdePkg DxeServicesLib GetFileBufferByFilePath: AllocatePool(FileInfo->FileSize)), which no
    longer fits the bin: it takes the top of the default bin, held while LoadImage runs, and the
    image's Loader Code pages go under it: the held span is pool_pages(file) (observed 0x1f6e, 0x1f6f,
    0x1f72 and 0x2280 pages for files of 32956352, +0x40..+0x1000, +0x3456 bytes and the 36173312-byte
    UKI). The initrd's bytes are copied by LoadFile2 into the stub's own buffer (replay's)."""
    given = {"file_size": file_size, "initrd_size": initrd_size}
    differ = [k for k in capture.inputs if capture.inputs[k] != given[k]]
    if not differ:
        return capture, None
    what = ", ".join(f"{k.replace('_', ' ')} {given[k]} (the capture's {capture.inputs[k]})" for k in differ)
    if capture.boot_path == "esp":
        got = None if medium is None else (medium.kind, medium.fat_type, medium.partitions)
        if got != ESP_CAPTURED_MEDIUM:
            return None, (f"{what}: the ESP capture holds for a FAT16 ESP alone on a disk (this one: "
                          f"{'unknown' if got is None else f'{got[0]}, FAT{got[1]}, {got[2]} partitions'})")
        return _esp_file_buffer(capture, file_size, what)
    if capture.boot_path not in QEMU_BLOB_PATHS:
        return None, (f"{what}: from an ESP the firmware's buffers before the stub follow the disk's files and only "
                      "the captured sizes are booted")
    blobs_then = [capture.inputs["file_size"]]
    blobs_now = [file_size]
    if capture.boot_path == "qemu-kernel" and "initrd_size" in capture.inputs:
        blobs_then.append(capture.inputs["initrd_size"])
        blobs_now.append(initrd_size)
    grow = sum(map(pool_pages, blobs_now)) - sum(map(pool_pages, blobs_then))
    # the bin's used block: the lowest Boot Services Data piece above the default bin, its free run under it
    at = next((i for i, (a, _, t) in enumerate(capture.ranges) if a >= capture.default_top and i
               and t == T.BOOT_SERVICES_DATA and capture.ranges[i - 1][2] == T.CONVENTIONAL), None)
    if at is None or not capture.held:
        return None, f"{what}: the capture has no Boot Services Data bin block to move"
    free = (capture.ranges[at - 1][1] - capture.ranges[at - 1][0]) // PAGE - grow
    if free <= LOADER_CODE_BIN_PAGES:
        return None, (f"{what}: the blobs outgrow AAVMF's Boot Services Data bin by {LOADER_CODE_BIN_PAGES + 1 - free} "
                      "pages and would go to the default bin (not booted)")
    if pool_pages(file_size) <= free - LOADER_CODE_BIN_PAGES:
        return None, (f"{what}: LoadImage's buffer of the kernel file ({pool_pages(file_size)} pages) would fit the "
                      f"Boot Services Data bin's free {free - LOADER_CODE_BIN_PAGES} pages and not be held under "
                      "the image (not booted)")
    ranges = [list(r) for r in capture.ranges]
    edge = ranges[at][0] - grow * PAGE
    ranges[at - 1][1] = ranges[at][0] = edge
    held_grow = pool_pages(file_size) - pool_pages(capture.inputs["file_size"])
    held = [[a - held_grow * PAGE, b] for a, b in capture.held]
    inputs = {k: given[k] for k in capture.inputs}
    return Capture(capture.name, capture.machine, capture.boot_path, capture.memory, inputs, capture.default_top,
                   ranges, capture.other_descriptors, capture.system_table, capture.memmap_pool,
                   capture.source, held), None


def _esp_file_buffer(capture, file_size, what):
    """From an ESP (esp-1G): BdsDxe's AllocatePool of the file (GetFileBufferByFilePath) fitted the
    Boot Services Data bin, top-down under the bin's used block, and a page allocated after it lay
    under it; both are freed or the firmware's, so a file of other pool pages moves them (and shrinks
    the free run under them) but not the image, while it still fits the bin."""
    then, now = pool_pages(capture.inputs["file_size"]), pool_pages(file_size)
    at = next((i for i, (a, b, t) in enumerate(capture.ranges) if a >= capture.default_top and i >= 2
               and t == T.CONVENTIONAL and (b - a) // PAGE == then
               and capture.ranges[i - 1][2] == T.BOOT_SERVICES_DATA and capture.ranges[i - 2][2] == T.CONVENTIONAL),
              None)
    if at is None:
        return None, f"{what}: the capture has no file buffer in the Boot Services Data bin to move"
    shift = (then - now) * PAGE
    ranges = [list(r) for r in capture.ranges]
    free = (ranges[at - 2][1] + shift - ranges[at - 2][0]) // PAGE
    if free <= LOADER_CODE_BIN_PAGES:
        return None, (f"{what}: BdsDxe's buffer of the file ({now} pages) outgrows AAVMF's Boot Services Data bin and "
                      "would be held under the image (not booted)")
    ranges[at - 2][1] += shift
    ranges[at - 1] = [ranges[at - 1][0] + shift, ranges[at - 1][1] + shift, ranges[at - 1][2]]
    ranges[at][0] += shift
    return Capture(capture.name, capture.machine, capture.boot_path, capture.memory, {"file_size": file_size},
                   capture.default_top, ranges, capture.other_descriptors, capture.system_table, capture.memmap_pool,
                   capture.source, capture.held), None


def find_capture(machine, boot_path, memory, ram_base, initrd=False):
    """The capture of *machine*'s *boot_path* moved to *memory* bytes of RAM; None without one or
    when the RAM would end above 4 GiB."""
    name = CAPTURES.get((machine, boot_path, bool(initrd)))
    if name is None or ram_base + memory > RAM_LIMIT:
        return None
    return read_capture(name).at(memory)


def parse_exit_map(blob, desc_size=DESCRIPTOR_SIZE):
    """[(type, start, pages, attribute)] of an EFI memory map as the stub handed it over."""
    out = []
    for at in range(0, len(blob) - desc_size + 1, desc_size):
        typ = int.from_bytes(blob[at:at + 4], "little")
        start = int.from_bytes(blob[at + 8:at + 16], "little")
        pages = int.from_bytes(blob[at + 24:at + 32], "little")
        attr = int.from_bytes(blob[at + 32:at + 40], "little")
        out.append((typ, start, pages, attr))
    return out


def derive_capture(exit_map, *, machine, boot_path, memory, inputs, system_table, memmap_start, memmap_size, source,
                   held_above_image=False):
    """A capture from the map the stub handed over (parse_exit_map) and the /chosen values the real
    boot gave: the RAM descriptors with every Loader piece returned to conventional memory, the
    bins' bottom (the lowest runtime/ACPI piece above the highest Loader piece), the runtime MMIO
    descriptors as they were, and the stub's map buffer (struct efi_boot_memmap: its data starts
    0x28 bytes before the descriptors).
    *held_above_image* (QEMU -kernel, a UKI from an ESP): the first LoadImage ran while the span
    from its image's pages (the lowest Loader Code block) up to the bins was taken by the file it
    read (observed: QemuKernelLoaderFs's kernel file; BdsDxe's pool buffer of a 36 MiB UKI, which
    did not fit the Boot Services Data room above the bins that a 33 MiB kernel took); it is
    recorded as held."""
    ram, other = [], []
    for typ, start, pages, attr in exit_map:
        if typ == T.MMIO or typ == T.MMIO_PORT_SPACE:
            other.append([typ, start, pages, attr])
        else:
            t = T.CONVENTIONAL if typ in (T.LOADER_CODE, T.LOADER_DATA) else T(typ)
            ram.append([start, start + pages * PAGE, t])
    loader_top = max(start + pages * PAGE for typ, start, pages, _ in exit_map
                     if typ in (T.LOADER_CODE, T.LOADER_DATA))
    bins = (T.ACPI_RECLAIM, T.ACPI_NVS, T.RESERVED, *RUNTIME_TYPES)
    default_top = min(a for a, _, t in ram if t in bins and a >= loader_top)
    pm = PageMap(sorted(ram), default_top)
    pm._set(0, 0, T.CONVENTIONAL)           # sorts and merges
    data = memmap_start - EFI_BOOT_MEMMAP_HEADER
    code_end = min((start, start + pages * PAGE) for typ, start, pages, _ in exit_map if typ == T.LOADER_CODE)[1]
    held = [[code_end, default_top]] if held_above_image else []
    return {"comment": f"AAVMF's EFI map when BdsDxe starts the loader, from {source} "
                       "(bootforge.loader.aavmf_pages.derive_capture)",
            "source": source, "machine": machine, "boot_path": boot_path, "memory": memory, "inputs": inputs,
            "default_top": default_top, "system_table": system_table, "held": held,
            "memmap_pool": {"descriptors": memmap_size // DESCRIPTOR_SIZE, "data": data},
            "other_descriptors": other,
            "ranges": [[a, b, int(t)] for a, b, t in pm.ranges if b > a]}


EFI_ALLOC_ALIGN = 64 << 10      # arch/arm64/include/asm/efi.h: SZ_64K (a 64K-page kernel's granule)
# Linux 6.1 drivers/firmware/efi/libstub/efistub.h: struct efi_boot_memmap (map_size, desc_size,
# desc_ver, map_key, buff_size, then the descriptors).
EFI_BOOT_MEMMAP_HEADER = 0x28


def descriptors(pm, other):
    """The number of descriptors GetMemoryMap returns for *pm* (adjacent pieces of one type are one:
    their attributes are WB, runtime ones WB | RUNTIME, observed) plus the non-RAM ones."""
    return len([r for r in pm.ranges if r[1] > r[0]]) + len(other)


@dataclass
class StubPlacement:
    image_block: tuple              # LoadImage's Loader Code pages (start, end)
    image: int                      # where the image runs (SectionAlignment boundary inside them)
    cmdline_page: int               # the Loader Data pool page of the command line
    initrd: tuple | None            # (start, size): the stub's LoadFile2 buffer (LINUX_EFI_INITRD_MEDIA)
    fdt: int                        # the 2 MiB FDT buffer (efi_allocate_pages, 64 KiB aligned)
    memmap_start: int               # linux,uefi-mmap-start: the descriptors in the map buffer
    memmap_size: int                # linux,uefi-mmap-size
    pm: PageMap
    uki_block: int | None = None    # a UKI's own Loader Code pages (BdsDxe's LoadImage of it)


def aligned_allocation(pm, what, typ, size, align):
    """Linux 6.1 libstub alignedmem.c efi_allocate_pages_aligned (efi_allocate_pages on arm64:
    EFI_ALLOC_ALIGN 64 KiB): AllocateMaxAddress of the size plus align/4K - 1 pages of slack, the
    start rounded up to *align*, the slack below and above freed again."""
    slack = align // PAGE - 1
    npages = pages_for(size) + slack
    start = pm.allocate(what, typ, npages, max_address=(1 << 64) - 1)
    if start is None:
        return None
    aligned = -(-start // align) * align
    if aligned > start:
        pm.free(start, (aligned - start) // PAGE)
    end = aligned + pages_for(size) * PAGE
    if start + npages * PAGE > end:
        pm.free(end, (start + npages * PAGE - end) // PAGE)
    return aligned


def replay(capture, *, size_of_image, section_alignment, cmdline_bytes, fdt_size, initrd_size=0, uki=None):
    """The page allocations of a boot on *capture*'s path in the order the code makes them:
    LoadImage (CoreLoadPeImage; with the capture's held span taken, released after it), then the
    stub (Linux 6.1 efi-stub.c efi_pe_entry): efi_convert_cmdline's Loader Data pool,
    handle_kernel_image (in place: see the policy), efi_load_initrd's buffer (LoadFile2 of the
    LINUX_EFI_INITRD_MEDIA device path into efi_allocate_pages: 64 KiB aligned below
    efi_get_max_initrd_addr, far above virt's RAM), allocate_new_fdt_and_exit_boot's FDT buffer,
    efi_get_memory_map's ACPI-reclaim pool buffer. None for a command line the model does not
    place (a pool allocation of its own pages).
    *uki* (SizeOfImage, SectionAlignment of a UKI): LoadImage of the UKI comes first, then
    systemd-stub 252's first Loader Data pool page and its LoadImage of .linux from memory (no
    file read, nothing held); the kernel stub's command line fits that pool page (observed: no
    second Loader Data page)."""
    pm = PageMap([list(r) for r in capture.ranges], capture.default_top)
    for a, b in capture.held:
        pm._set(a, b, T.BOOT_SERVICES_DATA)
    uki_block = None
    if uki is not None:
        uki_block, _ = load_image(pm, "UKI image", *uki)
    else:
        block, image = load_image(pm, "image", size_of_image, section_alignment)
    for a, b in capture.held:
        pm.free(a, (b - a) // PAGE)
    if cmdline_bytes + POOL_HEAD + POOL_TAIL_PADDED > PAGE:
        return None
    # the first Loader Data pool page: the kernel stub's command line's, or systemd-stub's
    cmdline_page = pm.allocate("command line pool page", T.LOADER_DATA, 1)
    if uki is not None:
        block, image = load_image(pm, "kernel image (.linux)", size_of_image, section_alignment)
    initrd = None
    if initrd_size:
        rounded = -(-initrd_size // EFI_ALLOC_ALIGN) * EFI_ALLOC_ALIGN
        initrd = (aligned_allocation(pm, "initrd", T.LOADER_DATA, rounded, EFI_ALLOC_ALIGN), initrd_size)
    fdt = aligned_allocation(pm, "FDT", T.LOADER_DATA, fdt_size, EFI_ALLOC_ALIGN)
    count = descriptors(pm, capture.other_descriptors)
    memmap = capture.memmap_pool["data"] + EFI_BOOT_MEMMAP_HEADER \
        if count == capture.memmap_pool["descriptors"] else None
    npages = pages_for(size_of_image + (section_alignment if section_alignment > PAGE else 0))
    return StubPlacement((block, block + npages * PAGE), image, cmdline_page, initrd, fdt, memmap,
                         count * DESCRIPTOR_SIZE, pm, uki_block)


def load_image(pm, what, size_of_image, section_alignment):
    """CoreLoadPeImage's pages: (block start, where the image runs)."""
    npages = pages_for(size_of_image + (section_alignment if section_alignment > PAGE else 0))
    block = pm.allocate(what, T.LOADER_CODE, npages)
    if block is None:
        raise RecipeError(f"the captured AAVMF map has no room for the {what}")
    align = max(section_alignment, PAGE)
    return block, -(-block // align) * align
