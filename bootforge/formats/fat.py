"""FAT12/16/32 file systems: boot sector (BPB), FSInfo, directory entries, long-name entries.

Source: Microsoft "FAT: General Overview of On-Disk Format" (FAT32 File
System Specification 1.03, 2000): BPB fields, the cluster-count rule that
alone decides FAT12/16/32, directory entries and VFAT long names (the
checksum of the 11-byte short name ties them together).
"""

from construct import Bytes, Int8ul, Int16ul, Int32ul, Struct

BpbCommon = Struct(
    "jump" / Bytes(3),
    "oem_name" / Bytes(8),
    "bytes_per_sector" / Int16ul,
    "sectors_per_cluster" / Int8ul,
    "reserved_sectors" / Int16ul,
    "num_fats" / Int8ul,
    "root_entries" / Int16ul,         # 0 on FAT32
    "total_sectors_16" / Int16ul,
    "media" / Int8ul,
    "fat_size_16" / Int16ul,          # 0 on FAT32
    "sectors_per_track" / Int16ul,
    "num_heads" / Int16ul,
    "hidden_sectors" / Int32ul,
    "total_sectors_32" / Int32ul,
)
BPB_COMMON_SIZE = 36

Fat16Extension = Struct(              # at offset 36 on FAT12/16
    "drive_number" / Int8ul,
    "reserved1" / Int8ul,
    "boot_signature" / Int8ul,        # 0x29: the next three fields are present
    "volume_serial" / Int32ul,
    "volume_label" / Bytes(11),
    "fs_type" / Bytes(8),
)
Fat32Extension = Struct(              # at offset 36 on FAT32
    "fat_size_32" / Int32ul,
    "ext_flags" / Int16ul,
    "fs_version" / Int16ul,
    "root_cluster" / Int32ul,
    "fsinfo_sector" / Int16ul,
    "backup_boot_sector" / Int16ul,
    "reserved" / Bytes(12),
    "drive_number" / Int8ul,
    "reserved1" / Int8ul,
    "boot_signature" / Int8ul,
    "volume_serial" / Int32ul,
    "volume_label" / Bytes(11),
    "fs_type" / Bytes(8),
)
FSInfo = Struct(
    "lead_signature" / Int32ul,       # 0x41615252
    "reserved1" / Bytes(480),
    "struct_signature" / Int32ul,     # 0x61417272
    "free_count" / Int32ul,
    "next_free" / Int32ul,
    "reserved2" / Bytes(12),
    "trail_signature" / Int32ul,      # 0xAA550000
)
FSINFO_SIGNATURES = (0x41615252, 0x61417272, 0xAA550000)

DirEntry = Struct(
    "name" / Bytes(11),               # 8.3, space padded; 0x00 end, 0xE5 deleted
    "attributes" / Int8ul,
    "nt_case" / Int8ul,               # 0x08 base, 0x10 extension shown lower case
    "create_time_tenths" / Int8ul,
    "create_time" / Int16ul,
    "create_date" / Int16ul,
    "access_date" / Int16ul,
    "cluster_high" / Int16ul,
    "write_time" / Int16ul,
    "write_date" / Int16ul,
    "cluster_low" / Int16ul,
    "size" / Int32ul,
)
LfnEntry = Struct(
    "sequence" / Int8ul,              # 1.., | 0x40 on the last (first stored) entry
    "name1" / Bytes(10),
    "attributes" / Int8ul,            # 0x0F
    "type" / Int8ul,
    "checksum" / Int8ul,
    "name2" / Bytes(12),
    "cluster" / Int16ul,              # 0
    "name3" / Bytes(4),
)
DIR_ENTRY_SIZE = 32
LFN_CHARS = 13
LFN_LAST = 0x40

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LFN = 0x0F

# The cluster-count rule (the only one that decides the FAT type).
FAT12_MAX_CLUSTERS = 4084
FAT16_MAX_CLUSTERS = 65524
FAT_TYPES = {12: "FAT12", 16: "FAT16", 32: "FAT32"}
