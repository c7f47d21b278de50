"""GRUB 2.06 (i386-pc and x86_64-efi alike) as a Multiboot1 (`multiboot`) and
Multiboot2 (`multiboot2`) loader: grub-core/loader/multiboot.c,
multiboot_elfxx.c, multiboot_mbi2.c. Refusals are grub_error texts.

GRUB opens the kernel through its gzio/xzio filters, so the verdict is about
the decompressed bytes; xz needs `insmod xzio`.
"""

from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.formats.multiboot import Mb2HeaderTag, Mb2Tag
from bootforge.multiboot.entry import translate
from bootforge.multiboot.headers import find_mb1, find_mb2, read_elf, rejected_mb1, rejected_mb2, rejection_text
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

# multiboot_mbi2.c grub_multiboot2_load: the information requests it can satisfy (every MBI tag
# type it knows but SMBIOS), and the header tags it knows (all of them).
GRUB_INFO_REQUESTS = set(Mb2Tag) - {Mb2Tag.SMBIOS}
GRUB_HEADER_TAGS = set(Mb2HeaderTag)
ENTRY_TAGS = (Mb2HeaderTag.ENTRY_ADDRESS, Mb2HeaderTag.ENTRY_ADDRESS_EFI32, Mb2HeaderTag.ENTRY_ADDRESS_EFI64)
FOUR_GIB = 1 << 32
SOURCE = "GRUB 2.06 grub-core/loader/multiboot.c, multiboot_elfxx.c, multiboot_mbi2.c"
# kern/file.c grub_file_seek / the loaders' short-read error (GRUB adds the file name after
# "premature end of file"; the console shows "premature end of file /boot/k.elf.").
SEEK_OUTSIDE = "attempt to seek outside of the file"
PREMATURE_END = "premature end of file"
XZ_NOTE = ("; xz: only with `insmod xzio` in grub.cfg (grub-mkrescue images do not load it), "
           "otherwise GRUB says: no multiboot header found")


def _grub_elf(elf, mbi_ver, data):
    """GRUB's grub_multiboot_load_elf{32,64}; None when it loads, else the message."""
    if data[:4] != fmt.ELF_MAGIC or len(data) < 6 or data[5] != fmt.ELFDATA2LSB:
        if len(data) > 4 and data[4] in (fmt.ELFCLASS32, fmt.ELFCLASS64) and data[:4] == fmt.ELF_MAGIC:
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
    for s in loads:
        if s.filesz:
            err = _file_read(data, s.offset, s.filesz)
            if err:
                return err
    for s in elf.segments:
        if s.vaddr <= elf.entry < s.vaddr + s.memsz:
            if elf.ei_class == fmt.ELFCLASS64 and elf.entry - s.vaddr + s.paddr > 0xFFFFFFFF:
                return "invalid entry point for ELF64"
            break
    else:
        return "entry point isn't in a segment"
    if mbi_ver >= 2 and any(t in (fmt.SHT_REL, fmt.SHT_RELA) for t in elf.section_types):
        return "ELF files with relocs are not supported yet"
    return _sections_read(elf, data)


def _file_read(data, offset, size):
    """GRUB's grub_file_seek + grub_file_read of [offset, offset + size) in a file of
    len(data) bytes (kern/file.c): the error text, or None."""
    if offset > len(data):
        return SEEK_OUTSIDE
    if offset + size > len(data):
        return PREMATURE_END
    return None


def _sections_read(elf, data):
    """multiboot_elfxx.c after the entry: the section header table is read whole, then
    every section with sh_addr == 0 and a size (symtab, strtab, shstrtab) is read into its
    chunk."""
    if not elf.shnum:
        return None
    err = _file_read(data, elf.shoff, elf.shnum * elf.shentsize)
    if err:
        return err
    shdr = fmt.ELF_LAYOUTS[elf.ei_class][2]
    if elf.shentsize < shdr.sizeof():
        return None         # GRUB reads its own struct size from each entry: not modelled further
    for i in range(elf.shnum):
        s = shdr.parse(data[elf.shoff + i * elf.shentsize:][:shdr.sizeof()])
        if s.sh_addr == 0 and s.sh_size:
            err = _file_read(data, s.sh_offset, s.sh_size)
            if err:
                return err
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


def _xz(verdict, compressed):
    """GRUB reads xz only through xzio, which grub-mkrescue images do not load."""
    if compressed == "xz" and verdict.ok:
        return verdict.with_reason(verdict.reason + XZ_NOTE, requires="insmod xzio")
    return verdict


def _grub_elf_verdict(subject, data, mbi_ver):
    elf = None
    if data[:4] == fmt.ELF_MAGIC:
        try:
            elf = read_elf(data)
        except FormatError as exc:
            if "program headers" in exc.message:
                return refuse(subject, "program header at a too high offset")
            return refuse(subject, "invalid arch-dependent ELF magic")
    err = _grub_elf(elf, mbi_ver, data)
    if err:
        return refuse(subject, err)
    return accept(subject, f"loads ELF{elf.bits} segments at their p_paddr, {translate(elf, 'grub').text()}")


def _no_header(name, rejected):
    """GRUB's scan wants the magic and a zero sum (and, for MB2, architecture 0): anything
    else is "no multiboot header found"; the reason says what the magic it passed lacks."""
    words = "no multiboot header found"
    return refuse(name, f"{words} ({rejection_text(rejected)})" if rejected else words, words=words)


@kernel_loader("grub-mb1", "multiboot1", reads="decompressed", source=SOURCE)
def grub_mb1(data, compressed=None):
    return _xz(_grub_mb1(data), compressed)


def _grub_mb1(data):
    name = "grub-mb1"
    head = data[:fmt.MB1_SEARCH]
    hdr = find_mb1(head)
    if hdr is None:
        return _no_header(name, rejected_mb1(data))
    if hdr["unsupported_flags"]:
        return refuse(name, f"unsupported flag: {hdr['flags']:#x}")
    if hdr["aout_kludge"]:
        if hdr["truncated"]:
            return refuse(name, "premature end of file")
        a = hdr["addresses"]
        span, err = _kludge_span(data, hdr["offset"], a["header_addr"], a["load_addr"], a["load_end_addr"])
        if err:
            return refuse(name, err)
        return accept(name, f"loads the a.out kludge image at {a['load_addr']:#x}, entry {a['entry_addr']:#x}")
    return _grub_elf_verdict(name, data, 1)


@kernel_loader("grub-mb2", "multiboot2", reads="decompressed", source=SOURCE)
def grub_mb2(data, compressed=None):
    return _xz(_grub_mb2(data), compressed)


def _grub_mb2(data):
    name = "grub-mb2"
    if len(data) < 32:
        return refuse(name, "file too small")
    hdr = find_mb2(data[:fmt.MB2_SEARCH])
    if hdr is None:
        return _no_header(name, rejected_mb2(data))
    addr = entry = reloc = None
    for tag in hdr["tags"]:
        t = tag["type"]
        if t == Mb2HeaderTag.INFORMATION_REQUEST and not tag["optional"]:
            for r in tag["requests"]:
                if r not in GRUB_INFO_REQUESTS:
                    return refuse(name, f"unsupported information tag: {r:#x}")
        elif t == Mb2HeaderTag.ADDRESS:
            addr = tag
        elif t in ENTRY_TAGS:
            entry = entry or tag
        elif t == Mb2HeaderTag.RELOCATABLE:
            reloc = tag
        elif t not in GRUB_HEADER_TAGS and not tag["optional"]:
            return refuse(name, f"unsupported tag: {t:#x}")
    if addr and not entry:
        return refuse(name, "load address tag without entry address tag")
    if addr:
        span, err = _kludge_span(data, hdr["offset"], addr["header_addr"], addr["load_addr"],
                                 addr["load_end_addr"])
        if err:
            return refuse(name, err)
        return accept(name, f"loads the address-tag image at {addr['load_addr']:#x}")
    verdict = _grub_elf_verdict(name, data, 2)
    if verdict.ok and reloc:
        elf = read_elf(data)
        if not elf.loads:       # GRUB's link base stays ~0: the size wraps to 1 byte
            lo, hi = 0xFFFFFFFF, 0x100000000
        else:
            lo = min(s.paddr for s in elf.loads)
            hi = max(s.paddr + s.memsz for s in elf.loads)
        size = hi - lo
        if size > reloc["max_addr"] or reloc["min_addr"] > reloc["max_addr"] - size:
            return refuse(name, "invalid min/max address and/or load size")
        verdict = verdict.with_reason(verdict.reason + (
            f"; relocatable: {size:#x} bytes anywhere in "
            f"[{reloc['min_addr']:#x}, {reloc['max_addr'] - size:#x}] "
            f"aligned to {reloc['align']:#x}, preference {reloc['preference_name']}"))
    return verdict
