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

from bootforge.formats import Numbering, struct_format

# ---------------------------------------------------------------- Multiboot 1

MB1_MAGIC = 0x1BADB002
MB1_BOOTLOADER_MAGIC = 0x2BADB002
MB1_SEARCH = 8192           # header within the first 8 KiB of the file
MB1_ALIGN = 4



class Mb1HeaderFlag(Numbering):
    """Multiboot 1 header flags (what the kernel asks of the loader)."""

    PAGE_ALIGN = 1 << 0         # modules on 4 KiB boundaries
    MEMORY_INFO = 1 << 1        # mem_* and mmap_* required
    VIDEO_MODE = 1 << 2         # video fields valid
    AOUT_KLUDGE = 1 << 16       # address fields valid


MB1_REQUIRED_FLAGS_MASK = 0x0000FFFF    # bits 0-15: a loader must refuse bits it does not know

Multiboot1Addresses = Struct(
    "header_addr" / Int32ul,     # 12 physical address the header is loaded at
    "load_addr" / Int32ul,       # 16 start of the text segment
    "load_end_addr" / Int32ul,   # 20 end of the data segment (0: end of file)
    "bss_end_addr" / Int32ul,    # 24 end of bss (0: none)
    "entry_addr" / Int32ul,      # 28 entry point
)

MB1_HEADER_FIXED_SIZE = 12      # magic, flags, checksum

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
    "addresses" / If(this.flags & (Mb1HeaderFlag.AOUT_KLUDGE | Mb1HeaderFlag.VIDEO_MODE),
                     Multiboot1Addresses),
    "video" / If(this.flags & Mb1HeaderFlag.VIDEO_MODE, Multiboot1Video),
)

MBI1_SIZE = 116


class FramebufferType(Numbering):
    """framebuffer_type of the MB1 info and the MB2 framebuffer tag."""

    INDEXED = 0
    RGB = 1
    EGA_TEXT = 2



class MbiFlag(Numbering):
    """Multiboot 1 information flags: which MBI fields are valid (the label is the field group)."""

    MEM = 1 << 0
    BOOT_DEVICE = 1 << 1
    CMDLINE = 1 << 2
    MODS = 1 << 3
    AOUT_SYMS = 1 << 4
    ELF_SHDR = 1 << 5
    MMAP = 1 << 6
    DRIVES = 1 << 7
    CONFIG_TABLE = 1 << 8
    BOOT_LOADER_NAME = 1 << 9
    APM_TABLE = 1 << 10
    VBE = 1 << 11
    FRAMEBUFFER = 1 << 12


MBI1_SIZE_WITHOUT_FRAMEBUFFER = 88      # what loaders that never set MbiFlag.FRAMEBUFFER write

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
    # The colour union (palette addr u32 + count u16, or six RGB position/size bytes) is 4-byte
    # aligned in the loaders' struct (GRUB include/multiboot.h): it starts at 112, and the
    # 116 bytes hold only its first four (palette addr, or red and green position/size).
    "color_info_pad" / Bytes(2),       # 110
    "color_info" / Bytes(4),           # 112
)

Multiboot1AoutSymbols = Struct(
    "tabsize" / Int32ul, "strsize" / Int32ul, "addr" / Int32ul, "reserved" / Int32ul,
)
Multiboot1ElfSections = Struct(
    "num" / Int32ul, "size" / Int32ul, "addr" / Int32ul, "shndx" / Int32ul,
)
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
# entry + size + 4 (GRUB and QEMU write size 20). Types are E820Type numbers.
Multiboot1MmapEntryFixed = Struct(
    "size" / Int32ul,            # 0 bytes after this field
    "base_addr" / Int64ul,       # 4
    "length" / Int64ul,          # 12
    "type" / Int32ul,            # 20 1 available, 2 reserved, 3 ACPI, 4 NVS, 5 bad
)
MB1_MMAP_ENTRY_STRUCT = struct_format(Multiboot1MmapEntryFixed)
# An MB1 mmap entry's `size` field counts the bytes after itself: GRUB, QEMU, Syslinux, iPXE and
# Limine write 20, and the next entry starts size + 4 bytes on (the stride, 24). mmap_length
# is entries x stride (Limine 11.4.1 observed: 168 for 7 entries), never entries x size.
MB1_MMAP_SIZE_FIELD = Multiboot1MmapEntryFixed.sizeof() - 4     # 20
MB1_MMAP_ENTRY_STRIDE = Multiboot1MmapEntryFixed.sizeof()       # 24
Multiboot1MmapEntry = Struct(
    *Multiboot1MmapEntryFixed.subcons,
    "extra" / Bytes(this.size - MB1_MMAP_SIZE_FIELD),
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
MB2_TAG_OPTIONAL = 1           # header tag flags bit 0
MB2_TAG_HEADER_SIZE = 8         # before every tag's body: u16 type, u16 flags, u32 size (header tags);
                                # u32 type, u32 size (information tags)
MB2_CONSOLE_REQUIRED = 1 << 0              # console_flags tag: the console is required
MB2_CONSOLE_EGA_TEXT_SUPPORTED = 1 << 1     # console_flags tag: the kernel handles EGA text


class Mb2Architecture(Numbering):
    I386 = 0
    MIPS32 = 4


class Mb2HeaderTag(Numbering):
    """Multiboot 2 header tag types (what the kernel asks for)."""

    END = 0
    INFORMATION_REQUEST = 1
    ADDRESS = 2
    ENTRY_ADDRESS = 3
    CONSOLE_FLAGS = 4
    FRAMEBUFFER = 5
    MODULE_ALIGNMENT = 6
    EFI_BOOT_SERVICES = 7
    ENTRY_ADDRESS_EFI32 = 8
    ENTRY_ADDRESS_EFI64 = 9
    RELOCATABLE = 10


class Mb2RelocatablePreference(Numbering):
    NONE = 0
    LOW = 1
    HIGH = 2


Multiboot2HeaderFixed = Struct(
    "magic" / Const(MB2_MAGIC, Int32ul),   # 0
    "architecture" / Int32ul,              # 4
    "header_length" / Int32ul,             # 8 including the tags
    "checksum" / Int32ul,                  # 12 the four words sum to 0
)
MB2_HEADER_FIXED_SIZE = Multiboot2HeaderFixed.sizeof()                      # 16
MB2_HEADER_MIN_LENGTH = MB2_HEADER_FIXED_SIZE + MB2_TAG_HEADER_SIZE         # 24: the fixed part and the end tag

Multiboot2HeaderTagBody = Switch(this.type, {
    Mb2HeaderTag.INFORMATION_REQUEST: Struct("requests" / GreedyRange(Int32ul)),   # Mb2Tag numbers
    Mb2HeaderTag.ADDRESS: Struct("header_addr" / Int32ul, "load_addr" / Int32ul,
                                 "load_end_addr" / Int32ul, "bss_end_addr" / Int32ul),
    Mb2HeaderTag.ENTRY_ADDRESS: Struct("entry_addr" / Int32ul),
    Mb2HeaderTag.CONSOLE_FLAGS: Struct("console_flags" / Int32ul),   # bit0 required, bit1 EGA text
    Mb2HeaderTag.FRAMEBUFFER: Struct("width" / Int32ul, "height" / Int32ul, "depth" / Int32ul),
    Mb2HeaderTag.ENTRY_ADDRESS_EFI32: Struct("entry_addr" / Int32ul),
    Mb2HeaderTag.ENTRY_ADDRESS_EFI64: Struct("entry_addr" / Int32ul),
    Mb2HeaderTag.RELOCATABLE: Struct("min_addr" / Int32ul, "max_addr" / Int32ul, "align" / Int32ul,
                                     "preference" / Int32ul),
}, default=Struct("payload" / GreedyBytes))          # END, MODULE_ALIGNMENT, EFI_BOOT_SERVICES: empty

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
    "tags" / RepeatUntil(lambda tag, lst, ctx: tag["type"] == Mb2HeaderTag.END, Multiboot2HeaderTag),
)

# Boot information.

class Mb2Tag(Numbering):
    """Multiboot 2 boot information tag types (what the loader passes; also what
    an information_request header tag asks for)."""

    END = 0
    CMDLINE = 1
    BOOT_LOADER_NAME = 2
    MODULE = 3
    BASIC_MEMINFO = 4
    BOOTDEV = 5
    MMAP = 6
    VBE = 7
    FRAMEBUFFER = 8
    ELF_SECTIONS = 9
    APM = 10
    EFI32 = 11
    EFI64 = 12
    SMBIOS = 13
    ACPI_OLD = 14
    ACPI_NEW = 15
    NETWORK = 16
    EFI_MMAP = 17
    EFI_BS = 18
    EFI32_IH = 19
    EFI64_IH = 20
    LOAD_BASE_ADDR = 21


Multiboot2InfoFixed = Struct(
    "total_size" / Int32ul,        # 0 including this header and the end tag
    "reserved" / Int32ul,          # 4
)

# Tag 6 entry (after u32 entry_size, u32 entry_version); entry_size may be larger.
# Types are E820Type numbers.
Multiboot2MmapEntry = Struct(
    "base_addr" / Int64ul, "length" / Int64ul, "type" / Int32ul, "reserved" / Int32ul,
)
MB2_MMAP_ENTRY_STRUCT = struct_format(Multiboot2MmapEntry)
MB2_MMAP_ENTRY_SIZE = Multiboot2MmapEntry.sizeof()      # 24
MB2_MMAP_ENTRY_VERSION = 0
Multiboot2MmapHeader = Struct(
    "entry_size" / Int32ul,
    "entry_version" / Int32ul,
)
MB2_MMAP_HEADER_STRUCT = struct_format(Multiboot2MmapHeader)

Multiboot2InfoTagBody = Switch(this.type, {
    Mb2Tag.CMDLINE: Struct("string" / CStringBytes),
    Mb2Tag.BOOT_LOADER_NAME: Struct("string" / CStringBytes),
    Mb2Tag.MODULE: Struct("mod_start" / Int32ul, "mod_end" / Int32ul, "string" / CStringBytes),
    Mb2Tag.BASIC_MEMINFO: Struct("mem_lower" / Int32ul, "mem_upper" / Int32ul),
    Mb2Tag.BOOTDEV: Struct("biosdev" / Int32ul, "partition" / Int32ul, "sub_partition" / Int32ul),
    Mb2Tag.MMAP: Struct("entry_size" / Int32ul, "entry_version" / Int32ul,
              "entries" / GreedyRange(FixedSized(this.entry_size, Multiboot2MmapEntry))),
    Mb2Tag.VBE: Struct("vbe_mode" / Int16ul, "vbe_interface_seg" / Int16ul,
              "vbe_interface_off" / Int16ul, "vbe_interface_len" / Int16ul,
              "vbe_control_info" / Bytes(512), "vbe_mode_info" / Bytes(256)),
    Mb2Tag.FRAMEBUFFER: Struct("framebuffer_addr" / Int64ul, "framebuffer_pitch" / Int32ul,     # +8
              "framebuffer_width" / Int32ul, "framebuffer_height" / Int32ul,   # +20
              "framebuffer_bpp" / Int8ul, "framebuffer_type" / Int8ul,         # +28
              "reserved" / Int16ul,                                            # +30
              "color_info" / GreedyBytes),                                     # +32
    Mb2Tag.ELF_SECTIONS: Struct("num" / Int32ul, "entsize" / Int32ul, "shndx" / Int32ul,
              "sections" / GreedyBytes),                                       # +20
    Mb2Tag.APM: ApmTable,
    Mb2Tag.EFI32: Struct("pointer" / Int32ul),
    Mb2Tag.EFI64: Struct("pointer" / Int64ul),
    Mb2Tag.SMBIOS: Struct("major" / Int8ul, "minor" / Int8ul, "reserved" / Bytes(6), "tables" / GreedyBytes),
    Mb2Tag.ACPI_OLD: Struct("rsdp" / GreedyBytes),
    Mb2Tag.ACPI_NEW: Struct("rsdp" / GreedyBytes),
    Mb2Tag.NETWORK: Struct("dhcpack" / GreedyBytes),
    Mb2Tag.EFI_MMAP: Struct("descr_size" / Int32ul, "descr_vers" / Int32ul, "map" / GreedyBytes),
    Mb2Tag.EFI32_IH: Struct("pointer" / Int32ul),
    Mb2Tag.EFI64_IH: Struct("pointer" / Int64ul),
    Mb2Tag.LOAD_BASE_ADDR: Struct("load_base_addr" / Int32ul),
}, default=Struct("payload" / GreedyBytes))          # 0, 18: empty; unknown: raw

# Framebuffer colour info (tag 8 at +32): indexed palettes or RGB fields.
Multiboot2Palette = Struct(
    "num_colors" / Int16ul,
    "colors" / Array(this.num_colors, Struct("red" / Int8ul, "green" / Int8ul, "blue" / Int8ul)),
)

Multiboot2InfoTagHeader = Struct(
    "type" / Int32ul,                                 # 0
    "size" / Int32ul,                                 # 4 without padding
)
Multiboot2InfoTag = Struct(
    *Multiboot2InfoTagHeader.subcons,
    "body" / FixedSized(this.size - MB2_TAG_HEADER_SIZE, Multiboot2InfoTagBody),
    "padding" / Bytes(-this.size % 8),
)

Multiboot2Info = Struct(
    "fixed" / Multiboot2InfoFixed,
    "tags" / RepeatUntil(lambda tag, lst, ctx: tag["type"] == Mb2Tag.END, Multiboot2InfoTag),
)

# ---------------------------------------------------------------- ELF (the parts loaders read)

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
ET_EXEC, ET_DYN = 2, 3


class ElfMachine(Numbering):
    """e_machine values bootforge meets (System V gABI; binutils include/elf/common.h)."""

    def _default_label(self):
        return self.name.lower().replace("_", "-")

    I386 = 3
    ARM = 40
    X86_64 = 62
    AARCH64 = 183
    RISCV = 243
    LOONGARCH = 258


EM_386, EM_X86_64 = ElfMachine.I386, ElfMachine.X86_64      # the gABI spellings the verdicts use


class ElfSegmentType(Numbering):
    """p_type; labels as readelf prints them."""

    def _default_label(self):
        return self.name

    NULL = 0
    LOAD = 1
    DYNAMIC = 2
    INTERP = 3
    NOTE = 4
    SHLIB = 5
    PHDR = 6
    TLS = 7
    GNU_EH_FRAME = 0x6474E550
    GNU_STACK = 0x6474E551
    GNU_RELRO = 0x6474E552
    GNU_PROPERTY = 0x6474E553


PT_LOAD = ElfSegmentType.LOAD
PF_X, PF_W, PF_R = 0x1, 0x2, 0x4        # p_flags


class ElfSectionType(Numbering):
    """sh_type; labels as readelf prints them."""

    def _default_label(self):
        return self.name

    NULL = 0
    PROGBITS = 1
    SYMTAB = 2
    STRTAB = 3
    RELA = 4
    HASH = 5
    DYNAMIC = 6
    NOTE = 7
    NOBITS = 8
    REL = 9
    SHLIB = 10
    DYNSYM = 11
    INIT_ARRAY = 14
    FINI_ARRAY = 15
    PREINIT_ARRAY = 16
    GROUP = 17
    SYMTAB_SHNDX = 18


SHT_PROGBITS, SHT_REL, SHT_RELA = ElfSectionType.PROGBITS, ElfSectionType.REL, ElfSectionType.RELA


class ElfSectionFlag(Numbering):
    """sh_flags bits loaders act on."""

    WRITE = 0x1
    ALLOC = 0x2
    EXECINSTR = 0x4


SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = ElfSectionFlag.WRITE, ElfSectionFlag.ALLOC, ElfSectionFlag.EXECINSTR

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

Elf32Sym = Struct(             # 16 bytes (a GRUB module's .symtab entries)
    "st_name" / Int32ul, "st_value" / Int32ul, "st_size" / Int32ul, "st_info" / Int8ul,
    "st_other" / Int8ul, "st_shndx" / Int16ul,
)
Elf32Rel = Struct(             # 8 bytes (SHT_REL: r_info = symbol << 8 | type)
    "r_offset" / Int32ul, "r_info" / Int32ul,
)

ELF_LAYOUTS = {
    ELFCLASS32: (Elf32Ehdr, Elf32Phdr, Elf32Shdr),
    ELFCLASS64: (Elf64Ehdr, Elf64Phdr, Elf64Shdr),
}
