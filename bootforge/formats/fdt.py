"""Flattened device tree (DTB) layout.

Source: devicetree-org Devicetree Specification v0.4, chapter 5; dgibson/dtc
libfdt/fdt.h. Everything is big-endian. The blob is a header, a memory
reservation block of (address, size) pairs ending in (0, 0), a structure
block of 4-byte-aligned tokens, and a strings block of NUL-terminated
property names. bootforge/fdt/ walks the tokens with struct.unpack_from
(the *_STRUCT formats, derived from the Structs).
"""

from construct import Const, Int32ub, Int64ub, Struct

from bootforge.formats import struct_format

FDT_MAGIC = 0xD00DFEED
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16
FDT_HEADER_SIZE = 40          # version 17
FDT_HEADER_SIZE_V16 = 36      # no size_dt_struct before version 17

FDT_BEGIN_NODE = 0x1
FDT_END_NODE = 0x2
FDT_PROP = 0x3
FDT_NOP = 0x4
FDT_END = 0x9

FdtHeader = Struct(
    "magic" / Const(FDT_MAGIC, Int32ub),
    "totalsize" / Int32ub,
    "off_dt_struct" / Int32ub,
    "off_dt_strings" / Int32ub,
    "off_mem_rsvmap" / Int32ub,
    "version" / Int32ub,
    "last_comp_version" / Int32ub,
    "boot_cpuid_phys" / Int32ub,
    "size_dt_strings" / Int32ub,
    "size_dt_struct" / Int32ub,
)
FDT_HEADER_STRUCT = struct_format(FdtHeader)
FDT_HEADER_FIELDS = tuple(sc.name for sc in FdtHeader.subcons)

# One reservation entry; the block ends with an all-zero entry.
FdtReserveEntry = Struct(
    "address" / Int64ub,
    "size" / Int64ub,
)
FDT_RESERVE_ENTRY_STRUCT = struct_format(FdtReserveEntry)

# After an FDT_PROP token: value length and the offset of the name in the
# strings block; the value follows, padded to 4 bytes.
FdtPropHeader = Struct(
    "len" / Int32ub,
    "nameoff" / Int32ub,
)
FDT_PROP_HEADER_STRUCT = struct_format(FdtPropHeader)
