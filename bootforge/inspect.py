"""Content detection for `bootforge inspect`: which reader handles a file.

Each row names a format, a test on the first bytes, and the reader
("module:function") that returns a Report for (path, data). Readers are
imported only when their format matches, so inspecting a ROM never loads
the ELF or DTB code. Rows whose test is None have no magic: they are chosen
only with --format.
"""

import importlib

from bootforge.errors import FormatError
from bootforge.image.sniff import is_disk_image


def _efi_subsystem(d, subsystems=(10, 11, 12, 13)):
    """A PE whose optional header's Subsystem is an EFI one (10-13), or one of *subsystems*."""
    if d[:2] != b"MZ" or len(d) < 0x40:
        return False
    at = int.from_bytes(d[0x3C:0x40], "little")
    return d[at:at + 4] == b"PE\0\0" and int.from_bytes(d[at + 0x5C:at + 0x5E], "little") in subsystems


def _mb2_info(d, max_tags=4096):
    """total_size is the file's length, reserved is 0, and 8-aligned tags of size >= 8 walk to an
    end tag (type 0, size 8) ending exactly at total_size (Multiboot2 specification 3.6)."""
    if len(d) < 16 or len(d) % 8 or int.from_bytes(d[:4], "little") != len(d) or d[4:8] != bytes(4):
        return False
    pos = 8
    for _ in range(max_tags):
        ttype, size = int.from_bytes(d[pos:pos + 4], "little"), int.from_bytes(d[pos + 4:pos + 8], "little")
        if size < 8 or pos + size > len(d):
            return False
        if ttype == 0:
            return size == 8 and pos + 8 == len(d)
        pos += (size + 7) & ~7
    return False


FORMATS = [
    # Bootable images: hybrid ISOs and partitioned disks (bootforge/image/).
    ("image", is_disk_image, "bootforge.image.inspect:inspect_image_file"),
    # Device trees and raw memory maps (bootforge/fdt/, bootforge/memmap/); the maps have no magic.
    # (Raw memory maps come from the memory-map format registry: see inspect_data.)
    # FIT: a DTB with an /images node (bootforge/fdtboot/); U-Boot's legacy uImage.
    ("fit", lambda d: d[:4] == b"\xd0\x0d\xfe\xed" and b"\0\0\0\x01images\0" in d[:0x10000],
     "bootforge.fdtboot.inspect:inspect_fit"),
    ("uimage", lambda d: d[:4] == b"\x27\x05\x19\x56", "bootforge.fdtboot.inspect:inspect_uimage"),
    ("dtb", lambda d: d[:4] == b"\xd0\x0d\xfe\xed", "bootforge.memmap.dtb_report:inspect_dtb"),
    ("option-rom", lambda d: d[:2] == b"\x55\xaa", "bootforge.rom.inspect:inspect_rom"),
    # Multiboot kernels and their wrappers (bootforge/multiboot/inspect.py).
    ("elf", lambda d: d[:4] == b"\x7fELF", "bootforge.multiboot.inspect:inspect_elf"),
    # Linux kernels ("HdrS") and UKIs (a PE naming a .linux section): bootforge/uki/inspect.py.
    ("uki", lambda d: d[0x202:0x206] == b"HdrS" or (d[:2] == b"MZ" and b".linux\0\0" in d[:4096]),
     "bootforge.uki.inspect:inspect_efi_linux"),
    # arm64 / RISC-V Images (also behind an EFI stub's MZ) and ARM zImages: bootforge/fdtboot/.
    ("dt-kernel", lambda d: d[0x38:0x3c] in (b"ARM\x64", b"RSC\x05") or d[0x30:0x38] == b"RISCV\0\0\0"
     or d[0x24:0x28] == b"\x18\x28\x6f\x01", "bootforge.fdtboot.inspect:inspect_dt_kernel"),
    # EFI applications and drivers that are no UKI and carry no Multiboot header (GRUB, systemd-boot,
    # shim, EFI drivers): signatures and Secure Boot, bootforge/secureboot/report.py.
    # A bare EFI driver (boot service or runtime): the same report, and whether it can go in an
    # option ROM (bootforge/rom/inspect.py inspect_efi_driver, bootforge/pe/driver.py).
    ("efi-driver", lambda d: _efi_subsystem(d, (11, 12)) and b"\xd6\x50\x52\xe8" not in d[:32768]
     and b"\x02\xb0\xad\x1b" not in d[:8192], "bootforge.rom.inspect:inspect_efi_driver"),
    ("efi-pe", lambda d: _efi_subsystem(d) and b"\xd6\x50\x52\xe8" not in d[:32768]
     and b"\x02\xb0\xad\x1b" not in d[:8192], "bootforge.secureboot.report:inspect_efi_pe"),
    ("pe", lambda d: d[:2] == b"MZ", "bootforge.multiboot.inspect:inspect_pe"),
    ("linux-kernel", lambda d: d[0x202:0x206] == b"HdrS", "bootforge.multiboot.inspect:inspect_kernel"),
    ("multiboot-image", lambda d: b"\x02\xb0\xad\x1b" in d[:8192] or b"\xd6\x50\x52\xe8" in d[:32768],
     "bootforge.multiboot.inspect:inspect_kernel"),
    ("gzip", lambda d: d[:2] == b"\x1f\x8b", "bootforge.inspect:inspect_compressed"),
    ("xz", lambda d: d[:6] == b"\xfd7zXZ\x00", "bootforge.inspect:inspect_compressed"),
    ("mbdump", lambda d: d[:9] == b"BFMBDUMP ", "bootforge.multiboot.dump:inspect_dump"),
    # U-Boot's own u-boot.bin has no header: its version string says what it is (bootforge/fdtboot/).
    ("u-boot", lambda d: b"U-Boot 20" in d[:8 << 20], "bootforge.fdtboot.inspect:inspect_uboot"),
    # System firmware (bootforge/rom/system_firmware.py): EDK2 flash images (a firmware volume's
    # _FVH in the first 64 KiB), legacy BIOS images (64 KiB blocks ending in the reset vector's far
    # jump and the BIOS date).
    ("uefi-flash", lambda d: any(d[o + 0x28:o + 0x2C] == b"_FVH" for o in range(0, min(len(d), 0x10000), 0x1000)),
     "bootforge.rom.system_firmware:inspect_uefi_flash"),
    ("legacy-bios", lambda d: 0 < len(d) <= 16 << 20 and len(d) % 0x10000 == 0 and d[-16] == 0xEA
     and d[-11:-3].count(b"/") == 2, "bootforge.rom.system_firmware:inspect_legacy_bios"),
    # Boot information as `load --mbi-out` writes it (bootforge/multiboot/info_report.py): an MB2
    # information structure is sniffed by its shape; MB1's has none (--format mb1-info).
    ("mb2-info", lambda d: _mb2_info(d), "bootforge.multiboot.info_report:inspect_mb2_info"),
    ("mb1-info", None, "bootforge.multiboot.info_report:inspect_mb1_info"),
    # A raw UEFI-compressed stream has no magic: its header's size must end the file (compress/inspect.py).
    ("efi-compressed", None, "bootforge.inspect:inspect_efi_compressed"),
]


def format_names():
    # Function-level import: the memory-map registry is loaded only when the names are asked for.
    from bootforge.memmap.formats import inspect_names
    names = [name for name, _, _ in FORMATS]
    return names + [n for n in inspect_names() if n not in names]


def _reader(target):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


# Formats whose readers only slice and hash the file: they get a read-only map of it, not its
# bytes (fileio.map_input: a 40 MiB FIT read whole costs more than hashing it). The first row
# claiming the file's head decides, as inspect_data's walk would on the whole file.
MAPPED_FORMATS = ("fit",)
SNIFF_HEAD = 0x10000        # the deepest of the head tests that come before the mapped rows


def input_data(path, format_name=None):
    """What inspect_data reads of *path*: a map for the MAPPED_FORMATS, else read_input's bytes."""
    # Function-level import: fileio is the commands' module; the table above stays import-free.
    from bootforge.fileio import map_input, read_head, read_input
    claimant = format_name
    if claimant is None:
        head = read_head(path, SNIFF_HEAD)
        claimant = next((name for name, sniff, _ in FORMATS if head and sniff is not None and sniff(head)), None)
    return map_input(path) if claimant in MAPPED_FORMATS else read_input(path)


def inspect_data(path, data, format_name=None):
    """Return the Report for *data* read from *path*, detecting the format unless named."""
    for name, sniff, target in FORMATS:
        if format_name == name or (format_name is None and sniff is not None and sniff(data)):
            return _reader(target)(path, data)
    # Function-level import: only files no row above claims load the EFI decompressor's sniffer.
    from bootforge.compress.inspect import looks_like_stream
    if format_name is None and looks_like_stream(data):
        return inspect_efi_compressed(path, data)
    # Function-level import: memory maps last: most have no magic, and the registry is loaded
    # only when nothing above claimed the file (so inspecting a ROM never loads it).
    from bootforge.memmap import inspect as memmap_inspect
    if format_name is not None and memmap_inspect.inspectable(format_name):
        return memmap_inspect.inspect_map(format_name, path, data)
    if format_name is None:
        sniffed = memmap_inspect.sniff(data, path)
        if sniffed is not None:
            return memmap_inspect.inspect_map(sniffed, path, data)
    if format_name is not None:
        raise FormatError(f"unknown format {format_name!r}", path=path)
    raise FormatError(
        f"not a format bootforge knows (first bytes {data[:8].hex(' ') or 'none: empty file'})",
        path=path,
        offset=0,
    )


def inspect_compressed(path, data):
    """A gzip/xz file: the kernel report of what is inside, or whatever else is inside."""
    # Function-level import: only gzip/xz files load the kernel readers.
    from bootforge.multiboot.inspect import compressed_kernel_report, decompress, is_kernel
    kind = "gzip" if data[:2] == b"\x1f\x8b" else "xz"
    inner = decompress(data, kind)
    try:
        if is_kernel(inner):
            return compressed_kernel_report(path, inner, kind, data)
        # Function-level import: only compressed files load the device-tree kernel sniffer.
        from bootforge.fdtboot.kernels import is_dt_kernel
        if is_dt_kernel(inner):
            # Function-level import: the device-tree kernel report only for such a kernel.
            from bootforge.fdtboot.inspect import dt_kernel_report
            return dt_kernel_report(path, inner, kind, data)
        return inspect_data(path, inner)
    except FormatError as exc:
        exc.message += f" (offset in the {kind}-decompressed data)"
        raise


def detected_format(data):
    """The name of the first magic-bearing format that claims *data*, or None."""
    return next((name for name, sniff, _ in FORMATS if sniff is not None and sniff(data)), None)


def inspect_efi_compressed(path, data):
    """A raw UEFI-compressed stream: its header, the variant that decodes it, what is inside."""
    # Function-level import: only files no other row claims load the decoder.
    from bootforge.compress.inspect import inspect_stream
    return inspect_stream(path, data, detected_format)
