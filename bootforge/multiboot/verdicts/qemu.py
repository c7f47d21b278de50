"""QEMU 7.2 -kernel as a Multiboot1 loader (hw/i386/multiboot.c, hw/i386/x86.c):
it scans the first 8 KiB of the file as given (no decompression)."""

from bootforge.formats import multiboot as fmt
from bootforge.formats.multiboot import ElfIdent
from bootforge.multiboot.headers import _u32, decode_mb1, rejected_mb1, rejection_text, scan
from bootforge.multiboot.verdicts import accept, is_linux_bzimage, kernel_loader, refuse

SOURCE = "QEMU 7.2 hw/i386/multiboot.c, hw/i386/x86.c"
E_MACHINE_AT = ElfIdent.sizeof() + 2        # e_machine follows e_ident and e_type (Elf32Ehdr, Elf64Ehdr)


def _elf_machine(data):
    """e_machine as QEMU reads it (before it knows whether the file is an ELF at all)."""
    return int.from_bytes(data[E_MACHINE_AT:E_MACHINE_AT + 2], "little")


@kernel_loader("qemu-mb1", "multiboot1", reads="as-given", source=SOURCE)
def qemu_mb1(data, compressed=None):
    name = "qemu-mb1"
    if is_linux_bzimage(data):
        return refuse(name, "not Multiboot: QEMU boots it with the Linux boot protocol (HdrS at 0x202)",
                      words=None, protocol="linux")
    head = data[:8192].ljust(8192, b"\0")
    found = None
    for i in scan(head, fmt.MB1_MAGIC, 4, 8192 - 48):
        if (fmt.MB1_MAGIC + _u32(head, i + 4) + _u32(head, i + 8)) & 0xFFFFFFFF == 0:
            found = i
            break
    if found is None:
        rejected = rejected_mb1(data, 8192 - 48)
        if data[:4] == fmt.ELF_MAGIC:
            words = "Error loading uncompressed kernel without PVH ELF Note"
            # QEMU's scan wants the magic and a zero sum; a magic without it is not Multiboot to QEMU.
            return refuse(name, f"{words} (not Multiboot to QEMU: {rejection_text(rejected)})"
                          if rejected else words, words=words)
        # No error from QEMU here: it falls back to loading the bytes as a pre-2.00 Linux zImage.
        why = f"QEMU does not decompress {compressed}; " if compressed else ""
        return refuse(name, f"no multiboot header found ({why}QEMU loads the bytes as an old Linux zImage "
                      "that does not start)", words=None)
    hdr = decode_mb1(head, found)
    notes = []
    if hdr["video_mode"]:
        notes.append("qemu: multiboot knows VBE. we don't.")
    if hdr["aout_kludge"]:
        a = hdr["addresses"]
        if a["header_addr"] < a["load_addr"]:
            return refuse(name, "invalid load_addr address")
        if a["header_addr"] - a["load_addr"] > found:
            return refuse(name, "invalid header_addr address")
        text_offset = found - (a["header_addr"] - a["load_addr"])
        if a["load_end_addr"]:
            if a["load_end_addr"] < a["load_addr"]:
                return refuse(name, "invalid load_end_addr address")
            size = a["load_end_addr"] - a["load_addr"]
        else:
            if len(data) < text_offset:
                return refuse(name, "invalid kernel_file_size")
            size = len(data) - text_offset
        if a["bss_end_addr"] and a["bss_end_addr"] < a["load_addr"] + size:
            return refuse(name, "invalid bss_end_addr address")
        return accept(name, f"loads the a.out kludge image at {a['load_addr']:#x}", notes=notes)
    if len(data) > E_MACHINE_AT + 2 and _elf_machine(data) == fmt.EM_X86_64:
        return refuse(name, "Cannot load x86-64 image, give a 32bit one.")
    if data[:4] != fmt.ELF_MAGIC or data[4] != fmt.ELFCLASS32 or _elf_machine(data) != fmt.EM_386:
        return refuse(name, "Error while loading elf kernel")
    return accept(name, "loads the ELF32 segments (multiboot option ROM, MBI at 0x9500)", notes=notes)
