"""ISO 9660 (ECMA-119): volume descriptors, directory records, path tables, Rock Ridge names.

Sources: ECMA-119 4th edition (8.4 primary volume descriptor, 9.1
directory record, 9.4 path table record, 8.4.26.1 the 17-byte dates and
9.1.5 the 7-byte ones); SUSP 1.12 (SP, ER) and RRIP 1.12 (PX, NM) for
the Rock Ridge entries that keep names' case.
"""

from construct import Adapter, Bytes, Int8sl, Int8ul, Int16ub, Int16ul, Int32ub, Int32ul, Struct, this

LOGICAL_BLOCK = 2048
SYSTEM_AREA_SECTORS = 16
FIRST_DESCRIPTOR_LBA = 16
MAX_DESCRIPTORS = 64          # inspect stops walking descriptors after this many
STANDARD_ID = b"CD001"

VD_BOOT_RECORD = 0
VD_PRIMARY = 1
VD_SUPPLEMENTARY = 2
VD_PARTITION = 3
VD_TERMINATOR = 255
VOLUME_DESCRIPTOR_TYPES = {0: "boot record", 1: "primary", 2: "supplementary", 3: "partition",
                           255: "terminator"}
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")     # UCS-2 levels 1, 2, 3


class BothEndian(Adapter):
    """ECMA-119 7.2.3/7.3.3: a number stored little-endian then big-endian; read the LE half."""

    def _decode(self, obj, context, path):
        return obj.le

    def _encode(self, obj, context, path):
        return {"le": obj, "be": obj}


Both16 = BothEndian(Struct("le" / Int16ul, "be" / Int16ub))
Both32 = BothEndian(Struct("le" / Int32ul, "be" / Int32ub))

VolumeDescriptorHeader = Struct(
    "type" / Int8ul,
    "standard_id" / Bytes(5),
    "version" / Int8ul,
)

DirectoryRecordDate = Struct(          # 9.1.5: years since 1900 .. GMT offset in 15 min units
    "year" / Int8ul, "month" / Int8ul, "day" / Int8ul, "hour" / Int8ul, "minute" / Int8ul,
    "second" / Int8ul, "gmt_offset" / Int8sl,
)

DirectoryRecordHead = Struct(           # the fixed 33 bytes; file identifier and system use follow
    "length" / Int8ul,
    "ext_attr_length" / Int8ul,
    "extent" / Both32,
    "data_length" / Both32,
    "date" / DirectoryRecordDate,
    "flags" / Int8ul,
    "file_unit_size" / Int8ul,
    "interleave_gap" / Int8ul,
    "volume_sequence_number" / Both16,
    "name_length" / Int8ul,
)
DIRECTORY_RECORD_HEAD_SIZE = 33
FLAG_HIDDEN = 0x01
FLAG_DIRECTORY = 0x02
FLAG_MULTI_EXTENT = 0x80

# 8.4 (primary) and 8.5 (supplementary: flags and escape sequences in the unused fields).
VolumeDescriptor = Struct(
    "type" / Int8ul,
    "standard_id" / Bytes(5),
    "version" / Int8ul,
    "flags" / Int8ul,
    "system_id" / Bytes(32),
    "volume_id" / Bytes(32),
    "unused2" / Bytes(8),
    "volume_space_size" / Both32,
    "escape_sequences" / Bytes(32),
    "volume_set_size" / Both16,
    "volume_sequence_number" / Both16,
    "logical_block_size" / Both16,
    "path_table_size" / Both32,
    "l_path_table" / Int32ul,
    "opt_l_path_table" / Int32ul,
    "m_path_table" / Int32ub,
    "opt_m_path_table" / Int32ub,
    "root_directory_record" / Bytes(34),
    "volume_set_id" / Bytes(128),
    "publisher_id" / Bytes(128),
    "preparer_id" / Bytes(128),
    "application_id" / Bytes(128),
    "copyright_file_id" / Bytes(37),
    "abstract_file_id" / Bytes(37),
    "bibliographic_file_id" / Bytes(37),
    "creation_date" / Bytes(17),           # "YYYYMMDDHHMMSScc" + GMT offset byte
    "modification_date" / Bytes(17),
    "expiration_date" / Bytes(17),
    "effective_date" / Bytes(17),
    "file_structure_version" / Int8ul,
    "unused4" / Int8ul,
    "application_use" / Bytes(512),
    "reserved" / Bytes(653),
)

PathTableRecordL = Struct(
    "name_length" / Int8ul, "ext_attr_length" / Int8ul, "extent" / Int32ul, "parent" / Int16ul,
    "name" / Bytes(this.name_length),
)
PathTableRecordM = Struct(
    "name_length" / Int8ul, "ext_attr_length" / Int8ul, "extent" / Int32ub, "parent" / Int16ub,
    "name" / Bytes(this.name_length),
)

# System Use Sharing Protocol entries (SUSP 1.12 section 4): signature, length, version.
SuspEntryHead = Struct("signature" / Bytes(2), "length" / Int8ul, "version" / Int8ul)
SuspSP = Struct("check" / Bytes(2), "len_skp" / Int8ul)                   # after the head; BE EF
SuspER = Struct("len_id" / Int8ul, "len_des" / Int8ul, "len_src" / Int8ul, "ext_ver" / Int8ul)
RripPX = Struct("mode" / Both32, "links" / Both32, "uid" / Both32, "gid" / Both32)     # RRIP 1.10 (36 bytes)
SuspCE = Struct("block" / Both32, "offset" / Both32, "length" / Both32)
RripNMFlags = Struct("flags" / Int8ul)                                    # then the name bytes
NM_CONTINUE = 0x01
RRIP_ID = b"RRIP_1991A"
# ER's description and source are free text: kept short so SP + ER + PX fit the root's "."
# record (255 bytes at most) without a continuation area.
RRIP_DESCRIPTION = b"ROCK RIDGE 1.10"
RRIP_SOURCE = b""
