"""EDK2/PI firmware volumes (PI specification vol. 3, 3.2.1 EFI_FIRMWARE_VOLUME_HEADER and
EFI_FIRMWARE_VOLUME_EXT_HEADER), and the GUIDs that name them: the file systems the PI
specification defines and the volumes OVMF's .fdf files declare (OvmfPkg/OvmfPkgX64.fdf
[FV.SECFV], [FV.FVMAIN_COMPACT], [FV.PEIFV], [FV.DXEFV] FvNameGuid)."""

import uuid

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from bootforge.formats import Numbering

FV_SIGNATURE = b"_FVH"
FV_SIGNATURE_OFFSET = 0x28

FirmwareVolumeHeader = Struct(
    "zero_vector" / Bytes(16),                  # 00
    "file_system_guid" / Bytes(16),             # 10 EFI_GUID, little-endian fields
    "fv_length" / Int64ul,                      # 20 bytes of the volume, header included
    "signature" / Const(FV_SIGNATURE),          # 28
    "attributes" / Int32ul,                     # 2C EFI_FVB_ATTRIBUTES_2
    "header_length" / Int16ul,                  # 30 header + block map
    "checksum" / Int16ul,                       # 32 16-bit sum of the header is 0
    "ext_header_offset" / Int16ul,              # 34 0: none
    "reserved" / Int8ul,                        # 36
    "revision" / Int8ul,                        # 37 2 (EFI_FVH_REVISION)
)
FV_HEADER_SIZE = FirmwareVolumeHeader.sizeof()      # 0x38, then the block map

FirmwareVolumeExtHeader = Struct(
    "fv_name" / Bytes(16),
    "ext_header_size" / Int32ul,
)


def _guid(text):
    return uuid.UUID(text).int


def guid_value(raw):
    """The Numbering value of a GUID stored as EFI_GUID bytes (little-endian first three fields)."""
    return uuid.UUID(bytes_le=bytes(raw)).int


def guid_text(raw):
    return str(uuid.UUID(bytes_le=bytes(raw))).upper()


class FvFileSystem(Numbering):
    """The FileSystemGuid of a volume: what its contents are."""

    FFS2 = _guid("8C8CE578-8A3D-4F1C-9935-896185C32DD3"), "FFS2 file system (EFI_FIRMWARE_FILE_SYSTEM2_GUID)"
    FFS3 = _guid("5473C07A-3DCB-4DCA-BD6F-1E9689E7349A"), "FFS3 file system (EFI_FIRMWARE_FILE_SYSTEM3_GUID)"
    NV_DATA = _guid("FFF12B8D-7696-4C8B-A985-2747075B4F50"), "variable store (EFI_SYSTEM_NV_DATA_FV_GUID)"


class FvName(Numbering):
    """The FvNameGuid of an extended header: which volume of which firmware it is."""

    OVMF_SECFV = _guid("763BED0D-DE9F-48F5-81F1-3E90E1B1A015"), "OVMF SECFV (SEC and the reset vector)"
    OVMF_FVMAIN_COMPACT = _guid("48DB5E17-707C-472D-91CD-1613E7EF51B0"), \
        "OVMF FVMAIN_COMPACT (PEIFV and DXEFV, compressed)"
    OVMF_PEIFV = _guid("6938079B-B503-4E3D-9D24-B28337A25806"), "OVMF PEIFV"
    OVMF_DXEFV = _guid("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1"), "OVMF DXEFV"
