"""El Torito: the boot record volume descriptor, the boot catalog, isolinux's boot info table.

Source: "El Torito" Bootable CD-ROM Format Specification 1.0 (Phoenix/IBM,
1995), sections 2.0-2.5; the boot info table is mkisofs' -boot-info-table
(genisoimage README, xorriso's man page), which isolinux.bin, GRUB's
cdboot.img and Limine's limine-bios-cd.bin read.
"""

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, Struct

CATALOG_ENTRY_SIZE = 32
ELTORITO_SYSTEM_ID = b"EL TORITO SPECIFICATION"

# Volume descriptor type 0 at sector 17 or later.
BootRecordVolumeDescriptor = Struct(
    "type" / Const(0, Int8ul),
    "standard_id" / Const(b"CD001"),
    "version" / Int8ul,
    "boot_system_id" / Bytes(32),        # "EL TORITO SPECIFICATION", NUL padded
    "boot_id" / Bytes(32),
    "catalog_lba" / Int32ul,
)

ValidationEntry = Struct(
    "header_id" / Int8ul,                # 1
    "platform_id" / Int8ul,
    "reserved" / Int16ul,
    "id_string" / Bytes(24),
    "checksum" / Int16ul,                # the 16 u16 words of the entry sum to 0
    "key" / Bytes(2),                    # 0x55 0xAA
)

# The initial/default entry and every section entry share this layout.
SectionEntry = Struct(
    "boot_indicator" / Int8ul,           # 0x88 bootable, 0x00 not
    "media_type" / Int8ul,
    "load_segment" / Int16ul,            # 0 means 0x7C0
    "system_type" / Int8ul,
    "reserved" / Int8ul,
    "sector_count" / Int16ul,            # 512-byte virtual sectors loaded (BIOS, no emulation)
    "load_rba" / Int32ul,                # 2048-byte sector of the image
    "selection_criteria" / Bytes(20),
)

SectionHeader = Struct(
    "header_indicator" / Int8ul,         # 0x90 more headers follow, 0x91 final
    "platform_id" / Int8ul,
    "num_entries" / Int16ul,
    "id_string" / Bytes(28),
)

BootInfoTable = Struct(                  # at offset 8 of the boot image
    "pvd_lba" / Int32ul,
    "file_lba" / Int32ul,
    "file_length" / Int32ul,
    "checksum" / Int32ul,                # sum of the image's u32 words from offset 64
    "reserved" / Bytes(40),
)
BOOT_INFO_TABLE_OFFSET = 8
BOOT_INFO_CHECKSUM_START = 64

BOOTABLE = 0x88
HEADER_MORE = 0x90
HEADER_FINAL = 0x91
PLATFORM_X86 = 0
PLATFORM_EFI = 0xEF
PLATFORMS = {0: "x86 BIOS", 1: "PowerPC", 2: "Mac", PLATFORM_EFI: "UEFI"}
MEDIA_NO_EMULATION = 0
MEDIA_TYPES = {0: "no emulation", 1: "1.2M floppy", 2: "1.44M floppy", 3: "2.88M floppy", 4: "hard disk"}
# GRUB's i386-pc-eltorito image: xorriso --grub2-boot-info writes at byte 2548 (diskboot's
# blocklist start inside it) the image's 512-byte LBA + 5 (seen in grub-mkrescue's image).
GRUB2_BOOT_INFO_OFFSET = 2548
# Strings that name the El Torito boot image carrying them (first match wins; seen in
# Debian's isolinux.bin 6.04, GRUB 2.06 cdboot.img, Limine 11.4.1 limine-bios-cd.bin).
BOOT_IMAGE_MARKERS = [
    (b"ISOLINUX", "ISOLINUX"),
    (b"cdrom read fails", "GRUB cdboot.img (i386-pc-eltorito)"),
    (b"Limine", "Limine"),
    (b"limine", "Limine"),
    (b"GRUB", "GRUB"),
]
