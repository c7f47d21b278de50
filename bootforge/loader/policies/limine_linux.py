"""Limine 11.4.1 `protocol: linux` on BIOS (limine-bootloader/limine common/protos/linux_x86.c,
common/mm/pmm.s2.c; the release binary's panic strings agree), booting a bzImage through its
32-bit entry.

Rules (the source's; each checked on a real Limine BIOS boot of Debian's kernel from a
bootforge disk image: tests/test_linux_limine.py):
- boot_params is ext_mem_alloc(4096): zeroed, top-down in the highest usable memory below
  4 GiB, under what Limine allocated before (config, menu, terminal, file handles):
  BOOT_PARAMS_BELOW_TOP bytes below the end of that RAM range (measured; differs per boot). The setup header is copied
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
"""

import struct

from bootforge.errors import FormatError, LoaderRefusal, RecipeError
from bootforge.formats import bzimage as bz
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB, e820_entries, free_space
from bootforge.loader.result import LoadResult
from bootforge.uki.kernel import is_bzimage, read_bzimage

SOURCE = "Limine 11.4.1 common/protos/linux_x86.c (linux_load), common/mm/pmm.s2.c (ext_mem_alloc)"
PAGE = 0x1000
LOADER = "limine-linux"
LIMINE_KERNEL_START = 0x100000
MODULES_DEFAULT_TOP = 0x38000000
TYPE_OF_LOADER = 0xFF
VID_MODE_NORMAL = 0xFFFF
QUIET = 0x20
# Measured on Limine 11.4.1 booting bootforge's disk image (gdbstub at the entry): how far below
# the end of the highest usable RAM below 4 GiB (0x1ffe0000 at 512M, 0xbffe0000 at 3G)
# ext_mem_alloc put boot_params and the command line. Identical boots differ: boot_params was
# 0x7d000, 0x83000, 0x86000 or 0x92000 below it (256M to 3G), the command line always 0x5f000
# above boot_params: something Limine allocates before linux_load differs in size per boot (not
# found in the source here). Both are declared as varying per boot; the prediction is the most
# seen figure.
BOOT_PARAMS_BELOW_TOP = 0x86000
CMDLINE_BELOW_TOP = 0x27000
VARIES = ("differs between identical boots (boot_params seen 0x7d000 to 0x92000 below the top of RAM in 0x3000 "
          "steps, the command line 0x5f000 above it): Limine's allocations before linux_load differ per boot")
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


def _align(v, a):
    return (v + a - 1) // a * a


def top_of_ram(memory_map):
    """The end of the highest usable range below 4 GiB (where ext_mem_alloc starts)."""
    ranges = free_space(memory_map, MIB, GIB4).intervals()
    if not ranges:
        raise RecipeError("no usable memory above 1 MiB below 4 GiB for Limine's allocations")
    return max(b for _a, b in ranges)


def zero_page(data, cmd_line_ptr, ramdisk, e820):
    page = bytearray(bz.BOOT_PARAMS_SIZE)
    end = 0x202 + data[0x201]
    page[bz.SETUP_HEADER_OFFSET:end] = data[bz.SETUP_HEADER_OFFSET:end]
    struct.pack_into("<I", page, 0x228, cmd_line_ptr)
    struct.pack_into("<H", page, 0x1FA, VID_MODE_NORMAL)
    page[0x210] = TYPE_OF_LOADER
    page[0x211] &= ~QUIET & 0xFF
    struct.pack_into("<II", page, 0x218, *ramdisk)
    pitch = FB_WIDTH * FB_BPP // 8
    # struct screen_info (bootparam.h): lfb_width 0x12, lfb_height 0x14, lfb_depth 0x16, lfb_base
    # 0x18, lfb_size 0x1c, lfb_linelength 0x24, the colour sizes/positions 0x26.., capabilities 0x36;
    # flags 0x08. Capabilities as observed: 64BIT_BASE and SKIP_QUIRKS (the release sets both).
    page[0x0F] = VIDEO_TYPE_VLFB
    struct.pack_into("<HHH", page, 0x12, FB_WIDTH, FB_HEIGHT, FB_BPP)
    struct.pack_into("<I", page, 0x1C, -(-pitch * FB_HEIGHT // 0x10000))
    struct.pack_into("<H", page, 0x24, pitch)
    page[0x26:0x2E] = bytes([8, 16, 8, 8, 8, 0, 0, 0])
    struct.pack_into("<I", page, 0x36, VIDEO_CAPABILITY_64BIT_BASE | VIDEO_CAPABILITY_SKIP_QUIRKS)
    page[0x08] = VIDEO_FLAGS_NOCURSOR
    page[0x1E8] = len(e820)
    for i, (a, s, t) in enumerate(e820):
        struct.pack_into("<QQI", page, 0x2D0 + 20 * i, a, s, t)
    return bytes(page)


@loader_policy(LOADER, firmware="bios", protocol="linux", verdict=None, source=SOURCE, verified=False,
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
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    top = top_of_ram(plat.memory_map)
    free = free_space(plat.memory_map, MIB, GIB4)
    free.take(top - BOOT_PARAMS_BELOW_TOP, BOOT_PARAMS_BELOW_TOP)     # Limine's own allocations, top-down
    real_mode = ((g("setup_sects") or bz.DEFAULT_SETUP_SECTS) + 1) * bz.SECTOR
    size = len(data) - real_mode
    if hdr.version >= 0x20A and g("init_size") > size:
        size = g("init_size")
    size = _align(size, PAGE)
    step = MIB
    if hdr.version >= 0x205 and g("kernel_alignment") > step:
        step = g("kernel_alignment")
    relocatable = hdr.version >= 0x205 and bool(g("relocatable_kernel"))
    at = _align(LIMINE_KERNEL_START, step)
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
        while not free.is_free(base, _align(total, MIB)):
            base -= MIB
            if base < MIB:
                raise LoaderRefusal("linux: Failed to allocate memory for modules", loader=LOADER,
                                    words="linux: Failed to allocate memory for modules")
        free.take(base, _align(total, MIB))
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
                 "e820_entries": len(res.mmap), "boot_path": LOADER, "setup_data": [],
                 "varies_per_boot": {"boot_params": VARIES, "cmd_line_ptr": VARIES},
                 "zero_page": {"predicted_bytes": len(res.mbi_bytes),
                               "declared": [{"offset": o, "size": n, "why": w} for o, n, w in DECLARED]}}
    res.notes.append(f"predicted: kernel at {at:#x} (Limine jumps there), boot_params at {params:#x}, cmd_line_ptr "
                     f"{cmd_line_ptr:#x}" + (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else ""))
    return res
