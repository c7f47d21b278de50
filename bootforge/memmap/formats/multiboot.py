"""The memory maps a Multiboot loader passes: the MB1 mmap buffer, the MB2 tag 6
body and the MB2 tag 17 body (EFI descriptors).

Layouts in bootforge/formats/multiboot.py and efi_memmap.py; the MB1 entry
chain (next entry at +size+4) is walked by bootforge.multiboot.mbi1, which
the dump decoder uses too.
"""

import struct

from bootforge.errors import FormatError, LimitError
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_VERSION, MB2_EFI_MMAP_HEADER_STRUCT
from bootforge.formats.multiboot import (
    MB1_MMAP_SIZE_FIELD, MB1_MMAP_ENTRY_STRUCT, MB2_MMAP_ENTRY_SIZE, MB2_MMAP_ENTRY_STRUCT,
    MB2_MMAP_ENTRY_VERSION, MB2_MMAP_HEADER_STRUCT,
)
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.common import check_fits, check_no_wrap, check_range_no_wrap, check_whole
from bootforge.memmap.formats.efi import read_descriptors, write_descriptors
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.multiboot.mbi1 import walk_mb1_mmap

MB2_MMAP_HEADER_SIZE = struct.calcsize(MB2_MMAP_HEADER_STRUCT)
MB2_MMAP_MAX_ENTRY_SIZE = 4096


def read_mb1_mmap(path, data, options):
    """Multiboot 1 mmap: entries {u32 size; u64 addr; u64 len; u32 type}, next at +size+4."""
    ranges, sizes = [], set()
    try:
        for offset, entry_size, addr, length, typ in walk_mb1_mmap(data):
            check_range_no_wrap("entry", addr, length, None, offset + 4)
            sizes.add(entry_size)
            ranges.append(MemoryRange(addr, length, typ))
    except FormatError as exc:
        raise exc.located(path=path) from None
    m = MemoryMap("e820", ranges, source="mb1-mmap")
    m.facts["mb1_entry_sizes"] = sorted(sizes)
    return m


def write_mb1_mmap(memory_map, options):
    check_fits(memory_map, "mb1-mmap")
    pack = struct.Struct(MB1_MMAP_ENTRY_STRUCT).pack
    return b"".join(pack(MB1_MMAP_SIZE_FIELD, r.start, r.size, r.type) for r in memory_map.ranges)


def read_mb2_mmap(path, data, options):
    """Multiboot 2 tag 6 body: u32 entry_size, u32 entry_version, entries."""
    if len(data) < MB2_MMAP_HEADER_SIZE:
        raise FormatError("too short for a Multiboot2 mmap tag body (8-byte header)", path=path, offset=0)
    entry_size, version = struct.unpack_from(MB2_MMAP_HEADER_STRUCT, data)
    if entry_size < MB2_MMAP_ENTRY_SIZE or entry_size % 8:
        raise FormatError(f"entry_size {entry_size} (must be >= 24 and a multiple of 8)", path=path, offset=0)
    if entry_size > MB2_MMAP_MAX_ENTRY_SIZE:
        raise LimitError(f"entry_size {entry_size} is over 4096", path=path, offset=0)
    body = data[MB2_MMAP_HEADER_SIZE:]
    check_whole(body, entry_size, path, "mmap entries", base=MB2_MMAP_HEADER_SIZE)
    fmt = MB2_MMAP_ENTRY_STRUCT + f"{entry_size - MB2_MMAP_ENTRY_SIZE}x"
    ranges = [MemoryRange(a, s, t) for a, s, t, _ in struct.iter_unpack(fmt, body)]
    check_no_wrap(ranges, path, entry_size, base=MB2_MMAP_HEADER_SIZE)
    m = MemoryMap("e820", ranges, source="mb2-mmap")
    m.facts["mb2_entry_size"], m.facts["mb2_entry_version"] = entry_size, version
    return m


def write_mb2_mmap(memory_map, options):
    check_fits(memory_map, "mb2-mmap")
    pack = struct.Struct(MB2_MMAP_ENTRY_STRUCT).pack
    return (struct.pack(MB2_MMAP_HEADER_STRUCT, MB2_MMAP_ENTRY_SIZE, MB2_MMAP_ENTRY_VERSION)
            + b"".join(pack(r.start, r.size, r.type, 0) for r in memory_map.ranges))


def read_mb2_efi_mmap(path, data, options):
    """Multiboot 2 tag 17 body: u32 descr_size, u32 descr_vers, descriptors."""
    header = struct.calcsize(MB2_EFI_MMAP_HEADER_STRUCT)
    if len(data) < header:
        raise FormatError("too short for a Multiboot2 EFI mmap tag body (8-byte header)", path=path, offset=0)
    descr_size, descr_vers = struct.unpack_from(MB2_EFI_MMAP_HEADER_STRUCT, data)
    m = read_descriptors(data[header:], descr_size, path, header)
    m.descriptor_version = descr_vers
    m.source = "mb2-efi-mmap"
    return m


def write_mb2_efi_mmap(memory_map, options):
    size = options.get("descriptor_size") or memory_map.descriptor_size
    return struct.pack(MB2_EFI_MMAP_HEADER_STRUCT, size, EFI_DESCRIPTOR_VERSION) + write_descriptors(memory_map, size)


FORMATS = [
    MapFormat("mb1-mmap", "a Multiboot 1 mmap buffer", read_mb1_mmap, write_mb1_mmap, family="e820", load_output=True),
    MapFormat("mb2-mmap", "a Multiboot 2 tag 6 body", read_mb2_mmap, write_mb2_mmap, family="e820", load_output=True),
    MapFormat("mb2-efi-mmap", "a Multiboot 2 tag 17 body", read_mb2_efi_mmap, write_mb2_efi_mmap,
              family="efi"),
]
