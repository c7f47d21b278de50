"""PCI expansion ROM layouts: legacy and EFI ROM headers, PCIR, $PnP, iPXE's headers.

Sources: PCI Firmware Specification 3.0 (PCIR, device list), the PnP BIOS
specification ($PnP expansion header), UEFI specification "PCI Option ROMs"
(EFI ROM header), iPXE src/arch/x86/prefix/romprefix.S (UNDI ROM ID, iPXE
header). All little-endian; offsets in comments are from the structure start.
"""

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Struct, this, If, Int24ul

from bootforge.formats import Numbering
from bootforge.formats.pe import PeMachine, PeSubsystem  # noqa: F401  (the EFI ROM header carries both)

ROM_SIGNATURE = b"\x55\xaa"
EFI_ROM_SIGNATURE = 0x0EF1
PCIR_SIGNATURE = b"PCIR"
PNP_SIGNATURE = b"$PnP"
UNDI_SIGNATURE = b"UNDI"
IPXE_SIGNATURE = b"iPXE"
BLOCK = 512
LAST_IMAGE = 0x80  # PCIR indicator bit 7


class RomCodeType(Numbering):
    """PCIR code type (PCI Firmware Specification 3.0, 5.1.3)."""

    X86 = 0x00, "x86"
    OPEN_FIRMWARE = 0x01, "Open Firmware"
    HP_PA_RISC = 0x02, "HP PA-RISC"
    EFI = 0x03, "EFI"


class EfiRomCompression(Numbering):
    """EFI ROM header CompressionType."""

    NONE = 0, "not compressed"
    EFI = 1, "EFI compression"


class PciBaseClass(Numbering):
    """PCI base class codes (PCI Code and ID Assignment Specification), the ones ROMs carry."""

    def _default_label(self):
        return self.name.lower().replace("_", " ")

    UNCLASSIFIED = 0x00
    MASS_STORAGE = 0x01
    NETWORK = 0x02
    DISPLAY = 0x03
    MULTIMEDIA = 0x04
    MEMORY = 0x05
    BRIDGE = 0x06
    COMMUNICATION = 0x07
    SYSTEM_PERIPHERAL = 0x08
    SERIAL_BUS = 0x0C


class PciClass(Numbering):
    """PCI class + subclass (the upper 16 bits of the 24-bit class code), labelled as lspci
    prints them from pci.ids (e.g. `02:00.0 Ethernet controller [0200]`): the ones option
    ROMs are written for. Others print by their base class (PciBaseClass)."""

    UNCLASSIFIED_NON_VGA = 0x0000, "Non-VGA unclassified device"
    UNCLASSIFIED_VGA = 0x0001, "VGA compatible unclassified device"
    SCSI = 0x0100, "SCSI storage controller"
    IDE = 0x0101, "IDE interface"
    FLOPPY = 0x0102, "Floppy disk controller"
    RAID = 0x0104, "RAID bus controller"
    ATA = 0x0105, "ATA controller"
    SATA = 0x0106, "SATA controller"
    SAS = 0x0107, "Serial Attached SCSI controller"
    NVME = 0x0108, "Non-Volatile memory controller"
    MASS_STORAGE_OTHER = 0x0180, "Mass storage controller"
    ETHERNET = 0x0200, "Ethernet controller"
    TOKEN_RING = 0x0201, "Token ring network controller"
    FDDI = 0x0202, "FDDI network controller"
    ATM = 0x0203, "ATM network controller"
    ISDN = 0x0204, "ISDN controller"
    INFINIBAND = 0x0207, "Infiniband controller"
    FABRIC = 0x0208, "Fabric controller"
    NETWORK_OTHER = 0x0280, "Network controller"
    VGA = 0x0300, "VGA compatible controller"
    XGA = 0x0301, "XGA compatible controller"
    DISPLAY_3D = 0x0302, "3D controller"
    DISPLAY_OTHER = 0x0380, "Display controller"
    HOST_BRIDGE = 0x0600, "Host bridge"
    ISA_BRIDGE = 0x0601, "ISA bridge"
    PCI_BRIDGE = 0x0604, "PCI bridge"
    SERIAL = 0x0700, "Serial controller"
    USB = 0x0C03, "USB controller"
    FIBRE_CHANNEL = 0x0C04, "Fibre Channel"


# The subsystems a UEFI option ROM may carry (EFI ROM header, UEFI spec 14.4.2).
EFI_ROM_SUBSYSTEMS = (PeSubsystem.EFI_APPLICATION, PeSubsystem.EFI_BOOT_SERVICE_DRIVER,
                      PeSubsystem.EFI_RUNTIME_DRIVER)
EFI_SUBSYSTEMS = {int(s): s.label for s in EFI_ROM_SUBSYSTEMS}

# Legacy x86 image header (0x1C bytes). Bytes 3-5 hold the init entry
# (a jump); 6-0x17 are free for the image (iPXE keeps its checksum byte at 6
# and sub-header pointers at 0x10/0x14/0x16).
LegacyRomHeader = Struct(
    "signature" / Const(ROM_SIGNATURE),          # 00
    "size_blocks" / Int8ul,                      # 02 image size in 512-byte blocks
    "init_entry" / Bytes(3),                     # 03 jump to the init routine
    "reserved" / Bytes(0x12),                    # 06
    "pcir_offset" / Int16ul,                     # 18
    "pnp_offset" / Int16ul,                      # 1A
)

# iPXE's pointers inside the legacy header's reserved area, from the image start.
IpxeRomPointers = Struct(
    "ipxe_header_offset" / Int16ul,              # 10 "iPXE" header
    "reserved" / Int16ul,                        # 12
    "bofm_offset" / Int16ul,                     # 14 IBM BOFM header
    "undi_offset" / Int16ul,                     # 16 UNDI ROM ID
)
IPXE_POINTERS_OFFSET = 0x10

# EFI image header (UEFI spec, "PCI Expansion ROM header for EFI", 0x1A bytes).
EfiRomHeader = Struct(
    "signature" / Const(ROM_SIGNATURE),          # 00
    "initialization_size" / Int16ul,             # 02 in 512-byte blocks
    "efi_signature" / Const(EFI_ROM_SIGNATURE, Int32ul),  # 04
    "subsystem" / Int16ul,                       # 08 PE subsystem
    "machine" / Int16ul,                         # 0A PE machine
    "compression" / Int16ul,                     # 0C 0 none, 1 EFI compression
    "reserved" / Bytes(8),                       # 0E
    "efi_image_offset" / Int16ul,                # 16 from the image start
    "pcir_offset" / Int16ul,                     # 18
)
EFI_HEADER_SIZE = 0x1A

# PCI data structure. Revision 3 (PCI 3.0) gives meaning to the device list
# pointer, the max runtime length and the two trailing words (length 0x1C).
PciDataStructure = Struct(
    "signature" / Const(PCIR_SIGNATURE),         # 00
    "vendor_id" / Int16ul,                       # 04
    "device_id" / Int16ul,                       # 06
    "device_list_offset" / Int16ul,              # 08 from PCIR; reserved in 2.3
    "length" / Int16ul,                          # 0A structure length in bytes
    "revision" / Int8ul,                         # 0C 0 = PCI 2.3, 3 = PCI 3.0
    "class_code" / Int24ul,                      # 0D prog-if, sub-class, base class
    "image_length" / Int16ul,                    # 10 in 512-byte blocks
    "code_revision" / Int16ul,                   # 12
    "code_type" / Int8ul,                        # 14
    "indicator" / Int8ul,                        # 15 bit 7: last image
    "max_runtime_length" / Int16ul,              # 16 in 512-byte blocks; reserved in 2.3
    "pci30" / If(this.length >= 0x1C, Struct(
        "config_utility_offset" / Int16ul,       # 18
        "dmtf_clp_offset" / Int16ul,             # 1A
    )),
)
PCIR_LENGTH_23 = 0x18
PCIR_LENGTH_30 = 0x1C
PCIR_REVISION_30 = 3        # revision >= 3: PCI 3.0 (device list, max runtime length); 0: PCI 2.3

# PnP expansion header (PnP BIOS spec 1.0a, 0x20 bytes).
PnpExpansionHeader = Struct(
    "signature" / Const(PNP_SIGNATURE),          # 00
    "revision" / Int8ul,                         # 04
    "length" / Int8ul,                           # 05 in 16-byte units
    "next_offset" / Int16ul,                     # 06 next PnP header, 0 = none
    "reserved" / Int8ul,                         # 08
    "checksum" / Int8ul,                         # 09 sum of length*16 bytes is 0
    "device_id" / Int32ul,                       # 0A
    "manufacturer_offset" / Int16ul,             # 0E string pointer, 0 = none
    "product_offset" / Int16ul,                  # 10 string pointer, 0 = none
    "device_type" / Bytes(3),                    # 12 base, sub, interface
    "device_indicators" / Int8ul,                # 15
    "bcv" / Int16ul,                             # 16 boot connection vector
    "bdv" / Int16ul,                             # 18 disconnect vector
    "bev" / Int16ul,                             # 1A bootstrap entry vector
    "reserved2" / Int16ul,                       # 1C
    "static_resource_offset" / Int16ul,          # 1E
)
PNP_HEADER_SIZE = 0x20

# iPXE UNDI ROM ID structure (0x16 bytes).
UndiRomId = Struct(
    "signature" / Const(UNDI_SIGNATURE),         # 00
    "length" / Int8ul,                           # 04
    "checksum" / Int8ul,                         # 05 sum of length bytes is 0
    "revision" / Int8ul,                         # 06
    "pxe_version" / Bytes(3),                    # 07 minor, major, ... as iPXE stores them
    "loader_entry" / Int16ul,                    # 0A
    "stack_size" / Int16ul,                      # 0C
    "data_size" / Int16ul,                       # 0E
    "code_size" / Int16ul,                       # 10
    "bus_type" / Bytes(4),                       # 12 "PCIR"
)

# iPXE header (0x0C bytes).
IpxeHeader = Struct(
    "signature" / Const(IPXE_SIGNATURE),         # 00
    "length" / Int8ul,                           # 04
    "checksum" / Int8ul,                         # 05 sum of length bytes is 0
    "shrunk_blocks" / Int8ul,                    # 06 size after init shrinks, x512
    "reserved" / Int8ul,                         # 07
    "build_id" / Int32ul,                        # 08
)
