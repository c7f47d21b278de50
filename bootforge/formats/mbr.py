"""The Master Boot Record: 440 bytes of boot code, a disk signature, four partition entries.

Sources: the IBM PC MBR layout as fdisk and the UEFI specification (5.2.1,
"Legacy Master Boot Record") describe it; the offsets GRUB's boot.img and
syslinux's isohdpfx.bin keep their patched fields at are GRUB
include/grub/i386/pc/boot.h and xorriso's -isohybrid-mbr / --grub2-mbr
documentation, checked against images made by grub-mkrescue 2.06 and
xorriso 1.5.4 on this machine.
"""

from construct import Array, Bytes, Const, Int8ul, Int16ul, Int32ul, Int64ul, Struct

SECTOR = 512
BOOT_CODE_SIZE = 440
PARTITION_TABLE_OFFSET = 446

MbrPartitionEntry = Struct(
    "status" / Int8ul,           # 0x80 active (bootable), 0x00 inactive
    "chs_first" / Bytes(3),
    "type" / Int8ul,
    "chs_last" / Bytes(3),
    "lba_first" / Int32ul,
    "sectors" / Int32ul,
)

Mbr = Struct(
    "boot_code" / Bytes(BOOT_CODE_SIZE),
    "disk_signature" / Int32ul,   # the "MBR id" Windows and Linux (PARTUUID=xxxxxxxx-NN) use
    "reserved" / Int16ul,
    "partitions" / Array(4, MbrPartitionEntry),
    "signature" / Const(b"\x55\xaa"),
)

# Partition type bytes (the numbering fdisk's "l" lists).
MBR_PARTITION_TYPES = {
    0x00: "empty",
    0x01: "FAT12",
    0x04: "FAT16 <32M",
    0x06: "FAT16",
    0x0B: "W95 FAT32",
    0x0C: "W95 FAT32 (LBA)",
    0x0E: "W95 FAT16 (LBA)",
    0x17: "hidden NTFS/ISO (isohybrid)",
    0x83: "Linux",
    0xCD: "ISO 9660 (xorriso)",
    0xEE: "GPT protective",
    0xEF: "EFI system",
}
MBR_TYPE_GPT_PROTECTIVE = 0xEE
MBR_TYPE_EFI_SYSTEM = 0xEF
MBR_TYPE_ISOHYBRID = 0x17

# Fields patched into MBR boot code by the tools that install it.
# GRUB boot.img (include/grub/i386/pc/boot.h): the LBA of core.img's first sector,
# the drive (0xff: use the one the BIOS passed in DL) and the floppy probe, which
# grub-bios-setup replaces with two NOPs for hard disks.
GRUB_BOOT_KERNEL_SECTOR = 0x5C
GRUB_BOOT_DRIVE = 0x64
GRUB_BOOT_DRIVE_CHECK = 0x66
# GRUB boot_hybrid.img (xorriso --grub2-mbr): u64 at 0x1B0 = El Torito image LBA * 4 + 4,
# the 512-byte sector of core.img's diskboot part (seen in grub-mkrescue's image).
GRUB_HYBRID_CORE_SECTOR = 0x1B0
# GRUB diskboot.img (the first sector of core.img): its last 12 bytes are the blocklist of
# the rest of core.img (grub-core/boot/i386/pc/diskboot.S; grub-bios-setup fills it).
GrubBlocklist = Struct(
    "start" / Int64ul,           # first 512-byte sector
    "length" / Int16ul,          # sectors
    "segment" / Int16ul,         # where they are read to (0x820)
)
GRUB_DISKBOOT_BLOCKLIST = 0x1F4
GRUB_CORE_SEGMENT = 0x820
# syslinux isohdpfx.bin (utils/isohybrid.c): u32 at 0x1B0 = isolinux.bin's LBA * 4.
ISOHYBRID_BOOT_SECTOR = 0x1B0

# Strings that name the boot code that carries them (first match wins).
MBR_BOOT_CODE_MARKERS = [
    (b"GRUB \x00Geom\x00Hard Disk\x00Read\x00 Error", "GRUB boot.img / boot_hybrid.img"),
    (b"isolinux.bin missing or corrupt", "syslinux isohdpfx.bin (isohybrid)"),
    (b"Missing operating system", "syslinux mbr.bin"),
    (b"LIMINE  ", "Limine MBR (limine bios-install)"),
]
