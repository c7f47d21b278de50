"""Syslinux 6.04 mboot.c32 as a Multiboot1 loader (com32/mboot/mboot.c, map.c):
it gunzips the kernel (zloadfile), boots any ELF32 with or without a header."""

from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import _u32, decode_mb1, mb1_header_length, scan
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

SOURCE = "Syslinux 6.04 com32/mboot/mboot.c, map.c"


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
    elf_ok = (len(data) >= 52 and data[:7] == b"\x7fELF\x01\x01\x01"
              and int.from_bytes(data[18:20], "little") in (3, 6, 62)
              and _u32(data, 20) == 1 and 52 <= int.from_bytes(data[40:42], "little") < len(data)
              and int.from_bytes(data[42:44], "little") >= 32 and int.from_bytes(data[44:46], "little")
              and _u32(data, 28) + int.from_bytes(data[42:44], "little")
              * int.from_bytes(data[44:46], "little") <= len(data))
    if elf_ok:
        msg = "loads the ELF32 segments at p_paddr"
        if mbh is None:
            msg += " (no Multiboot header: mboot.c32 boots it anyway)"
        return accept(name, msg)
    if mbh and mbh["aout_kludge"]:
        return accept(name, f"loads the a.out kludge image at {mbh['addresses']['load_addr']:#x}")
    return refuse(name, "Invalid Multiboot image: neither ELF header nor a.out kludge found")
