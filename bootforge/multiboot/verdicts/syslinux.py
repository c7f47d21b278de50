"""Syslinux 6.04 mboot.c32 as a Multiboot1 loader (com32/mboot/mboot.c, map.c):
it gunzips the kernel (zloadfile), boots any ELF32 with or without a header."""

from bootforge.formats import multiboot as fmt
from bootforge.formats.multiboot import Elf32Ehdr, Elf32Phdr, ElfMachine
from bootforge.multiboot.headers import _u32, decode_mb1, mb1_header_length, scan
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

SOURCE = "Syslinux 6.04 com32/mboot/mboot.c, map.c"
ELF32_LE_CURRENT = fmt.ELF_MAGIC + bytes((fmt.ELFCLASS32, fmt.ELFDATA2LSB, 1))    # e_ident, EV_CURRENT 1
EM_486 = 6                                                           # elf.h; mboot.c accepts it beside EM_386
MACHINES = (ElfMachine.I386, EM_486, ElfMachine.X86_64)


def _elf32_ok(data):
    """mboot.c map_image(): the ELF32 header checks before it walks the program headers."""
    if len(data) < Elf32Ehdr.sizeof() or data[:len(ELF32_LE_CURRENT)] != ELF32_LE_CURRENT:
        return False
    e = Elf32Ehdr.parse(data[:Elf32Ehdr.sizeof()])
    return (e.e_machine in MACHINES and e.e_version == 1
            and Elf32Ehdr.sizeof() <= e.e_ehsize < len(data)
            and e.e_phentsize >= Elf32Phdr.sizeof() and e.e_phnum
            and e.e_phoff + e.e_phentsize * e.e_phnum <= len(data))


@kernel_loader("syslinux-mb1", "multiboot1", reads="gunzipped", source=SOURCE)
def syslinux_mb1(data, compressed=None):
    name = "syslinux-mb1"
    mbh = None
    for off in scan(data, fmt.MB1_MAGIC, 4, fmt.MB1_SEARCH):
        flags, checksum = _u32(data, off + 4), _u32(data, off + 8)
        if (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF:
            continue
        if off + mb1_header_length(flags) <= len(data):
            mbh = decode_mb1(data, off)
            break
    if mbh and mbh["unsupported_flags"]:
        return refuse(name, f"Unsupported Multiboot flags set: {mbh['unsupported_flags']:#x}")
    if _elf32_ok(data):
        msg = "loads the ELF32 segments at p_paddr"
        if mbh is None:
            msg += " (no Multiboot header: mboot.c32 boots it anyway)"
        return accept(name, msg)
    if mbh and mbh["aout_kludge"]:
        return accept(name, f"loads the a.out kludge image at {mbh['addresses']['load_addr']:#x}")
    return refuse(name, "Invalid Multiboot image: neither ELF header nor a.out kludge found")
