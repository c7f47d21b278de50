"""QEMU 7.2 -kernel as a Multiboot1 loader (hw/i386/multiboot.c, hw/i386/x86.c):
it scans the first 8 KiB of the file as given (no decompression)."""

from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.formats.multiboot import ElfIdent
from bootforge.multiboot.headers import _u32, decode_mb1, read_elf, rejected_mb1, rejection_text, scan
from bootforge.multiboot.verdicts import accept, is_linux_bzimage, kernel_loader, refuse

SOURCE = "QEMU 7.2 hw/i386/multiboot.c, hw/i386/x86.c"
E_MACHINE_AT = ElfIdent.sizeof() + 2        # e_machine follows e_ident and e_type (Elf32Ehdr, Elf64Ehdr)
# The pc machine's BIOS is a ROM blob at 4 GiB - its size: Debian's SeaBIOS bios-256k.bin, 262144 bytes.
BIOS_ROM = (0x1_0000_0000 - 0x40000, 0x40000)
U32 = 0xFFFFFFFF
LOAD_FAILED = "Error while loading elf kernel"
FETCH_FAILED = "Error while fetching elf kernel from rom"
ROMS_OVERLAP = "Some ROM regions are overlapping"


def _elf_machine(data):
    """e_machine as QEMU reads it (before it knows whether the file is an ELF at all)."""
    return int.from_bytes(data[E_MACHINE_AT:E_MACHINE_AT + 2], "little")


def elf_roms(data):
    """The ROM blobs QEMU 7.2's load_elf32 makes of an ELF32 kernel: [(paddr, mem_size, file_size)]
    in address order (rom_insert sorts them), or the reason load_elf fails.

    Rules (include/hw/elf_ops.h, hw/i386/multiboot.c; each observed with qemu-system-i386 7.2
    on the Multiboot 1 dump kernel so patched, tests/test_qemu_mb1_elf.py):
    - a PT_LOAD whose file bytes run past the end of the file fails;
    - a zero-filled tail [paddr + filesz, paddr + memsz) that overlaps another PT_LOAD (32-bit
      ends, which wrap) is not loaded: mem_size becomes filesz;
    - the sum of the mem_sizes, taken by load_multiboot as an int, must not be negative;
    - segments of mem_size 0 make no ROM."""
    try:
        facts = read_elf(data)
    except FormatError as exc:
        return None, exc.message
    loads = [g for g in facts.segments if g.type == fmt.PT_LOAD]
    roms, total = [], 0
    for g in loads:
        if g.filesz > g.memsz:
            return None, f"segment {g.index}: p_filesz {g.filesz:#x} > p_memsz {g.memsz:#x}"
        if g.filesz and g.offset + g.filesz > len(data):
            return None, f"segment {g.index}'s file bytes [{g.offset:#x}, {g.offset + g.filesz:#x}) run past the end " \
                         f"of the file ({len(data):#x} bytes)"
        mem = g.memsz
        if mem > g.filesz:
            zero_start, zero_end = (g.paddr + g.filesz) & U32, (g.paddr + g.memsz) & U32
            for o in loads:
                if o is not g and not (o.paddr >= zero_end or zero_start >= (o.paddr + o.memsz) & U32):
                    mem = g.filesz
                    break
        total += mem
        if mem:
            roms.append((g.paddr, mem, g.filesz))
    if (total & U32) >= 0x8000_0000:
        return None, f"the segments' {total:#x} bytes are a negative int to load_multiboot"
    return sorted(roms, key=lambda r: r[0]), None


def elf_extent(roms):
    """load_elf's (elf_low, elf_high) as load_multiboot uses them: the blob is elf_high - elf_low
    bytes (a uint32) from elf_low."""
    low = min(a for a, _m, _f in roms)
    return low, low + ((max(a + m for a, m, _f in roms) - low) & U32)


def _rom_copy(roms, low, size):
    """What hw/core/loader.c rom_copy() does copying [low, low + size) from every ROM blob in address
    order (the kernel's and the BIOS): "short" when the count it returns (the end of the last ROM it
    took) is not *size*, "crash" when a ROM's bytes run past the end (its length becomes dest - d,
    a size_t: memcpy runs off the buffer; qemu-system-i386 7.2 so patched died of SIGSEGV), None
    when it copies the whole image."""
    d = l = 0
    for addr, mem, filesz in roms:
        if addr + mem < low:
            continue
        if addr > low + size or addr < low:
            break
        d, l = addr - low, filesz
        if d + l > size:
            return "crash"
        if mem > filesz:
            d, l = d + l, mem - filesz
            if d + l > size:
                return "crash"
    return "short" if d + l != size else None


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
        return refuse(name, LOAD_FAILED)
    roms, why = elf_roms(data)
    if why:
        return refuse(name, f"{LOAD_FAILED} ({why})", words=LOAD_FAILED)
    if not roms:
        return refuse(name, f"{FETCH_FAILED} (no PT_LOAD segment with bytes)", words=FETCH_FAILED)
    low, high = elf_extent(roms)
    blobs = sorted(roms + [(*BIOS_ROM, BIOS_ROM[1])], key=lambda r: r[0])
    copied = _rom_copy(blobs, low, high - low)
    if copied == "short":
        return refuse(name, f"{FETCH_FAILED} (the segment at the highest address does not end at the "
                      f"image's end {high:#x}: they overlap)", words=FETCH_FAILED)
    if copied == "crash":
        return refuse(name, f"QEMU crashes (SIGSEGV in rom_copy): the kernel image [{low:#x}, {high:#x}) "
                      f"takes in part of the BIOS ROM at {BIOS_ROM[0]:#x}", words=None)
    end = 0
    for addr, mem, _f in blobs:
        if addr < end:
            return refuse(name, f"{ROMS_OVERLAP} (the ROM at {addr:#x} starts inside the one before it, which "
                          f"ends at {end:#x}; the BIOS is at {BIOS_ROM[0]:#x})", words=ROMS_OVERLAP)
        end = max(end, addr + mem)
    return accept(name, "loads the ELF32 segments (multiboot option ROM, MBI at 0x9500)", notes=notes)
