"""The kernel-recipe branch of `bootforge build`: put Multiboot headers into a kernel.

Two layouts:

- "elf" (default for ELF input): the headers go into a new PT_LOAD segment
  and a ".multiboot" section placed right after the program headers, so they
  sit within the first 8 KiB (MB1) / 32 KiB (MB2) at 4/8-byte alignment;
  the rest of the file moves down by a multiple of the largest segment
  alignment, so every segment keeps offset == address modulo its alignment.
  The header segment is loaded just above the kernel's highest segment.
- "flat" (a.out kludge / MB2 address tag; default for binary input): the
  memory image from the lowest load address (bss zero-filled in the file)
  followed by the headers, whose address fields describe that image.
"""

import gzip
import lzma
from pathlib import Path

from bootforge.align import align_up
from bootforge.errors import BuildError, FormatError, LoaderRefusal, RecipeError
from bootforge.fileio import read_input, write_atomic
from bootforge.formats import multiboot as fmt, parse
from bootforge.multiboot import headers as mbheaders
from bootforge.multiboot.headers import read_elf
from bootforge.multiboot.verdicts import verdict
from bootforge.schema import REQUIRED, Field, recipe_file, validate

# The verdict a built kernel must pass for each protocol it carries: GRUB, the loader the
# Multiboot specifications come with (bootforge.multiboot.verdicts.grub).
BUILD_VERDICTS = {"multiboot1": "grub-mb1", "multiboot2": "grub-mb2"}

PROTOCOLS = ("multiboot1", "multiboot2", "both")
PROTOCOL_NAMES = {"multiboot1": "Multiboot1", "multiboot2": "Multiboot2", "both": "Multiboot1+2"}
H = fmt.Mb2HeaderTag
PREFERENCES = fmt.Mb2RelocatablePreference.by_label()
# [kernel.multiboot2] keys are the header tag labels.
MB2_TAG_TYPES = {t.label: t for t in H if t != H.END}
MAX_FLAT_SPAN = 64 << 20           # a flat image (segments, or a binary plus its bss) larger than this is refused
U32 = dict(min=0, max=0xFFFFFFFF)
OPTIONAL_TAG = Field("optional", bool, False, "the tag's optional flag (loaders may ignore it)")

# Every key of a kernel recipe, declared once (bootforge.schema.Field): validation and
# `bootforge build --help` read these tables.
KERNEL_FIELDS = (
    Field("input", str, REQUIRED, "the kernel without a header: an ELF or a flat binary, relative to the recipe",
          text="path"),
    Field("input_format", str, None, "elf or binary (default: from the file's first bytes)",
          choices=("elf", "binary")),
    Field("protocol", str, "multiboot2", "which headers to add", choices=PROTOCOLS),
    Field("layout", str, None, "elf: a header segment (ELF input); flat: a.out kludge / MB2 address tag "
          "(default: elf for ELF input, else flat)", choices=("elf", "flat")),
    Field("placement", str, "auto", "elf layout: extend the segment after the program headers, or add a segment",
          choices=("auto", "extend", "segment")),
    Field("output", str, None, "output path, relative to the recipe", text="path"),
    Field("compress", str, "none", "compress the kernel written", choices=("none", "gzip", "xz")),
    Field("load_addr", int, None, "binary input: its load address", **U32),
    Field("entry", int, None, "binary input (or flat layout): the entry address", **U32),
    Field("bss_size", int, None, "binary input: zero bytes after it", min=0, max=MAX_FLAT_SPAN),
    Field("multiboot1", dict, None, "[kernel.multiboot1]: the Multiboot1 header's options"),
    Field("multiboot2", dict, None, "[kernel.multiboot2]: the Multiboot2 header tags"),
    Field("testing", dict, None, "[kernel.testing]: tests only (header_offset, allow_refusal)"),
)
MB1_FIELDS = (
    Field("page_align_modules", bool, True, "flag 0: modules on 4 KiB boundaries"),
    Field("memory_info", bool, True, "flag 1: mem_lower/mem_upper and the memory map"),
    Field("video", dict, None, "flag 2: a video mode (mode_type, width, height, depth)"),
)
VIDEO_FIELDS = tuple(Field(k, int, 0, f"video {k}", **U32) for k in ("mode_type", "width", "height", "depth"))
TESTING_FIELDS = (
    Field("header_offset", int, None, "put the header at this file offset (past the loaders' reach on purpose)",
          min=0, max=0xFFFFFFFF),
    Field("allow_refusal", bool, False, "write the kernel even when GRUB's verdict refuses it"),
)
U32_ITEM = Field("", int, None, "", **U32)
MB2_FIELDS = (
    Field("information_request", (list, dict), None, "tag 1: MBI tag types the kernel needs (an array, or a "
          "table of types and optional)", items=U32_ITEM),
    Field("address", dict, None, "tag 2: set by the flat layout itself"),
    Field("entry_address", (bool, int), None, "tag 3: true (the ELF entry), false, or an address", **U32),
    Field("console_flags", dict, None, "tag 4: console_required, ega_text_supported, optional"),
    Field("framebuffer", dict, None, "tag 5: width, height, depth, optional"),
    Field("module_alignment", (bool, dict), None, "tag 6: true (or a table with optional)"),
    Field("efi_boot_services", (bool, dict), None, "tag 7: true (or a table with optional)"),
    Field("entry_address_efi32", (int, dict), None, "tag 8: an address (or a table of entry_addr, optional)", **U32),
    Field("entry_address_efi64", (int, dict), None, "tag 9: an address (or a table of entry_addr, optional)", **U32),
    Field("relocatable", dict, None, "tag 10: min_addr, max_addr, align, preference, optional"),
    Field("extra_tags", list, None, "any further tags: tables of type, optional, payload (hex)",
          max_length=256, items=Field("", dict, None, "")),
)
MB2_SUBTABLES = {
    "information_request": (Field("types", list, REQUIRED, "MBI tag types", items=U32_ITEM), OPTIONAL_TAG),
    "console_flags": (Field("console_required", bool, False, "the kernel needs a console"),
                      Field("ega_text_supported", bool, True, "the kernel can use EGA text"), OPTIONAL_TAG),
    "framebuffer": (*(Field(k, int, 0, f"framebuffer {k}", **U32) for k in ("width", "height", "depth")),
                    OPTIONAL_TAG),
    "module_alignment": (OPTIONAL_TAG,),
    "efi_boot_services": (OPTIONAL_TAG,),
    "entry_address_efi32": (Field("entry_addr", int, REQUIRED, "the entry address", **U32), OPTIONAL_TAG),
    "entry_address_efi64": (Field("entry_addr", int, REQUIRED, "the entry address", **U32), OPTIONAL_TAG),
    "relocatable": (Field("min_addr", int, 0, "lowest load address", **U32),
                    Field("max_addr", int, 0xFFFFFFFF, "highest end address", **U32),
                    Field("align", int, 0x1000, "alignment", **U32),
                    Field("preference", str, "none", "where to prefer", choices=tuple(PREFERENCES)),
                    OPTIONAL_TAG),
}
EXTRA_TAG_FIELDS = (Field("type", int, REQUIRED, "header tag type", min=0, max=0xFFFF), OPTIONAL_TAG,
                    Field("payload", str, "", "the tag's body as hex", text="hex", max_length=1 << 16))


def _int(table, key, default=None, where="kernel"):
    """A validated integer value (the declarations above checked type and range)."""
    v = table.get(key, default)
    return v


# ------------------------------------------------------------------ headers

def build_mb1_header(opts, kludge=None):
    """Bytes of an MB1 header; *kludge* = dict of the five address fields or None."""
    opts = validate(opts, MB1_FIELDS, "kernel.multiboot1")
    flags = 0
    if opts.get("page_align_modules", True):
        flags |= fmt.Mb1HeaderFlag.PAGE_ALIGN
    if opts.get("memory_info", True):
        flags |= fmt.Mb1HeaderFlag.MEMORY_INFO
    video = opts.get("video")
    if video is not None:
        video = validate(video, VIDEO_FIELDS, "kernel.multiboot1.video")
        flags |= fmt.Mb1HeaderFlag.VIDEO_MODE
    if kludge is not None:
        flags |= fmt.Mb1HeaderFlag.AOUT_KLUDGE
    addresses = kludge if kludge is not None else (
        dict.fromkeys(("header_addr", "load_addr", "load_end_addr", "bss_end_addr", "entry_addr"), 0)
        if video else None)
    checksum = (-(fmt.MB1_MAGIC + flags)) & 0xFFFFFFFF
    return fmt.Multiboot1Header.build(dict(flags=flags, checksum=checksum,
                                           addresses=addresses, video=video))


def _mb2_tag(ttype, body, optional=False):
    body_bytes = fmt.Multiboot2HeaderTagBody.build(body, type=ttype)
    size = fmt.MB2_TAG_HEADER_SIZE + len(body_bytes)
    return dict(type=ttype, flags=fmt.MB2_TAG_OPTIONAL if optional else 0, size=size, body=body,
                padding=bytes(-size % 8))


def _opt_table(value, where, key=None):
    """A tag given as `true`, a number, or a table with `optional` (validated against its
    MB2_SUBTABLES declaration when *key* has one)."""
    if isinstance(value, dict):
        if key in MB2_SUBTABLES:
            value = validate(value, MB2_SUBTABLES[key], f"{where}.{key}")
        return dict(value), bool(value.get("optional", False))
    return value, False


def build_mb2_tags(opts, entry=None, address=None):
    """The list of header tag dicts (without the end tag) for [kernel.multiboot2]."""
    w = "kernel.multiboot2"
    opts = validate(opts, MB2_FIELDS, w)
    tags = []
    if "information_request" in opts:
        v, optional = _opt_table(opts["information_request"], w, "information_request")
        if isinstance(v, dict):
            v = v["types"]
        tags.append(_mb2_tag(H.INFORMATION_REQUEST, dict(requests=v), optional))
    if address is not None:
        tags.append(_mb2_tag(H.ADDRESS, address))
    if entry is not None:
        tags.append(_mb2_tag(H.ENTRY_ADDRESS, dict(entry_addr=entry)))
    if "console_flags" in opts:
        v, optional = _opt_table(opts["console_flags"], w, "console_flags")
        flags = ((fmt.MB2_CONSOLE_REQUIRED if v.get("console_required") else 0)
                 | (fmt.MB2_CONSOLE_EGA_TEXT_SUPPORTED if v.get("ega_text_supported", True) else 0))
        tags.append(_mb2_tag(H.CONSOLE_FLAGS, dict(console_flags=flags), optional))
    if "framebuffer" in opts:
        v, optional = _opt_table(opts["framebuffer"], w, "framebuffer")
        tags.append(_mb2_tag(H.FRAMEBUFFER, {k: v[k] for k in ("width", "height", "depth")}, optional))
    for key, ttype in (("module_alignment", H.MODULE_ALIGNMENT), ("efi_boot_services", H.EFI_BOOT_SERVICES)):
        if key in opts:
            v, optional = _opt_table(opts[key], w, key)
            if v is not False:
                tags.append(_mb2_tag(ttype, dict(payload=b""), optional))
    for key, ttype in (("entry_address_efi32", H.ENTRY_ADDRESS_EFI32), ("entry_address_efi64", H.ENTRY_ADDRESS_EFI64)):
        if key in opts:
            v, optional = _opt_table(opts[key], w, key)
            addr = v["entry_addr"] if isinstance(v, dict) else v
            tags.append(_mb2_tag(ttype, dict(entry_addr=addr), optional))
    if "relocatable" in opts:
        v, optional = _opt_table(opts["relocatable"], w, "relocatable")
        tags.append(_mb2_tag(H.RELOCATABLE, dict(min_addr=v["min_addr"], max_addr=v["max_addr"],
                                                 align=v["align"], preference=PREFERENCES[v["preference"]]),
                             optional))
    for i, extra in enumerate(opts.get("extra_tags", [])):
        extra = validate(extra, EXTRA_TAG_FIELDS, f"{w}.extra_tags {i}")
        tags.append(_mb2_tag(extra["type"], dict(payload=bytes.fromhex(extra["payload"])), extra["optional"]))
    return tags


def build_mb2_header(tags):
    tags = list(tags) + [_mb2_tag(H.END, dict(payload=b""))]
    length = fmt.Multiboot2HeaderFixed.sizeof() + sum(t["size"] + len(t["padding"]) for t in tags)
    arch = fmt.Mb2Architecture.I386
    checksum = (-(fmt.MB2_MAGIC + arch + length)) & 0xFFFFFFFF
    return fmt.Multiboot2Header.build(dict(fixed=dict(architecture=arch, header_length=length,
                                                      checksum=checksum), tags=tags))


def header_blob(protocol, mb1, mb2):
    """MB1 and/or MB2 header bytes back to back (MB2 8-aligned); offsets of each inside."""
    blob, offsets = b"", {}
    if protocol in ("multiboot1", "both"):
        offsets["multiboot1"] = 0
        blob += mb1
    if protocol in ("multiboot2", "both"):
        blob += bytes(-len(blob) % 8)
        offsets["multiboot2"] = len(blob)
        blob += mb2
    return blob, offsets


# ------------------------------------------------------------------ ELF layout

def _elf_tables(data, elf):
    ehdr_s, phdr_s, shdr_s = fmt.ELF_LAYOUTS[elf.ei_class]
    ehdr = parse(ehdr_s, data, 0, "ELF header")
    phdrs = [parse(phdr_s, data, elf.phoff + i * elf.phentsize, f"program header {i}") for i in range(elf.phnum)]
    shdrs = []
    if ehdr.e_shnum and ehdr.e_shoff:
        if ehdr.e_shoff + ehdr.e_shnum * ehdr.e_shentsize > len(data):
            raise FormatError("section headers run past the end of the file", offset=ehdr.e_shoff)
        shdrs = [parse(shdr_s, data, ehdr.e_shoff + i * ehdr.e_shentsize, f"section header {i}")
                 for i in range(ehdr.e_shnum)]
    return ehdr_s, phdr_s, shdr_s, ehdr, phdrs, shdrs


def _strip(c):
    return {k: v for k, v in c.items() if not k.startswith("_")}


def _append_sections(out, data, e, shdrs, new_shdrs, shdr_s, addr, offset, size):
    """Append a ".multiboot" section header (and a grown copy of .shstrtab) at the end of *out*."""
    names_idx = e["e_shstrndx"]
    shstr = shdrs[names_idx] if names_idx < len(shdrs) else None
    name_off = 0
    if shstr is not None and shstr.sh_offset + shstr.sh_size <= len(data):
        old_names = data[shstr.sh_offset:shstr.sh_offset + shstr.sh_size]
        name_off = len(old_names)
        names = old_names + b".multiboot\0"
        new_shdrs[names_idx]["sh_offset"] = len(out)
        new_shdrs[names_idx]["sh_size"] = len(names)
        out += names
    new_shdrs.append(dict(sh_name=name_off, sh_type=fmt.SHT_PROGBITS, sh_flags=fmt.SHF_ALLOC,
                          sh_addr=addr, sh_offset=offset, sh_size=size, sh_link=0,
                          sh_info=0, sh_addralign=8, sh_entsize=0))
    out += bytes(-len(out) % 8)
    e["e_shoff"] = len(out)
    e["e_shnum"] = len(new_shdrs)
    e["e_shentsize"] = shdr_s.sizeof()
    for sh in new_shdrs:
        out += shdr_s.build(sh)


def elf_extend_header_segment(data, make_blob):
    """Put the headers right after the program headers by growing the PT_LOAD that already maps
    them (default GNU ld layout: a read-only segment holding the ELF and program headers).
    Returns None when no such segment has room (the file gap and the memory after it are free)."""
    elf = read_elf(data)
    ehdr_s, phdr_s, shdr_s, ehdr, phdrs, shdrs = _elf_tables(data, elf)
    front_end = ehdr.e_phoff + ehdr.e_phnum * ehdr.e_phentsize
    for i, p in enumerate(phdrs):
        if p.p_type != fmt.PT_LOAD or p.p_offset > ehdr.e_phoff or p.p_filesz != p.p_memsz \
                or p.p_offset + p.p_filesz < front_end:
            continue
        hdr_off = align_up(p.p_offset + p.p_filesz, 8)
        header_addr = p.p_paddr + (hdr_off - p.p_offset)
        blob, offsets = make_blob(header_addr)
        end = hdr_off + len(blob)
        grown = end - p.p_offset
        file_free = all(not (q.p_filesz and q.p_offset < end and p.p_offset + p.p_filesz < q.p_offset + q.p_filesz)
                        for j, q in enumerate(phdrs) if j != i) and \
            all(sh.sh_type == fmt.ElfSectionType.NOBITS or not sh.sh_size or sh.sh_offset >= end or
                sh.sh_offset + sh.sh_size <= p.p_offset + p.p_filesz for sh in shdrs)
        lo, hi = p.p_paddr + p.p_memsz, p.p_paddr + grown
        mem_free = all(q.p_type != fmt.PT_LOAD or q.p_paddr >= hi or q.p_paddr + q.p_memsz <= lo
                       for j, q in enumerate(phdrs) if j != i)
        if not (file_free and mem_free and end <= len(data)):
            return None
        out = bytearray(data)
        out[hdr_off:end] = blob
        q = _strip(p)
        q["p_filesz"] = q["p_memsz"] = grown
        at = ehdr.e_phoff + i * ehdr.e_phentsize
        out[at:at + phdr_s.sizeof()] = phdr_s.build(q)
        if shdrs:
            e = _strip(ehdr)
            e["ident"] = _strip(ehdr.ident)
            _append_sections(out, data, e, shdrs, [_strip(sh) for sh in shdrs], shdr_s,
                             header_addr, hdr_off, len(blob))
            out[0:ehdr_s.sizeof()] = ehdr_s.build(e)
        return bytes(out), hdr_off, header_addr, offsets
    return None


# [kernel.testing] header_offset may put a header past the loaders' reach (to test
# that they miss it), up to twice the Multiboot 2 search window.
MAX_TEST_HEADER_OFFSET = 2 * fmt.MB2_SEARCH


def elf_with_header_segment(data, make_blob, header_offset=None):
    """Rewrite ELF *data* with a header segment; *make_blob(header_address)* returns (blob, offsets)."""
    elf = read_elf(data)
    if elf.type not in (fmt.ET_EXEC, fmt.ET_DYN):
        raise BuildError(f"ELF type {elf.type} is not an executable (ET_EXEC or ET_DYN)")
    ehdr_s, phdr_s, shdr_s, ehdr, phdrs, shdrs = _elf_tables(data, elf)
    loads = [p for p in phdrs if p.p_type == fmt.PT_LOAD]
    if not loads:
        raise BuildError("the ELF has no PT_LOAD segment")
    front_end = ehdr.e_phoff + ehdr.e_phnum * ehdr.e_phentsize
    if ehdr.e_phoff < ehdr.e_ehsize or ehdr.e_phoff > ehdr_s.sizeof() + 64:
        raise BuildError(f"program headers at {ehdr.e_phoff:#x}, not right after the ELF header: "
                         "bootforge cannot make room for the Multiboot header")
    for i, p in enumerate(phdrs):
        if p.p_filesz and p.p_offset < front_end:
            raise BuildError(f"segment {i} maps the ELF and program headers (offset {p.p_offset:#x}); "
                             "link with a script whose PHDRS omit FILEHDR/PHDRS so the headers stay "
                             "out of loaded memory")
    align = max([4096] + [p.p_align for p in loads if p.p_align and p.p_align <= 0x200000])
    new_phnum = ehdr.e_phnum + 1
    hdr_off = align_up(ehdr.e_ehsize if ehdr.e_phoff == 0 else ehdr.e_phoff + new_phnum * ehdr.e_phentsize, 8)
    if header_offset is not None:
        if header_offset < hdr_off or header_offset % 8:
            raise RecipeError(f"[kernel.testing] header_offset must be 8-aligned and >= {hdr_off:#x}")
        hdr_off = header_offset
    top = max(p.p_paddr + p.p_memsz for p in loads)
    header_addr = align_up(top, 4096) + hdr_off % 4096
    blob, offsets = make_blob(header_addr)
    delta = align_up(max(hdr_off + len(blob) - front_end, 0), align)

    moved = lambda off: off + delta if off >= front_end else off  # noqa: E731
    new_phdrs = []
    for p in phdrs:
        q = _strip(p)
        q["p_offset"] = moved(p.p_offset)
        new_phdrs.append(q)
    last_load = max(i for i, p in enumerate(phdrs) if p.p_type == fmt.PT_LOAD)
    new_phdrs.insert(last_load + 1, dict(p_type=fmt.PT_LOAD, p_offset=hdr_off, p_vaddr=header_addr,
                                         p_paddr=header_addr, p_filesz=len(blob), p_memsz=len(blob),
                                         p_flags=fmt.PF_R, p_align=4096))
    body = bytearray(data[front_end:])
    out = bytearray(front_end + delta)
    out[hdr_off:hdr_off + len(blob)] = blob
    out += body
    e = _strip(ehdr)
    e["ident"] = _strip(ehdr.ident)
    e["e_phnum"] = new_phnum
    if shdrs:
        new_shdrs = []
        for sh in shdrs:
            q = _strip(sh)
            q["sh_offset"] = moved(sh.sh_offset)
            new_shdrs.append(q)
        _append_sections(out, data, e, shdrs, new_shdrs, shdr_s, header_addr, hdr_off, len(blob))
    out[0:ehdr_s.sizeof()] = ehdr_s.build(e)
    if ehdr.e_phoff:
        for i, p in enumerate(new_phdrs):
            at = ehdr.e_phoff + i * ehdr.e_phentsize
            out[at:at + phdr_s.sizeof()] = phdr_s.build(p)
    return bytes(out), hdr_off, header_addr, offsets


def flat_image(data, input_format, kernel):
    """(memory image bytes, load address, entry, memory size) of the kernel as one flat range."""
    if input_format == "binary":
        load = _int(kernel, "load_addr")
        entry = _int(kernel, "entry")
        if load is None or entry is None:
            raise RecipeError("[kernel] a binary input needs load_addr and entry")
        bss = _int(kernel, "bss_size", 0)
        return data + bytes(bss), load, entry
    elf = read_elf(data)
    loads = [s for s in elf.loads if s.memsz]
    if not loads:
        raise BuildError("the ELF has no PT_LOAD segment with memory")
    lo = min(s.paddr for s in loads)
    hi = max(s.paddr + s.memsz for s in loads)
    if hi - lo > 64 << 20:
        raise BuildError(f"segments span {hi - lo:#x} bytes: too sparse for a flat image")
    image = bytearray(hi - lo)
    for s in loads:
        if s.offset + s.filesz > len(data):
            raise FormatError(f"segment {s.index} runs past the end of the file", offset=s.offset)
        image[s.paddr - lo:s.paddr - lo + s.filesz] = data[s.offset:s.offset + s.filesz]
    entry = _int(kernel, "entry", None)
    if entry is None:
        entry = elf.entry
        for s in elf.loads:
            if s.vaddr <= elf.entry < s.vaddr + s.memsz:
                entry = elf.entry - s.vaddr + s.paddr
                break
    return bytes(image), lo, entry


# ------------------------------------------------------------------ the recipe

def _built_protocols(protocol):
    return ("multiboot1", "multiboot2") if protocol == "both" else (protocol,)


def _loaded_ranges(data, input_format):
    """The file ranges a loader copies into memory: each PT_LOAD's [p_offset, p_offset + p_filesz)
    of an ELF (GRUB multiboot_elfxx.c, QEMU, mboot.c32 read no other bytes), all of a flat binary."""
    if input_format != "elf":
        return [(0, len(data))]
    return [(s.offset, s.offset + s.filesz) for s in read_elf(data).loads if s.filesz]


def _second_header_check(data, in_path, protocol, input_format):
    """A header of a protocol being added that a loader would find (in its search window, in
    loaded bytes, with a valid checksum) is refused: the kernel would end with two, and
    loaders take the first they find. Only the magic of one (in the symbol table as a
    `.set` value, with a bad checksum, out of the window, in bytes no loader loads) is no
    header: it is returned as a warning and the build goes on."""
    loaded = _loaded_ranges(data, input_format)

    def in_loaded(offset, size):
        return any(start <= offset and offset + size <= end for start, end in loaded)
    found = {"multiboot1": (mbheaders.find_mb1(data), mbheaders.rejected_mb1(data), fmt.MB1_HEADER_FIXED_SIZE),
             "multiboot2": (None, mbheaders.rejected_mb2(data, architecture=None), fmt.MB2_HEADER_FIXED_SIZE)}
    try:
        found["multiboot2"] = (mbheaders.find_mb2(data, architecture=None),) + found["multiboot2"][1:]
    except FormatError:
        pass        # a header with a lying tag: still a magic that is there (rejected_mb2 or below)
    warnings = []
    for p in _built_protocols(protocol):
        header, rejected, size = found[p]
        if header is not None and in_loaded(header["offset"], size):
            raise BuildError(f"{in_path} already has a {PROTOCOL_NAMES[p]} header at offset {header['offset']:#x}: "
                             f"a second one would not be the one loaders find (build from the kernel "
                             f"without a header)")
        magics = ([{"offset": header["offset"], "problems": []}] if header is not None else []) + rejected
        for r in magics:
            why = list(r["problems"])
            if not in_loaded(r["offset"], size):
                why.append("in bytes no loader loads (no PT_LOAD segment's file data)")
            warnings.append(f"the magic of a {PROTOCOL_NAMES[p]} header at input offset {r['offset']:#x} is no header "
                            f"a loader finds ({'; '.join(why)}): left as it is")
    return warnings


def _refuse_what_grub_refuses(out, protocol, compress):
    """The built kernel through GRUB's verdict for each protocol it carries: a kernel GRUB
    refuses is not written (LoaderRefusal with GRUB's words)."""
    for p in _built_protocols(protocol):
        name = BUILD_VERDICTS[p]
        v = verdict(name, out, None if compress == "none" else compress)
        if not v.ok:
            words = v.words or v.reason
            raise LoaderRefusal(f"the built kernel would be refused by {name}: \"{words}\""
                                + (f" ({v.reason})" if v.reason != words else ""), loader=name, words=v.words)


def build_kernel_recipe(recipe_path, recipe, out_path=None):
    """Build the kernel a [kernel] recipe describes; write it; return a JSON-able summary.

    :raises RecipeError: malformed recipe.
    :raises BuildError: a kernel the loaders would refuse (header out of reach, ...).
    """
    recipe_path = Path(recipe_path)
    kernel = recipe.get("kernel")
    if not isinstance(kernel, dict):
        raise RecipeError("a kernel recipe needs a [kernel] table", path=recipe_path)
    try:
        return _build(recipe_path, kernel, out_path)
    except (RecipeError, BuildError, LoaderRefusal) as exc:
        raise exc.located(path=recipe_path)


def _build(recipe_path, kernel, out_path):
    kernel = validate(kernel, KERNEL_FIELDS, "kernel")
    protocol = kernel["protocol"]
    base = recipe_path.parent
    in_path = recipe_file(base, kernel["input"], "kernel", "input")
    data = read_input(in_path)
    input_format = kernel.get("input_format") or ("elf" if data[:4] == fmt.ELF_MAGIC else "binary")
    if input_format == "elf" and data[:4] != fmt.ELF_MAGIC:
        raise BuildError(f"{in_path} is not an ELF file")
    layout = kernel.get("layout") or ("elf" if input_format == "elf" else "flat")
    if layout == "elf" and input_format != "elf":
        raise RecipeError("[kernel] layout must be elf (ELF input) or flat")
    compress = kernel["compress"]
    mb1_opts = kernel.get("multiboot1", {})
    mb2_opts = dict(validate(kernel.get("multiboot2", {}), MB2_FIELDS, "kernel.multiboot2"))
    testing = validate(kernel.get("testing", {}), TESTING_FIELDS, "kernel.testing")
    allow_refusal = testing["allow_refusal"]
    header_offset = testing.get("header_offset")
    if header_offset is not None and not 0 <= header_offset <= MAX_TEST_HEADER_OFFSET:
        # Loaders search 8 KiB (MB1) and 32 KiB (MB2); a test header may sit past
        # that, but not so far that the kernel written grows without bound (issue 15 item 31).
        raise RecipeError(f"[kernel.testing] header_offset {header_offset:#x} is past {MAX_TEST_HEADER_OFFSET:#x}: "
                          f"loaders search the first {fmt.MB1_SEARCH // 1024} KiB (Multiboot 1) and "
                          f"{fmt.MB2_SEARCH // 1024} KiB (Multiboot 2); test offsets may go up to "
                          f"{MAX_TEST_HEADER_OFFSET // 1024} KiB")

    warnings = _second_header_check(data, in_path, protocol, input_format)

    if layout == "elf":
        entry_req = mb2_opts.pop("entry_address", None)
        elf = read_elf(data)
        if entry_req is True:
            entry_req = elf.entry
            for s in elf.loads:
                if s.vaddr <= elf.entry < s.vaddr + s.memsz:
                    entry_req = elf.entry - s.vaddr + s.paddr
        if entry_req is False:
            entry_req = None
        if "address" in mb2_opts:
            raise RecipeError("[kernel.multiboot2] address is only for layout = \"flat\"")

        def make_blob(header_addr):
            mb1 = build_mb1_header(mb1_opts)
            mb2 = build_mb2_header(build_mb2_tags(mb2_opts, entry=entry_req))
            return header_blob(protocol, mb1, mb2)
        placement = kernel["placement"]
        built = None
        if placement != "segment" and header_offset is None:
            built = elf_extend_header_segment(data, make_blob)
            if built is None and placement == "extend":
                raise BuildError("no PT_LOAD maps the program headers with free room after them")
        if built is None:
            built = elf_with_header_segment(data, make_blob, header_offset)
        out, hdr_off, header_addr, offsets = built
        load_addr = None
    else:
        if header_offset is not None:
            raise RecipeError("[kernel.testing] header_offset applies to layout = \"elf\" only")
        mb2_opts.pop("entry_address", None)
        mb2_opts.pop("address", None)
        image, load_addr, entry = flat_image(data, input_format, kernel)
        hdr_off = align_up(len(image), 8)
        header_addr = load_addr + hdr_off

        def blob_for(end, mb1_at, mb2_at):
            mb1 = build_mb1_header(mb1_opts, dict(header_addr=mb1_at, load_addr=load_addr,
                                                  load_end_addr=end, bss_end_addr=0, entry_addr=entry))
            mb2 = build_mb2_header(build_mb2_tags(mb2_opts, entry=entry, address=dict(
                header_addr=mb2_at, load_addr=load_addr, load_end_addr=end, bss_end_addr=0)))
            return header_blob(protocol, mb1, mb2)
        probe, offsets = blob_for(0, 0, 0)
        end = header_addr + len(probe)
        blob, offsets = blob_for(end, header_addr + offsets.get("multiboot1", 0),
                                 header_addr + offsets.get("multiboot2", 0))
        out = image + bytes(hdr_off - len(image)) + blob
        assert load_addr + len(out) == end

    # The loaders' reach: refuse to write what they cannot find.
    limits = {"multiboot1": fmt.MB1_SEARCH, "multiboot2": fmt.MB2_SEARCH}
    positions = {k: hdr_off + v for k, v in offsets.items()}
    if header_offset is None:
        for k, pos in positions.items():
            if pos + 12 > limits[k]:
                raise BuildError(f"the {k} header would sit at file offset {pos:#x}, past the first "
                                 f"{limits[k] // 1024} KiB where loaders search for it")

    if header_offset is None and not allow_refusal:
        # [kernel.testing] (header_offset, allow_refusal) builds refusals on purpose for tests;
        # anything else must load.
        _refuse_what_grub_refuses(out, protocol, compress)

    final = out
    if compress == "gzip":
        final = gzip.compress(out, mtime=0)
    elif compress == "xz":
        final = lzma.compress(out, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)

    if out_path is None:
        if "output" not in kernel:
            raise RecipeError("no output: give -o or [kernel] output")
        out_path = base / kernel["output"]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, final)
    return {"output": str(out_path), "kind": "kernel",
            "format": f"{PROTOCOL_NAMES[protocol]} kernel ({layout} layout{', ' + compress if compress != 'none' else ''})",
            "protocol": protocol, "layout": layout,
            "input": str(in_path), "size": len(final), "uncompressed_size": len(out),
            "compress": compress, "header_address": header_addr,
            "load_addr": load_addr,
            "multiboot1_offset": positions.get("multiboot1"),
            "multiboot2_offset": positions.get("multiboot2"), "warnings": warnings}
