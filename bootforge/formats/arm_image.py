"""Kernel image headers of the device-tree platforms: the arm64 Image, the 32-bit ARM
zImage and the RISC-V Image.

Sources: Linux Documentation/arch/arm64/booting.rst ("Call the kernel image": the
64-byte header; flags bit 0 endianness, bits 1-2 page size, bit 3 physical
placement), arch/arm/boot/compressed/head.S (the zImage magic words at 0x24),
Documentation/riscv/boot-image-header.rst and arch/riscv/include/asm/image.h
(version 0.2, magic "RISCV\\0\\0\\0" deprecated, magic2 "RSC\\x05"). All
little-endian. An EFI-stub kernel keeps the same header: code0 is then "MZ" and
the last word (res5 / res3) is the offset of the PE header.
"""

from construct import Bytes, Int32ul, Int64ul, Struct

from bootforge.formats import Numbering

ARM64_MAGIC = b"ARM\x64"
ARM64_MAGIC_OFFSET = 0x38
ARM64_HEADER_SIZE = 64

Arm64ImageHeader = Struct(
    "code0" / Int32ul,          # executable code (b stext), or "MZ" + a nop for an EFI stub
    "code1" / Int32ul,
    "text_offset" / Int64ul,    # image load offset from a 2 MiB aligned base (valid when image_size != 0)
    "image_size" / Int64ul,     # effective image size, bss included; 0 before Linux 3.17
    "flags" / Int64ul,          # Arm64ImageFlag
    "res2" / Int64ul,
    "res3" / Int64ul,
    "res4" / Int64ul,
    "magic" / Bytes(4),         # ARM64_MAGIC
    "res5" / Int32ul,           # PE header offset (EFI stub) or 0
)


class Arm64ImageFlag(Numbering):
    """The single-bit flags of the arm64 Image header (booting.rst)."""
    BIG_ENDIAN = 1 << 0, "kernel is big-endian"
    PHYS_ANYWHERE = 1 << 3, "2 MiB aligned base may be anywhere in physical memory"


class Arm64PageSize(Numbering):
    """Bits 1-2 of the flags: the kernel's page size."""
    UNSPECIFIED = 0, "unspecified"
    PAGE_4K = 1, "4K"
    PAGE_16K = 2, "16K"
    PAGE_64K = 3, "64K"


ARM64_PAGE_SIZE_SHIFT = 1
ARM64_PAGE_SIZE_MASK = 0x3

# 32-bit ARM zImage (arch/arm/boot/compressed/head.S, after the 8 nops and the branch).
ZIMAGE_MAGIC = 0x016F2818
ZIMAGE_MAGIC_OFFSET = 0x24
ZIMAGE_ENDIAN_LE = 0x04030201
ZIMAGE_EXTENSION_MAGIC = 0x45454545   # "another magic number to indicate" a table follows

ArmZImageHeader = Struct(
    "magic" / Int32ul,          # ZIMAGE_MAGIC
    "start" / Int32ul,          # absolute load/run address (0: position independent)
    "end" / Int32ul,            # end address: end - start is the zImage's size
    "endian" / Int32ul,         # ZIMAGE_ENDIAN_LE when little-endian
    "extension" / Int32ul,      # ZIMAGE_EXTENSION_MAGIC when the table pointer follows
    "table" / Int32ul,          # offset of the additional data table
)

# RISC-V Image.
RISCV_MAGIC = b"RISCV\0\0\0"
RISCV_MAGIC2 = b"RSC\x05"
RISCV_MAGIC_OFFSET = 0x30
RISCV_MAGIC2_OFFSET = 0x38
RISCV_HEADER_SIZE = 64

RiscvImageHeader = Struct(
    "code0" / Int32ul,          # executable code, or "MZ" for an EFI stub
    "code1" / Int32ul,
    "text_offset" / Int64ul,    # image load offset, little-endian
    "image_size" / Int64ul,     # effective image size
    "flags" / Int64ul,          # bit 0: big-endian
    "version" / Int32ul,        # major << 16 | minor (0.2 current)
    "res1" / Int32ul,
    "res2" / Int64ul,
    "magic" / Bytes(8),         # RISCV_MAGIC (deprecated)
    "magic2" / Bytes(4),        # RISCV_MAGIC2
    "res3" / Int32ul,           # PE header offset (EFI stub) or 0
)

MZ = b"MZ"
