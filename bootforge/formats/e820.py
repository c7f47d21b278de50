"""E820 memory-map entries and the Multiboot memory-map entries that copy them.

Sources: Linux arch/x86/include/asm/e820/types.h; ACPI 3.0 (the 24-byte
extended form); the Multiboot 1 and 2 specifications (mmap entries, tag 6).
Declarations only: bootforge/memmap/ holds the logic and, for maps of
thousands of entries, walks the same layouts with struct.iter_unpack
(the *_STRUCT formats below).
"""

from construct import Const, GreedyRange, Int32ul, Int64ul, Struct

# E820 types (Linux enum e820_type).
E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4
E820_UNUSABLE = 5
E820_PMEM = 7
E820_PRAM = 12
E820_RESERVED_KERN = 128
E820_SOFT_RESERVED = 0xEFFFFFFF

# ACPI 3.0 extended attributes (the fourth u32 of a 24-byte entry).
E820_ATTR_ENABLED = 1 << 0
E820_ATTR_NONVOLATILE = 1 << 1

# Packed 20-byte entry, as the BIOS returns it and boot_params stores it.
E820Entry = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul,
)
E820_ENTRY_STRUCT = "<QQI"

# 24-byte entry when the BIOS honours a 24-byte buffer (ACPI 3.0).
E820EntryExtended = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul,
    "attributes" / Int32ul,
)
E820_ENTRY_EXTENDED_STRUCT = "<QQII"

E820Table = GreedyRange(E820Entry)

# boot_params (Linux zero page): entry count and the table itself.
BOOT_PARAMS_E820_ENTRIES_OFFSET = 0x1E8
BOOT_PARAMS_E820_TABLE_OFFSET = 0x2D0
BOOT_PARAMS_E820_MAX = 128
SETUP_E820_EXT = 1

# Multiboot 1 mmap entry: `size` counts the bytes after itself; the next
# entry starts at entry + size + 4. GRUB and QEMU write size = 20.
Multiboot1MmapEntry = Struct(
    "size" / Int32ul,
    "addr" / Int64ul,
    "len" / Int64ul,
    "type" / Int32ul,
)
MB1_MMAP_ENTRY_STRUCT = "<IQQI"
MB1_MMAP_ENTRY_SIZE = 20

# Multiboot 2 tag 6 body (after the 8-byte tag header u32 type, u32 size).
Multiboot2MmapHeader = Struct(
    "entry_size" / Int32ul,
    "entry_version" / Int32ul,
)
Multiboot2MmapEntry = Struct(
    "base_addr" / Int64ul,
    "length" / Int64ul,
    "type" / Int32ul,
    "reserved" / Const(0, Int32ul),
)
MB2_MMAP_HEADER_STRUCT = "<II"
MB2_MMAP_ENTRY_STRUCT = "<QQII"
MB2_MMAP_ENTRY_SIZE = 24
MB2_MMAP_ENTRY_VERSION = 0
