"""GRUB i386-pc core images: what grub-mkimage -O i386-pc / i386-pc-eltorito writes.

    [cdboot.img, 2048 bytes: i386-pc-eltorito only]
    diskboot.img, 512 bytes: its last 12 bytes a GrubBlocklist (formats/mbr.py) whose
        length is the sectors of what follows
    lzma_decompress.img, patched: u32 at 0x08 the compressed size, u32 at 0x0c the
        uncompressed size (include/grub/offsets.h GRUB_DECOMPRESSOR_I386_PC_*)
    a raw LZMA1 stream (lc 3, lp 0, pb 2; no header) of:
        kernel.img's PROGBITS sections at their address - 0x9000
        grub_module_info32 ("mimg", offset of the first object, size of the area)
        one grub_module_header (type, size incl. header) + the object, 4-byte aligned, per
        object: the modules (OBJ_TYPE_ELF), the early configuration (OBJ_TYPE_CONFIG, with
        a NUL), the prefix (OBJ_TYPE_PREFIX, with a NUL)

Sources: GRUB 2.06 util/mkimage.c (grub_install_generate_image, compress_kernel_lzma),
include/grub/kernel.h (struct grub_module_info32, struct grub_module_header, the OBJ_TYPE
numbering), include/grub/offsets.h, grub-core/boot/i386/pc/startup_raw.S (the fields
lzma_decompress.img reads); checked against Debian 12's grub-mkimage 2.06-13 output.
"""

from construct import Const, Int32ul, Struct

from bootforge.formats import Numbering, struct_format

LINK_ADDR = 0x9000                  # GRUB_KERNEL_I386_PC_LINK_ADDR: kernel.img's first byte
MAX_DECOMPRESSOR = 0x9000 - 0x8200  # GRUB_DECOMPRESSOR_I386_PC_MAX_DECOMPRESSOR_SIZE
CORE_LIMIT = 0x78000                # mkimage: LINK_ADDR + core size above this is "too big"
KERNEL_LIMIT = 0x68000              # mkimage: LINK_ADDR + kernel + bss above this is "too big"
MAX_SECTORS = 0xFFFF                # mkimage: the blocklist's u16 length
CDBOOT_SIZE = 2048
DISKBOOT_SIZE = 512
# lzma_decompress.img's patched fields (offsets.h GRUB_DECOMPRESSOR_I386_PC_COMPRESSED_SIZE,
# _UNCOMPRESSED_SIZE).
DECOMPRESSOR_COMPRESSED_SIZE = 0x08
DECOMPRESSOR_UNCOMPRESSED_SIZE = 0x0C
# compress_kernel_lzma's properties: GRUB's decoder (grub-core/boot/i386/pc/lzma_decode.S)
# knows only these lc/lp/pb; the dictionary is the output buffer itself.
LZMA_LC, LZMA_LP, LZMA_PB = 3, 0, 2
LZMA_DICT = 1 << 16
OBJECT_ALIGN = 4                    # ALIGN_ADDR: voidp_sizeof of a 32-bit target

MODULE_INFO_MAGIC = 0x676D696D      # "mimg"
GrubModuleInfo32 = Struct(          # 12 bytes, right after kernel.img's sections
    "magic" / Const(MODULE_INFO_MAGIC, Int32ul),
    "offset" / Int32ul,             # of the first object header, from the magic (12)
    "size" / Int32ul,               # of the whole module area, this struct included
)
GrubModuleHeader = Struct(          # 8 bytes before each object
    "type" / Int32ul,               # GrubObjectType
    "size" / Int32ul,               # of the object, this header included
)
GRUB_MODULE_HEADER_STRUCT = struct_format(GrubModuleHeader)     # one per module: packed in a loop


class GrubObjectType(Numbering):
    """The object types of include/grub/kernel.h (GRUB 2.06); labels as the header spells them."""
    ELF = 0, "OBJ_TYPE_ELF"
    MEMDISK = 1, "OBJ_TYPE_MEMDISK"
    CONFIG = 2, "OBJ_TYPE_CONFIG"
    PREFIX = 3, "OBJ_TYPE_PREFIX"
    PUBKEY = 4, "OBJ_TYPE_PUBKEY"
    DTB = 5, "OBJ_TYPE_DTB"
    DISABLE_SHIM_LOCK = 6, "OBJ_TYPE_DISABLE_SHIM_LOCK"
