"""iPXE (Debian's 1.0.0+git-20190125 pxe-e1000.rom) as a Multiboot1 loader:
src/arch/x86/image/multiboot.c and src/image/elf.c of that tree. It takes the file as
fetched (this iPXE has no gzip image support), finds the header in the first 8 KiB, refuses
compulsory flags it lacks (bits 3-15), tries the ELF path first and the a.out kludge only
when the ELF path fails (the reverse of GRUB: "grub will use the ELF header if present",
multiboot.c). Its words reach only the VGA screen."""

from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import _u32, decode_mb1, scan
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

SOURCE = "iPXE 1.0.0+git-20190125 src/arch/x86/image/multiboot.c, src/image/elf.c"
HEADER_SIZE = 48                # struct multiboot_header (magic .. depth)
SUPPORTED_FLAGS = 0x1 | 0x2 | 0x4 | 0x10000     # MB_FLAG_PGALIGN, MEMMAP, VIDMODE, RAW
NOT_RECOGNISED = "Could not select: Exec format error"
NOT_SUPPORTED = "Could not boot: Operation not supported"
EXEC_FORMAT = "Could not boot: Exec format error"


def _elf_loads(data):
    """elf.c elf_load on an i386 build: ELF32 signature, every program header inside the
    image, each PT_LOAD's file bytes inside it and a nonzero destination, an entry found
    in a segment. None when it loads, else why not."""
    if data[:4] != fmt.ELF_MAGIC or len(data) < fmt.Elf32Ehdr.sizeof() or data[4] != fmt.ELFCLASS32:
        return "no ELF32 signature"
    e = fmt.Elf32Ehdr.parse(data[:fmt.Elf32Ehdr.sizeof()])
    entry = 0
    for i in range(e.e_phnum):
        at = e.e_phoff + i * e.e_phentsize
        if at > len(data) or at + fmt.Elf32Phdr.sizeof() > len(data):
            return f"program header {i} outside the image"
        p = fmt.Elf32Phdr.parse(data[at:at + fmt.Elf32Phdr.sizeof()])
        if p.p_type != fmt.PT_LOAD:
            continue
        if p.p_offset + p.p_filesz > len(data):
            return f"segment {i} outside the image"
        dest = p.p_paddr or p.p_vaddr
        if not dest:
            return f"segment {i} loads to physical address 0"
        if p.p_vaddr <= e.e_entry < p.p_vaddr + p.p_filesz:
            entry = e.e_entry - p.p_vaddr + dest
    if not entry:
        return "entry point outside the image"
    return None


@kernel_loader("ipxe-mb1", "multiboot1", reads="as-given", source=SOURCE)
def ipxe_mb1(data, compressed=None):
    name = "ipxe-mb1"
    found = None
    for off in scan(data, fmt.MB1_MAGIC, 4, 8192):
        if off + HEADER_SIZE > len(data):
            break
        if (fmt.MB1_MAGIC + _u32(data, off + 4) + _u32(data, off + 8)) & 0xFFFFFFFF == 0:
            found = off
            break
    if found is None:
        why = f"iPXE does not decompress {compressed}: " if compressed else ""
        return refuse(name, f"{NOT_RECOGNISED} ({why}no multiboot header in the first 8 KiB)", words=NOT_RECOGNISED)
    hdr = decode_mb1(data, found)
    unsupported = hdr["flags"] & 0xFFFF & ~SUPPORTED_FLAGS
    if unsupported:
        return refuse(name, f"{NOT_SUPPORTED} (compulsory flags {unsupported:#x})", words=NOT_SUPPORTED)
    elf_error = _elf_loads(data)
    if elf_error is None:
        return accept(name, "loads the ELF32 segments at p_paddr" + (" (the ELF path first: the a.out kludge is not used)"
                                                                        if hdr["aout_kludge"] else ""))
    if not hdr["aout_kludge"] or not hdr.get("addresses"):
        return refuse(name, f"{EXEC_FORMAT} (ELF: {elf_error}; no a.out kludge)", words=EXEC_FORMAT)
    a = hdr["addresses"]
    if a["load_addr"] > a["header_addr"] or a["header_addr"] - a["load_addr"] > found:
        return refuse(name, "Could not boot: Invalid argument (misplaced header)", words="Invalid argument")
    return accept(name, f"loads the a.out kludge image at {a['load_addr']:#x} (ELF: {elf_error})")
