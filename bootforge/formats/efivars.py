"""UEFI variables as OVMF keeps them in its VARS flash (EDK2 MdePkg/Include/Pi/PiFirmwareVolume.h,
MdeModulePkg/Include/Guid/VariableFormat.h: the NV-data firmware volume, its authenticated
variable store, AUTHENTICATED_VARIABLE_HEADER) and the Secure Boot signature databases
(UEFI 2.10 section 32.4.1: EFI_SIGNATURE_LIST, EFI_SIGNATURE_DATA; section 8.2 EFI_TIME)."""

import uuid

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

FVH_SIGNATURE = b"_FVH"
# EFI_SYSTEM_NV_DATA_FV_GUID: the file system GUID of OVMF's variable volume.
NV_DATA_FV_GUID = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
# gEfiAuthenticatedVariableGuid: a store of AUTHENTICATED_VARIABLE_HEADERs.
AUTHENTICATED_VARIABLE_GUID = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
VARIABLE_STORE_FORMATTED = 0x5A
VARIABLE_STORE_HEALTHY = 0xFE
VARIABLE_START_ID = 0x55AA
VAR_ADDED = 0x3F
VAR_IN_DELETED_TRANSITION = 0xFE          # AND-ed into State: 0x3E is "added, being deleted"
VARIABLE_ALIGNMENT = 4                    # HEADER_ALIGNMENT on x86

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")        # PK, KEK, SecureBoot...
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")  # db, dbx
EFI_SECURE_BOOT_ENABLE_DISABLE = uuid.UUID("f0a30bc7-af08-4556-99c4-001009c93a44")  # SecureBootEnable (OVMF)
EFI_CUSTOM_MODE_ENABLE = uuid.UUID("c076ec0c-7028-4399-a072-71ee5c448b9f")          # CustomMode (OVMF)

EFI_CERT_X509_GUID = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
EFI_CERT_SHA256_GUID = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")
EFI_CERT_X509_SHA256_GUID = uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")

# EFI_VARIABLE_* attribute bits (UEFI 2.10 section 8.2).
EFI_VARIABLE_NON_VOLATILE = 0x01
EFI_VARIABLE_BOOTSERVICE_ACCESS = 0x02
EFI_VARIABLE_RUNTIME_ACCESS = 0x04
EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20

FirmwareVolumeHeader = Struct(
    "zero_vector" / Bytes(16),                  # 00
    "file_system_guid" / Bytes(16),             # 10 EFI_GUID, little-endian fields (uuid bytes_le)
    "fv_length" / Int64ul,                      # 20
    "signature" / Const(FVH_SIGNATURE),         # 28
    "attributes" / Int32ul,                     # 2C
    "header_length" / Int16ul,                  # 30
    "checksum" / Int16ul,                       # 32
    "ext_header_offset" / Int16ul,              # 34
    "reserved" / Int8ul,                        # 36
    "revision" / Int8ul,                        # 37
)

VariableStoreHeader = Struct(
    "signature" / Bytes(16),                    # 00 gEfiAuthenticatedVariableGuid
    "size" / Int32ul,                           # 10 the store, this header included
    "format" / Int8ul,                          # 14 VARIABLE_STORE_FORMATTED
    "state" / Int8ul,                           # 15 VARIABLE_STORE_HEALTHY
    "reserved" / Int16ul,                       # 16
    "reserved1" / Int32ul,                      # 18
)
VARIABLE_STORE_HEADER_SIZE = 0x1C

EfiTime = Struct(
    "year" / Int16ul, "month" / Int8ul, "day" / Int8ul, "hour" / Int8ul, "minute" / Int8ul,
    "second" / Int8ul, "pad1" / Int8ul, "nanosecond" / Int32ul, "time_zone" / Int16ul,
    "daylight" / Int8ul, "pad2" / Int8ul,
)

AuthenticatedVariableHeader = Struct(
    "start_id" / Int16ul,                       # 00 0x55AA
    "state" / Int8ul,                           # 02
    "reserved" / Int8ul,                        # 03
    "attributes" / Int32ul,                     # 04
    "monotonic_count" / Int64ul,                # 08
    "timestamp" / EfiTime,                      # 10
    "pubkey_index" / Int32ul,                   # 20
    "name_size" / Int32ul,                      # 24 bytes of the UCS-2 name, NUL included
    "data_size" / Int32ul,                      # 28
    "vendor_guid" / Bytes(16),                  # 2C
)
AUTHENTICATED_VARIABLE_HEADER_SIZE = 0x3C

SignatureListHeader = Struct(
    "signature_type" / Bytes(16),               # 00 EFI_CERT_*_GUID
    "signature_list_size" / Int32ul,            # 10 this list, header included
    "signature_header_size" / Int32ul,          # 14 bytes of type-specific header after this one
    "signature_size" / Int32ul,                 # 18 each EFI_SIGNATURE_DATA: owner GUID + data
)
SIGNATURE_LIST_HEADER_SIZE = 0x1C
SIGNATURE_OWNER_SIZE = 16

# UEFI_VARIABLE_DATA (TCG PC Client Platform Firmware Profile 1.05, section 10.2.6): the event
# data of EV_EFI_VARIABLE_DRIVER_CONFIG and EV_EFI_VARIABLE_AUTHORITY, this header followed by
# the name in UCS-2 without its NUL (UnicodeNameLength characters) and the variable's data.
UefiVariableDataHeader = Struct(
    "variable_name" / Bytes(16),                # 00 the vendor GUID (bytes_le)
    "unicode_name_length" / Int64ul,            # 10 characters
    "variable_data_length" / Int64ul,           # 18 bytes
)
