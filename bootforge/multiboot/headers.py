"""Finding and decoding Multiboot headers and the ELF facts loaders act on.

Everything is bounds-checked before Construct sees it, so bad input ends
in a FormatError/LimitError naming the offset, never a traceback or a loop.
"""

from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError
from bootforge.formats import multiboot as fmt, parse
from bootforge.report import to_plain

MAX_HEADER_TAGS = 512
_MB1_WITH_ADDRESSES = fmt.MB1_HEADER_FIXED_SIZE + fmt.Multiboot1Addresses.sizeof()
_MB1_WITH_VIDEO = _MB1_WITH_ADDRESSES + fmt.Multiboot1Video.sizeof()
_KNOWN_REQUIRED_FLAGS = fmt.Mb1HeaderFlag.PAGE_ALIGN | fmt.Mb1HeaderFlag.MEMORY_INFO | fmt.Mb1HeaderFlag.VIDEO_MODE


def _u32(data, off):
    return int.from_bytes(data[off:off + 4], "little")


def scan(data, magic, step, limit):
    """Offsets < *limit* (aligned to *step*) where the little-endian u32 *magic* sits."""
    needle = magic.to_bytes(4, "little")
    hits = []
    end = min(len(data), limit + 3)
    pos = data.find(needle, 0, end)
    while pos != -1:
        if pos % step == 0 and pos < limit:
            hits.append(pos)
        pos = data.find(needle, pos + 1, end)
    return hits


# ------------------------------------------------------------------ Multiboot 1

def mb1_header_length(flags):
    """Bytes of an MB1 header with *flags*: the fixed 12, the address fields, the video fields."""
    if flags & fmt.Mb1HeaderFlag.VIDEO_MODE:
        return _MB1_WITH_VIDEO                  # 48
    if flags & fmt.Mb1HeaderFlag.AOUT_KLUDGE:
        return _MB1_WITH_ADDRESSES              # 32
    return fmt.MB1_HEADER_FIXED_SIZE            # 12


def decode_mb1(data, offset):
    """The MB1 header at *offset* as a JSON-able dict (truncated fields read as absent)."""
    flags = _u32(data, offset + 4)
    checksum = _u32(data, offset + 8)
    length = mb1_header_length(flags)
    doc = {"offset": offset, "flags": flags, "checksum": checksum,
           "checksum_ok": (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF == 0,
           "length": length, "truncated": offset + length > len(data),
           "page_align_modules": bool(flags & fmt.Mb1HeaderFlag.PAGE_ALIGN),
           "memory_info": bool(flags & fmt.Mb1HeaderFlag.MEMORY_INFO),
           "video_mode": bool(flags & fmt.Mb1HeaderFlag.VIDEO_MODE),
           "aout_kludge": bool(flags & fmt.Mb1HeaderFlag.AOUT_KLUDGE),
           # required bits (0-15) no loader knows: GRUB refuses the kernel
           "unsupported_flags": flags & fmt.MB1_REQUIRED_FLAGS_MASK & ~_KNOWN_REQUIRED_FLAGS,
           "addresses": None, "video": None}
    if not doc["truncated"]:
        parsed = parse(fmt.Multiboot1Header, data[offset:offset + length], what="Multiboot1 header")
        if parsed.addresses is not None:
            doc["addresses"] = {k: v for k, v in parsed.addresses.items() if not k.startswith("_")}
        if parsed.video is not None:
            doc["video"] = {k: v for k, v in parsed.video.items() if not k.startswith("_")}
    return doc


def find_mb1(data, limit=fmt.MB1_SEARCH):
    """First MB1 header with a valid checksum whose 12 bytes lie in the first *limit* bytes (GRUB's rule)."""
    window = min(len(data), limit)
    for off in scan(data, fmt.MB1_MAGIC, fmt.MB1_ALIGN, limit):
        if off + fmt.MB1_HEADER_FIXED_SIZE <= window:
            flags, checksum = _u32(data, off + 4), _u32(data, off + 8)
            if (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF == 0:
                return decode_mb1(data, off)
    return None


def _rejected(data, limit, magic, align, fixed_size, problems_of):
    """Where *magic* sits (*align*-aligned, in the first *limit* bytes) but no loader takes it
    as a header: [{"offset", "problems"}], up to the first sound header (which ends the
    loaders' scan); *problems_of(off)* says what is wrong with a header whose *fixed_size*
    bytes are all in the window. None of them: a sound header past the window, if any."""
    window = min(len(data), limit)
    out = []
    for off in scan(data, magic, align, limit):
        if off + fixed_size > window:
            problems = [f"its {fixed_size} bytes end past the first {window:#x} bytes searched"]
        else:
            problems = problems_of(off)
        if not problems:
            break       # the first valid header ends the loaders' scan
        out.append({"offset": off, "problems": problems})
    return out or _beyond(data, limit, magic, align, fixed_size // 4)


def rejected_mb1(data, limit=fmt.MB1_SEARCH):
    """Where the MB1 magic sits (4-aligned, in the first *limit* bytes) but no loader takes it
    as a header: [{"offset", "problems": [what is wrong]}]. Loaders scan for the magic *and*
    a zero sum (GRUB multiboot.c, QEMU multiboot.c, mboot.c32), so these are invisible to
    them: a kernel with one says "no multiboot header found"."""
    def problems_of(off):
        flags, checksum = _u32(data, off + 4), _u32(data, off + 8)
        total = (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF
        if total:
            return [f"checksum {checksum:#010x} is wrong: magic + flags + checksum = "
                    f"{total:#010x}, not 0 (checksum should be "
                    f"{(-(fmt.MB1_MAGIC + flags)) & 0xFFFFFFFF:#010x})"]
        return []
    return _rejected(data, limit, fmt.MB1_MAGIC, fmt.MB1_ALIGN, fmt.MB1_HEADER_FIXED_SIZE, problems_of)


# How far past the loaders' window a header is still looked for (to say it is out of reach).
BEYOND_WINDOW = 1 << 20


def _beyond(data, limit, magic, align, words):
    """A valid header (magic and a zero sum over *words* u32s) past the first *limit* bytes,
    where no loader looks: [{"offset", "problems"}] for the first, else []."""
    if len(data) <= limit:
        return []
    for off in scan(data, magic, align, min(len(data), limit + BEYOND_WINDOW)):
        if off < limit or off + 4 * words > len(data):
            continue
        if sum(_u32(data, off + 4 * i) for i in range(words)) & 0xFFFFFFFF == 0:
            return [{"offset": off, "problems": [f"a header past the first {limit // 1024} KiB, "
                                                 "where loaders search for it"]}]
    return []


def rejected_mb2(data, limit=fmt.MB2_SEARCH, architecture=0):
    """Like rejected_mb1 for MB2 (8-aligned magic in the first *limit* bytes): checksum,
    architecture (GRUB on x86 takes 0, i386), header_length below 24 or past the file end."""
    def problems_of(off):
        problems = []
        arch, length, checksum = _u32(data, off + 4), _u32(data, off + 8), _u32(data, off + 12)
        total = (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF
        if total:
            problems.append(f"checksum {checksum:#010x} is wrong: magic + architecture + header_length "
                            f"+ checksum = {total:#010x}, not 0 (checksum should be "
                            f"{(-(fmt.MB2_MAGIC + arch + length)) & 0xFFFFFFFF:#010x})")
        if architecture is not None and arch != architecture:
            problems.append(f"architecture {arch} ({fmt.Mb2Architecture.label_of(arch, 'unknown')}): "
                            f"x86 loaders take {architecture} "
                            f"({fmt.Mb2Architecture.label_of(architecture)})")
        if length < fmt.MB2_HEADER_MIN_LENGTH:
            problems.append(f"header_length {length} is below {fmt.MB2_HEADER_MIN_LENGTH} "
                            "(header and end tag)")
        elif off + length > len(data):
            problems.append(f"header_length {length} runs past the end of the file")
        return problems
    return _rejected(data, limit, fmt.MB2_MAGIC, fmt.MB2_ALIGN, fmt.MB2_HEADER_FIXED_SIZE, problems_of)


def rejection_text(rejected):
    """One clause for a verdict's reason: where the magic is and why it is no header."""
    return "; ".join(f"magic at {r['offset']:#x}: " + ", ".join(r["problems"]) for r in rejected)


# ------------------------------------------------------------------ Multiboot 2

def decode_mb2_tags(data, offset, header_length):
    """Walk the header tags of the MB2 header at *offset*; raise FormatError on a lying tag."""
    tags = []
    pos = offset + fmt.MB2_HEADER_FIXED_SIZE
    end = offset + header_length
    if end > len(data):
        raise FormatError(f"Multiboot2 header_length {header_length:#x} runs past the end of the file",
                          offset=offset + 8)
    while True:
        if len(tags) >= MAX_HEADER_TAGS:
            raise LimitError(f"more than {MAX_HEADER_TAGS} Multiboot2 header tags", offset=pos)
        if pos + 8 > end:
            raise FormatError("Multiboot2 header tags run past header_length without an end tag",
                              offset=pos)
        ttype = int.from_bytes(data[pos:pos + 2], "little")
        tflags = int.from_bytes(data[pos + 2:pos + 4], "little")
        size = _u32(data, pos + 4)
        if size < 8:
            raise FormatError(f"Multiboot2 header tag type {ttype} has size {size} (minimum 8)",
                              offset=pos + 4)
        if pos + size > end:
            raise FormatError(f"Multiboot2 header tag type {ttype} of size {size} runs past "
                              f"header_length ({header_length:#x})", offset=pos)
        padded = size + (-size % 8)
        raw = data[pos:pos + min(padded, end - pos)]
        if len(raw) < padded:
            raw = raw + bytes(padded - len(raw))
        # base=pos: a tag cut short names its own offset (parse() always sets one).
        parsed = parse(fmt.Multiboot2HeaderTag, raw, what=f"Multiboot2 header tag type {ttype}", base=pos)
        tag = {"type": ttype, "name": fmt.Mb2HeaderTag.label_of(ttype),
               "optional": bool(tflags & fmt.MB2_TAG_OPTIONAL), "flags": tflags,
               "size": size, "position": pos}
        tag.update(to_plain(parsed.body))
        if tag.get("payload") == "":
            del tag["payload"]
        if ttype == fmt.Mb2HeaderTag.INFORMATION_REQUEST:
            tag["request_names"] = [fmt.Mb2Tag.label_of(t) for t in tag["requests"]]
        if ttype == fmt.Mb2HeaderTag.RELOCATABLE:
            tag["preference_name"] = fmt.Mb2RelocatablePreference.label_of(tag["preference"])
        tags.append(tag)
        if ttype == fmt.Mb2HeaderTag.END:
            break
        pos += padded
    return tags


def decode_mb2(data, offset):
    arch, length, checksum = _u32(data, offset + 4), _u32(data, offset + 8), _u32(data, offset + 12)
    doc = {"offset": offset, "architecture": arch,
           "architecture_name": fmt.Mb2Architecture.label_of(arch),
           "header_length": length, "checksum": checksum,
           "checksum_ok": (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF == 0}
    if length < fmt.MB2_HEADER_MIN_LENGTH:
        raise FormatError(f"Multiboot2 header_length {length} is below 24 (header and end tag)",
                          offset=offset + 8)
    doc["tags"] = decode_mb2_tags(data, offset, length)
    return doc


def find_mb2(data, limit=fmt.MB2_SEARCH, architecture=0):
    """First MB2 header (magic, checksum, architecture) in the first *limit* bytes (GRUB's rule)."""
    window = min(len(data), limit)
    for off in scan(data, fmt.MB2_MAGIC, fmt.MB2_ALIGN, limit):
        if off + fmt.MB2_HEADER_FIXED_SIZE <= window:
            arch, length, checksum = _u32(data, off + 4), _u32(data, off + 8), _u32(data, off + 12)
            if (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF == 0 and \
                    (architecture is None or arch == architecture):
                return decode_mb2(data, off)
    return None


# ------------------------------------------------------------------ ELF

@dataclass
class Segment:
    index: int
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int
    align: int

    def to_json(self):
        return {"index": self.index, "type": self.type,
                "type_name": fmt.ElfSegmentType.label_of(self.type, f"{self.type:#x}"), "offset": self.offset,
                "vaddr": self.vaddr, "paddr": self.paddr, "filesz": self.filesz,
                "memsz": self.memsz, "flags": self.flags, "align": self.align}


@dataclass
class ElfFacts:
    ei_class: int
    ei_data: int
    machine: int
    type: int
    version: int
    entry: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int
    segments: list = field(default_factory=list)
    section_types: list = field(default_factory=list)

    @property
    def bits(self):
        return 64 if self.ei_class == fmt.ELFCLASS64 else 32

    @property
    def loads(self):
        return [s for s in self.segments if s.type == fmt.PT_LOAD]

    def to_json(self):
        return {"class": f"ELF{self.bits}", "machine": self.machine,
                "machine_name": fmt.ElfMachine.label_of(self.machine), "type": self.type,
                "entry": self.entry, "phoff": self.phoff, "phnum": self.phnum,
                "shoff": self.shoff, "shnum": self.shnum}


MAX_PHNUM = 4096
MAX_SHNUM = 65535


def read_elf(data):
    """ELF header, program headers and section types; FormatError for headers past the end."""
    if len(data) < 16 or data[:4] != fmt.ELF_MAGIC:
        raise FormatError("not an ELF file", offset=0)
    ei_class = data[4]
    if ei_class not in fmt.ELF_LAYOUTS:
        raise FormatError(f"ELF class {ei_class} is neither 1 (ELF32) nor 2 (ELF64)", offset=4)
    if data[5] != fmt.ELFDATA2LSB:
        raise FormatError(f"ELF data encoding {data[5]} is not little-endian", offset=5)
    ehdr_s, phdr_s, shdr_s = fmt.ELF_LAYOUTS[ei_class]
    if len(data) < ehdr_s.sizeof():
        raise FormatError("ELF header truncated", offset=len(data))
    e = parse(ehdr_s, data, 0, "ELF header")
    facts = ElfFacts(ei_class, data[5], e.e_machine, e.e_type, e.e_version, e.e_entry,
                     e.e_phoff, e.e_phentsize, e.e_phnum, e.e_shoff, e.e_shentsize,
                     e.e_shnum, e.e_shstrndx)
    if e.e_phnum:
        if e.e_phentsize < phdr_s.sizeof():
            raise FormatError(f"e_phentsize {e.e_phentsize} is below {phdr_s.sizeof()}",
                              offset=0x2A if ei_class == fmt.ELFCLASS32 else 0x36)     # e_phentsize
        if e.e_phnum > MAX_PHNUM:
            raise LimitError(f"{e.e_phnum} program headers (limit {MAX_PHNUM})", offset=e.e_phoff)
        end = e.e_phoff + e.e_phnum * e.e_phentsize
        if end > len(data):
            raise FormatError(f"program headers ({e.e_phnum} x {e.e_phentsize} at {e.e_phoff:#x}) "
                              f"run past the end of the file ({len(data):#x} bytes)",
                              offset=e.e_phoff)
        for i in range(e.e_phnum):
            at = e.e_phoff + i * e.e_phentsize
            p = parse(phdr_s, data, at, f"program header {i}")
            facts.segments.append(Segment(i, p.p_type, p.p_offset, p.p_vaddr, p.p_paddr,
                                          p.p_filesz, p.p_memsz, p.p_flags, p.p_align))
    if e.e_shnum and e.e_shoff:
        size = shdr_s.sizeof()
        end = e.e_shoff + e.e_shnum * e.e_shentsize
        if e.e_shentsize >= size and end <= len(data):
            for i in range(e.e_shnum):
                at = e.e_shoff + i * e.e_shentsize
                facts.section_types.append(_u32(data, at + 4))
    return facts


def elf_file_defects(elf, data):
    """What of the file an ELF's headers name but the file lacks (a truncated or
    inconsistent kernel): one line per PT_LOAD whose file bytes, and for the section
    header table, that run past the end of *data* (the loaders' reads fail there)."""
    out = []
    for s in elf.loads:
        if s.filesz and s.offset + s.filesz > len(data):
            out.append(f"program header {s.index} (PT_LOAD at offset {s.offset:#x}, p_filesz {s.filesz:#x}) "
                       f"runs past the end of the file ({len(data):#x} bytes)")
    if elf.shnum and elf.shoff + elf.shnum * elf.shentsize > len(data):
        out.append(f"the section header table ({elf.shnum} x {elf.shentsize} at {elf.shoff:#x}) runs past the end "
                   f"of the file ({len(data):#x} bytes)")
    return out
