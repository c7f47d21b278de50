"""SMBIOS structure header and type 19, Memory Array Mapped Address.

Source: DMTF DSP0134 (SMBIOS 3.x), 7.20. Addresses are in KiB unless the
structure is 0x1F bytes long and the 32-bit start is 0xFFFFFFFF, in which
case the extended byte addresses apply. The formatted area is followed by
a string set ending in two NULs.
"""

from construct import Int8ul, Int16ul, Int32ul, Int64ul, Struct

SMBIOS_TYPE_MEMORY_ARRAY_MAPPED_ADDRESS = 19
SMBIOS_TYPE_END_OF_TABLE = 127
SMBIOS19_LENGTH = 0x0F
SMBIOS19_LENGTH_EXTENDED = 0x1F
SMBIOS19_USE_EXTENDED = 0xFFFFFFFF

SmbiosHeader = Struct(
    "type" / Int8ul,
    "length" / Int8ul,
    "handle" / Int16ul,
)

SmbiosMemoryArrayMappedAddress = Struct(
    "type" / Int8ul,                       # 0: 19
    "length" / Int8ul,                     # 1: 0x0F, 0x1F for 2.7+
    "handle" / Int16ul,                    # 2
    "starting_address_kib" / Int32ul,      # 4
    "ending_address_kib" / Int32ul,        # 8: the last KiB, inclusive
    "memory_array_handle" / Int16ul,       # 0x0C
    "partition_width" / Int8ul,            # 0x0E
)
SmbiosMemoryArrayMappedAddressExtended = Struct(
    "type" / Int8ul,
    "length" / Int8ul,
    "handle" / Int16ul,
    "starting_address_kib" / Int32ul,
    "ending_address_kib" / Int32ul,
    "memory_array_handle" / Int16ul,
    "partition_width" / Int8ul,
    "extended_starting_address" / Int64ul,  # 0x0F: bytes
    "extended_ending_address" / Int64ul,    # 0x17: bytes, inclusive
)
