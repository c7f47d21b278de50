"""UEFI memory descriptors (GetMemoryMap), their types and attributes, and the MB2 EFI mmap tag body.

Source: UEFI specification 2.10, 7.2 EFI_BOOT_SERVICES.GetMemoryMap();
tianocore/edk2 MdePkg/Include/Uefi/UefiSpec.h and UefiMultiPhase.h. A map is
an array walked by DescriptorSize, never by the 40 bytes declared here: EDK2
reports 48 on purpose so that loaders which hard-code 40 break early.
"""

import struct

from construct import Int32ul, Int64ul, Padding, Struct

from bootforge.formats import Numbering, struct_format

EFI_DESCRIPTOR_VERSION = 1
EFI_DESCRIPTOR_DEFAULT_SIZE = 48     # what EDK2/OVMF report
EFI_DESCRIPTOR_MAX_SIZE = 4096       # bootforge's bound on a stride
EFI_PAGE_SIZE = 4096


class EfiMemoryType(Numbering):
    """EFI_MEMORY_TYPE. Each member carries every name it is printed under:

    label        bootforge's name (JSON, `memmap` tables)
    shell_name   the UEFI shell's `memmap` (ShellPkg)
    grub_name    GRUB's `lsefimmap` (grub-core/commands/efi/lsefimmap.c); None: GRUB prints type-N
    spec_name    EDK2's enum name without "Efi" and "Memory"/"MemoryType" (the dump decoder's JSON)
    """

    _columns = ("label", "shell_name", "grub_name", "spec_name")

    RESERVED = 0, "reserved", "Reserved", "reserved", "Reserved"
    LOADER_CODE = 1, "loader-code", "LoaderCode", "ldr-code", "LoaderCode"
    LOADER_DATA = 2, "loader-data", "LoaderData", "ldr-data", "LoaderData"
    BOOT_SERVICES_CODE = 3, "boot-services-code", "BS_Code", "BS-code", "BootServicesCode"
    BOOT_SERVICES_DATA = 4, "boot-services-data", "BS_Data", "BS-data", "BootServicesData"
    RUNTIME_SERVICES_CODE = 5, "runtime-services-code", "RT_Code", "RT-code", "RuntimeServicesCode"
    RUNTIME_SERVICES_DATA = 6, "runtime-services-data", "RT_Data", "RT-data", "RuntimeServicesData"
    CONVENTIONAL = 7, "conventional", "Available", "conv-mem", "Conventional"
    UNUSABLE = 8, "unusable", "Unusable", "unusable", "Unusable"
    ACPI_RECLAIM = 9, "acpi-reclaim", "ACPI_Recl", "ACPI-rec", "ACPIReclaim"
    ACPI_NVS = 10, "acpi-nvs", "ACPI_NVS", "ACPI-nvs", "ACPINVS"
    MMIO = 11, "mmio", "MMIO", "MMIO", "MemoryMappedIO"
    MMIO_PORT_SPACE = 12, "mmio-port-space", "MMIO_Port", "IO-ports", "MemoryMappedIOPortSpace"
    PAL_CODE = 13, "pal-code", "PalCode", "PAL-code", "PalCode"
    PERSISTENT = 14, "persistent", "Persistent", "persist", "Persistent"
    UNACCEPTED = 15, "unaccepted", "Unaccepted", None, "Unaccepted"


EFI_OEM_TYPES = range(0x70000000, 0x80000000)
EFI_OS_LOADER_TYPES = range(0x80000000, 0x100000000)


class EfiMemoryAttribute(Numbering):
    """EFI_MEMORY_* attribute bits; the label is GRUB lsefimmap's abbreviation where it prints one."""

    def _default_label(self):
        return self.name

    UC = 0x1
    WC = 0x2
    WT = 0x4
    WB = 0x8
    UCE = 0x10
    WP = 0x1000
    RP = 0x2000
    XP = 0x4000
    NV = 0x8000
    MORE_RELIABLE = 0x10000, "MR"
    RO = 0x20000
    SP = 0x40000
    CPU_CRYPTO = 0x80000, "CC"
    ISA_VALID = 1 << 62, "ISA"
    RUNTIME = 1 << 63, "RT"


EFI_MEMORY_ISA_MASK = 0x0FFFF00000000000

EfiMemoryDescriptor = Struct(
    "type" / Int32ul,                   # 0
    Padding(4),                         # 4
    "physical_start" / Int64ul,         # 8
    "virtual_start" / Int64ul,          # 16
    "number_of_pages" / Int64ul,        # 24
    "attribute" / Int64ul,              # 32
)
EFI_DESCRIPTOR_STRUCT = struct_format(EfiMemoryDescriptor)
EFI_DESCRIPTOR_MIN_SIZE = EfiMemoryDescriptor.sizeof()      # 40
EFI_DESCRIPTOR_PAGES_OFFSET = 24
EFI_DESCRIPTOR_START_OFFSET = 8


def descriptor_struct(descriptor_size):
    """The struct.Struct of one descriptor of stride *descriptor_size* (>= 40): the declared
    fields (type, physical start, virtual start, pages, attribute), the rest skipped."""
    return struct.Struct(EFI_DESCRIPTOR_STRUCT + f"{descriptor_size - EFI_DESCRIPTOR_MIN_SIZE}x")


# Multiboot 2 tag 17 body (after the 8-byte tag header): the descriptors
# follow, each descr_size bytes.
Multiboot2EfiMmapHeader = Struct(
    "descr_size" / Int32ul,
    "descr_vers" / Int32ul,
)
MB2_EFI_MMAP_HEADER_STRUCT = struct_format(Multiboot2EfiMmapHeader)
