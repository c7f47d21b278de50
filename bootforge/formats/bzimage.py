"""The Linux x86 boot protocol's setup header (torvalds/linux
Documentation/arch/x86/boot.rst, "The Real-Mode Kernel Header";
arch/x86/boot/header.S), at file offset 0x1f1 of a bzImage.

Fields after `version` exist only from the protocol version named in the
comment; older kernels have other bytes there.
"""

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from bootforge.formats import Numbering

SETUP_HEADER_OFFSET = 0x1F1
HDRS_OFFSET = 0x202
HDRS_MAGIC = b"HdrS"
BOOT_FLAG = 0xAA55
SECTOR = 512
DEFAULT_SETUP_SECTS = 4          # setup_sects 0 means 4 (boot.rst)

SetupHeader = Struct(
    "setup_sects" / Int8ul,              # 1F1
    "root_flags" / Int16ul,              # 1F2
    "syssize" / Int32ul,                 # 1F4 16-byte paragraphs of protected-mode code (2.04+)
    "ram_size" / Int16ul,                # 1F8 obsolete
    "vid_mode" / Int16ul,                # 1FA
    "root_dev" / Int16ul,                # 1FC
    "boot_flag" / Int16ul,               # 1FE 0xAA55
    "jump" / Int16ul,                    # 200
    "header" / Bytes(4),                 # 202 "HdrS"
    "version" / Int16ul,                 # 206 boot protocol version (major << 8 | minor)
    "realmode_swtch" / Int32ul,          # 208
    "start_sys_seg" / Int16ul,           # 20C obsolete
    "kernel_version" / Int16ul,          # 20E offset - 0x200 of the version string
    "type_of_loader" / Int8ul,           # 210
    "loadflags" / Int8ul,                # 211
    "setup_move_size" / Int16ul,         # 212
    "code32_start" / Int32ul,            # 214
    "ramdisk_image" / Int32ul,           # 218
    "ramdisk_size" / Int32ul,            # 21C
    "bootsect_kludge" / Int32ul,         # 220
    "heap_end_ptr" / Int16ul,            # 224 (2.01+)
    "ext_loader_ver" / Int8ul,           # 226 (2.02+)
    "ext_loader_type" / Int8ul,          # 227 (2.02+)
    "cmd_line_ptr" / Int32ul,            # 228 (2.02+)
    "initrd_addr_max" / Int32ul,         # 22C (2.03+)
    "kernel_alignment" / Int32ul,        # 230 (2.05+)
    "relocatable_kernel" / Int8ul,       # 234 (2.05+)
    "min_alignment" / Int8ul,            # 235 (2.10+) log2
    "xloadflags" / Int16ul,              # 236 (2.12+)
    "cmdline_size" / Int32ul,            # 238 (2.06+)
    "hardware_subarch" / Int32ul,        # 23C (2.07+)
    "hardware_subarch_data" / Int64ul,   # 240 (2.07+)
    "payload_offset" / Int32ul,          # 248 (2.08+)
    "payload_length" / Int32ul,          # 24C (2.08+)
    "setup_data" / Int64ul,              # 250 (2.09+)
    "pref_address" / Int64ul,            # 258 (2.10+)
    "init_size" / Int32ul,               # 260 (2.10+)
    "handover_offset" / Int32ul,         # 264 (2.11+)
    "kernel_info_offset" / Int32ul,      # 268 (2.15+)
)
SETUP_HEADER_END = 0x26C

# The protocol version from which a field exists (boot.rst); older kernels: absent.
FIELD_SINCE = {"initrd_addr_max": 0x203, "kernel_alignment": 0x205, "relocatable_kernel": 0x205,
               "cmdline_size": 0x206, "min_alignment": 0x20A, "xloadflags": 0x20C, "pref_address": 0x20A,
               "init_size": 0x20A, "handover_offset": 0x20B, "setup_data": 0x209, "kernel_info_offset": 0x20F}



class LoadFlag(Numbering):
    """setup header loadflags bits (boot.rst)."""

    LOADED_HIGH = 0x01
    KASLR_FLAG = 0x02
    QUIET_FLAG = 0x20
    KEEP_SEGMENTS = 0x40
    CAN_USE_HEAP = 0x80

    def _default_label(self):
        return self.name


class XLoadFlag(Numbering):
    """setup header xloadflags bits (boot.rst, protocol 2.12+)."""

    XLF_KERNEL_64 = 0x01
    XLF_CAN_BE_LOADED_ABOVE_4G = 0x02
    XLF_EFI_HANDOVER_32 = 0x04
    XLF_EFI_HANDOVER_64 = 0x08
    XLF_EFI_KEXEC = 0x10
    XLF_5LEVEL = 0x20
    XLF_5LEVEL_ENABLED = 0x40

    def _default_label(self):
        return self.name


# The 64-bit EFI handover entry is at handover_offset + 0x200 past the protected-mode
# code start (arch/x86/boot/compressed/head_64.S efi64_stub_entry; boot.rst).
HANDOVER_64_BIAS = 0x200

# struct boot_params (arch/x86/include/uapi/asm/bootparam.h); the limit of its E820 table
# is formats/e820.py's BOOT_PARAMS_E820_MAX.
BOOT_PARAMS_SIZE = 0x1000

# struct efi_info at boot_params offset 0x1c0 (bootparam.h; GRUB's linux_kernel_params v0208 the
# same): what an EFI loader or the EFI stub hands over about the firmware and its memory map.
BOOT_PARAMS_EFI_INFO = 0x1C0
EFI_LOADER_SIGNATURE_64 = b"EL64"
EfiInfo = Struct(
    "efi_loader_signature" / Bytes(4),
    "efi_systab" / Int32ul,
    "efi_memdesc_size" / Int32ul,
    "efi_memdesc_version" / Int32ul,
    "efi_memmap" / Int32ul,
    "efi_memmap_size" / Int32ul,
    "efi_systab_hi" / Int32ul,
    "efi_memmap_hi" / Int32ul,
)


def efi_info_offset(field):
    """boot_params offset of efi_info's *field*."""
    at = BOOT_PARAMS_EFI_INFO
    for sub in EfiInfo.subcons:
        if sub.name == field:
            return at
        at += sub.sizeof()
    raise KeyError(field)

class SetupDataType(Numbering):
    """setup_data node types (bootparam.h SETUP_*)."""

    SETUP_E820_EXT = 1
    SETUP_DTB = 2
    SETUP_PCI = 3
    SETUP_EFI = 4
    SETUP_APPLE_PROPERTIES = 5
    SETUP_JAILHOUSE = 6
    SETUP_CC_BLOB = 7
    SETUP_IMA = 8
    SETUP_RNG_SEED = 9

    def _default_label(self):
        return self.name


SetupDataHeader = Struct("next" / Int64ul, "type" / Int32ul, "len" / Int32ul)

# Linux's LOAD_PHYSICAL_ADDR (CONFIG_PHYSICAL_START, 16 MiB on Debian's x86-64 config).
LOAD_PHYSICAL_ADDR = 0x1000000
