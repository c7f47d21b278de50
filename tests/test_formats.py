"""The struct fast paths are the Construct declarations, field for field; the name tables are single."""

import struct

import pytest

from bootforge.errors import FormatError
from bootforge.formats import e820, efi_memmap, fdt, multiboot, parse, struct_format
from bootforge.formats.efi_memmap import EfiMemoryType, descriptor_struct

# (struct format used by a hot loop, the Construct declaration it must equal)
FAST_PATHS = [
    (e820.E820_ENTRY_STRUCT, e820.E820Entry),
    (e820.E820_ENTRY_EXTENDED_STRUCT, e820.E820EntryExtended),
    (efi_memmap.EFI_DESCRIPTOR_STRUCT, efi_memmap.EfiMemoryDescriptor),
    (efi_memmap.MB2_EFI_MMAP_HEADER_STRUCT, efi_memmap.Multiboot2EfiMmapHeader),
    (multiboot.MB1_MMAP_ENTRY_STRUCT, multiboot.Multiboot1MmapEntryFixed),
    (multiboot.MB2_MMAP_ENTRY_STRUCT, multiboot.Multiboot2MmapEntry),
    (multiboot.MB2_MMAP_HEADER_STRUCT, multiboot.Multiboot2MmapHeader),
    (fdt.FDT_HEADER_STRUCT, fdt.FdtHeader),
    (fdt.FDT_RESERVE_ENTRY_STRUCT, fdt.FdtReserveEntry),
    (fdt.FDT_PROP_HEADER_STRUCT, fdt.FdtPropHeader),
]


def _names(layout):
    return [sc.name for sc in layout.subcons if sc.name]


@pytest.mark.parametrize("fmt,layout", FAST_PATHS, ids=["e820", "e820-24", "efi-descriptor", "mb2-efi-mmap-header",
                                                       "mb1-mmap-entry", "mb2-mmap-entry", "mb2-mmap-header",
                                                       "fdt-header", "fdt-reserve", "fdt-prop"])
def test_struct_fast_path_is_the_construct_declaration(fmt, layout):
    # Same size, and every field in the same place: distinct values packed by struct
    # come back from Construct under the declared names, in declaration order.
    assert struct.calcsize(fmt) == layout.sizeof()
    names = _names(layout)
    values = [0x11 * (i + 1) for i in range(len(names))]
    if "magic" in names:                       # a Const field must carry its constant
        values[names.index("magic")] = fdt.FDT_MAGIC
    parsed = layout.parse(struct.pack(fmt, *values))
    assert [parsed[n] for n in names] == values
    assert layout.build(dict(zip(names, values))) == struct.pack(fmt, *values)


def test_efi_descriptor_stride_skips_the_tail():
    # EDK2 reports 48-byte descriptors: the 8 bytes past the declared 40 are skipped.
    raw = struct.pack(efi_memmap.EFI_DESCRIPTOR_STRUCT, 7, 0x100000, 0, 16, 0xF) + b"\xAA" * 8
    assert descriptor_struct(48).unpack(raw) == (7, 0x100000, 0, 16, 0xF)


def test_struct_format_refuses_what_struct_cannot_express():
    with pytest.raises(TypeError):
        struct_format(multiboot.Multiboot1MmapEntry)      # `extra` is sized by a field


def test_parse_turns_construct_errors_into_format_errors_with_the_offset():
    data = bytes(8) + b"\x00\x00\x00"                     # 3 bytes where an FDT header needs 40
    with pytest.raises(FormatError) as exc:
        parse(fdt.FdtHeader, data, 8, "FDT header", "x.dtb")
    assert exc.value.offset == 8 and exc.value.path == "x.dtb"
    assert "FDT header truncated or malformed" in exc.value.message and "\n" not in str(exc.value)


def test_one_efi_type_table_names_unaccepted_everywhere():
    # UEFI 2.9 added EfiUnacceptedMemoryType (15); every printer of EFI types knows it.
    from bootforge.memmap.model import type_name
    from bootforge.multiboot.mbi2 import _efi_spec_name
    assert type_name("efi", 15) == "unaccepted"
    assert EfiMemoryType(15).shell_name == "Unaccepted"
    assert _efi_spec_name(15) == "Unaccepted"
    assert _efi_spec_name(7) == "Conventional"


def test_mb2_tag_names_are_grubs():
    # GRUB include/multiboot2.h MULTIBOOT_TAG_TYPE_*: 21 is LOAD_BASE_ADDR, 17 EFI_MMAP.
    assert multiboot.Mb2Tag(21).label == "load_base_addr"
    assert multiboot.Mb2Tag.label_of(17) == "efi_mmap"
    assert multiboot.Mb2Tag.label_of(99) == "unknown"
