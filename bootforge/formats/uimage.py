"""U-Boot's legacy image header ("uImage") and the numberings it shares with FIT.

Source: u-boot include/image.h (struct legacy_img_hdr, the IH_* enums) and
boot/image.c (uimage_os, uimage_arch, uimage_type, uimage_comp: the names mkimage
-l prints, and the short names FIT properties use). Big-endian. ih_hcrc is the
CRC32 of the 64-byte header with ih_hcrc zero; ih_dcrc the CRC32 of the ih_size
data bytes after it. A multi-file image (IH_TYPE_MULTI) starts its data with a
list of big-endian u32 sizes ending in 0, each file padded to 4 bytes.
"""

from construct import Bytes, Int8ub, Int32ub, Struct

from bootforge.formats import Numbering

UIMAGE_MAGIC = 0x27051956
UIMAGE_HEADER_SIZE = 64
UIMAGE_NAME_LEN = 32
UIMAGE_HCRC_OFFSET = 4

LegacyImageHeader = Struct(
    "magic" / Int32ub,
    "hcrc" / Int32ub,           # header CRC32 (computed with this field zero)
    "time" / Int32ub,           # creation time, seconds since the epoch
    "size" / Int32ub,           # data size
    "load" / Int32ub,           # load address
    "ep" / Int32ub,             # entry point
    "dcrc" / Int32ub,           # data CRC32
    "os" / Int8ub,              # UImageOs
    "arch" / Int8ub,            # UImageArch
    "type" / Int8ub,            # UImageType
    "comp" / Int8ub,            # UImageCompression
    "name" / Bytes(UIMAGE_NAME_LEN),
)


class _UBootTable(Numbering):
    """Columns: mkimage's long name (label) and the short name FIT and `mkimage -A/-O/-T/-C` use."""
    _columns = ("label", "fit_name")

    @classmethod
    def by_fit_name(cls):
        return {m.fit_name: m for m in cls._members if m.fit_name}


class UImageOs(_UBootTable):
    INVALID = 0, "Invalid OS", "invalid"
    OPENBSD = 1, "OpenBSD", "openbsd"
    NETBSD = 2, "NetBSD", "netbsd"
    FREEBSD = 3, "FreeBSD", "freebsd"
    BSD4_4 = 4, "4_4BSD", "4_4bsd"
    LINUX = 5, "Linux", "linux"
    SVR4 = 6, "SVR4", "svr4"
    ESIX = 7, "Esix", "esix"
    SOLARIS = 8, "Solaris", "solaris"
    IRIX = 9, "Irix", "irix"
    SCO = 10, "SCO", "sco"
    DELL = 11, "Dell", "dell"
    NCR = 12, "NCR", "ncr"
    LYNXOS = 13, "LynxOS", "lynxos"
    VXWORKS = 14, "VxWorks", "vxworks"
    PSOS = 15, "pSOS", "psos"
    QNX = 16, "QNX", "qnx"
    U_BOOT = 17, "U-Boot", "u-boot"
    RTEMS = 18, "RTEMS", "rtems"
    ARTOS = 19, "ARTOS", "artos"
    UNITY = 20, "Unity OS", "unity"
    INTEGRITY = 21, "INTEGRITY", "integrity"
    OSE = 22, "Enea OSE", "ose"
    PLAN9 = 23, "Plan 9", "plan9"
    OPENRTOS = 24, "OpenRTOS", "openrtos"
    ARM_TRUSTED_FIRMWARE = 25, "ARM Trusted Firmware", "arm-trusted-firmware"
    TEE = 26, "Trusted Execution Environment", "tee"
    OPENSBI = 27, "RISC-V OpenSBI", "opensbi"
    EFI = 28, "EFI Firmware", "efi"


class UImageArch(_UBootTable):
    INVALID = 0, "Invalid ARCH", "invalid"
    ALPHA = 1, "Alpha", "alpha"
    ARM = 2, "ARM", "arm"
    I386 = 3, "Intel x86", "x86"
    IA64 = 4, "IA64", "ia64"
    MIPS = 5, "MIPS", "mips"
    MIPS64 = 6, "MIPS 64 Bit", "mips64"
    PPC = 7, "PowerPC", "powerpc"
    S390 = 8, "IBM S390", "s390"
    SH = 9, "SuperH", "sh"
    SPARC = 10, "SPARC", "sparc"
    SPARC64 = 11, "SPARC 64 Bit", "sparc64"
    M68K = 12, "M68K", "m68k"
    MICROBLAZE = 14, "MicroBlaze", "microblaze"
    NIOS2 = 15, "NIOS II", "nios2"
    BLACKFIN = 16, "Blackfin", "blackfin"
    AVR32 = 17, "AVR32", "avr32"
    ST200 = 18, "STMicroelectronics ST200", "st200"
    SANDBOX = 19, "Sandbox", "sandbox"
    NDS32 = 20, "NDS32", "nds32"
    OPENRISC = 21, "OpenRISC 1000", "or1k"
    ARM64 = 22, "AArch64", "arm64"
    ARC = 23, "ARC", "arc"
    X86_64 = 24, "AMD x86_64", "x86_64"
    XTENSA = 25, "Xtensa", "xtensa"
    RISCV = 26, "RISC-V", "riscv"


class UImageType(_UBootTable):
    INVALID = 0, "Invalid Image", "invalid"
    STANDALONE = 1, "Standalone Program", "standalone"
    KERNEL = 2, "Kernel Image", "kernel"
    RAMDISK = 3, "RAMDisk Image", "ramdisk"
    MULTI = 4, "Multi-File Image", "multi"
    FIRMWARE = 5, "Firmware", "firmware"
    SCRIPT = 6, "Script File", "script"
    FILESYSTEM = 7, "Filesystem Image", "filesystem"
    FLATDT = 8, "Flat Device Tree", "flat_dt"
    KERNEL_NOLOAD = 14, "Kernel Image (no loading done)", "kernel_noload"
    X86_SETUP = 20, "x86 setup.bin", "x86_setup"
    LOADABLE = 22, "The loadable", "loadable"
    FPGA = 29, "FPGA Image", "fpga"
    TEE = 31, "Trusted Execution Environment Image", "tee"
    FDT_LEGACY = 42, "legacy Image with Flat Device Tree", "fdt_legacy"


class UImageCompression(_UBootTable):
    NONE = 0, "uncompressed", "none"
    GZIP = 1, "gzip compressed", "gzip"
    BZIP2 = 2, "bzip2 compressed", "bzip2"
    LZMA = 3, "lzma compressed", "lzma"
    LZO = 4, "lzo compressed", "lzo"
    LZ4 = 5, "lz4 compressed", "lz4"
    ZSTD = 6, "zstd compressed", "zstd"


# FIT (doc/usage/fit/source_file_format.rst): a DTB whose root has /images and
# /configurations; external data (mkimage -E) follows the DTB at
# ALIGN(totalsize, 4) + data-offset, or at data-position from the file's start.
FIT_EXTERNAL_ALIGN = 4
FIT_HASH_SIZES = {"crc32": 4, "md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
