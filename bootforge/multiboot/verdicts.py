"""Per-loader verdicts: will this loader load this file as a Multiboot kernel, and if not, why.

Each check follows what the loader's code does (GRUB 2.06 multiboot*.c,
QEMU 7.2 hw/i386/multiboot.c, Syslinux 6.04 com32/mboot, Limine
common/protos/multiboot*.c) and refuses with the loader's own message.
The verdict is about the file as given: GRUB decompresses gzip/xz itself,
QEMU, Syslinux and Limine read the bytes as they are.
"""

from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import _u32, decode_mb1, find_mb1, find_mb2, mb1_header_length, read_elf, scan

LOADERS = ("grub-mb1", "grub-mb2", "qemu", "limine-mb1", "limine-mb2", "syslinux")

GRUB_INFO_REQUESTS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21}
GRUB_HEADER_TAGS = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
LIMINE_INFO_REQUESTS = {1, 2, 3, 4, 6, 8, 9, 13, 14, 15, 17, 12, 20, 21}
LIMINE_HEADER_TAGS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
FOUR_GIB = 1 << 32


def _no(message, **extra):
    return {"loads": False, "message": message, **extra}


def _yes(message="loads", **extra):
    return {"loads": True, "message": message, **extra}


def is_linux_bzimage(data):
    return len(data) > 0x206 and data[0x202:0x206] == b"HdrS"


# ------------------------------------------------------------------ shared ELF / kludge checks

def _grub_elf(elf, mbi_ver, data):
    """GRUB's grub_multiboot_load_elf{32,64}; None when it loads, else the message."""
    if data[:4] != fmt.ELF_MAGIC or len(data) < 6 or data[5] != 1:
        if len(data) > 4 and data[4] in (1, 2) and data[:4] == fmt.ELF_MAGIC:
            return "invalid arch-independent ELF magic"
        return "invalid arch-dependent ELF magic"
    if elf is None:
        return "invalid arch-dependent ELF magic"
    want = fmt.EM_386 if elf.ei_class == fmt.ELFCLASS32 else fmt.EM_X86_64
    if elf.machine != want or elf.version != 1:
        return "invalid arch-dependent ELF magic"
    if elf.type not in (fmt.ET_EXEC, fmt.ET_DYN):
        return "this ELF file is not of the right type"
    if elf.phoff + elf.phnum * elf.phentsize > fmt.MB1_SEARCH:
        return "program header at a too high offset"
    loads = [s for s in elf.loads]
    if elf.ei_class == fmt.ELFCLASS64 and loads and max(s.paddr + s.memsz for s in loads) >= FOUR_GIB:
        return "segment crosses 4 GiB border"
    chunks = sorted((s.paddr, s.paddr + s.memsz) for s in loads if s.memsz)
    for (a0, a1), (b0, b1) in zip(chunks, chunks[1:]):
        if b0 < a1:
            return "overlap detected"
    for s in elf.segments:
        if s.vaddr <= elf.entry < s.vaddr + s.memsz:
            if elf.ei_class == fmt.ELFCLASS64 and elf.entry - s.vaddr + s.paddr > 0xFFFFFFFF:
                return "invalid entry point for ELF64"
            break
    else:
        return "entry point isn't in a segment"
    if mbi_ver >= 2 and any(t in (fmt.SHT_REL, fmt.SHT_RELA) for t in elf.section_types):
        return "ELF files with relocs are not supported yet"
    return None


def _kludge_span(data, header_offset, header_addr, load_addr, load_end_addr):
    """(file offset, load size) GRUB computes for the a.out kludge / address tag, or a message."""
    offset = header_offset - (header_addr - load_addr)
    if header_addr < load_addr or offset < 0:
        return None, "header_addr below load_addr: no file offset to load from"
    size = (load_end_addr - load_addr) if load_end_addr else len(data) - offset
    if load_end_addr and load_end_addr < load_addr:
        return None, "load_end_addr below load_addr"
    if offset + size > len(data):
        return None, "premature end of file"
    return (offset, size), None


# ------------------------------------------------------------------ GRUB

def grub_mb1(data):
    head = data[:fmt.MB1_SEARCH]
    hdr = find_mb1(head)
    if hdr is None:
        return _no("no multiboot header found")
    if hdr["unsupported_flags"]:
        return _no(f"unsupported flag: {hdr['flags']:#x}")
    if hdr["aout_kludge"]:
        if hdr["truncated"]:
            return _no("premature end of file")
        a = hdr["addresses"]
        span, err = _kludge_span(data, hdr["offset"], a["header_addr"], a["load_addr"], a["load_end_addr"])
        if err:
            return _no(err)
        return _yes(f"loads the a.out kludge image at {a['load_addr']:#x}, entry {a['entry_addr']:#x}")
    return _grub_elf_verdict(data, 1, hdr)


def _grub_elf_verdict(data, mbi_ver, hdr):
    elf = None
    if data[:4] == fmt.ELF_MAGIC:
        try:
            elf = read_elf(data)
        except FormatError as exc:
            if "program headers" in exc.message:
                return _no("program header at a too high offset")
            return _no("invalid arch-dependent ELF magic")
    err = _grub_elf(elf, mbi_ver, data)
    if err:
        return _no(err)
    return _yes(f"loads ELF{elf.bits} segments at their p_paddr, entry {elf.entry:#x}")


def grub_mb2(data):
    if len(data) < 32:
        return _no("file too small")
    hdr = find_mb2(data[:fmt.MB2_SEARCH])
    if hdr is None:
        return _no("no multiboot header found")
    addr = entry = reloc = None
    for tag in hdr["tags"]:
        t = tag["type"]
        if t == 1 and not tag["optional"]:
            for r in tag["requests"]:
                if r not in GRUB_INFO_REQUESTS:
                    return _no(f"unsupported information tag: {r:#x}")
        elif t == 2:
            addr = tag
        elif t in (3, 8, 9):
            entry = entry or tag
        elif t == 10:
            reloc = tag
        elif t not in GRUB_HEADER_TAGS and not tag["optional"]:
            return _no(f"unsupported tag: {t:#x}")
    if addr and not entry:
        return _no("load address tag without entry address tag")
    if addr:
        span, err = _kludge_span(data, hdr["offset"], addr["header_addr"], addr["load_addr"],
                                 addr["load_end_addr"])
        if err:
            return _no(err)
        return _yes(f"loads the address-tag image at {addr['load_addr']:#x}")
    verdict = _grub_elf_verdict(data, 2, hdr)
    if verdict["loads"] and reloc:
        elf = read_elf(data)
        if not elf.loads:       # GRUB's link base stays ~0: the size wraps to 1 byte
            lo, hi = 0xFFFFFFFF, 0x100000000
        else:
            lo = min(s.paddr for s in elf.loads)
            hi = max(s.paddr + s.memsz for s in elf.loads)
        size = hi - lo
        if size > reloc["max_addr"] or reloc["min_addr"] > reloc["max_addr"] - size:
            return _no("invalid min/max address and/or load size")
        verdict["message"] += (f"; relocatable: {size:#x} bytes anywhere in "
                               f"[{reloc['min_addr']:#x}, {reloc['max_addr'] - size:#x}] "
                               f"aligned to {reloc['align']:#x}, preference {reloc['preference_name']}")
    return verdict


# ------------------------------------------------------------------ QEMU -kernel

def qemu(data, compressed=None):
    if is_linux_bzimage(data):
        return _no("not Multiboot: QEMU boots it with the Linux boot protocol (HdrS at 0x202)",
                   protocol="linux")
    head = data[:8192].ljust(8192, b"\0")
    found = None
    for i in scan(head, fmt.MB1_MAGIC, 4, 8192 - 48):
        if (fmt.MB1_MAGIC + _u32(head, i + 4) + _u32(head, i + 8)) & 0xFFFFFFFF == 0:
            found = i
            break
    if found is None:
        if data[:4] == fmt.ELF_MAGIC:
            return _no("Error loading uncompressed kernel without PVH ELF Note")
        # No error from QEMU here: it falls back to loading the bytes as a pre-2.00 Linux zImage.
        why = f"QEMU does not decompress {compressed}; " if compressed else ""
        return _no(f"no multiboot header found ({why}QEMU loads the bytes as an old Linux zImage "
                   "that does not start)")
    hdr = decode_mb1(head, found)
    notes = []
    if hdr["video_mode"]:
        notes.append("qemu: multiboot knows VBE. we don't.")
    if hdr["aout_kludge"]:
        a = hdr["addresses"]
        if a["header_addr"] < a["load_addr"]:
            return _no("invalid load_addr address")
        if a["header_addr"] - a["load_addr"] > found:
            return _no("invalid header_addr address")
        text_offset = found - (a["header_addr"] - a["load_addr"])
        if a["load_end_addr"]:
            if a["load_end_addr"] < a["load_addr"]:
                return _no("invalid load_end_addr address")
            size = a["load_end_addr"] - a["load_addr"]
        else:
            if len(data) < text_offset:
                return _no("invalid kernel_file_size")
            size = len(data) - text_offset
        if a["bss_end_addr"] and a["bss_end_addr"] < a["load_addr"] + size:
            return _no("invalid bss_end_addr address")
        return _yes(f"loads the a.out kludge image at {a['load_addr']:#x}", notes=notes)
    if len(data) > 20 and int.from_bytes(data[18:20], "little") == fmt.EM_X86_64:
        return _no("Cannot load x86-64 image, give a 32bit one.")
    if data[:4] != fmt.ELF_MAGIC or data[4] != fmt.ELFCLASS32 or \
            int.from_bytes(data[18:20], "little") != fmt.EM_386:
        return _no("Error while loading elf kernel")
    return _yes("loads the ELF32 segments (multiboot option ROM, MBI at 0x9500)", notes=notes)


# ------------------------------------------------------------------ Syslinux mboot.c32

def syslinux(data):
    mbh = None
    for off in scan(data, fmt.MB1_MAGIC, 4, fmt.MB1_SEARCH):
        flags, checksum = _u32(data, off + 4), _u32(data, off + 8)
        if (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF:
            continue
        if off + mb1_header_length(flags) <= len(data):
            mbh = decode_mb1(data, off)
            break
    if mbh and mbh["unsupported_flags"]:
        return _no(f"Unsupported Multiboot flags set: {mbh['unsupported_flags']:#x}")
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
        return _yes(msg)
    if mbh and mbh["aout_kludge"]:
        return _yes(f"loads the a.out kludge image at {mbh['addresses']['load_addr']:#x}")
    return _no("Invalid Multiboot image: neither ELF header nor a.out kludge found")


# ------------------------------------------------------------------ Limine

def limine_mb1(data):
    hits = scan(data, fmt.MB1_MAGIC, 4, fmt.MB1_SEARCH)
    if not hits:
        return _no("multiboot1: Invalid magic")
    off = hits[0]
    hdr = decode_mb1(data, off)
    if not hdr["checksum_ok"]:
        return _no("multiboot1: Header checksum is invalid")
    if hdr["aout_kludge"]:
        a = hdr["addresses"] or {}
        if not a:
            return _no("multiboot1: Header truncated")
        if a["load_addr"] > a["header_addr"]:
            return _no("multiboot1: Illegal load address")
        size = (a["load_end_addr"] - a["load_addr"]) if a["load_end_addr"] else len(data)
        if a["bss_end_addr"] and a["bss_end_addr"] < a["load_addr"] + size:
            return _no("multiboot1: Illegal bss end address")
        return _yes(f"loads the a.out kludge image at {a['load_addr']:#x}")
    return _limine_elf(data, "multiboot1")


def _limine_elf(data, proto):
    if data[:4] != fmt.ELF_MAGIC or len(data) < 5 or data[4] not in (1, 2):
        return _no(f"{proto}: Invalid ELF file bitness")
    bits = 32 if data[4] == 1 else 64
    try:
        elf = read_elf(data)
    except FormatError:
        return _no(f"{proto}: ELF{bits} load failure")
    loads = [s for s in elf.loads if s.memsz]
    if not loads:
        return _no(f"{proto}: ELF{bits} load failure")
    lo = min(s.paddr for s in loads)
    hi = max(s.paddr + s.memsz for s in loads)
    if hi > FOUR_GIB:
        return _no("Executable does not fit under 4GiB")
    if not any(s.vaddr <= elf.entry < s.vaddr + s.memsz for s in loads):
        return _no("Entry point is outside the executable")
    return _yes(f"loads ELF{bits} as one range [{lo:#x}, {hi:#x})")


def limine_mb2(data):
    hits = scan(data, fmt.MB2_MAGIC, 8, fmt.MB2_SEARCH)
    if not hits:
        return _no("no Multiboot2 header: Limine does not treat it as a multiboot2 kernel")
    off = hits[0]
    if off + 16 > len(data):
        return _no("multiboot2: Header checksum is invalid")
    arch, length, checksum = _u32(data, off + 4), _u32(data, off + 8), _u32(data, off + 12)
    if (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF:
        return _no("multiboot2: Header checksum is invalid")
    pos, end = off + 16, off + length
    addr = entry = None
    while pos + 8 <= min(end, len(data)):
        t = int.from_bytes(data[pos:pos + 2], "little")
        tflags = int.from_bytes(data[pos + 2:pos + 4], "little")
        size = _u32(data, pos + 4)
        if t == 0:
            break
        if size < 8 or pos + size > end:
            return _no("Header tag exceeds header bounds")
        body = data[pos + 8:pos + size]
        if t == 1 and not tflags & 1:
            for i in range(0, len(body) - 3, 4):
                r = _u32(body, i)
                if r not in LIMINE_INFO_REQUESTS:
                    return _no(f"multiboot2: Requested tag `{r}` which is not supported")
        elif t == 2:
            addr = body
        elif t == 3:
            entry = body
        elif t == 10 and len(body) >= 12 and _u32(body, 8) == 0:
            return _no("Relocatable tag has align=0")
        elif t not in LIMINE_HEADER_TAGS:
            return _no(f"multiboot2: Unknown header tag type: {t}")
        pos += size + (-size % 8)
    if addr is not None:
        if len(addr) < 16:
            return _no("Header tag exceeds header bounds")
        header_addr, load_addr = _u32(addr, 0), _u32(addr, 4)
        if load_addr > header_addr:
            return _no("multiboot2: Illegal load address")
        if entry is None:
            return _no("multiboot2: Using address tag but entry address tag missing")
        return _yes(f"loads the address-tag image at {load_addr:#x}")
    return _limine_elf(data, "multiboot2")


XZ_NOTE = ("; xz: only with `insmod xzio` in grub.cfg (grub-mkrescue images do not load it), "
           "otherwise GRUB says: no multiboot header found")


def _grub(verdict, compressed):
    if compressed == "xz" and verdict["loads"]:
        verdict["message"] += XZ_NOTE
        verdict["requires"] = "insmod xzio"
    return verdict


def verdicts(data, raw, compressed=None):
    """{loader: {loads, message}} for the file as given (*data*) and as GRUB sees it (*raw*)."""
    return {
        "grub-mb1": _grub(grub_mb1(raw), compressed),
        "grub-mb2": _grub(grub_mb2(raw), compressed),
        "qemu": qemu(data, compressed),
        "limine-mb1": limine_mb1(data),
        "limine-mb2": limine_mb2(data),
        "syslinux": syslinux(raw if compressed == "gzip" else data),  # zloadfile gunzips
    }
