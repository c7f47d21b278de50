"""The zero page Linux's x86 EFI stub hands the kernel it decompressed (Debian 6.1.192,
drivers/firmware/efi/libstub/x86-stub.c with the 6.1.y backports where the stub decompresses the
kernel itself: efi_pe_entry, efi_stub_entry, exit_boot, setup_e820; gop.c setup_gop), as
linux-efi-stub predicts it under OVMF (QEMU -kernel, an ESP, systemd-stub 252's LoadImage of a
UKI's .linux: all enter efi_pe_entry).

The page is efi_pe_entry's efi_allocate_pages(PARAM_SIZE) cleared with memset: no setup header
is copied (observed: no "HdrS" at 0x202), only these fields are written:
- efi_pe_entry: hdr.root_flags 1, hdr.vid_mode 0xffff, hdr.type_of_loader 0x21,
  hdr.initrd_addr_max INT_MAX, cmd_line_ptr/ext_cmd_line_ptr (efi_convert_cmdline's pool copy);
- efi_stub_entry: ramdisk_image/size (+ ext_) from efi_load_initrd, secure_boot from
  efi_get_secureboot() (secureboot.c: SecureBoot 0 or SetupMode 1 is "disabled", 2);
- setup_graphics (gop.c setup_gop, the GOP's current mode, no video= option): screen_info with
  orig_video_isVGA VIDEO_TYPE_EFI, lfb_width/height, lfb_base/ext_lfb_base (FrameBufferBase),
  pages 1, lfb_depth and the positions/sizes of PixelBlueGreenRedReserved8BitPerColor,
  lfb_linelength = PixelsPerScanLine * 4, lfb_size = linelength * height, capabilities
  VIDEO_CAPABILITY_SKIP_QUIRKS (| 64BIT_BASE above 4 GiB);
- setup_efi_pci: hdr.setup_data = the first SETUP_PCI node;
- exit_boot_func: efi_info "EL64", efi_systab(_hi), efi_memdesc_size/version, efi_memmap(_hi),
  efi_memmap_size (the map at ExitBootServices: OVMF's descriptors, counted on the replayed map);
  exit_boot: alt_mem_k 32 * 1024; setup_e820: e820_entries and e820_table.

Declared (not counted by verify), each with its reason: the EFI system table pointer and the GOP
framebuffer's base (OVMF's allocation and PCI enumeration), efi_memmap (the stub's map buffer,
efi_get_memory_map(install_cfg_tbl) allocates it from the EfiACPIReclaimMemory pool: pages in
OVMF's ACPI Reclaim bin, whose free pages no captured map shows since GetMemoryMap reports the
whole bin as ACPI Reclaim), and where OVMF's allocator is not replayed (linux.placement not
exact) the address fields and efi_memmap_size, with the placement's reason."""

import struct

from bootforge.formats import bzimage as bz
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION
from bootforge.formats.efi_memmap import EfiMemoryType as T

PARAM_SIZE = 0x1000                     # efi_pe_entry's allocation (one page: observed, RSI's page)
ROOT_FLAGS, VID_MODE, TYPE_OF_LOADER, INITRD_ADDR_MAX = 0x1F2, 0x1FA, 0x210, 0x22C
RAMDISK_IMAGE, RAMDISK_SIZE, CMD_LINE_PTR, SETUP_DATA = 0x218, 0x21C, 0x228, 0x250
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
EFI_SYSTAB, EFI_SYSTAB_HI = bz.efi_info_offset("efi_systab"), bz.efi_info_offset("efi_systab_hi")
EFI_MEMMAP, EFI_MEMMAP_HI = bz.efi_info_offset("efi_memmap"), bz.efi_info_offset("efi_memmap_hi")
EFI_MEMMAP_SIZE = bz.efi_info_offset("efi_memmap_size")
ALT_MEM_K, E820_ENTRIES, SECURE_BOOT, E820_TABLE = 0x1E0, 0x1E8, 0x1EC, 0x2D0
E820_MAX = 128
LOADER_TYPE_EFI = 0x21                  # efi_pe_entry: "EFI stub" in Documentation/x86/boot.rst's table
INT_MAX = 0x7FFFFFFF
EFI_SECUREBOOT_DISABLED = 2             # efi_secureboot_mode_disabled
# include/uapi/linux/screen_info.h
SI_LFB_WIDTH, SI_LFB_HEIGHT, SI_LFB_DEPTH, SI_LFB_BASE, SI_LFB_SIZE = 0x12, 0x14, 0x16, 0x18, 0x1C
SI_ISVGA, SI_LINELENGTH, SI_COLORS, SI_PAGES, SI_CAPS, SI_EXT_LFB_BASE = 0x0F, 0x24, 0x26, 0x32, 0x36, 0x3A
VIDEO_TYPE_EFI = 0x70
VIDEO_CAPABILITY_SKIP_QUIRKS, VIDEO_CAPABILITY_64BIT_BASE = 1, 2
# gop.c setup_pixel_info, PIXEL_BGR_RESERVED_8BIT_PER_COLOR (OVMF's QemuVideoDxe format):
# red size/pos, green, blue, rsvd
BGR8_COLORS = bytes((8, 16, 8, 8, 8, 0, 8, 24))
ALT_MEM_KIB = 32 * 1024                 # exit_boot: "Historic?"

FIRMWARE = (
    (EFI_SYSTAB, 4, "efi_info.efi_systab: the EFI system table OVMF allocated"),
    (EFI_SYSTAB_HI, 4, "efi_info.efi_systab_hi: the EFI system table's high half"),
    (EFI_MEMMAP, 4, "efi_info.efi_memmap: the stub's map buffer, an EfiACPIReclaimMemory pool allocation "
                    "(efi_get_memory_map with install_cfg_tbl) in OVMF's ACPI Reclaim bin, whose free pages "
                    "no captured map shows (GetMemoryMap reports the whole bin as ACPI Reclaim)"),
    (EFI_MEMMAP_HI, 4, "efi_info.efi_memmap_hi: that buffer's high half"),
)
FRAMEBUFFER = ((SI_LFB_BASE, 4, "screen_info.lfb_base: GOP's FrameBufferBase, the display's BAR OVMF's PCI "
                "enumeration gave"),
               (SI_EXT_LFB_BASE, 4, "screen_info.ext_lfb_base: that BAR's high half"))


def exit_descriptors(pm, kernel):
    """Descriptors GetMemoryMap returns at ExitBootServices: the replayed map (ovmf_pages.PageMap
    after the stub's allocations) with the decompressed kernel's Loader Code (start, size) in it;
    the stub's other pool buffers (the GOP handles, allocate_e820's map) are freed before."""
    pages = type(pm)([list(r) for r in pm.ranges], pm.default_top)
    pages._set(kernel[0], kernel[0] + kernel[1], T.LOADER_CODE)
    return sum(1 for a, b, _t in pages.ranges if b > a)


def _split(page, low, high, value):
    struct.pack_into("<I", page, low, value & 0xFFFFFFFF)
    struct.pack_into("<I", page, high, value >> 32)


def stub_zero_page(*, cmdline_ptr, initrd, setup_data, e820, gop, exit_descriptors_count, secure_boot):
    """The PARAM_SIZE bytes efi_stub_entry enters the kernel with (the declared fields zero);
    *gop* is (width, height) of the GOP's current mode or None (no GOP: screen_info stays 0)."""
    page = bytearray(PARAM_SIZE)
    struct.pack_into("<H", page, ROOT_FLAGS, 1)
    struct.pack_into("<H", page, VID_MODE, 0xFFFF)
    page[TYPE_OF_LOADER] = LOADER_TYPE_EFI
    struct.pack_into("<I", page, INITRD_ADDR_MAX, INT_MAX)
    _split(page, CMD_LINE_PTR, EXT_CMD_LINE_PTR, cmdline_ptr or 0)
    if initrd:
        _split(page, RAMDISK_IMAGE, EXT_RAMDISK_IMAGE, initrd[0])
        _split(page, RAMDISK_SIZE, EXT_RAMDISK_SIZE, initrd[1])
    page[SECURE_BOOT] = secure_boot
    if gop is not None:
        width, height = gop
        page[SI_ISVGA] = VIDEO_TYPE_EFI
        struct.pack_into("<HHH", page, SI_LFB_WIDTH, width, height, 32)
        struct.pack_into("<H", page, SI_LINELENGTH, width * 4)
        struct.pack_into("<I", page, SI_LFB_SIZE, width * 4 * height)
        page[SI_COLORS:SI_COLORS + 8] = BGR8_COLORS
        struct.pack_into("<H", page, SI_PAGES, 1)
        struct.pack_into("<I", page, SI_CAPS, VIDEO_CAPABILITY_SKIP_QUIRKS)
    struct.pack_into("<Q", page, SETUP_DATA, setup_data or 0)
    # exit_boot_func (the system table and the map buffer's address declared: left 0)
    info = bz.EfiInfo.build(dict(efi_loader_signature=bz.EFI_LOADER_SIGNATURE_64, efi_systab=0,
                                 efi_memdesc_size=EFI_DESCRIPTOR_DEFAULT_SIZE,
                                 efi_memdesc_version=EFI_DESCRIPTOR_VERSION, efi_memmap=0,
                                 efi_memmap_size=(exit_descriptors_count or 0) * EFI_DESCRIPTOR_DEFAULT_SIZE,
                                 efi_systab_hi=0, efi_memmap_hi=0))
    page[bz.BOOT_PARAMS_EFI_INFO:bz.BOOT_PARAMS_EFI_INFO + len(info)] = info
    struct.pack_into("<I", page, ALT_MEM_K, ALT_MEM_KIB)
    page[E820_ENTRIES] = min(len(e820), E820_MAX)
    for i, (a, s, t) in enumerate(e820[:E820_MAX]):
        struct.pack_into("<QQI", page, E820_TABLE + 20 * i, a, s, t)
    return bytes(page)


def predict(res, placement, gop):
    """res.mbi_bytes and res.linux["zero_page"] for linux-efi-stub's result *res* (its mmap in
    boot_params order) and *placement* (linux.placement); *gop*: (width, height) or None."""
    exact = bool(placement and placement.get("exact"))
    declared = [{"offset": o, "size": n, "why": w} for o, n, w in FIRMWARE]
    if gop is not None:
        declared += [{"offset": o, "size": n, "why": w} for o, n, w in FRAMEBUFFER]
    else:
        declared.append({"offset": 0, "size": 0x40, "why": "screen_info: no GOP known for a platform given as a "
                                                            "map file"})
    if not exact:
        why = f"not predicted: {(placement or {}).get('reason') or 'no replay of OVMF page allocator'}"
        for off, size, name in ((CMD_LINE_PTR, 4, "hdr.cmd_line_ptr"), (RAMDISK_IMAGE, 4, "hdr.ramdisk_image"),
                                (SETUP_DATA, 8, "hdr.setup_data"), (EFI_MEMMAP_SIZE, 4, "efi_info.efi_memmap_size"),
                                (EXT_RAMDISK_IMAGE, 4, "ext_ramdisk_image"), (EXT_CMD_LINE_PTR, 4, "ext_cmd_line_ptr")):
            declared.append({"offset": off, "size": size, "why": f"{name}: {why}"})
    initrd = placement["initrd"] if exact and placement.get("initrd") else None
    size = res.linux.get("initrd_size") or 0
    res.mbi_bytes = stub_zero_page(
        cmdline_ptr=placement.get("cmd_line_ptr") if exact else None,
        initrd=(initrd["start"], initrd["size"]) if initrd else ((0, size) if size else None),
        setup_data=(placement.get("setup_data") or [None])[0] if exact else None,
        e820=res.mmap, gop=gop, exit_descriptors_count=placement.get("exit_descriptors") if exact else None,
        secure_boot=EFI_SECUREBOOT_DISABLED)
    res.mbi_address = placement.get("boot_params") if exact else None
    res.linux["zero_page"] = {"predicted_bytes": PARAM_SIZE, "declared": sorted(declared, key=lambda d: d["offset"])}
