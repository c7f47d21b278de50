"""Limine 11.4.1 `protocol: linux` on BIOS (limine-bootloader/limine common/protos/linux_x86.c,
common/mm/pmm.s2.c; the release binary's panic strings agree), booting a bzImage through its
32-bit entry.

Rules (the source's; each checked on a real Limine BIOS boot of Debian's kernel from a
bootforge disk image: tests/test_linux_limine.py):
- boot_params is ext_mem_alloc(4096): zeroed, top-down in the highest usable memory below
  4 GiB, under what Limine allocated before (config, menu, terminal, file handles):
  BOOT_PARAMS_BELOW_TOP bytes below the end of that RAM range (measured; differs per boot with the
  disk cache's size, see below). The setup header is copied
  from the file (0x1f1 .. 0x202 + the byte at 0x201); then cmd_line_ptr, vid_mode = 0xffff,
  type_of_loader = 0xff, loadflags bit 5 (QUIET) cleared.
- The command line is the entry's `cmdline:` string in Limine's memory (cmd_line_ptr,
  measured like boot_params).
- The kernel (the file past (setup_sects + 1) * 512) goes to memmap_alloc_range at 1 MiB
  rounded up to max(1 MiB, kernel_alignment), up in that step while the
  range (max(file part, init_size) rounded to 4 KiB) is not usable; Limine jumps to that
  address (not code32_start, which keeps the file's 0x100000) with ESI = boot_params. Observed:
  0x200000 for Debian's kernel (kernel_alignment 2 MiB); newer Limine source starts at
  pref_address (16 MiB) instead: 11.4.1 does not.
- The modules, one after another, are one block at ALIGN_DOWN(initrd_addr_max + 1 -
  size, 1 MiB) (0x38000000 when initrd_addr_max is 0), down in 1 MiB steps while
  [base, base + ALIGN_UP(size, 1 MiB)) is not usable memory not yet allocated.
- screen_info: fb_init's mode (no `resolution:`: the EDID's preferred mode, 1280x800x32 under
  QEMU) as a VBE linear framebuffer (orig_video_isVGA 0x23, lfb_size in 64 KiB units);
  edid_info the EDID block; acpi_rsdp_addr the RSDP: the firmware's (declared, not counted).
- e820_table: get_raw_memmap, the E820 list as the BIOS returned it (types >= 0x1000 skipped).

On UEFI (OVMF starting Limine's BOOTX64.EFI from the disk's ESP; real boots of Debian's kernel
at 512M and 3G, two kernel and initrd sizes, each value repeated boot to boot):
- Limine's memory map is the EFI map at its start (pmm.s2.c init_memmap: conventional memory
  usable, claimed with AllocatePages(AllocateAddress)), less what it leaves to the firmware:
  everything above the conventional piece starting at 21 MiB (the exit map's descriptor
  boundary, loader/ovmf_pages.py limine_disk_start). The kernel search and the initrd's
  1 MiB-step search run in that piece: the kernel at 0x1600000 (the first 2 MiB step at or
  above OVMF's Boot Services Data block [9 MiB, 21 MiB)), the initrd at its top.
- ext_mem_alloc is top-down from the end of the highest conventional piece below 4 GiB (above
  OVMF's bins). The command line comes first at a measured depth; then linux_load's fopen of
  the kernel (fs/file.s2.c, fat32.s2.c: filename, file_handle, fat32_file_handle, each a page;
  the cluster chain, 4 bytes per cluster of the ESP), then boot_params, one page. Measured: a
  kernel 1234567 bytes longer moved boot_params 3 pages down (16 -> 19 chain pages at 512-byte
  clusters), the command line did not move.
- e820_table: get_raw_memmap after ExitBootServices, the EFI map at exit sorted by address,
  Boot Services, Loader and conventional memory usable and merged (sanitise_entries merges only
  usable runs), ACPI reclaim 3, ACPI NVS 4, everything else reserved, one entry per descriptor.
- screen_info: the GOP mode (1280x800x32 under OVMF's QemuVideoDxe, no `resolution:`) as
  VIDEO_TYPE_EFI, lfb_size in bytes; no EDID (QemuVideoDxe installs no EDID protocol: zeros);
  efi_info "EL64", the system table, Limine's efi_mmap and its size (48-byte descriptors,
  version 1); secure_boot stays 0 (11.4.1 writes none).
"""

import struct

from bootforge.align import align_up
from bootforge.errors import FormatError, LoaderRefusal, RecipeError
from bootforge.formats import bzimage as bz
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import ovmf_pages
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB, e820_entries, free_space
from bootforge.loader.result import LoadResult
from bootforge.machines.qemu_x86 import Q35_LOWMEM, Q35_LOWMEM_SPLIT
from bootforge.uki.kernel import is_bzimage, read_bzimage

SOURCE = "Limine 11.4.1 common/protos/linux_x86.c (linux_load), common/mm/pmm.s2.c (ext_mem_alloc)"
PAGE = 0x1000
LOADER = "limine-linux"
LIMINE_KERNEL_START = 0x100000
MODULES_DEFAULT_TOP = 0x38000000
# 11.4.1 reads the modules back to back (ramdisk_size the plain sum): a 10243-byte module before
# the initrd left no padding under OVMF (the memory's sha256 is the files' plain concatenation).
# Newer source pads each module to 4 bytes for the initramfs unpacker; 11.4.1 does not.
MODULE_PAD = 1
TYPE_OF_LOADER = 0xFF
VID_MODE_NORMAL = 0xFFFF
QUIET = 0x20
# Measured on Limine 11.4.1 booting bootforge's disk image (gdbstub at the entry): how far below
# the end of the highest usable RAM below 4 GiB (0x1ffe0000 at 512M, 0xbffe0000 at 3G)
# ext_mem_alloc put boot_params and the command line (always 0x5f000 above boot_params).
# What moves them per boot is the disk read cache: drivers/disk.s2.c fastest_xfer_size() times
# INT 13h reads of 1, 2, 4, 8, 16, 24, 32, 48 and 64 sectors with rdtsc and keeps the fastest, and
# lib/part.s2.c allocates each volume's cache of that many sectors on its first read: three
# volumes read here (the disk, its BIOS boot partition and its ESP: the guest memory dumps
# of 4 boots hold the cached sectors of each), so boot_params sits 3 x pages(size x 512) lower
# for a bigger pick. Under QEMU the guest's TSC follows the host's clock, so the pick follows
# the host's load: 0x7d000, 0x80000, 0x83000, 0x86000, 0x92000 below the top seen (1, 2, 3, 4, 8
# cache pages; slower boots picked bigger transfers). Declared as varying, with the possible
# values; the prediction is the 32-sector pick.
FASTEST_XFER_SECTORS = (1, 2, 4, 8, 16, 24, 32, 48, 64)
CACHED_VOLUMES = 3
BELOW_TOP_WITHOUT_CACHES = 0x7A000


def boot_params_below_top(sectors):
    return BELOW_TOP_WITHOUT_CACHES + CACHED_VOLUMES * -(-sectors * 512 // PAGE) * PAGE


BOOT_PARAMS_BELOW_TOP = boot_params_below_top(32)
CMDLINE_BELOW_TOP = BOOT_PARAMS_BELOW_TOP - 0x5F000
BOOT_PARAMS_POSSIBLE = sorted({boot_params_below_top(n) for n in FASTEST_XFER_SECTORS})
VARIES = ("follows the INT 13h transfer size Limine's fastest_xfer_size() picks by timing reads with rdtsc (a "
          "cache of that many sectors per volume, allocated before linux_load): "
          + ", ".join(f"{v:#x}" for v in BOOT_PARAMS_POSSIBLE) + " below the top of RAM for boot_params, the "
          "command line 0x5f000 above it")
# fb_init with no resolution on QEMU's stdvga (EDID preferred 1280x800, 32 bpp).
FB_WIDTH, FB_HEIGHT, FB_BPP = 1280, 800, 32
VIDEO_TYPE_VLFB = 0x23
VIDEO_CAPABILITY_SKIP_QUIRKS = 1 << 0
VIDEO_CAPABILITY_64BIT_BASE = 1 << 1
VIDEO_FLAGS_NOCURSOR = 1 << 0
DECLARED = (
    (0x18, 4, "screen_info.lfb_base: the framebuffer's PCI BAR, as the VBE BIOS reports it"),
    (0x3A, 4, "screen_info.ext_lfb_base: the framebuffer's PCI BAR (high half)"),
    (0x70, 8, "acpi_rsdp_addr: where the firmware put the RSDP"),
    (0x228, 4, "hdr.cmd_line_ptr: where ext_mem_alloc put the command line, " + VARIES),
    (0x140, 128, "edid_info: the monitor's EDID block as the VBE BIOS returns it"),
)


# UEFI: Debian's OVMF GOP mode without `resolution:` (QemuVideoDxe's default, 1280x800x32).
VIDEO_TYPE_EFI = 0x70
EFI_LOADER_SIGNATURE = b"EL64"
EFI_MEMDESC_SIZE, EFI_MEMDESC_VERSION = 48, 1
# Limine's allocations in linux_load between the command line and boot_params: fopen's filename,
# file_handle and fat32_file_handle pages (fs/file.s2.c, fs/fat32.s2.c), then the cluster chain.
FOPEN_PAGES = 3
# bootforge's disk puts the ESP's files on FAT16 with one 512-byte sector per cluster while they
# need 8-32 MiB (image/fat.py CANDIDATES: FAT12 up to 4 sectors per cluster holds less); outside
# that window the cluster size, and so boot_params, is not predicted.
ESP_CLUSTER = 512
ESP_FAT16_SPC1 = (8 << 20, 31 << 20)
UEFI_DECLARED = (
    (0x18, 4, "screen_info.lfb_base: the framebuffer's PCI BAR, as the GOP reports it"),
    (0x3A, 4, "screen_info.ext_lfb_base: the framebuffer's PCI BAR (high half)"),
)
E820_OF_EFI = {T.BOOT_SERVICES_CODE: 1, T.BOOT_SERVICES_DATA: 1, T.CONVENTIONAL: 1, T.LOADER_CODE: 1,
               T.LOADER_DATA: 1, T.ACPI_RECLAIM: 3, T.ACPI_NVS: 4}


def _kernel_size_and_step(hdr, file_size):
    """(bytes Limine claims for the protected-mode kernel, the step it tries addresses in):
    the file past the real-mode part or init_size if larger (2.10+), page-aligned; 1 MiB or
    kernel_alignment if larger (2.05+): the same on BIOS and UEFI (common/protos/linux_x86.c)."""
    g = hdr.get
    real_mode = ((g("setup_sects") or bz.DEFAULT_SETUP_SECTS) + 1) * bz.SECTOR
    size = file_size - real_mode
    if hdr.version >= 0x20A and g("init_size") > size:
        size = g("init_size")
    step = MIB
    if hdr.version >= 0x205 and g("kernel_alignment") > step:
        step = g("kernel_alignment")
    return align_up(size, PAGE), step


def top_of_ram(memory_map):
    """The end of the highest usable range below 4 GiB (where ext_mem_alloc starts)."""
    ranges = free_space(memory_map, MIB, GIB4).intervals()
    if not ranges:
        raise RecipeError("no usable memory above 1 MiB below 4 GiB for Limine's allocations")
    return max(b for _a, b in ranges)


def _zero_page(data, cmd_line_ptr, ramdisk, e820, video_type, lfb_size):
    """The boot_params Limine writes on BIOS and UEFI alike: the setup header copied, the command
    line, loader type and ramdisk (the high halves at ext_ramdisk 0xc0), the framebuffer's
    screen_info, the E820 table. The caller adds what one firmware has (a bytearray)."""
    page = bytearray(bz.BOOT_PARAMS_SIZE)
    end = 0x202 + data[0x201]
    page[bz.SETUP_HEADER_OFFSET:end] = data[bz.SETUP_HEADER_OFFSET:end]
    struct.pack_into("<I", page, 0x228, cmd_line_ptr)
    struct.pack_into("<H", page, 0x1FA, VID_MODE_NORMAL)
    page[0x210] = TYPE_OF_LOADER
    page[0x211] &= ~QUIET & 0xFF
    struct.pack_into("<II", page, 0x218, ramdisk[0] & 0xFFFFFFFF, ramdisk[1] & 0xFFFFFFFF)
    struct.pack_into("<II", page, 0xC0, ramdisk[0] >> 32, ramdisk[1] >> 32)
    pitch = FB_WIDTH * FB_BPP // 8
    # struct screen_info (bootparam.h): lfb_width 0x12, lfb_height 0x14, lfb_depth 0x16, lfb_base
    # 0x18, lfb_size 0x1c, lfb_linelength 0x24, the colour sizes/positions 0x26.., capabilities 0x36;
    # flags 0x08. Capabilities as observed: 64BIT_BASE and SKIP_QUIRKS (the release sets both).
    page[0x08] = VIDEO_FLAGS_NOCURSOR
    page[0x0F] = video_type
    struct.pack_into("<HHH", page, 0x12, FB_WIDTH, FB_HEIGHT, FB_BPP)
    struct.pack_into("<I", page, 0x1C, lfb_size(pitch * FB_HEIGHT))
    struct.pack_into("<H", page, 0x24, pitch)
    page[0x26:0x2E] = bytes([8, 16, 8, 8, 8, 0, 0, 0])
    struct.pack_into("<I", page, 0x36, VIDEO_CAPABILITY_64BIT_BASE | VIDEO_CAPABILITY_SKIP_QUIRKS)
    page[0x1E8] = len(e820)
    for i, (a, n, t) in enumerate(e820):
        struct.pack_into("<QQI", page, 0x2D0 + 20 * i, a, n, t)
    return page


def zero_page(data, cmd_line_ptr, ramdisk, e820):
    # VESA linear framebuffer: lfb_size in 64 KiB units.
    return bytes(_zero_page(data, cmd_line_ptr, ramdisk, e820, VIDEO_TYPE_VLFB, lambda size: -(-size // 0x10000)))


@loader_policy(LOADER, firmware=("bios", "uefi"), protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, wrong_firmware="limine-linux models Limine's BIOS linux loader",
               summary="Limine 11.4.1 `protocol: linux` on BIOS (a bzImage, its 32-bit entry)")
def load(req):
    data = req.kernel.data
    if len(data) < 0x206:
        raise LoaderRefusal("linux: Kernel file too small", loader=LOADER, words="linux: Kernel file too small")
    if not is_bzimage(data):
        raise LoaderRefusal("linux: Invalid kernel signature", loader=LOADER, words="linux: Invalid kernel signature")
    try:
        hdr = read_bzimage(data)
    except FormatError as exc:
        raise exc.located(path=req.kernel.path) from None
    g = hdr.get
    if hdr.version < 0x203:
        raise LoaderRefusal("linux: Protocols < 2.03 are not supported", loader=LOADER,
                            words="linux: Protocols < 2.03 are not supported")
    if not g("loadflags") & 1:
        raise LoaderRefusal("linux: Kernels that load at 0x10000 are not supported", loader=LOADER,
                            words="linux: Kernels that load at 0x10000 are not supported")
    plat = req.platform
    if plat.firmware == "uefi":
        return _load_uefi(req, data, hdr)
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    top = top_of_ram(plat.memory_map)
    free = free_space(plat.memory_map, MIB, GIB4)
    free.take(top - BOOT_PARAMS_BELOW_TOP, BOOT_PARAMS_BELOW_TOP)     # Limine's own allocations, top-down
    size, step = _kernel_size_and_step(hdr, len(data))
    relocatable = hdr.version >= 0x205 and bool(g("relocatable_kernel"))
    at = align_up(LIMINE_KERNEL_START, step)
    while not free.is_free(at, size):
        if not relocatable or at + step + size > GIB4:
            raise LoaderRefusal("linux: Failed to allocate memory for kernel", loader=LOADER,
                                words="linux: Failed to allocate memory for kernel")
        at += step
    free.take(at, size)
    res.place("kernel (protected-mode part)", at, size, step, "memmap_alloc_range from 1 MiB in kernel_alignment "
              "steps (linux_load)", "kernel")
    ramdisk = (0, 0)
    if req.modules:
        # ramdisk_size is the sum of the files' sizes (observed: 0x103039 for one file of that size).
        total = sum(m.size for m in req.modules)
        limit = g("initrd_addr_max") + 1 if g("initrd_addr_max") else MODULES_DEFAULT_TOP
        base = (limit - total) & ~(MIB - 1)
        while not free.is_free(base, align_up(total, MIB)):
            base -= MIB
            if base < MIB:
                raise LoaderRefusal("linux: Failed to allocate memory for modules", loader=LOADER,
                                    words="linux: Failed to allocate memory for modules")
        free.take(base, align_up(total, MIB))
        res.place("initrd (the modules, one block)", base, total, MIB,
                  "ALIGN_DOWN(initrd_addr_max + 1 - size, 1 MiB), down in 1 MiB steps (linux_load)", "module")
        res.modules.append({"start": base, "end": base + total, "cmdline": ""})
        ramdisk = (base, total)
    params = top - BOOT_PARAMS_BELOW_TOP
    cmd_line_ptr = top - CMDLINE_BELOW_TOP
    res.place("boot_params (ext_mem_alloc)", params, PAGE, PAGE, "top-down below Limine's earlier allocations",
              "boot-info")
    res.cmdline = req.cmdline
    res.mmap = e820_entries(plat.memory_map)
    res.mbi_address = params
    res.mbi_bytes = zero_page(data, cmd_line_ptr, ramdisk, res.mmap)
    res.linux = {"boot_params": params, "cmd_line_ptr": cmd_line_ptr, "entry": at,
                 "ramdisk_image": ramdisk[0], "ramdisk_size": ramdisk[1], "kernel": {"start": at, "size": size},
                 "e820_entries": len(res.mmap), "boot_path": LOADER, "setup_data": [], "initrd_pad": MODULE_PAD,
                 "varies_per_boot": {"boot_params": VARIES, "cmd_line_ptr": VARIES},
                 "zero_page": {"predicted_bytes": len(res.mbi_bytes),
                               "declared": [{"offset": o, "size": n, "why": w} for o, n, w in DECLARED]}}
    res.notes.append(f"predicted: kernel at {at:#x} (Limine jumps there), boot_params at {params:#x}, cmd_line_ptr "
                     f"{cmd_line_ptr:#x}" + (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else ""))
    return res


def e820_of_exit_map(exit_map):
    """get_raw_memmap on UEFI: the EFI map at exit by address, usable runs merged (see the module doc)."""
    out = []
    for typ, a, b in sorted(exit_map, key=lambda r: r[1]):
        kind = E820_OF_EFI.get(typ, 2)
        if kind == 1 and out and out[-1][2] == 1 and out[-1][0] + out[-1][1] == a:
            out[-1][1] += b - a
        else:
            out.append([a, b - a, kind])
    return [tuple(e) for e in out]


def _free_runs(exit_map):
    """The conventional pieces of the map, adjacent ones merged: [(start, end)] by address."""
    runs = []
    for typ, a, b in sorted(exit_map, key=lambda r: r[1]):
        if typ != T.CONVENTIONAL:
            continue
        if runs and runs[-1][1] == a:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    return runs


def zero_page_uefi(data, cmd_line_ptr, ramdisk, e820, start):
    # EFI framebuffer: lfb_size in bytes; then the RSDP and struct efi_info.
    page = _zero_page(data, cmd_line_ptr, ramdisk, e820, VIDEO_TYPE_EFI, lambda size: size)
    struct.pack_into("<Q", page, 0x70, start.acpi_rsdp)
    # struct efi_info at 0x1c0: signature, systab, memdesc_size, memdesc_version, memmap, memmap_size,
    # systab_hi, memmap_hi (bootparam.h)
    struct.pack_into("<4sIIIIIII", page, 0x1C0, EFI_LOADER_SIGNATURE, start.efi_systab & 0xFFFFFFFF,
                     EFI_MEMDESC_SIZE, EFI_MEMDESC_VERSION, start.efi_memmap & 0xFFFFFFFF,
                     EFI_MEMDESC_SIZE * len(start.exit_map), start.efi_systab >> 32, start.efi_memmap >> 32)
    return bytes(page)


def _load_uefi(req, data, hdr):
    g = hdr.get
    plat = req.platform
    res = LoadResult(req.loader, "linux", plat, SOURCE + "; OVMF's map: loader/ovmf_pages.py limine_disk_start")
    machine = plat.qemu.name if plat.qemu is not None else None
    ram = plat.memory_bytes or 0
    lowmem = Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram
    start = ovmf_pages.limine_disk_start(machine, ram, lowmem) if machine and ram else None
    if start is None:
        raise RecipeError(f"limine-linux on UEFI: no capture of OVMF's map under Limine for {plat.name} "
                          "(captured: qemu-q35-ovmf, from a bootforge disk)")
    # OVMF's disk stack sizes its block by the medium and the ESP's FAT type (loader/ovmf_media.py:
    # the FAT12 cache is 1022 pages smaller), which moves the map Limine starts on: captured for a
    # FAT16 ESP on a GPT disk. An image says its medium; from a recipe, bootforge's disk is FAT16
    # while the files need 8-31 MiB (the kernel and modules alone are checked: Limine's own
    # BOOTX64.EFI and limine.conf add 0.3 MiB).
    files = len(data) + sum(m.size for m in req.modules)
    medium = getattr(req, "efi_medium", None)
    if medium is not None and (medium.kind, medium.fat_type) != ("disk", 16):
        raise RecipeError(f"limine-linux on UEFI: OVMF's map under Limine is captured for a FAT16 ESP on a disk, "
                          f"not a FAT{medium.fat_type} ESP on a {medium.kind}")
    if medium is None and files <= ESP_FAT16_SPC1[0]:
        raise RecipeError(f"limine-linux on UEFI: {files} bytes of kernel and modules put bootforge's ESP on FAT12; "
                          "OVMF's map under Limine is captured for a FAT16 ESP")
    runs = _free_runs(start.exit_map)
    # The descriptor itself, not the merged run: above its end lies what Limine left to the firmware.
    owned = next(((a, b) for t, a, b in start.exit_map if t == T.CONVENTIONAL and a == ovmf_pages.OVMF_FIXED_BELOW),
                 None)
    if owned is None:
        raise RecipeError(f"{start.name}: no conventional piece at {ovmf_pages.OVMF_FIXED_BELOW:#x} in the capture")
    heap_top = max(b for a, b in runs if b <= GIB4)
    size, step = _kernel_size_and_step(hdr, len(data))
    at = align_up(LIMINE_KERNEL_START, step)
    while not (owned[0] <= at and at + size <= owned[1]):
        if at < owned[0] and hdr.version >= 0x205 and g("relocatable_kernel"):
            at += step
            continue
        raise LoaderRefusal("linux: Failed to allocate memory for kernel", loader=LOADER,
                            words="linux: Failed to allocate memory for kernel")
    res.place("kernel (protected-mode part)", at, size, step, "memmap_alloc_range from 1 MiB in kernel_alignment "
              "steps in the memory Limine claimed (linux_load)", "kernel")
    ramdisk = (0, 0)
    if req.modules:
        total = sum(m.size for m in req.modules)
        limit = g("initrd_addr_max") + 1 if g("initrd_addr_max") else MODULES_DEFAULT_TOP
        base = (min(limit, owned[1]) - total) & ~(MIB - 1)
        while base + align_up(total, MIB) > owned[1] or base < at + size:
            base -= MIB
            if base < MIB:
                raise LoaderRefusal("linux: Failed to allocate memory for modules", loader=LOADER,
                                    words="linux: Failed to allocate memory for modules")
        res.place("initrd (the modules, one block)", base, total, MIB,
                  "ALIGN_DOWN(initrd_addr_max + 1 - size, 1 MiB), down in 1 MiB steps to the top of the memory "
                  "Limine claimed (linux_load)", "module")
        res.modules.append({"start": base, "end": base + total, "cmdline": ""})
        ramdisk = (base, total)
    cmd_line_ptr = heap_top - start.cmdline_below_top
    chain = pages_for_chain(len(data))
    params = cmd_line_ptr - PAGE * (FOPEN_PAGES + chain + 1)
    varies = {}
    if not ESP_FAT16_SPC1[0] < files < ESP_FAT16_SPC1[1]:
        why = (f"not predicted: the kernel and modules ({files} bytes) put the ESP outside FAT16 with 512-byte "
               "clusters, and the cluster chain Limine caches before boot_params follows the cluster size")
        varies = {"boot_params": why}
    res.place("boot_params (ext_mem_alloc)", params, PAGE, PAGE, "top-down: the command line, the kernel's fopen "
              f"({FOPEN_PAGES} pages and {chain} of cluster chain), then this page", "boot-info")
    res.cmdline = req.cmdline
    res.mmap = e820_of_exit_map(start.exit_map)
    res.mbi_address = params
    res.mbi_bytes = zero_page_uefi(data, cmd_line_ptr, ramdisk, res.mmap, start)
    res.linux = {"boot_params": params, "cmd_line_ptr": cmd_line_ptr, "entry": at,
                 "ramdisk_image": ramdisk[0], "ramdisk_size": ramdisk[1], "kernel": {"start": at, "size": size},
                 "e820_entries": len(res.mmap), "boot_path": LOADER + " (OVMF, disk)", "setup_data": [],
                 "initrd_pad": MODULE_PAD,
                 "capture": start.name, "varies_per_boot": varies,
                 "zero_page": {"predicted_bytes": len(res.mbi_bytes),
                               "declared": [{"offset": o, "size": n, "why": w} for o, n, w in UEFI_DECLARED]}}
    res.notes.append(f"predicted: kernel at {at:#x} (Limine jumps there, 32-bit), boot_params at {params:#x}, "
                     f"cmd_line_ptr {cmd_line_ptr:#x}" +
                     (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else "") +
                     f"; OVMF's map from the capture {start.name}")
    return res


def pages_for_chain(file_size, cluster=ESP_CLUSTER):
    """Pages of the FAT cluster chain Limine's fat32_open caches: 4 bytes per cluster of the file."""
    clusters = -(-file_size // cluster)
    return -(-clusters * 4 // PAGE)
