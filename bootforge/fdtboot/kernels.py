"""Readers of the kernel images device-tree loaders take: the arm64 Image, the 32-bit
ARM zImage, the RISC-V Image and U-Boot's legacy uImage (layouts in
bootforge/formats/arm_image.py and uimage.py). Each returns a JSON-ready dict of
the decoded fields; the checks a loader makes are in bootforge/fdtboot/verdicts.py.
"""

import struct
import zlib

from bootforge.errors import FormatError
from bootforge.formats import flag_labels, parse
from bootforge.formats import arm_image as fmt
from bootforge.formats import uimage as ufmt

ELF_MAGIC = b"\x7fELF"
GZIP_MAGIC = b"\x1f\x8b"
MAX_MULTI_FILES = 4096
HEADER_PEEK = 0x100         # every header this module reads lies in the first 256 bytes


def is_arm64_image(data):
    return data[fmt.ARM64_MAGIC_OFFSET:fmt.ARM64_MAGIC_OFFSET + 4] == fmt.ARM64_MAGIC


def is_riscv_image(data):
    return (data[fmt.RISCV_MAGIC2_OFFSET:fmt.RISCV_MAGIC2_OFFSET + 4] == fmt.RISCV_MAGIC2
            or data[fmt.RISCV_MAGIC_OFFSET:fmt.RISCV_MAGIC_OFFSET + 8] == fmt.RISCV_MAGIC)


def is_zimage(data):
    return data[fmt.ZIMAGE_MAGIC_OFFSET:fmt.ZIMAGE_MAGIC_OFFSET + 4] == struct.pack("<I", fmt.ZIMAGE_MAGIC)


def is_uimage(data):
    return data[:4] == struct.pack(">I", ufmt.UIMAGE_MAGIC)


def is_dt_kernel(data):
    """Whether *data* starts like one of the images this module reads."""
    return is_arm64_image(data) or is_riscv_image(data) or is_zimage(data) or is_uimage(data)


def _pe_offset(data, word):
    """The PE header offset an EFI-stub Image names, when "MZ" starts it and "PE\\0\\0" is there."""
    if data[:2] != fmt.MZ or not word or word + 4 > len(data) or data[word:word + 4] != b"PE\0\0":
        return None
    return word


def read_arm64_image(data, path=None):
    h = parse(fmt.Arm64ImageHeader, data, 0, "arm64 Image header", path)
    page = (h.flags >> fmt.ARM64_PAGE_SIZE_SHIFT) & fmt.ARM64_PAGE_SIZE_MASK
    return {"kind": "arm64-image", "arch": "aarch64",
            "code0": h.code0, "code1": h.code1, "text_offset": h.text_offset, "image_size": h.image_size,
            "flags": h.flags, "flag_names": flag_labels(fmt.Arm64ImageFlag, h.flags),
            "page_size": fmt.Arm64PageSize.label_of(page),
            "big_endian": bool(h.flags & fmt.Arm64ImageFlag.BIG_ENDIAN),
            "phys_anywhere": bool(h.flags & fmt.Arm64ImageFlag.PHYS_ANYWHERE),
            "magic": h.magic.decode("latin-1"), "pe_offset": _pe_offset(data, h.res5),
            "file_size": len(data)}


def read_riscv_image(data, path=None):
    h = parse(fmt.RiscvImageHeader, data, 0, "RISC-V Image header", path)
    return {"kind": "riscv-image", "arch": "riscv64",
            "code0": h.code0, "code1": h.code1, "text_offset": h.text_offset, "image_size": h.image_size,
            "flags": h.flags, "big_endian": bool(h.flags & 1),
            "version": f"{h.version >> 16}.{h.version & 0xFFFF}",
            "magic": h.magic.decode("latin-1"), "magic2": h.magic2.decode("latin-1"),
            "magic_ok": h.magic == fmt.RISCV_MAGIC, "magic2_ok": h.magic2 == fmt.RISCV_MAGIC2,
            "pe_offset": _pe_offset(data, h.res3), "file_size": len(data)}


def read_zimage(data, path=None):
    h = parse(fmt.ArmZImageHeader, data, fmt.ZIMAGE_MAGIC_OFFSET, "zImage header", path)
    return {"kind": "arm-zimage", "arch": "arm", "start": h.start, "end": h.end,
            "size": (h.end - h.start) & 0xFFFFFFFF,
            "little_endian": h.endian == fmt.ZIMAGE_ENDIAN_LE, "endian": h.endian,
            "table": h.table if h.extension == fmt.ZIMAGE_EXTENSION_MAGIC else None,
            "file_size": len(data)}


def uimage_header_crc(data):
    """CRC32 of the 64-byte header with ih_hcrc zero (boot/image.c image_check_hcrc)."""
    header = bytearray(data[:ufmt.UIMAGE_HEADER_SIZE])
    header[ufmt.UIMAGE_HCRC_OFFSET:ufmt.UIMAGE_HCRC_OFFSET + 4] = bytes(4)
    return zlib.crc32(header)


def read_uimage(data, path=None):
    """The legacy header, both CRCs recomputed, the data and (multi-file) its parts."""
    h = parse(ufmt.LegacyImageHeader, data, 0, "uImage header", path)
    start = ufmt.UIMAGE_HEADER_SIZE
    available = len(data) - start
    body = data[start:start + h.size]
    out = {"kind": "uimage", "name": h.name.split(b"\0", 1)[0].decode("latin-1"), "time": h.time,
           "size": h.size, "load": h.load, "ep": h.ep,
           "os": h.os, "os_name": ufmt.UImageOs.label_of(h.os),
           "arch": h.arch, "arch_name": ufmt.UImageArch.label_of(h.arch),
           "type": h.type, "type_name": ufmt.UImageType.label_of(h.type),
           "comp": h.comp, "comp_name": ufmt.UImageCompression.label_of(h.comp),
           "hcrc": h.hcrc, "hcrc_computed": uimage_header_crc(data),
           "dcrc": h.dcrc, "dcrc_computed": zlib.crc32(body) if h.size <= available else None,
           "data_offset": start, "truncated": h.size > available, "trailing": max(0, available - h.size),
           "files": []}
    if h.type == ufmt.UImageType.MULTI and h.size <= available:
        out["files"] = multi_files(body, path, start)
    return out


def multi_files(body, path=None, base=0):
    """[(offset, size)] of a multi-file image's parts (boot/image.c image_multi_getimg)."""
    sizes = []
    at = 0
    while True:
        if at + 4 > len(body):
            raise FormatError("multi-file size list runs off the image data", path=path, offset=base + at)
        (size,) = struct.unpack_from(">I", body, at)
        at += 4
        if size == 0:
            break
        sizes.append(size)
        if len(sizes) > MAX_MULTI_FILES:
            raise FormatError(f"multi-file size list longer than {MAX_MULTI_FILES} entries", path=path,
                              offset=base + at)
    files = []
    for size in sizes:
        if at + size > len(body):
            raise FormatError(f"multi-file part of {size:#x} bytes runs off the image data", path=path,
                              offset=base + at)
        files.append({"offset": base + at, "size": size})
        at += (size + 3) & ~3
    return files


def read_dt_kernel(data, path=None):
    """The decoded header of whichever image *data* is (arm64, RISC-V, zImage, uImage)."""
    if is_uimage(data):
        return read_uimage(data, path)
    if is_arm64_image(data):
        return read_arm64_image(data, path)
    if is_riscv_image(data):
        return read_riscv_image(data, path)
    if is_zimage(data):
        return read_zimage(data, path)
    raise FormatError("not an arm64 Image, RISC-V Image, zImage or uImage", path=path, offset=0)
