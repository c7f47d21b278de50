"""Multiboot 1 and 2 layouts, and the ELF headers a Multiboot loader reads.

Sources: the Multiboot 0.6.96 and Multiboot2 1.0 specifications, with the
layouts GRUB 2 (include/multiboot.h, include/multiboot2.h) and QEMU
(hw/i386/multiboot.c) really write where they differ from the spec text:
the MB2 ELF-sections tag uses u32 num/entsize/shndx (headers at +20), the
MB2 framebuffer tag has a u16 reserved before its colour info (+32) and a
u16 palette count. All little-endian; offsets in comments are from the
structure start. Declarations only: bounds checks, pointer walks and
verdicts live in bootforge/multiboot/.
"""

from construct import (
    Array, Bytes, Const, FixedSized, GreedyBytes, GreedyRange, If, Int8ul, Int16ul,
    Int32ul, Int64ul, NullTerminated, RepeatUntil, Struct, Switch, this,
)

# ---------------------------------------------------------------- Multiboot 1

MB1_MAGIC = 0x1BADB002
MB1_BOOTLOADER_MAGIC = 0x2BADB002
MB1_SEARCH = 8192           # header within the first 8 KiB of the file
MB1_ALIGN = 4

MB1_PAGE_ALIGN = 1 << 0     # modules on 4 KiB boundaries
MB1_MEMORY_INFO = 1 << 1    # mem_* and mmap_* required
MB1_VIDEO_MODE = 1 << 2     # video fields valid
MB1_AOUT_KLUDGE = 1 << 16   # address fields valid

Multiboot1Addresses = Struct(
    "header_addr" / Int32ul,     # 12 physical address the header is loaded at
    "load_addr" / Int32ul,       # 16 start of the text segment
    "load_end_addr" / Int32ul,   # 20 end of the data segment (0: end of file)
    "bss_end_addr" / Int32ul,    # 24 end of bss (0: none)
    "entry_addr" / Int32ul,      # 28 entry point
)

Multiboot1Video = Struct(
    "mode_type" / Int32ul,       # 32 0 linear graphics, 1 EGA text
    "width" / Int32ul,           # 36
    "height" / Int32ul,          # 40
    "depth" / Int32ul,           # 44
)

# The address fields sit at 12-28 whenever the header reaches the video
# fields at 32, so they are present with either flag bit 16 or bit 2.
Multiboot1Header = Struct(
    "magic" / Const(MB1_MAGIC, Int32ul),                                      # 0
    "flags" / Int32ul,                                                        # 4
    "checksum" / Int32ul,                                                     # 8
    "addresses" / If(this.flags & (MB1_AOUT_KLUDGE | MB1_VIDEO_MODE), Multiboot1Addresses),
    "video" / If(this.flags & MB1_VIDEO_MODE, Multiboot1Video),
)

MBI1_SIZE = 116
MBI1_FLAG_NAMES = {
    0: "mem", 1: "boot_device", 2: "cmdline", 3: "mods", 4: "aout_syms", 5: "elf_shdr",
    6: "mmap", 7: "drives", 8: "config_table", 9: "boot_loader_name", 10: "apm_table",
    11: "vbe", 12: "framebuffer",
}

Multiboot1Info = Struct(
    "flags" / Int32ul,                 # 0
    "mem_lower" / Int32ul,             # 4  KiB [0]
    "mem_upper" / Int32ul,             # 8  KiB [0]
    "boot_device" / Int32ul,           # 12 [1]
    "cmdline" / Int32ul,               # 16 [2]
    "mods_count" / Int32ul,            # 20 [3]
    "mods_addr" / Int32ul,             # 24 [3]
    "syms" / Bytes(16),                # 28 a.out symbols [4] or ELF section headers [5]
    "mmap_length" / Int32ul,           # 44 [6]
    "mmap_addr" / Int32ul,             # 48 [6]
    "drives_length" / Int32ul,         # 52 [7]
    "drives_addr" / Int32ul,           # 56 [7]
    "config_table" / Int32ul,          # 60 [8]
    "boot_loader_name" / Int32ul,      # 64 [9]
    "apm_table" / Int32ul,             # 68 [10]
    "vbe_control_info" / Int32ul,      # 72 [11]
    "vbe_mode_info" / Int32ul,         # 76
    "vbe_mode" / Int16ul,              # 80
    "vbe_interface_seg" / Int16ul,     # 82
    "vbe_interface_off" / Int16ul,     # 84
    "vbe_interface_len" / Int16ul,     # 86
    "framebuffer_addr" / Int64ul,      # 88 [12]
    "framebuffer_pitch" / Int32ul,     # 96
    "framebuffer_width" / Int32ul,     # 100
    "framebuffer_height" / Int32ul,    # 104
    "framebuffer_bpp" / Int8ul,        # 108
    "framebuffer_type" / Int8ul,       # 109 0 indexed, 1 RGB, 2 EGA text
    "color_info" / Bytes(6),           # 110 palette addr u32 + count u16, or RGB positions/masks
)

Multiboot1AoutSymbols = Struct(
    "tabsize" / Int32ul, "strsize" / Int32ul, "addr" / Int32ul, "reserved" / Int32ul,
)
Multiboot1ElfSections = Struct(
    "num" / Int32ul, "size" / Int32ul, "addr" / Int32ul, "shndx" / Int32ul,
)
Multiboot1Palette = Struct("palette_addr" / Int32ul, "palette_num_colors" / Int16ul)
FramebufferRgb = Struct(
    "red_field_position" / Int8ul, "red_mask_size" / Int8ul,
    "green_field_position" / Int8ul, "green_mask_size" / Int8ul,
    "blue_field_position" / Int8ul, "blue_mask_size" / Int8ul,
)

# Module list entry: mod_end is exclusive.
Multiboot1Module = Struct(
    "mod_start" / Int32ul,       # 0
    "mod_end" / Int32ul,         # 4
    "cmdline" / Int32ul,         # 8 address of a NUL-terminated string
    "reserved" / Int32ul,        # 12
)

# Memory map entry; mmap_addr points at `size`, the next entry starts at
# entry + size + 4 (GRUB and QEMU write size 20).
Multiboot1MmapEntry = Struct(
    "size" / Int32ul,            # 0 bytes after this field
    "base_addr" / Int64ul,       # 4
    "length" / Int64ul,          # 12
    "type" / Int32ul,            # 20 1 available, 2 reserved, 3 ACPI, 4 NVS, 5 bad
    "extra" / Bytes(this.size - 20),
)

Multiboot1Drive = Struct(
    "size" / Int32ul,            # 0 whole structure
    "drive_number" / Int8ul,     # 4
    "drive_mode" / Int8ul,       # 5 0 CHS, 1 LBA
    "drive_cylinders" / Int16ul,  # 6
    "drive_heads" / Int8ul,      # 8
    "drive_sectors" / Int8ul,    # 9
    "drive_ports" / Bytes(this.size - 10),  # 10 u16 ports ending with 0
)

ApmTable = Struct(
    "version" / Int16ul, "cseg" / Int16ul, "offset" / Int32ul, "cseg_16" / Int16ul,
    "dseg" / Int16ul, "flags" / Int16ul, "cseg_len" / Int16ul, "cseg_16_len" / Int16ul,
    "dseg_len" / Int16ul,
)
APM_TABLE_SIZE = 20

# VESA BIOS Extensions 3.0: what vbe_control_info / vbe_mode_info (MB1 [11], MB2 tag 7) hold.
VbeInfoBlock = Struct(                       # 512 bytes
    "signature" / Bytes(4),                  # 0 "VESA"
    "version" / Int16ul,                     # 4 BCD, 0x0300 = 3.0
    "oem_string_ptr" / Int32ul,              # 6 real-mode far pointer
    "capabilities" / Int32ul,                # 10
    "video_mode_ptr" / Int32ul,              # 14
    "total_memory" / Int16ul,                # 18 in 64 KiB blocks
    "oem_software_rev" / Int16ul,            # 20
    "oem_vendor_name_ptr" / Int32ul,         # 22
    "oem_product_name_ptr" / Int32ul,        # 26
    "oem_product_rev_ptr" / Int32ul,         # 30
    "reserved" / Bytes(222),                 # 34
    "oem_data" / Bytes(256),                 # 256
)
VbeModeInfoBlock = Struct(                   # 256 bytes
    "mode_attributes" / Int16ul, "win_a_attributes" / Int8ul, "win_b_attributes" / Int8ul,
    "win_granularity" / Int16ul, "win_size" / Int16ul, "win_a_segment" / Int16ul,
    "win_b_segment" / Int16ul, "win_func_ptr" / Int32ul, "bytes_per_scan_line" / Int16ul,   # 0-17
    "x_resolution" / Int16ul, "y_resolution" / Int16ul, "x_char_size" / Int8ul,
    "y_char_size" / Int8ul, "number_of_planes" / Int8ul, "bits_per_pixel" / Int8ul,
    "number_of_banks" / Int8ul, "memory_model" / Int8ul, "bank_size" / Int8ul,
    "number_of_image_pages" / Int8ul, "reserved0" / Int8ul,                                 # 18-30
    "red_mask_size" / Int8ul, "red_field_position" / Int8ul, "green_mask_size" / Int8ul,
    "green_field_position" / Int8ul, "blue_mask_size" / Int8ul, "blue_field_position" / Int8ul,
    "rsvd_mask_size" / Int8ul, "rsvd_field_position" / Int8ul, "direct_color_mode_info" / Int8ul,
    "phys_base_ptr" / Int32ul,                                                             # 40
    "reserved1" / Bytes(212),                                                              # 44
)

# A string the MBI points at (bytes, decoded by the reader).
CStringBytes = NullTerminated(GreedyBytes)

# ---------------------------------------------------------------- Multiboot 2

MB2_MAGIC = 0xE85250D6
MB2_BOOTLOADER_MAGIC = 0x36D76289
MB2_SEARCH = 32768
MB2_ALIGN = 8
MB2_ARCHITECTURES = {0: "i386", 4: "mips32"}
MB2_TAG_OPTIONAL = 1

MB2_HEADER_TAG_NAMES = {
    0: "end", 1: "information_request", 2: "address", 3: "entry_address",
    4: "console_flags", 5: "framebuffer", 6: "module_alignment",
    7: "efi_boot_services", 8: "entry_address_efi32", 9: "entry_address_efi64",
    10: "relocatable",
}

MB2_RELOCATABLE_PREFERENCES = {0: "none", 1: "low", 2: "high"}

Multiboot2HeaderFixed = Struct(
    "magic" / Const(MB2_MAGIC, Int32ul),   # 0
    "architecture" / Int32ul,              # 4
    "header_length" / Int32ul,             # 8 including the tags
    "checksum" / Int32ul,                  # 12 the four words sum to 0
)

Multiboot2HeaderTagBody = Switch(this.type, {
    1: Struct("requests" / GreedyRange(Int32ul)),
    2: Struct("header_addr" / Int32ul, "load_addr" / Int32ul,
              "load_end_addr" / Int32ul, "bss_end_addr" / Int32ul),
    3: Struct("entry_addr" / Int32ul),
    4: Struct("console_flags" / Int32ul),            # bit0 required, bit1 EGA text supported
    5: Struct("width" / Int32ul, "height" / Int32ul, "depth" / Int32ul),
    8: Struct("entry_addr" / Int32ul),
    9: Struct("entry_addr" / Int32ul),
    10: Struct("min_addr" / Int32ul, "max_addr" / Int32ul, "align" / Int32ul,
               "preference" / Int32ul),
}, default=Struct("payload" / GreedyBytes))          # 0, 6, 7: empty; unknown: raw

# One header tag, with its padding to the next 8-byte boundary.
Multiboot2HeaderTag = Struct(
    "type" / Int16ul,                                 # 0
    "flags" / Int16ul,                                # 2 bit0 optional
    "size" / Int32ul,                                 # 4 without padding
    "body" / FixedSized(this.size - 8, Multiboot2HeaderTagBody),
    "padding" / Bytes(-this.size % 8),
)

Multiboot2Header = Struct(
    "fixed" / Multiboot2HeaderFixed,
    "tags" / RepeatUntil(lambda tag, lst, ctx: tag["type"] == 0, Multiboot2HeaderTag),
)

# Boot information.
MB2_INFO_TAG_NAMES = {
    0: "end", 1: "cmdline", 2: "boot_loader_name", 3: "module", 4: "basic_meminfo",
    5: "bootdev", 6: "mmap", 7: "vbe", 8: "framebuffer", 9: "elf_sections", 10: "apm",
    11: "efi32", 12: "efi64", 13: "smbios", 14: "acpi_old", 15: "acpi_new", 16: "network",
    17: "efi_mmap", 18: "efi_bs", 19: "efi32_ih", 20: "efi64_ih", 21: "load_base_addr",
}

Multiboot2InfoFixed = Struct(
    "total_size" / Int32ul,        # 0 including this header and the end tag
    "reserved" / Int32ul,          # 4
)

Multiboot2MmapEntry = Struct(
    "base_addr" / Int64ul, "length" / Int64ul, "type" / Int32ul, "reserved" / Int32ul,
)
MB2_MMAP_ENTRY_SIZE = 24

# UEFI EFI_MEMORY_DESCRIPTOR (version 1); descr_size may be larger.
EfiMemoryDescriptor = Struct(
    "type" / Int32ul, "pad" / Int32ul, "physical_start" / Int64ul,
    "virtual_start" / Int64ul, "number_of_pages" / Int64ul, "attribute" / Int64ul,
)
EFI_MEMORY_DESCRIPTOR_SIZE = 40
EFI_MEMORY_TYPES = {
    0: "Reserved", 1: "LoaderCode", 2: "LoaderData", 3: "BootServicesCode",
    4: "BootServicesData", 5: "RuntimeServicesCode", 6: "RuntimeServicesData",
    7: "Conventional", 8: "Unusable", 9: "ACPIReclaim", 10: "ACPINVS",
    11: "MemoryMappedIO", 12: "MemoryMappedIOPortSpace", 13: "PalCode", 14: "Persistent",
}

Multiboot2InfoTagBody = Switch(this.type, {
    1: Struct("string" / CStringBytes),
    2: Struct("string" / CStringBytes),
    3: Struct("mod_start" / Int32ul, "mod_end" / Int32ul, "string" / CStringBytes),
    4: Struct("mem_lower" / Int32ul, "mem_upper" / Int32ul),
    5: Struct("biosdev" / Int32ul, "partition" / Int32ul, "sub_partition" / Int32ul),
    6: Struct("entry_size" / Int32ul, "entry_version" / Int32ul,
              "entries" / GreedyRange(FixedSized(this.entry_size, Multiboot2MmapEntry))),
    7: Struct("vbe_mode" / Int16ul, "vbe_interface_seg" / Int16ul,
              "vbe_interface_off" / Int16ul, "vbe_interface_len" / Int16ul,
              "vbe_control_info" / Bytes(512), "vbe_mode_info" / Bytes(256)),
    8: Struct("framebuffer_addr" / Int64ul, "framebuffer_pitch" / Int32ul,     # +8
              "framebuffer_width" / Int32ul, "framebuffer_height" / Int32ul,   # +20
              "framebuffer_bpp" / Int8ul, "framebuffer_type" / Int8ul,         # +28
              "reserved" / Int16ul,                                            # +30
              "color_info" / GreedyBytes),                                     # +32
    9: Struct("num" / Int32ul, "entsize" / Int32ul, "shndx" / Int32ul,
              "sections" / GreedyBytes),                                       # +20
    10: ApmTable,
    11: Struct("pointer" / Int32ul),
    12: Struct("pointer" / Int64ul),
    13: Struct("major" / Int8ul, "minor" / Int8ul, "reserved" / Bytes(6), "tables" / GreedyBytes),
    14: Struct("rsdp" / GreedyBytes),
    15: Struct("rsdp" / GreedyBytes),
    16: Struct("dhcpack" / GreedyBytes),
    17: Struct("descr_size" / Int32ul, "descr_vers" / Int32ul, "map" / GreedyBytes),
    19: Struct("pointer" / Int32ul),
    20: Struct("pointer" / Int64ul),
    21: Struct("load_base_addr" / Int32ul),
}, default=Struct("payload" / GreedyBytes))          # 0, 18: empty; unknown: raw

# Framebuffer colour info (tag 8 at +32): indexed palettes or RGB fields.
Multiboot2Palette = Struct(
    "num_colors" / Int16ul,
    "colors" / Array(this.num_colors, Struct("red" / Int8ul, "green" / Int8ul, "blue" / Int8ul)),
)

Multiboot2InfoTag = Struct(
    "type" / Int32ul,                                 # 0
    "size" / Int32ul,                                 # 4 without padding
    "body" / FixedSized(this.size - 8, Multiboot2InfoTagBody),
    "padding" / Bytes(-this.size % 8),
)

Multiboot2Info = Struct(
    "fixed" / Multiboot2InfoFixed,
    "tags" / RepeatUntil(lambda tag, lst, ctx: tag["type"] == 0, Multiboot2InfoTag),
)

# ---------------------------------------------------------------- ELF (the parts loaders read)

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
EM_386, EM_X86_64 = 3, 62
ET_EXEC, ET_DYN = 2, 3
PT_LOAD = 1
SHT_PROGBITS, SHT_REL, SHT_RELA = 1, 9, 4
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4

ElfIdent = Struct(
    "magic" / Const(ELF_MAGIC),   # 0
    "ei_class" / Int8ul,          # 4 1 ELF32, 2 ELF64
    "ei_data" / Int8ul,           # 5 1 little-endian
    "ei_version" / Int8ul,        # 6
    "ei_pad" / Bytes(9),          # 7
)


def _ehdr(word):
    return Struct(
        "ident" / ElfIdent, "e_type" / Int16ul, "e_machine" / Int16ul, "e_version" / Int32ul,
        "e_entry" / word, "e_phoff" / word, "e_shoff" / word, "e_flags" / Int32ul,
        "e_ehsize" / Int16ul, "e_phentsize" / Int16ul, "e_phnum" / Int16ul,
        "e_shentsize" / Int16ul, "e_shnum" / Int16ul, "e_shstrndx" / Int16ul,
    )


Elf32Ehdr = _ehdr(Int32ul)     # 52 bytes
Elf64Ehdr = _ehdr(Int64ul)     # 64 bytes

Elf32Phdr = Struct(            # 32 bytes
    "p_type" / Int32ul, "p_offset" / Int32ul, "p_vaddr" / Int32ul, "p_paddr" / Int32ul,
    "p_filesz" / Int32ul, "p_memsz" / Int32ul, "p_flags" / Int32ul, "p_align" / Int32ul,
)
Elf64Phdr = Struct(            # 56 bytes
    "p_type" / Int32ul, "p_flags" / Int32ul, "p_offset" / Int64ul, "p_vaddr" / Int64ul,
    "p_paddr" / Int64ul, "p_filesz" / Int64ul, "p_memsz" / Int64ul, "p_align" / Int64ul,
)
Elf32Shdr = Struct(            # 40 bytes
    "sh_name" / Int32ul, "sh_type" / Int32ul, "sh_flags" / Int32ul, "sh_addr" / Int32ul,
    "sh_offset" / Int32ul, "sh_size" / Int32ul, "sh_link" / Int32ul, "sh_info" / Int32ul,
    "sh_addralign" / Int32ul, "sh_entsize" / Int32ul,
)
Elf64Shdr = Struct(            # 64 bytes
    "sh_name" / Int32ul, "sh_type" / Int32ul, "sh_flags" / Int64ul, "sh_addr" / Int64ul,
    "sh_offset" / Int64ul, "sh_size" / Int64ul, "sh_link" / Int32ul, "sh_info" / Int32ul,
    "sh_addralign" / Int64ul, "sh_entsize" / Int64ul,
)

ELF_LAYOUTS = {
    ELFCLASS32: (Elf32Ehdr, Elf32Phdr, Elf32Shdr),
    ELFCLASS64: (Elf64Ehdr, Elf64Phdr, Elf64Shdr),
}
