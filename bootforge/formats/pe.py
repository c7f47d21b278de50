"""PE/COFF headers (Microsoft PE format specification): DOS stub pointer, COFF
file header, optional header up to the subsystem fields.

Enough for the facts firmware acts on (machine, subsystem, entry, image size)
without paying for `import lief`; lief is used where a whole image is needed.
"""

from construct import (Bytes, Const, IfThenElse, Int16ul, Int32ul, Int64ul,
                       Struct, this)

from bootforge.formats import Numbering

DOS_SIGNATURE = b"MZ"
PE_SIGNATURE = b"PE\0\0"
PE32_MAGIC = 0x10B
PE32PLUS_MAGIC = 0x20B
E_LFANEW_OFFSET = 0x3C


class PeSubsystem(Numbering):
    """Optional header Subsystem (PE format specification, "Windows Subsystem")."""

    NATIVE = 1, "native"
    WINDOWS_GUI = 2, "windows gui"
    WINDOWS_CUI = 3, "windows cui"
    EFI_APPLICATION = 10, "EFI application"
    EFI_BOOT_SERVICE_DRIVER = 11, "EFI boot service driver"
    EFI_RUNTIME_DRIVER = 12, "EFI runtime driver"
    EFI_ROM = 13, "EFI ROM"


class PeMachine(Numbering):
    """COFF Machine; labels as the UEFI specification and EfiRom name them."""

    def _default_label(self):
        return self.name

    IA32 = 0x014C
    IA64 = 0x0200
    EBC = 0x0EBC
    X64 = 0x8664
    ARM_THUMB = 0x01C2, "ARM Thumb"
    AARCH64 = 0xAA64
    RISCV32 = 0x5032
    RISCV64 = 0x5064
    RISCV128 = 0x5128
    LOONGARCH64 = 0x6264


DosHeader = Struct(
    "signature" / Const(DOS_SIGNATURE),          # 00 "MZ"
    "stub" / Bytes(E_LFANEW_OFFSET - 2),          # 02 DOS header fields bootforge does not use
    "e_lfanew" / Int32ul,                        # 3C file offset of "PE\0\0"
)

CoffFileHeader = Struct(
    "signature" / Const(PE_SIGNATURE),           # 00
    "machine" / Int16ul,                         # 04
    "number_of_sections" / Int16ul,              # 06
    "time_date_stamp" / Int32ul,                 # 08
    "pointer_to_symbol_table" / Int32ul,         # 0C
    "number_of_symbols" / Int32ul,               # 10
    "size_of_optional_header" / Int16ul,         # 14
    "characteristics" / Int16ul,                 # 16
)
COFF_HEADER_SIZE = 0x18

# Optional header through DllCharacteristics; PE32 has BaseOfData and a
# 32-bit ImageBase where PE32+ has a 64-bit ImageBase.
OptionalHeader = Struct(
    "magic" / Int16ul,                           # 00 0x10B PE32, 0x20B PE32+
    "linker_version" / Bytes(2),                 # 02
    "size_of_code" / Int32ul,                    # 04
    "size_of_initialized_data" / Int32ul,        # 08
    "size_of_uninitialized_data" / Int32ul,      # 0C
    "address_of_entry_point" / Int32ul,          # 10 RVA
    "base_of_code" / Int32ul,                    # 14
    "image_base" / IfThenElse(this.magic == PE32PLUS_MAGIC, Int64ul,
                              Struct("base_of_data" / Int32ul, "value" / Int32ul)),
    "section_alignment" / Int32ul,
    "file_alignment" / Int32ul,
    "os_version" / Bytes(4),
    "image_version" / Bytes(4),
    "subsystem_version" / Bytes(4),
    "win32_version_value" / Int32ul,
    "size_of_image" / Int32ul,
    "size_of_headers" / Int32ul,
    "checksum" / Int32ul,
    "subsystem" / Int16ul,
    "dll_characteristics" / Int16ul,
)
# Bytes OptionalHeader reads for each magic.
OPTIONAL_HEADER_PARSED = {PE32_MAGIC: 0x48, PE32PLUS_MAGIC: 0x48}

# After DllCharacteristics (PE32+ only; PE32 has 32-bit stack/heap sizes): what a
# writer must keep consistent when it appends sections (issue 14, bootforge/uki/).
OptionalHeaderTail64 = Struct(
    "size_of_stack_reserve" / Int64ul,
    "size_of_stack_commit" / Int64ul,
    "size_of_heap_reserve" / Int64ul,
    "size_of_heap_commit" / Int64ul,
    "loader_flags" / Int32ul,
    "number_of_rva_and_sizes" / Int32ul,
)
OptionalHeaderTail32 = Struct(
    "size_of_stack_reserve" / Int32ul,
    "size_of_stack_commit" / Int32ul,
    "size_of_heap_reserve" / Int32ul,
    "size_of_heap_commit" / Int32ul,
    "loader_flags" / Int32ul,
    "number_of_rva_and_sizes" / Int32ul,
)
OPTIONAL_HEADER_TAIL = {PE32_MAGIC: OptionalHeaderTail32, PE32PLUS_MAGIC: OptionalHeaderTail64}
DataDirectory = Struct("virtual_address" / Int32ul, "size" / Int32ul)
DATA_DIRECTORY_NAMES = ("export", "import", "resource", "exception", "security", "basereloc", "debug",
                        "architecture", "globalptr", "tls", "load_config", "bound_import", "iat",
                        "delay_import", "clr_runtime", "reserved")
# Offsets inside the optional header (PE32+) of fields a section writer updates.
OPT_SIZE_OF_INITIALIZED_DATA = 0x08
OPT_SIZE_OF_IMAGE = 0x38
OPT_CHECKSUM = 0x40
# Data directory index of the certificate table (PE format specification, "Optional Header Data
# Directories": entry 4, its VirtualAddress a file offset, not an RVA).
DIR_SECURITY = 4

# Attribute certificate table entry (PE format specification, "The Attribute Certificate Table";
# UEFI 2.10 section 32.2.4 WIN_CERTIFICATE): entries are 8-byte aligned, dwLength counts this header.
WinCertificateHeader = Struct(
    "length" / Int32ul,                          # 00 dwLength: header + certificate bytes
    "revision" / Int16ul,                        # 04 wRevision: 0x0200 (WIN_CERT_REVISION_2_0)
    "certificate_type" / Int16ul,                # 06 wCertificateType
)
WIN_CERTIFICATE_HEADER_SIZE = 8
WIN_CERT_REVISION_2_0 = 0x0200


class WinCertType(Numbering):
    """WIN_CERTIFICATE wCertificateType (UEFI 2.10 section 32.2.4, PE format specification)."""

    X509 = 0x0001, "x509"
    PKCS_SIGNED_DATA = 0x0002, "pkcs-signed-data"
    RESERVED_1 = 0x0003, "reserved"
    TS_STACK_SIGNED = 0x0004, "ts-stack-signed"
    EFI_PKCS115 = 0x0EF0, "efi-pkcs1.5"
    EFI_GUID = 0x0EF1, "efi-guid"

# Section table entry (PE format specification, "Section Table (Section Headers)").
SectionHeader = Struct(
    "name" / Bytes(8),                           # 00 NUL-padded; not NUL-terminated when 8 long
    "virtual_size" / Int32ul,                    # 08
    "virtual_address" / Int32ul,                 # 0C RVA
    "size_of_raw_data" / Int32ul,                # 10 multiple of FileAlignment
    "pointer_to_raw_data" / Int32ul,             # 14 file offset
    "pointer_to_relocations" / Int32ul,          # 18
    "pointer_to_linenumbers" / Int32ul,          # 1C
    "number_of_relocations" / Int16ul,           # 20
    "number_of_linenumbers" / Int16ul,           # 22
    "characteristics" / Int32ul,                 # 24
)
SECTION_HEADER_SIZE = 40



class SectionFlag(Numbering):
    """Section Characteristics IMAGE_SCN_* bits bootforge reads or writes (PE format specification)."""

    CNT_CODE = 0x20, "code"
    CNT_INITIALIZED_DATA = 0x40, "initialized-data"
    CNT_UNINITIALIZED_DATA = 0x80, "uninitialized-data"
    MEM_DISCARDABLE = 0x02000000, "discardable"
    MEM_EXECUTE = 0x20000000, "execute"
    MEM_READ = 0x40000000, "read"
    MEM_WRITE = 0x80000000, "write"
