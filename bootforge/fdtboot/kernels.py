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


# U-Boot's bootm decompression of a legacy uImage's data (boot/image.c image_decomp into a buffer
# of CONFIG_SYS_BOOTM_LEN bytes at ih_load; lib/gunzip.c, lib/lzma/LzmaTools.c, lib/lz4_wrapper.c).
LZ4F_MAGIC = 0x184D2204
GZIP_FLAGS_RESERVED, GZIP_HEAD_CRC, GZIP_EXTRA, GZIP_NAME, GZIP_COMMENT = 0xE0, 0x02, 0x04, 0x08, 0x10


class DecompressError(Exception):
    """The data does not decompress as U-Boot's decoder reads it (*why*, the decoder's return code
    when known)."""

    def __init__(self, why, code=None):
        super().__init__(why)
        self.why, self.code = why, code


class TooLarge(Exception):
    """The output would pass the buffer's end (U-Boot's decoders stop there and fail)."""


def gunzip_uboot(data, limit):
    """lib/gunzip.c gunzip(): the gzip header skipped by its flags (no trailer CRC check), then raw
    inflate into *limit* bytes (zunzip)."""
    if len(data) < 10 or data[2] != 8 or data[3] & GZIP_FLAGS_RESERVED:
        raise DecompressError("not gzip deflate data (\"Error: Bad gzipped data\")", -1)
    flags, at = data[3], 10
    if flags & GZIP_EXTRA:
        at = 12 + (data[10] if len(data) > 10 else 0) + ((data[11] if len(data) > 11 else 0) << 8)
    for bit in (GZIP_NAME, GZIP_COMMENT):
        if flags & bit:
            end = data.find(b"\0", at)
            at = len(data) if end < 0 else end + 1
    if flags & GZIP_HEAD_CRC:
        at += 2
    if at >= len(data):
        raise DecompressError("the gzip header runs past the data (\"gunzip out of data in header\")", -1)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(data[at:], limit + 1)
    except zlib.error as exc:
        raise DecompressError(f"inflate: {exc}", -1) from None
    if len(out) > limit:
        raise TooLarge()
    if not d.eof:
        raise DecompressError("the deflate stream ends early", -1)
    return out


def unlzma_uboot(data, limit):
    """lib/lzma/LzmaTools.c lzmaBuffToBuffDecompress(): a .lzma ("alone") stream, at most *limit* bytes."""
    # Function-level import: only lzma-compressed uImages need it.
    import lzma
    # liblzma allocates the header's dictionary size (bytes 1-4, up to 4 GiB) before the first byte;
    # U-Boot decodes straight into its output buffer. A match distance is checked against the bytes
    # decoded so far when the dictionary holds the whole output (LzmaDec.c checkDicSize, liblzma
    # dict_is_distance_valid), so any size of at least the limit + 1 bytes read here decodes alike.
    if len(data) >= 5 and int.from_bytes(data[1:5], "little") > limit + 1:
        data = data[:1] + (limit + 1).to_bytes(4, "little") + data[5:]
    d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    try:
        out = d.decompress(data, limit + 1)
    except (lzma.LZMAError, EOFError) as exc:
        raise DecompressError(f"lzma: {exc}") from None
    if len(out) > limit:
        raise TooLarge()
    if not d.eof and len(out) < limit:
        raise DecompressError("the lzma stream ends early")
    return out


def _lz4_length(src, at, length, escape, what):
    """A token's length nibble, extended by bytes of 255 ... while it is *escape* (the lz4 block format)."""
    if length != escape:
        return length, at
    while True:
        if at >= len(src):
            raise DecompressError(f"an lz4 {what} length runs off the block", -71)
        length += src[at]
        at += 1
        if src[at - 1] != 255:
            return length, at


def _lz4_block(src, out, limit):
    """One LZ4 block (the lz4 block format) appended to *out*; TooLarge past *limit*."""
    at, n = 0, len(src)
    while at < n:
        token = src[at]
        at += 1
        length, at = _lz4_length(src, at, token >> 4, 15, "literal")
        if at + length > n:
            raise DecompressError("lz4 literals run off the block", -71)
        if len(out) + length > limit:
            raise TooLarge()
        out += src[at:at + length]
        at += length
        if at == n:
            return
        if at + 2 > n:
            raise DecompressError("an lz4 match offset runs off the block", -71)
        offset = src[at] | src[at + 1] << 8
        at += 2
        length, at = _lz4_length(src, at, token & 15, 15, "match")
        length += 4
        if offset == 0 or offset > len(out):
            raise DecompressError("an lz4 match points before the output", -71)
        if len(out) + length > limit:
            raise TooLarge()
        if length <= offset:
            out += out[len(out) - offset:len(out) - offset + length]
        else:                       # an overlapping match repeats the last `offset` bytes
            pattern = bytes(out[len(out) - offset:])
            out += (pattern * (length // offset + 1))[:length]


def unlz4_uboot(data, limit):
    """lib/lz4_wrapper.c ulz4fn(): one LZ4 frame with independent blocks, into *limit* bytes."""
    if len(data) < 7 or int.from_bytes(data[:4], "little") != LZ4F_MAGIC or data[4] >> 6 != 1:
        raise DecompressError("not an LZ4 frame (version 01)", -93)
    flags, descriptor = data[4], data[5]
    if flags & 0x03 or descriptor & 0x8F:
        raise DecompressError("LZ4 frame reserved bits set", -22)
    if not flags & 0x20:
        raise DecompressError("LZ4 frame with dependent blocks (ulz4fn: not supported)", -93)
    block_checksum = bool(flags & 0x10)
    at = 4 + 2 + (8 if flags & 0x08 else 0) + 1
    out = bytearray()
    while True:
        if at + 4 > len(data):
            raise DecompressError("the LZ4 frame ends without its end mark", -22)
        word = int.from_bytes(data[at:at + 4], "little")
        at += 4
        if word == 0:
            return bytes(out)
        size = word & 0x7FFFFFFF
        if at + size > len(data):
            raise DecompressError("an LZ4 block runs past the data", -22)
        if word & 0x80000000:
            if len(out) + size > limit:
                raise TooLarge()
            out += data[at:at + size]
        else:
            _lz4_block(data[at:at + size], out, limit)
        at += size + (4 if block_checksum else 0)


BOOTM_DECOMPRESSORS = {ufmt.UImageCompression.GZIP: gunzip_uboot, ufmt.UImageCompression.LZMA: unlzma_uboot,
                       ufmt.UImageCompression.LZ4: unlz4_uboot}


def bootm_loaded_bytes(data, limit):
    """The bytes bootm leaves at a legacy uImage's ih_load: its data, decompressed when compressed
    (TooLarge / DecompressError as the decoder fails; KeyError for a compression with no decoder)."""
    h = read_uimage(data)
    body = data[ufmt.UIMAGE_HEADER_SIZE:ufmt.UIMAGE_HEADER_SIZE + h["size"]]
    return body if h["comp"] == ufmt.UImageCompression.NONE else BOOTM_DECOMPRESSORS[h["comp"]](body, limit)
