"""The GUID Partition Table: header (LBA 1 and its backup in the last LBA) and entries.

Source: UEFI specification 2.10, 5.3 ("GUID Partition Table Disk Layout"),
tables 5-5 (header) and 5-6 (entry). Both CRC32s are zlib's CRC-32; the
header's is computed over header_size bytes with its own field zero.
"""

import uuid

from construct import Bytes, Const, Int32ul, Int64ul, Struct

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000
GPT_HEADER_SIZE = 92
GPT_ENTRY_SIZE = 128
GPT_ENTRY_COUNT = 128
GPT_ENTRIES_SECTORS = GPT_ENTRY_COUNT * GPT_ENTRY_SIZE // 512     # 32
# Inspect refuses to walk more than this many entries (a lying header).
GPT_MAX_ENTRIES = 4096

GptHeader = Struct(
    "signature" / Const(GPT_SIGNATURE),
    "revision" / Int32ul,
    "header_size" / Int32ul,
    "header_crc32" / Int32ul,
    "reserved" / Int32ul,
    "my_lba" / Int64ul,
    "alternate_lba" / Int64ul,
    "first_usable_lba" / Int64ul,
    "last_usable_lba" / Int64ul,
    "disk_guid" / Bytes(16),
    "entries_lba" / Int64ul,
    "num_entries" / Int32ul,
    "entry_size" / Int32ul,
    "entries_crc32" / Int32ul,
)
GPT_HEADER_CRC_OFFSET = 16

GptEntry = Struct(
    "type_guid" / Bytes(16),
    "unique_guid" / Bytes(16),
    "first_lba" / Int64ul,
    "last_lba" / Int64ul,        # inclusive
    "attributes" / Int64ul,
    "name" / Bytes(72),          # UTF-16LE, NUL padded
)

# Partition type GUIDs (text form) and their names.
GPT_TYPE_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_TYPE_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
GPT_TYPE_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
GPT_PARTITION_TYPES = {
    GPT_TYPE_ESP: "EFI system partition",
    GPT_TYPE_BIOS_BOOT: "BIOS boot partition",
    GPT_TYPE_BASIC_DATA: "Microsoft basic data",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
    "00000000-0000-0000-0000-000000000000": "unused",
    "48465300-0000-11AA-AA11-00306543ECAC": "Apple HFS+",
}
GPT_ATTRIBUTES = {0: "platform required", 1: "EFI ignore", 2: "legacy BIOS bootable", 60: "read-only",
                  62: "hidden", 63: "no automount"}


def guid_text(raw: bytes) -> str:
    """The mixed-endian on-disk GUID as text (first three fields little endian)."""
    return str(uuid.UUID(bytes_le=bytes(raw))).upper()


def guid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes_le
