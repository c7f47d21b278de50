"""OVMF's page allocator as an EFI loader meets it: EDK2 MdeModulePkg/Core/Dxe/Mem/Page.c and
Pool.c (edk2-stable202211, Debian's OVMF 2022.11) replayed on a captured map.

Rules (the source's, each checked against the real boots kept under tests/data/linux-ovmf):
- AllocatePages(AllocateAnyPages / AllocateMaxAddress) for a type without a bin of its own
  (Loader Code/Data; Boot Services Code/Data here) is CoreFindFreePages(): the default bin,
  searched top-down (CoreFindFreePagesI keeps the highest page-aligned start whose block fits in
  one conventional descriptor at or below min(MaxAddress, mDefaultMaximumAddress)).
  mDefaultMaximumAddress is the bottom of the runtime/ACPI/reserved bins OVMF places at the top
  of low RAM; the conventional pages above them are never handed out while the default bin has
  room (observed: [0x1f7fe000, 0x1fef4000) at 512M stays conventional on every boot).
- AllocatePool of at least a page's worth (CoreAllocatePoolI, Size > MAX_POOL_SIZE) takes whole
  pages of its own: EFI_SIZE_TO_PAGES(Size + sizeof(POOL_HEAD) + sizeof(POOL_TAIL)), the data at
  page + sizeof(POOL_HEAD) (0x18). A smaller pool allocation of a type whose pool has no free
  block takes one new page, the data again at page + 0x18.
- LoadImage of a file (CoreLoadImageCommon, GetFileBufferByFilePath): the file is read into a
  Boot Services Data pool buffer, the image gets EFI_SIZE_TO_PAGES(SizeOfImage) pages of Loader
  Code (SectionAlignment <= 4 KiB: nothing added), AllocateAnyPages, then the buffer is freed.
  LoadImage from a memory buffer (systemd-stub's LoadImage of .linux) reads no file.

The map when the loader starts is captured per machine, memory-size class and boot path
(bootforge/data/ovmf-pages/*.json, derived from real boots by derive_capture(); the commands
are in tests/data/README.md). A capture holds what OVMF's own code does around the loader that
no source rule here reproduces: the pages OVMF holds while it reads the file (released before
StartImage) and the Boot Services Data pages its pool takes while the loader runs (kept as
allocated in the captured map). A capture moves with the top of low RAM like the platform map
(bootforge/machines/qemu_x86.py ovmf_efi_map): everything from the first allocation above
OVMF_FIXED_BELOW up to 4 GiB shifts by the difference in low RAM. On the QEMU -kernel paths it
also moves with the sizes of the files QEMU hands over (for_inputs: QemuKernelLoaderFsDxe's
fw_cfg copies), so any kernel, initrd or UKI size is exact from the captures of one size.
"""

import json
from dataclasses import dataclass, field, replace
from importlib.resources import files

from bootforge.errors import RecipeError
from bootforge.formats.efi_memmap import EfiMemoryType as T

PAGE = 0x1000
POOL_HEAD = 0x18                # POOL_HEAD: Signature, Reserved, Type, Size (Pool.c)
POOL_TAIL = 0x10                # POOL_TAIL: Signature, Reserved, UINT64 Size (Pool.c; AAVMF's freed
                                # file buffer shows head and tail sizes of file + 0x28, loader/aavmf_pages.py)
POOL_ALIGN = 8                  # ALIGN_VARIABLE: CoreAllocatePoolI rounds the request up first
FOUR_GIB = 1 << 32
CAPTURE_DIR = files("bootforge").joinpath("data", "ovmf-pages")
OVMF_FIXED_BELOW = 0x1500000    # as bootforge/machines/qemu_x86.py: [0, 21 MiB) the same for every -m
MMIO_FROM = 0xB0000000          # q35 MMCONFIG and above: not RAM, never shifted


def pages_for(size):
    return -(-size // PAGE)


def pool_pages(size):
    """Pages of an AllocatePool of *size* bytes served from pages of its own."""
    return pages_for(-(-size // POOL_ALIGN) * POOL_ALIGN + POOL_HEAD + POOL_TAIL)


@dataclass
class PageMap:
    """The DXE core's memory map as [start, end, type] pieces (end exclusive), with the default
    bin's top (mDefaultMaximumAddress + 1)."""
    ranges: list
    default_top: int
    log: list = field(default_factory=list)     # [(what, start, pages, type)] in allocation order

    def _free_pieces(self):
        return [(a, b) for a, b, t in self.ranges if t == T.CONVENTIONAL]

    def allocate(self, what, typ, npages, max_address=None):
        """AllocatePages(AllocateMaxAddress (*max_address*) or AllocateAnyPages): the highest
        block of *npages* below min(max_address + 1, the default bin's top); None when none fits."""
        limit = self.default_top if max_address is None else min(max_address + 1, self.default_top)
        size = npages * PAGE
        best = None
        for a, b in self._free_pieces():
            top = min(b, limit) // PAGE * PAGE
            if top - size >= a and (best is None or top - size > best):
                best = top - size
        if best is None:
            return None
        self._set(best, best + size, typ)
        self.log.append((what, best, npages, typ))
        return best

    def allocate_pool(self, what, typ, size):
        """AllocatePool of a size served from its own pages: (page start, data address)."""
        start = self.allocate(what, typ, pool_pages(size))
        return None if start is None else (start, start + POOL_HEAD)

    def free(self, start, npages):
        self._set(start, start + npages * PAGE, T.CONVENTIONAL)

    def _set(self, a, b, typ):
        out = []
        for s, e, t in self.ranges:
            if e <= a or s >= b:
                out.append([s, e, t])
                continue
            if s < a:
                out.append([s, a, t])
            if e > b:
                out.append([b, e, t])
        out.append([a, b, typ])
        out.sort()
        merged = []
        for s, e, t in out:
            if merged and merged[-1][1] == s and merged[-1][2] == t:
                merged[-1][1] = e
            else:
                merged.append([s, e, t])
        self.ranges = merged

    def of_type(self, typ):
        return [(a, b) for a, b, t in self.ranges if t == typ]


@dataclass
class Capture:
    """The EFI map when OVMF starts loading the loader on one boot path (see the module doc)."""
    name: str
    boot_path: str              # "qemu-kernel" (QEMU -kernel: QemuKernelLoaderFsDxe + LoadImage),
                                # "qemu-kernel-uki" (the same with a UKI), "esp-uki" (BOOTX64.EFI)
    lowmem: int                 # top of low RAM of the captured boot
    inputs: dict                # the sizes that shape the captured map (QEMU's fw_cfg blobs)
    default_top: int
    ranges: list                # [[start, end, type]]
    held: list                  # [[start, end]] OVMF holds while reading the file
    source: str
    # UKI: where the kernel stub's command line lands inside systemd-stub's Loader Data pool page
    # (the pool's free blocks after systemd-stub's own allocations: observed, not modelled)
    cmdline_pool_offset: int | None = None
    # systemd-boot path: the boot manager BdsDxe loads first (systemd-bootx64.efi's file size and
    # SizeOfImage), and the Boot Services Data pieces OVMF allocates while it runs (after its
    # LoadImage, before the UKI's): free in the captured map, taken in replay()
    first_image: dict | None = None
    taken_later: list = field(default_factory=list)
    # systemd-boot path: Loader Data pages allocated after the stub's last predicted allocation
    # (one, observed at 512M and 3G right below setup_data; its owner is not identified)
    loader_data_after: int = 0

    def at(self, lowmem):
        """This capture on a machine whose low RAM ends at *lowmem*."""
        delta = lowmem - self.lowmem

        def move(x):
            return x + delta if OVMF_FIXED_BELOW < x <= self.lowmem else x
        ranges = []
        for a, b, t in self.ranges:
            if a >= MMIO_FROM:
                ranges.append([a, b, t])
            elif a <= OVMF_FIXED_BELOW < b and t == T.CONVENTIONAL:
                ranges.append([a, move(b), t])      # the big low run grows or shrinks
            else:
                ranges.append([move(a), move(b), t])
        return PageMap([r for r in ranges if r[1] > r[0]], move(self.default_top)), \
            [[move(a), move(b)] for a, b in self.held], [[move(a), move(b)] for a, b in self.taken_later]


def capture_document(name):
    """The JSON document of package capture *name* (bootforge/data/ovmf-pages/NAME.json)."""
    try:
        return json.loads(CAPTURE_DIR.joinpath(name + ".json").read_text())
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{name}: cannot read the OVMF capture: {exc}") from None


def read_capture(name):
    doc = capture_document(name)
    return Capture(name, doc["boot_path"], doc["lowmem"], doc["inputs"], doc["default_top"],
                   [[a, b, T(t)] for a, b, t in doc["ranges"]], doc["held"], doc["source"],
                   doc.get("cmdline_pool_offset"), doc.get("first_image"), doc.get("taken_later", []),
                   doc.get("loader_data_after", 0))


# Captures by (machine, boot path, memory class): q35 below 2.75 GiB keeps all RAM low
# ("low"); from there 2 GiB stay low and OVMF's map at the top of it differs (the platform's
# two templates say the same).
CAPTURES = {
    ("qemu-q35-ovmf", "qemu-kernel", "low", False): "qemu-kernel-512M",
    ("qemu-q35-ovmf", "qemu-kernel", "high", False): "qemu-kernel-3G",
    ("qemu-q35-ovmf", "qemu-kernel", "low", True): "qemu-kernel-initrd-512M",
    ("qemu-q35-ovmf", "qemu-kernel", "high", True): "qemu-kernel-initrd-3G",
    ("qemu-q35-ovmf", "qemu-kernel-uki", "low", False): "qemu-kernel-uki-512M",
    ("qemu-q35-ovmf", "qemu-kernel-uki", "high", False): "qemu-kernel-uki-3G",
    # BdsDxe starting the removable-media EFI/BOOT/BOOTX64.EFI (a UKI) from a bootforge disk
    ("qemu-q35-ovmf", "esp-uki", "low", False): "esp-uki-512M",
    ("qemu-q35-ovmf", "esp-uki", "high", False): "esp-uki-3G",
    # systemd-boot 252 (EFI/BOOT/BOOTX64.EFI) starting a Type #2 UKI from EFI/Linux
    ("qemu-q35-ovmf", "sdboot-uki", "low", False): "sdboot-uki-512M",
    ("qemu-q35-ovmf", "sdboot-uki", "high", False): "sdboot-uki-3G",
}


# Boot paths where systemd-stub 252 starts first and LoadImage()s .linux from memory.
UKI_PATHS = ("qemu-kernel-uki", "esp-uki", "sdboot-uki")
# Boot paths where QemuKernelLoaderFsDxe holds QEMU's fw_cfg blobs (see for_inputs).
QEMU_BLOB_PATHS = ("qemu-kernel", "qemu-kernel-uki")
# Boot paths where BdsDxe starts a file from a bootforge disk's ESP (see for_inputs).
ESP_PATHS = ("esp-uki", "sdboot-uki")
# The file sizes for which bootforge's disk holds the ESP as FAT16 (image/fat.py: FAT12 with up to
# 4 sectors per cluster holds less than 8 MiB, FAT16 with 1 sector per cluster up to 32 MiB).
ESP_FAT16_FILES = (8 << 20, 31 << 20)
# The free run OVMF's later DXE allocations sit on (bigger than any hole between them).
BIG_RUN = 16 << 20


def blob_pages(inputs):
    """Pages of QemuKernelLoaderFsDxe's blobs: FetchBlob() AllocatePool()s setup + kernel (the
    file), then the initrd: each a Boot Services Data pool of its own pages."""
    return pool_pages(inputs["file_size"]) + (pool_pages(inputs["initrd_size"]) if inputs.get("initrd_size") else 0)


def for_inputs(capture, inputs):
    """(*capture* as OVMF lays it out for *inputs*, None), or (None, why not).

    On the QEMU -kernel paths the files shape the map through QemuKernelLoaderFsDxe alone
    (OvmfPkg/QemuKernelLoaderFsDxe/QemuKernelLoaderFsDxe.c, FetchBlob: Blob->Data =
    AllocatePool(Blob->Size) for "kernel" = setup + kernel, then "initrd"): one Boot Services
    Data block of blob_pages() under a top that does not move, and everything the DXE core
    allocates after that driver's entry point (later drivers' images and pools, the pages held
    while LoadImage reads the file) sits below it, so it moves down by the difference in blob
    pages and the free run under it shrinks by as much. Checked: the -kernel bzImage capture
    moved to the UKI's file size equals the UKI capture piece for piece at 512M and 3G, and real
    boots of other kernel, initrd and UKI sizes (tests/test_ovmf_pages.py). On the ESP paths the
    file size does not shape the map while the ESP keeps its FAT type (see below)."""
    # The UKI's .linux SizeOfImage shapes nothing before the loader: systemd-stub's LoadImage of it
    # from memory is one of replay()'s allocations (checked: a .linux 0x40000 bytes bigger by
    # -kernel at 512M, tests/data/ovmf-pages/verify-uki-bigger-linux-512M.json).
    placed = ("file_size", "initrd_size", "kernel_size_of_image")
    same = {k: v for k, v in inputs.items() if k not in placed}
    cap_same = {k: v for k, v in capture.inputs.items() if k not in placed}
    if capture.inputs == inputs:
        return capture, None
    if capture.boot_path in ESP_PATHS and same == cap_same and \
            all(ESP_FAT16_FILES[0] < n < ESP_FAT16_FILES[1] for n in (inputs["file_size"], capture.inputs["file_size"])):
        # From a disk the file reaches OVMF through EnhancedFatDxe, whose only buffers are the volume's
        # cache, sized by the FAT type at mount (FatPkg/EnhancedFatDxe/DiskCache.c
        # FatInitializeDiskCache), and the caller's: LoadImage's file buffer, which replay() places.
        # So the map before the loader is the captured one for any file size on the same FAT type
        # (FAT16 on bootforge's disk while its files need 8-31 MiB, image/fat.py CANDIDATES).
        return replace(capture, inputs=dict(inputs)), None
    if capture.boot_path not in QEMU_BLOB_PATHS or same != cap_same or \
            bool(inputs.get("initrd_size")) != bool(capture.inputs.get("initrd_size")):
        return None, (f"OVMF's map on this path was captured for {capture.inputs}, not {inputs}: the files the "
                      "firmware reads shape the map below them, and no rule here moves it for these")
    old, new = blob_pages(capture.inputs) * PAGE, blob_pages(inputs) * PAGE
    blob = [r for r in capture.ranges if r[2] == T.BOOT_SERVICES_DATA and r[1] - r[0] == old]
    if len(blob) != 1:
        return None, f"{capture.name}: QemuKernelLoaderFsDxe's {old:#x}-byte blob block is not one piece of the capture"
    bottom, top = blob[0][0], blob[0][1]
    run = max((r for r in capture.ranges if r[2] == T.CONVENTIONAL and r[1] <= bottom and r[1] - r[0] >= BIG_RUN),
              key=lambda r: r[0], default=None)
    delta = new - old
    if run is None or run[1] - delta - run[0] < BIG_RUN:
        return None, f"{capture.name}: no room under OVMF's allocations for a {new:#x}-byte blob block"
    ranges = []
    for a, b, t in capture.ranges:
        if (a, b) == (bottom, top):
            ranges.append([a - delta, b, t])
        elif a == run[0]:
            ranges.append([a, b - delta, t])
        elif run[1] <= a and b <= bottom:
            ranges.append([a - delta, b - delta, t])
        else:
            ranges.append([a, b, t])
    held = [[a - delta, b - delta] for a, b in capture.held]
    return replace(capture, inputs=dict(inputs), ranges=ranges, held=held), None


def memory_class(ram, lowmem):
    return "high" if ram > lowmem else "low"


def find_capture(machine, boot_path, ram, lowmem, initrd):
    name = CAPTURES.get((machine, boot_path, memory_class(ram, lowmem), bool(initrd)))
    return read_capture(name) if name else None


def derive_capture(exit_map, image, file_size, boot_path, lowmem, inputs, default_top, source, first_image=None,
                   **observed):
    """A capture from the EFI map a real boot's kernel printed (efi=debug: the map at
    ExitBootServices): every Loader Code/Data piece is returned to conventional memory (all of
    them are the loaders' own, replayed by the model); Boot Services pieces stay as they were
    (OVMF's). *image* is the loaded image's Loader Code block (start, end) and *file_size* the
    file OVMF read for it: what OVMF held while reading is the free span from the top of that
    file buffer (image end + its pool pages) up to the next allocated piece."""
    pm = PageMap([[a, b, T.CONVENTIONAL if t in (T.LOADER_CODE, T.LOADER_DATA) else T(t)] for t, a, b in exit_map],
                 default_top)
    pm._set(0, 0, T.CONVENTIONAL)       # sorts and merges
    pm.ranges = [r for r in pm.ranges if r[1] > r[0]]
    held, later = [], []
    if first_image is not None:
        # The boot manager's image and its file buffer above it: what is allocated there at exit
        # OVMF took after that LoadImage; it was free then.
        top = first_image["end"] + pool_pages(first_image["file_size"]) * PAGE
        for a, b, t in list(pm.ranges):
            if a < top and b > first_image["end"] and t != T.CONVENTIONAL:
                later.append([max(a, first_image["end"]), min(b, top)])
        for a, b in later:
            pm._set(a, b, T.CONVENTIONAL)
        observed["first_image"] = {k: first_image[k] for k in ("file_size", "size_of_image")}
        observed["taken_later"] = later
    if file_size is not None and first_image is None:      # a boot manager's image sits above the buffer
        buf_top = image[1] + pool_pages(file_size) * PAGE
        piece = next(r for r in pm.ranges if r[0] < buf_top <= r[1])       # holding the buffer's last page
        if piece[2] != T.CONVENTIONAL:
            raise ValueError(f"{source}: the file buffer's top {buf_top:#x} is not free memory")
        if piece[1] > buf_top:
            held.append([buf_top, piece[1]])
    return {"comment": f"OVMF's EFI map when it starts loading the loader, from {source} "
                       "(bootforge.loader.ovmf_pages.derive_capture)",
            "source": source, "boot_path": boot_path, "lowmem": lowmem, "inputs": inputs,
            "default_top": default_top, "held": held, **observed,
            "ranges": [[a, b, int(t)] for a, b, t in pm.ranges]}


@dataclass
class StubPlacement:
    """Where OVMF and the EFI stub put each piece (addresses; None: not allocated)."""
    image: tuple                    # (start, end) of the loaded PE image (Loader Code)
    kernel_image: tuple | None      # UKI: systemd-stub's LoadImage of .linux (Loader Code)
    boot_params: int                # the page efi_allocate_bootparams allocates
    cmdline_page: int               # the Loader Data pool page holding the command line
    cmdline: int | None             # cmd_line_ptr, where the pool offset is known
    initrd: tuple | None            # (start, end)
    setup_data: list                # [data address] of each SETUP_PCI node, in chain order
    pm: PageMap


def replay(capture, lowmem, *, file_size, size_of_image, initrd_size, initrd_max, rom_sizes,
           kernel_size_of_image=None):
    """The allocations of a boot on *capture*'s path, in the order the code makes them:
    OVMF's LoadImage of the file (held pages, file buffer, image, buffer freed); for a UKI,
    systemd-stub 252's first Loader Data pool page (its xmalloc) and its LoadImage of .linux from
    memory; then the kernel's EFI stub (Linux 6.1 x86-stub.c): efi_allocate_bootparams()
    (boot_params: one page, AllocateMaxAddress ULONG_MAX), efi_convert_cmdline() (a Loader Data
    pool allocation: a new pool page, or systemd-stub's), efi_load_initrd() (AllocateMaxAddress
    initrd_max), then setup_efi_pci()'s pool allocation per option ROM (struct pci_setup_rom:
    64 bytes + the ROM)."""
    pm, held, later = capture.at(lowmem)
    manager = None
    if capture.first_image is not None:
        # systemd-boot: BdsDxe's LoadImage of the boot manager, OVMF's allocations while it runs,
        # its first Loader Data pool page (xmalloc), then its LoadImage of the UKI file.
        first = capture.first_image
        buf = pm.allocate_pool("boot manager file buffer", T.BOOT_SERVICES_DATA, first["file_size"])
        manager = pm.allocate("boot manager image", T.LOADER_CODE, pages_for(first["size_of_image"]))
        pm.free(buf[0], pool_pages(first["file_size"]))
        for a, b in later:
            pm._set(a, b, T.BOOT_SERVICES_DATA)
    held_pages = []
    for a, b in held:
        pm._set(a, b, T.BOOT_SERVICES_DATA)
        held_pages.append((a, (b - a) // PAGE))
    manager_pool = pm.allocate("boot manager pool page", T.LOADER_DATA, 1) if manager is not None else None
    buf = pm.allocate_pool("file buffer", T.BOOT_SERVICES_DATA, file_size)
    image = pm.allocate("image", T.LOADER_CODE, pages_for(size_of_image))
    if buf is None or image is None:
        raise RecipeError("the captured OVMF map has no room for the image")
    pm.free(buf[0], pool_pages(file_size))
    for a, n in held_pages:
        pm.free(a, n)
    kernel_image = None
    shared_pool = None
    if capture.boot_path in UKI_PATHS:
        # the first Loader Data pool page: systemd-boot's when it ran first (before its LoadImage of
        # the UKI: taken before that file's buffer, see above), else systemd-stub's
        shared_pool = manager_pool if manager is not None else pm.allocate("systemd-stub pool page",
                                                                            T.LOADER_DATA, 1)
        start = pm.allocate("kernel image (.linux)", T.LOADER_CODE, pages_for(kernel_size_of_image))
        kernel_image = (start, start + pages_for(kernel_size_of_image) * PAGE)
    boot_params = pm.allocate("boot_params", T.LOADER_DATA, 1)
    if shared_pool is None:
        cmdline_page = pm.allocate("command line pool page", T.LOADER_DATA, 1)
        cmdline = cmdline_page + POOL_HEAD
    else:
        cmdline_page = shared_pool
        cmdline = None if capture.cmdline_pool_offset is None else shared_pool + capture.cmdline_pool_offset
    initrd = None
    if initrd_size:
        start = pm.allocate("initrd", T.LOADER_DATA, pages_for(initrd_size), initrd_max)
        initrd = (start, start + initrd_size)
    setup = []
    for rom in rom_sizes:
        got = pm.allocate_pool("SETUP_PCI", T.LOADER_DATA, 64 + rom)
        setup.append(got[1])
    for _ in range(capture.loader_data_after):
        pm.allocate("Loader Data page after the stub's (observed)", T.LOADER_DATA, 1)
    return StubPlacement((image, image + pages_for(size_of_image) * PAGE), kernel_image, boot_params,
                         cmdline_page, cmdline, initrd, setup, pm)


# Limine 11.4.1 booted by OVMF from a CD-ROM (bootforge's Limine ISO): the EFI map its
# multiboot2 tag 17 carries is the firmware's map after Limine FreePages()d all it had claimed
# (pmm_release_uefi_mem), read for ExitBootServices. It does not depend on the kernel or the
# modules (the same 129 descriptors for 1 or 3 modules of 1 or 16 MiB links at 256M, the
# same moved by the low-RAM difference at 128M), only on the machine and memory class:
# captured from the kept boots (tests/ovmf_pages_capture.py) and moved like the others.
LIMINE_CDROM_CAPTURES = {("qemu-q35-ovmf", "low"): "limine-cdrom-256M", ("qemu-q35-ovmf", "high"): "limine-cdrom-5G"}


def limine_exit_map(machine, ram, lowmem):
    """The EFI map (MemoryMap, firmware order) Limine hands over in tag 17 on *machine* with *ram*
    bytes, or None without a capture."""
    # Function-level import: only Limine's UEFI tag 17 builds a MemoryMap from a capture.
    from bootforge.memmap.model import MemoryMap, MemoryRange
    name = LIMINE_CDROM_CAPTURES.get((machine, memory_class(ram, lowmem)))
    if name is None:
        return None
    doc = capture_document(name)
    delta = lowmem - doc["lowmem"]
    out = []
    for typ, start, pages, attr in doc["descriptors"]:
        end = start + pages * PAGE
        if start >= FOUR_GIB and typ == T.CONVENTIONAL:
            end = start + ram - lowmem                  # the RAM above 4 GiB
        elif start >= MMIO_FROM:
            pass
        elif start <= OVMF_FIXED_BELOW < end:
            end += delta                                # the low run grows or shrinks
        elif start > OVMF_FIXED_BELOW:
            start, end = start + delta, end + delta
        out.append(MemoryRange(start, end - start, T(typ), attr))
    return MemoryMap("efi", out, source=name)


# Limine 11.4.1 booted by OVMF from a bootforge GPT disk (BdsDxe starting the ESP's
# EFI/BOOT/BOOTX64.EFI): the EFI map Limine's linux protocol hands over (boot_params.efi_info,
# read at ExitBootServices after pmm_release_uefi_mem freed all Limine had claimed), as Debian's
# kernel printed it (efi=debug). Real boots at 512M with two kernel and initrd sizes gave the same
# 128 descriptors: the map depends on the machine and memory class only. Beside the map, what a
# boot showed of OVMF's own tables (the system table, the RSDP) and of Limine's allocations that
# no rule here derives (efi_mmap, its AllocatePool()ed map buffer; the command line, the n-th
# page Limine's top-down ext_mem_alloc hands out): all move with the top of low RAM.
LIMINE_DISK_CAPTURES = {("qemu-q35-ovmf", "low"): "limine-disk-512M", ("qemu-q35-ovmf", "high"): "limine-disk-3G"}


@dataclass
class LimineUefiStart:
    """What limine_disk_start() answers: the EFI map at exit [(type, start, end)] in firmware
    order, and the captured boot's observed addresses moved to this machine."""
    name: str
    exit_map: list
    efi_systab: int
    acpi_rsdp: int
    efi_memmap: int
    cmdline_below_top: int


def limine_disk_start(machine, ram, lowmem):
    """Limine's UEFI disk start on *machine* with *ram* bytes (low RAM ending at *lowmem*), or None
    without a capture."""
    name = LIMINE_DISK_CAPTURES.get((machine, memory_class(ram, lowmem)))
    if name is None:
        return None
    doc = capture_document(name)
    delta = lowmem - doc["lowmem"]

    def move(x):
        return x + delta if OVMF_FIXED_BELOW < x <= doc["lowmem"] else x
    out = []
    for typ, start, end in doc["ranges"]:
        if start >= FOUR_GIB and typ == T.CONVENTIONAL:
            end = start + ram - lowmem                  # the RAM above 4 GiB
        elif start >= MMIO_FROM:
            pass
        elif start <= OVMF_FIXED_BELOW < end:
            end += delta                                # the low run grows or shrinks
        else:
            start, end = move(start), move(end)
        out.append((T(typ), start, end))
    seen = doc["observed"]
    return LimineUefiStart(name, out, move(seen["efi_systab"]), move(seen["acpi_rsdp"]), move(seen["efi_memmap"]),
                           seen["cmdline_below_top"])
