"""GRUB 2.06 i386-pc `linux`/`initrd` (grub-core/loader/i386/linux.c, lib/relocator.c;
Debian 12's 2.06-13+deb12u2), booting a bzImage through its 32-bit entry.

Rules (the source's, each checked against Debian's kernel booted from a bootforge disk
image where a real boot shows it: tests/test_linux_grub.py, tests/data/linux-grub-pc/):
- The kernel's protected-mode part (the file after (setup_sects + 1) * 512 bytes) goes to a
  relocator chunk of page_align(init_size) bytes: at pref_address exactly when the kernel is
  relocatable (boot protocol 2.10+), else at 1 MiB; a relocatable kernel that does not fit
  there is tried at 16 MiB..4 GiB with its kernel_alignment halved down to min_alignment.
  code32_start = that address + (code32_start - 1 MiB).
- The initrd files, concatenated (one file: its size), go to the highest 4 KiB-aligned chunk
  with its end below min(initrd_addr_max, 0x37ffffff, mem=) - 64 KiB and above the kernel's
  page_align(init_size) (grub_cmd_initrd: "the initrd is too big" otherwise), among memory
  GRUB's heap does not use (PREFERENCE_HIGH).
- boot_params ("real mode" chunk): find_mmap_size() = page_align(20 * E820 entries + 4096),
  cl_offset = ALIGN_UP(that + 4096 (struct linux_kernel_params), 4096), raised to
  ALIGN_UP(setup_sects * 512, 4096); real_size = ALIGN_UP(cl_offset + cmdline_size + 1,
  4096), at the top of the first available E820 range clipped to [0x10000, 0x90000)
  (grub_linux_boot_mmap_find): 0x90000 - real_size under SeaBIOS. cmd_line_ptr =
  that + cl_offset; the command line is "BOOT_IMAGE=" + the file's name + its arguments
  (grub_create_loader_cmdline).
- e820_table: GRUB's memory map (the BIOS E820 as returned), adjacent ranges of one type
  merged (grub_e820_add_region).
"""

import struct

from bootforge.align import align_up
from bootforge.errors import FormatError, LoaderRefusal, RecipeError
from bootforge.formats import bzimage as bz
from bootforge.loader import grub_heap
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import GIB4, MIB, e820_entries, free_space
from bootforge.loader.result import LoadResult
from bootforge.uki.kernel import is_bzimage, read_bzimage

SOURCE = "GRUB 2.06 grub-core/loader/i386/linux.c (grub_cmd_linux, grub_cmd_initrd, grub_linux_boot)"
PAGE = 0x1000
BZIMAGE_ADDR = 0x100000                 # GRUB_LINUX_BZIMAGE_ADDR
INITRD_MAX_ADDRESS = 0x37FFFFFF         # GRUB_LINUX_INITRD_MAX_ADDRESS (include/grub/i386/linux.h)
INITRD_TOP_GAP = 0x10000                # "avoid the last 64kb" (Linux 2.2's range check)
E820_ENTRY = 20                         # struct grub_e820_mmap
PARAMS_SIZE = bz.BOOT_PARAMS_SIZE       # struct linux_kernel_params
REAL_MODE_LOW, REAL_MODE_HIGH = 0x10000, 0x90000
BOOT_IMAGE = "BOOT_IMAGE="              # LINUX_IMAGE: grub_create_loader_cmdline's prefix
WRONG_FIRMWARE = "grub-pc-linux runs on a BIOS platform"
# GRUB's heap in use below the top of the largest RAM range when `initrd` allocates, on the
# disk images bootforge builds (FAT ESP, core.img with `linux`): the GRUB build's measured
# amount (bootforge.loader.grub_heap.BUILDS says how: the end of SeaBIOS's RAM minus the end of
# the initrd Debian's kernel reports at 256M and 512M, tests/data/linux-grub-pc/). More than the
# Multiboot figure: the `linux` path holds the kernel file's buffers while initrd runs.
LINUX_HEAP_IN_USE = grub_heap.BUILDS[grub_heap.BUILD].linux_disk


def heap_in_use(memory_map):
    """(start, size): LINUX_HEAP_IN_USE bytes at the top of the largest RAM range in
    [1 MiB, 4 GiB) (where GRUB's heap lives, as grub_pc.heap_in_use), or None."""
    ranges = [(a, b) for a, b in free_space(memory_map, MIB, GIB4).intervals() if b - a > LINUX_HEAP_IN_USE]
    if not ranges:
        return None
    _, top = max(ranges, key=lambda r: (r[1] - r[0], r[0]))
    return top - LINUX_HEAP_IN_USE, LINUX_HEAP_IN_USE


def merged_e820(memory_map):
    """grub_e820_add_region over grub_mmap_iterate: adjacent ranges of one type merged."""
    out = []
    for a, s, t in e820_entries(memory_map):
        if out and out[-1][0] + out[-1][1] == a and out[-1][2] == t:
            out[-1] = (out[-1][0], out[-1][1] + s, t)
        else:
            out.append((a, s, t))
    return out


def zero_page_spec(predicted, declared, rest):
    """linux.zero_page for verify: the predicted bytes, the (offset, size, why) fields *declared*,
    and the page past the E820 table, *rest* saying what is there."""
    return {"predicted_bytes": len(predicted),
            "declared": [{"offset": o, "size": n, "why": w} for o, n, w in declared],
            "not_written": {"offset": len(predicted), "size": PAGE - len(predicted),
                            "why": f"past struct linux_kernel_params (0x3fc bytes) and the E820 table: {rest}"}}


def read_kernel(req, loader):
    """grub_cmd_linux's first check of the file: (its bytes, its SetupHeader), or GRUB's words."""
    if not is_bzimage(req.kernel.data):
        raise LoaderRefusal("invalid magic number", loader=loader, words="invalid magic number")
    try:
        return req.kernel.data, read_bzimage(req.kernel.data)
    except FormatError as exc:
        raise exc.located(path=req.kernel.path) from None


def loader_cmdline(req, hdr, loader):
    """(the command line grub_create_loader_cmdline makes, maximal_cmdline_size), or the refusal
    of one longer than the kernel takes."""
    cmdline = BOOT_IMAGE + req.kernel_loader_path + (" " + req.cmdline if req.cmdline else "")
    size = max((hdr.get("cmdline_size") + 1) if hdr.version >= 0x206 else 256, 128)
    if len(cmdline.encode()) >= size:
        raise LoaderRefusal("the command line is longer than the kernel's cmdline_size", loader=loader)
    return cmdline, size


def real_mode_layout(e820_count, setup_sects, cmdline_size):
    """(cl_offset, real_size) of grub_linux_boot: find_mmap_size() of *e820_count* entries, the
    params struct, the setup sectors, the command line."""
    mmap_size = align_up(e820_count * E820_ENTRY + PAGE, PAGE)
    cl_offset = align_up(mmap_size + PARAMS_SIZE, PAGE)
    if cl_offset < setup_sects * bz.SECTOR:
        cl_offset = align_up(setup_sects * bz.SECTOR, PAGE)
    return cl_offset, align_up(cl_offset + cmdline_size, PAGE)


def initrd_size(modules):
    """grub_initrd_init / grub_get_initrd_size: each file but the last padded to 4 bytes."""
    return sum(align_up(m.size, 4) for m in modules[:-1]) + modules[-1].size


def real_mode_chunk(memory_map, real_size):
    """grub_linux_boot_mmap_find: the first available range reaching [0x10000, 0x90000) with
    real_size bytes, its clipped top minus real_size; None when none has room."""
    for a, s, t in e820_entries(memory_map):
        if t != 1 or a > REAL_MODE_HIGH or a + s < REAL_MODE_LOW:
            continue
        lo, hi = max(a, REAL_MODE_LOW), min(a + s, REAL_MODE_HIGH)
        if hi - lo >= real_size:
            return hi - real_size
    return None


# struct linux_kernel_params (include/grub/i386/linux.h): its e820_map holds (0x400 - 0x2d0) / 20
# entries, so the struct is 0x3fc bytes; GRUB copies only that into the real-mode chunk, and the
# rest of the zero page is whatever the relocator's buffer held (observed: bytes of the initrd
# and of the kernel file). The kernel reads nothing there (eddbuf/edd_mbr_sig counts are 0).
PARAMS_STRUCT = 0x3FC
E820_IN_STRUCT = (PARAMS_STRUCT - 0x2D0) // E820_ENTRY
E820_MAX = 128                          # GRUB_E820_MAX_ENTRIES_ZEROPAGE
LOADER_TYPE_GRUB = 0x72                 # GRUB_LINUX_BOOT_LOADER_TYPE
CL_MAGIC, CL_OFFSET = 0xA33F, 0x1000
HEAP_END_OFFSET = 0x9000 - 0x200        # GRUB_LINUX_HEAP_END_OFFSET
CAN_USE_HEAP = 0x80
QUIET_FLAG = 0x20                       # GRUB_LINUX_FLAG_QUIET
EXT_MEM_KIB = (32 * 0x100000) >> 10     # "not needed to be precise"
ROOT_DEV = 0x0100                       # grub_cmd_initrd: "XXX"
VGA_TEXT = 1                            # GRUB_VIDEO_LINUX_TYPE_TEXT
# Bytes GRUB takes from its console when it boots: the cursor position after what SeaBIOS and
# GRUB printed (grub_term_getxy of "console"); observed (0, 2) on bootforge's images.
DECLARED = ((0x00, 2, "screen_info.orig_x/orig_y: GRUB's console cursor when it boots (what the firmware and "
             "GRUB printed before)"),)


def zero_page(data, hdr, code32, align, ramdisk, cmd_line_ptr, e820, cmdline, text_console=True):
    """The first PARAMS_STRUCT bytes (with over E820_IN_STRUCT E820 entries, up to the table's
    end) of the zero page GRUB hands the kernel (grub_cmd_linux,
    grub_cmd_initrd, grub_linux_boot in that order of writes), cursor bytes as observed. Without
    *text_console* (x86_64-efi: grub_linux_setup_video fails and have_vga stays 0) no video fields."""
    page = bytearray(PARAMS_STRUCT)
    end = 0x202 + data[0x201]
    page[bz.SETUP_HEADER_OFFSET:end] = data[bz.SETUP_HEADER_OFFSET:end]
    struct.pack_into("<I", page, 0x214, code32)
    struct.pack_into("<I", page, 0x230, align)
    page[0x1FE] = page[0x1FF] = 0                   # ps_mouse, padding10 (over boot_flag's bytes)
    page[0x210] = LOADER_TYPE_GRUB
    struct.pack_into("<HH", page, 0x20, CL_MAGIC, CL_OFFSET)
    struct.pack_into("<II", page, 0x218, *ramdisk)
    struct.pack_into("<H", page, 0x224, HEAP_END_OFFSET)
    page[0x211] |= CAN_USE_HEAP | (QUIET_FLAG if any(w.startswith("quiet") for w in cmdline.split()[1:]) else 0)
    struct.pack_into("<H", page, 0x02, EXT_MEM_KIB)
    struct.pack_into("<I", page, 0x1E0, EXT_MEM_KIB)
    page[0x10] = 16                                 # font_size
    if ramdisk[1]:
        struct.pack_into("<H", page, 0x1FC, ROOT_DEV)
    if text_console:
        # grub_linux_boot: no video mode set (text): VGA text, mode 3, the console's size and cursor.
        page[0x0F], page[0x06], page[0x07], page[0x0E] = VGA_TEXT, 0x03, 80, 25
        page[0x00], page[0x01] = 0, 2
    struct.pack_into("<I", page, 0x228, cmd_line_ptr)
    page[0x1E8] = len(e820)
    # grub_linux_boot_mmap_fill (grub_e820_add_region, up to 128 entries) writes the table into the
    # copied chunk itself: entries past the struct's E820_IN_STRUCT go on past 0x3fc (observed under
    # OVMF: 18 entries, bytes up to 0x438).
    page.extend(bytes(max(0, 0x2D0 + E820_ENTRY * min(len(e820), E820_MAX) - len(page))))
    for i, (a, s, t) in enumerate(e820[:E820_MAX]):
        struct.pack_into("<QQI", page, 0x2D0 + E820_ENTRY * i, a, s, t)
    return bytes(page)


@loader_policy("grub-pc-linux", firmware="bios", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, wrong_firmware=WRONG_FIRMWARE,
               summary="GRUB 2.06 i386-pc `linux`/`initrd` (a bzImage, its 32-bit entry)")
def load(req):
    data, hdr = read_kernel(req, "grub-pc-linux")
    version = hdr.version
    if version < 0x203:
        raise LoaderRefusal("version too old for 32-bit boot (try with `linux16')", loader="grub-pc-linux")
    plat = req.platform
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    g = hdr.get
    setup_sects = g("setup_sects") or bz.DEFAULT_SETUP_SECTS
    align = g("kernel_alignment") if version >= 0x205 else 0
    relocatable = bool(g("relocatable_kernel")) if align and align & (align - 1) == 0 else False
    if version >= 0x20A:
        prot_size = g("init_size")
        init_space = align_up(prot_size, PAGE)
        pref = g("pref_address") if relocatable else BZIMAGE_ADDR
    else:
        prot_size = len(data) - (setup_sects + 1) * bz.SECTOR
        init_space = align_up(prot_size, PAGE) * 3
        pref = BZIMAGE_ADDR
    chunk = align_up(max(prot_size, 1), PAGE)
    heap = heap_in_use(plat.memory_map)
    free = free_space(plat.memory_map, MIB, GIB4)
    if heap is not None:
        free.take(*heap)
    try:
        free.take(pref, chunk)
    except RecipeError:
        raise RecipeError(f"the kernel's {chunk:#x} bytes at pref_address {pref:#x} are not free RAM (GRUB then "
                          "searches 16 MiB..4 GiB with smaller alignments: not modelled)") from None
    res.place("kernel (protected-mode part, relocator chunk)", pref, chunk, PAGE,
              "pref_address, page_align(init_size) (allocate_pages)" if relocatable else "1 MiB (not relocatable)",
              "kernel")
    code32 = pref + g("code32_start") - BZIMAGE_ADDR
    cmdline, cmdline_size = loader_cmdline(req, hdr, "grub-pc-linux")
    res.cmdline = cmdline

    ramdisk = (0, 0)
    if req.modules:
        size = initrd_size(req.modules)
        aligned = align_up(size, PAGE)
        limit = min(g("initrd_addr_max"), INITRD_MAX_ADDRESS) if version >= 0x203 else INITRD_MAX_ADDRESS
        top = (limit - INITRD_TOP_GAP - aligned) & ~(PAGE - 1)
        low = pref + init_space
        # alloc_chunk_align(addr_min, addr, ...): the chunk ends at or below addr (observed: at 1G and
        # 3G the initrd ends exactly there); below it GRUB's heap in use at the top of RAM.
        at = free.highest(aligned, PAGE, low, top)
        if top < low or at is None:
            raise LoaderRefusal("the initrd is too big", loader="grub-pc-linux", words="the initrd is too big")
        free.take(at, aligned)
        res.place("initrd", at, aligned, PAGE, "highest 4 KiB-aligned free chunk below min(initrd_addr_max, "
                  "0x37ffffff) - 64 KiB (grub_cmd_initrd, PREFERENCE_HIGH)", "module")
        res.modules.append({"start": at, "end": at + size, "cmdline": ""})
        ramdisk = (at, size)

    mmap = merged_e820(plat.memory_map)
    cl_offset, real_size = real_mode_layout(len(e820_entries(plat.memory_map)), setup_sects, cmdline_size)
    params = real_mode_chunk(plat.memory_map, real_size)
    if params is None:
        raise LoaderRefusal("cannot allocate real mode pages", loader="grub-pc-linux",
                            words="cannot allocate real mode pages")
    res.place("boot_params and command line (real-mode chunk)", params, real_size, 1,
              "top of the first available range in [0x10000, 0x90000) (grub_linux_boot_mmap_find)", "boot-info")
    res.mbi_address = params
    res.mbi_bytes = zero_page(data, hdr, code32, 1 << (align.bit_length() - 1) if align else 1, ramdisk,
                              params + cl_offset, mmap, cmdline)
    res.mmap = mmap
    heap_note = f"GRUB's heap in use: {LINUX_HEAP_IN_USE:#x} bytes at {heap[0]:#x}" if heap else "no GRUB heap modelled"
    res.linux = {"boot_params": params, "cmd_line_ptr": params + cl_offset, "cl_offset": cl_offset,
                 "real_size": real_size, "code32_start": code32, "ramdisk_image": ramdisk[0],
                 "ramdisk_size": ramdisk[1], "kernel": {"start": pref, "size": chunk},
                 "e820_entries": len(mmap), "boot_path": "grub-pc-linux",
                 "zero_page": zero_page_spec(res.mbi_bytes, DECLARED, "the relocator buffer's old contents")}
    res.notes.append(f"predicted: kernel chunk at {pref:#x}, code32_start {code32:#x}, boot_params at {params:#x} "
                     f"(cmd_line_ptr {params + cl_offset:#x}), {len(mmap)} E820 entries"
                     + (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else ""))
    res.notes.append(heap_note)
    return res
