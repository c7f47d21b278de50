"""E820 memory-map entries, their types, and the boot_params fields that hold them.

Sources: Linux arch/x86/include/asm/e820/types.h; ACPI 3.0 (the 24-byte
extended form). The Multiboot mmap entries that copy E820 entries are in
formats/multiboot.py. Declarations only: bootforge/memmap/ holds the logic
and, for maps of thousands of entries, walks these layouts with
struct.iter_unpack (the *_STRUCT formats, derived from the Structs).
"""

from construct import Int32ul, Int64ul, Struct

from bootforge.formats import Numbering, struct_format


class E820Type(Numbering):
    """Linux enum e820_type; the label is bootforge's name for the type (JSON, tables)."""

    RAM = 1
    RESERVED = 2
    ACPI = 3
    NVS = 4
    UNUSABLE = 5
    PMEM = 7
    PRAM = 12
    RESERVED_KERN = 128, "reserved-kern"
    SOFT_RESERVED = 0xEFFFFFFF, "soft-reserved"


class E820Attribute(Numbering):
    """ACPI 3.0 extended attributes (the fourth u32 of a 24-byte entry)."""

    ENABLED = 1 << 0
    NONVOLATILE = 1 << 1


# Packed 20-byte entry, as the BIOS returns it and boot_params stores it.
E820Entry = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul,
)
E820_ENTRY_STRUCT = struct_format(E820Entry)

# 24-byte entry when the BIOS honours a 24-byte buffer (ACPI 3.0).
E820EntryExtended = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul,
    "attributes" / Int32ul,
)
E820_ENTRY_EXTENDED_STRUCT = struct_format(E820EntryExtended)

# struct boot_params (Linux zero page; arch/x86/include/uapi/asm/bootparam.h) holds at most
# this many entries in e820_table; the rest go to a setup_data node of type SETUP_E820_EXT
# (formats/bzimage.py SetupDataType).
BOOT_PARAMS_E820_MAX = 128
