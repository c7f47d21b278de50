"""SMBIOS type 19 (Memory Array Mapped Address) as a memory-map source and sink.

The input is a raw SMBIOS structure table, such as Linux's
/sys/firmware/dmi/tables/DMI: structures of (type, length, handle,
formatted area) each followed by a string set ending in two NULs, up to
type 127. Every type 19 structure gives one RAM range.
"""

from bootforge.errors import FormatError, LimitError
from bootforge.formats import parse
from bootforge.formats.e820 import E820Type
from bootforge.formats.smbios import (
    SMBIOS19_LENGTH, SMBIOS19_LENGTH_EXTENDED, SMBIOS19_USE_EXTENDED,
    SMBIOS_TYPE_END_OF_TABLE, SMBIOS_TYPE_MEMORY_ARRAY_MAPPED_ADDRESS, SmbiosHeader,
    SmbiosMemoryArrayMappedAddress, SmbiosMemoryArrayMappedAddressExtended,
)
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.common import check_fits, check_range_no_wrap
from bootforge.memmap.model import U64_LIMIT, MemoryMap, MemoryRange

# A table is at most 64 KiB in SMBIOS 2.x (u16 length) and rarely more in 3.x;
# 65536 structures of the minimum 6 bytes is well past any real table.
MAX_STRUCTURES = 65536


def read_smbios_table(path, data, options=None):
    """The RAM ranges of every type 19 structure in an SMBIOS structure table."""
    ranges, offset, count = [], 0, 0
    while offset + 4 <= len(data):
        count += 1
        if count > MAX_STRUCTURES:
            raise LimitError(f"more than {MAX_STRUCTURES} SMBIOS structures", path=path, offset=offset)
        header = parse(SmbiosHeader, data, offset, "SMBIOS structure header", path)
        if header.length < 4 or offset + header.length > len(data):
            raise FormatError(f"SMBIOS structure type {header.type} length {header.length} does not fit",
                              path=path, offset=offset + 1)
        strings_end = data.find(b"\0\0", offset + header.length)
        if strings_end < 0:
            raise FormatError(f"SMBIOS structure type {header.type} has no string-set terminator",
                              path=path, offset=offset)
        if header.type == SMBIOS_TYPE_MEMORY_ARRAY_MAPPED_ADDRESS:
            ranges.append(_type19_range(data[offset:offset + header.length], path, offset))
        if header.type == SMBIOS_TYPE_END_OF_TABLE:
            break
        offset = strings_end + 2
    m = MemoryMap("e820", ranges, source="smbios")
    return m


def _type19_range(raw, path, offset):
    if len(raw) < SMBIOS19_LENGTH:
        raise FormatError(f"type 19 structure of {len(raw)} bytes (at least 0x0F)", path=path, offset=offset + 1)
    if len(raw) >= SMBIOS19_LENGTH_EXTENDED:
        s = parse(SmbiosMemoryArrayMappedAddressExtended, raw, 0, "SMBIOS type 19 structure", path, offset)
    else:
        s = parse(SmbiosMemoryArrayMappedAddress, raw, 0, "SMBIOS type 19 structure", path, offset)
    if s.starting_address_kib == SMBIOS19_USE_EXTENDED and len(raw) >= SMBIOS19_LENGTH_EXTENDED:
        first, last = s.extended_starting_address, s.extended_ending_address
    else:
        first, last = s.starting_address_kib << 10, (s.ending_address_kib << 10) + 0x3FF
    if last < first:
        raise FormatError(f"type 19 range ends ({last:#x}) before it starts ({first:#x})",
                          path=path, offset=offset + 4)
    # [0, 2^64 - 1] is 2^64 bytes: no E820 entry holds it (the E820 readers' rule).
    check_range_no_wrap("type 19 range", first, last - first + 1, path, offset + 4)
    return MemoryRange(first, last - first + 1, E820Type.RAM, label=f"handle {s.handle:#06x}")


def build_smbios_table(memory_map, first_handle=0x1300, array_handle=0x1000):
    """A structure table of one type 19 (SMBIOS 2.7+, 0x1F bytes) per RAM range, then type 127.

    Ranges whose KiB addresses do not fit 32 bits use the extended byte
    addresses, as the specification (and QEMU's smbios.c) do; the extended
    ending address is a u64, so a range may end at 2^64 and no further.
    """
    check_fits(memory_map.replace([r for r in memory_map.ranges if r.type == E820Type.RAM and r.size]),
               "smbios", end_limit=U64_LIMIT, type_bits=None)
    out = bytearray()
    handle = first_handle
    for r in memory_map.ranges:
        if r.type != E820Type.RAM or r.size == 0:
            continue
        last = r.start + r.size - 1
        fits = (last >> 10) < SMBIOS19_USE_EXTENDED and r.start % 1024 == 0 and (last + 1) % 1024 == 0
        out += SmbiosMemoryArrayMappedAddressExtended.build(dict(
            type=SMBIOS_TYPE_MEMORY_ARRAY_MAPPED_ADDRESS, length=SMBIOS19_LENGTH_EXTENDED, handle=handle,
            starting_address_kib=r.start >> 10 if fits else SMBIOS19_USE_EXTENDED,
            ending_address_kib=last >> 10 if fits else SMBIOS19_USE_EXTENDED,
            memory_array_handle=array_handle, partition_width=1,
            extended_starting_address=0 if fits else r.start,
            extended_ending_address=0 if fits else last))
        out += b"\0\0"
        handle += 1
    out += SmbiosHeader.build(dict(type=SMBIOS_TYPE_END_OF_TABLE, length=4, handle=0xFEFF)) + b"\0\0"
    return bytes(out)


def write_smbios_table(memory_map, options):
    return build_smbios_table(memory_map)


FORMATS = [
    MapFormat("smbios", "an SMBIOS structure table (type 19 ranges)", read_smbios_table, write_smbios_table,
              family="e820"),
]
