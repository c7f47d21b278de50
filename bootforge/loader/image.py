"""What a loader reads from a kernel file: load segments and unloaded sections.

Multiboot ELF kernels (the dump kernel and real ones like xen.gz; .gz and .xz
are opened as GRUB opens them); the Multiboot headers are found with
bootforge.multiboot.headers.
"""

import struct
from dataclasses import dataclass, field

from bootforge.compress.streams import unpack
from bootforge.errors import FormatError, LimitError, RecipeError
from bootforge.formats import struct_format
from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import find_mb1, find_mb2, read_elf

# Section headers in struct form, derived from the Construct declarations (formats/multiboot.py).
SHDR_STRUCT = {32: struct_format(fmt.Elf32Shdr), 64: struct_format(fmt.Elf64Shdr)}
SHDR_FIELDS = {32: [sub.name for sub in fmt.Elf32Shdr.subcons], 64: [sub.name for sub in fmt.Elf64Shdr.subcons]}


@dataclass
class Section:
    index: int
    addr: int
    size: int
    align: int
    flags: int
    offset: int


@dataclass
class KernelImage:
    path: str
    data: bytes                     # decompressed file bytes
    file_size: int                  # size of the file as given
    compressed: str | None
    bits: int
    entry: int
    segments: list                  # [(paddr, filesz, memsz)] of PT_LOAD, file order
    sections: list = field(default_factory=list)
    shentsize: int = 0
    shnum: int = 0
    shoff: int = 0
    shstrndx: int = 0
    mb1: dict | None = None
    mb2: dict | None = None
    given: bytes | None = None      # the file as given (compressed) when *data* was decompressed from it

    @property
    def low(self):
        return min(p for p, _f, m in self.segments if m)

    @property
    def high(self):
        return max(p + m for p, _f, m in self.segments if m)

    def unloaded_sections(self, rule):
        """Sections a loader copies besides the segments: GRUB takes sh_addr == 0,
        Syslinux takes !SHF_ALLOC; both skip empty ones."""
        out = []
        for s in self.sections:
            if not s.size:
                continue
            if rule == "grub" and s.addr != 0:
                continue
            if rule == "syslinux" and s.flags & fmt.ElfSectionFlag.ALLOC:
                continue
            out.append(s)
        return out

    def section_headers(self, placed=None):
        """The raw section header table, with sh_addr set to *placed*[index] where a loader
        put an unloaded section (GRUB's MB2 tag 9 and MB1 ELF symbols carry it so)."""
        if not self.shnum:
            return b""
        word, names = SHDR_STRUCT[self.bits], SHDR_FIELDS[self.bits]
        size = struct.calcsize(word)
        out = bytearray()
        for i in range(self.shnum):
            at = self.shoff + i * self.shentsize
            header = bytearray(self.data[at:at + self.shentsize])
            if placed and i in placed:
                fields = dict(zip(names, struct.unpack_from(word, header)))
                fields["sh_addr"] = placed[i]
                header[:size] = struct.pack(word, *fields.values())
            out += header
        return bytes(out)


def aout_kludge_image(path, raw, data, compressed):
    """A flat kernel as its MB1 header's a.out kludge fields place it (Multiboot spec 0.6.96
    3.1.3; GRUB multiboot.c load path without ELF): the file from header_offset -
    (header_addr - load_addr) goes to load_addr, up to load_end_addr (0: end of file),
    zeros up to bss_end_addr (0: none), entry at entry_addr. None without the kludge."""
    mb1 = find_mb1(data)
    if not mb1 or not mb1.get("aout_kludge") or not mb1.get("addresses"):
        return address_tag_image(path, raw, data, compressed)
    a = mb1["addresses"]
    start = mb1["offset"] - (a["header_addr"] - a["load_addr"])
    if a["header_addr"] < a["load_addr"] or start < 0:
        raise RecipeError(f"a.out kludge: header_addr {a['header_addr']:#x} and load_addr {a['load_addr']:#x} put "
                          "the load before the start of the file", path=path)
    filesz = a["load_end_addr"] - a["load_addr"] if a["load_end_addr"] else len(data) - start
    if filesz < 0 or start + filesz > len(data):
        raise RecipeError(f"a.out kludge: load_end_addr {a['load_end_addr']:#x} lies outside the file", path=path)
    memsz = max(filesz, a["bss_end_addr"] - a["load_addr"]) if a["bss_end_addr"] else filesz
    img = KernelImage(str(path), data, len(raw), compressed, 32, a["entry_addr"], [(a["load_addr"], filesz, memsz)])
    img.mb1 = mb1
    img.mb2 = find_mb2(data)
    img.given = raw if compressed else None
    return img


def address_tag_image(path, raw, data, compressed):
    """A flat kernel placed by its MB2 address tag (2) and entry address tag (3) alone, the
    Multiboot2 form of the kludge (GRUB multiboot_mbi2.c, Limine multiboot2.c): load_addr
    0xffffffff means the file from its start, loaded at header_addr - header offset.
    None without both tags."""
    mb2 = find_mb2(data)
    tags = {t["type"]: t for t in (mb2 or {}).get("tags", [])}
    a, e = tags.get(fmt.Mb2HeaderTag.ADDRESS), tags.get(fmt.Mb2HeaderTag.ENTRY_ADDRESS)
    if a is None or e is None or "header_addr" not in a:
        return None
    if a["load_addr"] == 0xFFFFFFFF:
        start, load_addr = 0, a["header_addr"] - mb2["offset"]
    else:
        start, load_addr = mb2["offset"] - (a["header_addr"] - a["load_addr"]), a["load_addr"]
    filesz = a["load_end_addr"] - load_addr if a["load_end_addr"] else len(data) - start
    if start < 0 or filesz < 0 or start + filesz > len(data):
        raise RecipeError("MB2 address tag: the load range lies outside the file", path=path)
    memsz = max(filesz, a["bss_end_addr"] - load_addr) if a["bss_end_addr"] else filesz
    img = KernelImage(str(path), data, len(raw), compressed, 32, e["entry_addr"], [(load_addr, filesz, memsz)])
    img.mb2 = mb2
    img.given = raw if compressed else None
    return img


def read_kernel(path, data):
    """A KernelImage from the bytes of *path*; RecipeError when it is no ELF kernel."""
    raw = data
    try:
        # The one decompression path (bootforge.compress.streams: one limit for every command);
        # which loader sees these bytes and which the file as given is each verdict's `reads`.
        compressed, data = unpack(data)
    except FormatError as exc:
        raise RecipeError(f"the kernel does not decompress: {exc.message}", path=path) from None
    except LimitError as exc:
        raise exc.located(path=path) from None
    if data[:4] != fmt.ELF_MAGIC:
        flat = aout_kludge_image(path, raw, data, compressed)
        if flat is not None:
            return flat
        raise RecipeError("the kernel is not an ELF file and has no Multiboot1 a.out kludge or Multiboot2 "
                          "address tag (bootforge load places ELF and a.out-kludge Multiboot kernels)", path=path)
    elf = read_elf(data)
    segments = [(s.paddr, s.filesz, s.memsz) for s in elf.loads]
    if not any(m for _p, _f, m in segments):
        raise RecipeError("the kernel ELF has no PT_LOAD segment with memory", path=path)
    img = KernelImage(str(path), data, len(raw), compressed, elf.bits, elf.entry, segments)
    if elf.shoff and elf.shnum:
        word, names = SHDR_STRUCT[elf.bits], SHDR_FIELDS[elf.bits]
        size = struct.calcsize(word)
        if elf.shentsize >= size and elf.shoff + elf.shnum * elf.shentsize <= len(data):
            img.shentsize, img.shnum, img.shoff, img.shstrndx = elf.shentsize, elf.shnum, elf.shoff, elf.shstrndx
            for i in range(elf.shnum):
                f = dict(zip(names, struct.unpack_from(word, data, elf.shoff + i * elf.shentsize)))
                img.sections.append(Section(i, f["sh_addr"], f["sh_size"], f["sh_addralign"], f["sh_flags"],
                                            f["sh_offset"]))
    img.mb1 = find_mb1(data)
    img.mb2 = find_mb2(data)
    img.given = raw if compressed else None
    return img
