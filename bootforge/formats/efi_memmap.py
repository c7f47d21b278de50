"""UEFI memory descriptors (GetMemoryMap) and the Multiboot 2 EFI mmap tag.

Source: UEFI specification 2.10, 7.2 EFI_BOOT_SERVICES.GetMemoryMap();
tianocore/edk2 MdePkg/Include/Uefi/UefiSpec.h. A map is an array walked by
DescriptorSize, never by the 40 bytes declared here: EDK2 reports 48 on
purpose so that loaders which hard-code 40 break early.
"""

from construct import Int32ul, Int64ul, Padding, Struct

EFI_DESCRIPTOR_VERSION = 1
EFI_DESCRIPTOR_MIN_SIZE = 40
EFI_DESCRIPTOR_DEFAULT_SIZE = 48     # what EDK2/OVMF report
EFI_PAGE_SIZE = 4096

EfiMemoryDescriptor = Struct(
    "type" / Int32ul,
    Padding(4),
    "physical_start" / Int64ul,
    "virtual_start" / Int64ul,
    "number_of_pages" / Int64ul,
    "attribute" / Int64ul,
)
# type, pad, physical start, virtual start, pages, attribute
EFI_DESCRIPTOR_STRUCT = "<IIQQQQ"

# EFI_MEMORY_TYPE, in order: the value is the index.
EFI_TYPE_NAMES = (
    "reserved",               # 0 EfiReservedMemoryType
    "loader-code",            # 1
    "loader-data",            # 2
    "boot-services-code",     # 3
    "boot-services-data",     # 4
    "runtime-services-code",  # 5
    "runtime-services-data",  # 6
    "conventional",           # 7
    "unusable",               # 8
    "acpi-reclaim",           # 9
    "acpi-nvs",               # 10
    "mmio",                   # 11
    "mmio-port-space",        # 12
    "pal-code",               # 13
    "persistent",             # 14
    "unaccepted",             # 15
)
EFI_OEM_TYPES = range(0x70000000, 0x80000000)
EFI_OS_LOADER_TYPES = range(0x80000000, 0x100000000)

# Names the UEFI shell's `memmap` command prints (ShellPkg).
EFI_SHELL_TYPE_NAMES = (
    "Reserved", "LoaderCode", "LoaderData", "BS_Code", "BS_Data", "RT_Code",
    "RT_Data", "Available", "Unusable", "ACPI_Recl", "ACPI_NVS", "MMIO",
    "MMIO_Port", "PalCode", "Persistent", "Unaccepted",
)

# Attribute bits.
EFI_MEMORY_UC = 0x1
EFI_MEMORY_WC = 0x2
EFI_MEMORY_WT = 0x4
EFI_MEMORY_WB = 0x8
EFI_MEMORY_UCE = 0x10
EFI_MEMORY_WP = 0x1000
EFI_MEMORY_RP = 0x2000
EFI_MEMORY_XP = 0x4000
EFI_MEMORY_NV = 0x8000
EFI_MEMORY_MORE_RELIABLE = 0x10000
EFI_MEMORY_RO = 0x20000
EFI_MEMORY_SP = 0x40000
EFI_MEMORY_CPU_CRYPTO = 0x80000
EFI_MEMORY_ISA_VALID = 1 << 62
EFI_MEMORY_ISA_MASK = 0x0FFFF00000000000
EFI_MEMORY_RUNTIME = 1 << 63

# Multiboot 2 tag 17 body (after the 8-byte tag header): the descriptors
# follow, each descr_size bytes.
Multiboot2EfiMmapHeader = Struct(
    "descr_size" / Int32ul,
    "descr_vers" / Int32ul,
)
MB2_EFI_MMAP_HEADER_STRUCT = "<II"
