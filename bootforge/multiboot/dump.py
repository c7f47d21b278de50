"""The dump format of stubs/mbdump.S, and decoders for the boot information it carries.

    BFMBDUMP 1
    EAX <8 hex>
    EBX <8 hex>
    REGION <name> <address 8 hex> <length 8 hex>
    <hex bytes, 32 per line>
    END
    ...
    DONE

Multiboot2: one region "mbi" (total_size bytes). Multiboot1: "mbi" (116 bytes)
and every region its flags validate (cmdline, mods, modcmd..., mmap, drives,
loader, apm, shdr). Decoding follows the pointers through the dumped memory,
checking every length and refusing overlapping or cyclic structures.
"""

import struct
from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError
from bootforge.formats import flag_labels, multiboot as fmt, parse, struct_format
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_MIN_SIZE, EfiMemoryType, descriptor_struct
from bootforge.report import Report, to_plain

MAX_REGIONS = 1024
MAX_INFO_TAGS = 4096
MAX_STRING = 4096

T = fmt.Mb2Tag
F = fmt.MbiFlag
MBI2_FIXED_STRUCT = struct_format(fmt.Multiboot2InfoFixed)
MBI2_TAG_HEADER_STRUCT = struct_format(fmt.Multiboot2InfoTagHeader)
MODULE_SIZE = fmt.Multiboot1Module.sizeof()


def _efi_spec_name(number):
    try:
        return EfiMemoryType(number).spec_name
    except ValueError:
        return "unknown"


@dataclass
class Region:
    name: str
    address: int
    data: bytes
    file_offset: int


def parse_dump(data):
    """(eax, ebx, regions, complete) from the dump text; FormatError on a malformed frame."""
    if not data.startswith(b"BFMBDUMP "):
        raise FormatError("not a bootforge Multiboot dump (no 'BFMBDUMP' banner)", offset=0)
    lines = []
    pos = 0
    for raw in data.split(b"\n"):
        lines.append((pos, raw.rstrip(b"\r")))
        pos += len(raw) + 1
    if lines[0][1] != b"BFMBDUMP 1":
        raise FormatError(f"unsupported dump version {lines[0][1][9:].decode('latin-1')!r}", offset=0)
    it = iter(lines[1:])
    regs = {}
    regions = []
    complete = False

    def hexnum(tok, off, what):
        try:
            if len(tok) != 8:
                raise ValueError
            return int(tok, 16)
        except ValueError:
            raise FormatError(f"{what} {tok.decode('latin-1')!r} is not 8 hex digits", offset=off) from None

    for off, line in it:
        if not line:
            continue
        words = line.split()
        if words[0] in (b"EAX", b"EBX") and len(words) == 2:
            regs[words[0].decode()] = hexnum(words[1], off, words[0].decode())
        elif words[0] == b"REGION" and len(words) == 4:
            if len(regions) >= MAX_REGIONS:
                raise LimitError(f"more than {MAX_REGIONS} regions", offset=off)
            name = words[1].decode("latin-1")
            addr = hexnum(words[2], off, "region address")
            length = hexnum(words[3], off, "region length")
            buf = bytearray()
            for hoff, hline in it:
                if hline == b"END":
                    break
                try:
                    buf += bytes.fromhex(hline.decode("ascii"))
                except (ValueError, UnicodeDecodeError):
                    raise FormatError(f"bad hex line in region {name}", offset=hoff) from None
                if len(buf) > length:
                    raise FormatError(f"region {name} has more bytes than its length {length:#x}",
                                      offset=hoff)
            else:
                raise FormatError(f"region {name} at {addr:#x} is cut off before END "
                                  f"({len(buf)} of {length} bytes)", offset=len(data))
            if len(buf) != length:
                raise FormatError(f"region {name} holds {len(buf)} bytes, its header says {length}",
                                  offset=off)
            regions.append(Region(name, addr, bytes(buf), off))
        elif words[0] == b"DONE":
            complete = True
            break
        else:
            raise FormatError(f"unexpected line {line[:40].decode('latin-1')!r}", offset=off)
    if "EAX" not in regs or "EBX" not in regs:
        raise FormatError("dump without EAX/EBX lines", offset=0)
    return regs["EAX"], regs["EBX"], regions, complete


class Memory:
    """Dumped guest memory: reads succeed only inside one dumped region."""

    def __init__(self, regions):
        self.regions = regions

    def read(self, addr, length):
        for r in self.regions:
            if r.address <= addr and addr + length <= r.address + len(r.data):
                return r.data[addr - r.address:addr - r.address + length]
        return None

    def string(self, addr):
        for r in self.regions:
            if r.address <= addr < r.address + len(r.data):
                chunk = r.data[addr - r.address:addr - r.address + MAX_STRING]
                end = chunk.find(b"\0")
                if end < 0:
                    return None, None
                return chunk[:end].decode("utf-8", "replace"), end + 1
        return None, None


# ------------------------------------------------------------------ Multiboot2 boot information

def decode_mb2_info(mbi, base_offset=0):
    """Decode MB2 boot information bytes *mbi* (starting at total_size); FormatError on lies."""
    if len(mbi) < 8:
        raise FormatError("Multiboot2 information shorter than its 8-byte header", offset=base_offset)
    total, _reserved = struct.unpack_from(MBI2_FIXED_STRUCT, mbi)
    if total > len(mbi):
        raise FormatError(f"MBI total_size {total:#x} exceeds the {len(mbi):#x} bytes dumped",
                          offset=base_offset)
    if total < 16:
        raise FormatError(f"MBI total_size {total} is below 16 (header and end tag)", offset=base_offset)
    pos = 8
    tags = []
    while True:
        if len(tags) >= MAX_INFO_TAGS:
            raise LimitError(f"more than {MAX_INFO_TAGS} information tags", offset=base_offset + pos)
        if pos + 8 > total:
            raise FormatError("MBI tags run past total_size without an end tag", offset=base_offset + pos)
        ttype, size = struct.unpack_from(MBI2_TAG_HEADER_STRUCT, mbi, pos)
        if size < 8 or pos + size > total:
            raise FormatError(f"MBI tag type {ttype} of size {size} at {pos:#x} does not fit in "
                              f"total_size {total:#x}", offset=base_offset + pos)
        tags.append(decode_info_tag(ttype, mbi[pos:pos + size], base_offset + pos))
        tags[-1]["position"] = pos
        if ttype == T.END:
            break
        pos += size + (-size % 8)
    return {"total_size": total, "tags": tags}


def decode_info_tag(ttype, raw, offset):
    size = len(raw)
    minimum = {3: 16, 4: 16, 5: 20, 6: 16, 7: 784, 8: 31, 9: 20, 10: 28, 11: 12, 12: 16, 13: 16,
               17: 16, 19: 12, 20: 16, 21: 12}.get(ttype, 8)
    if size < minimum:
        raise FormatError(f"MBI tag type {ttype} has size {size}, below its minimum {minimum}",
                          offset=offset)
    if ttype == T.MMAP:
        esize = struct.unpack_from("<I", raw, fmt.MB2_TAG_HEADER_SIZE)[0]
        if esize < fmt.MB2_MMAP_ENTRY_SIZE:
            raise FormatError(f"mmap entry_size {esize} is below 24", offset=offset + 8)
    if ttype == T.EFI_MMAP:
        dsize = struct.unpack_from("<I", raw, fmt.MB2_TAG_HEADER_SIZE)[0]
        if dsize < EFI_DESCRIPTOR_MIN_SIZE:
            raise FormatError(f"EFI mmap descr_size {dsize} is below 40", offset=offset + 8)
    padded = raw + bytes(-size % 8)
    parsed = parse(fmt.Multiboot2InfoTag, padded, what=f"MBI tag type {ttype}")
    tag = {"type": ttype, "name": T.label_of(ttype), "size": size}
    body = parsed.body
    if ttype in (T.CMDLINE, T.BOOT_LOADER_NAME):
        tag["string"] = body.string.decode("utf-8", "replace")
    elif ttype == T.MODULE:
        tag.update(mod_start=body.mod_start, mod_end=body.mod_end,
                   mod_size=body.mod_end - body.mod_start, string=body.string.decode("utf-8", "replace"))
    elif ttype == T.MMAP:
        tag.update(entry_size=body.entry_size, entry_version=body.entry_version,
                   entries=[{"base_addr": e.base_addr, "length": e.length, "type": e.type}
                            for e in body.entries])
    elif ttype == T.FRAMEBUFFER:
        tag.update({k: v for k, v in to_plain(body).items() if k != "color_info"})
        ci = body.color_info
        if body.framebuffer_type == fmt.FramebufferType.INDEXED and len(ci) >= 2:
            n = min(struct.unpack_from("<H", ci)[0], (len(ci) - 2) // 3)
            tag["palette"] = [list(ci[2 + 3 * i:5 + 3 * i]) for i in range(n)]
        elif body.framebuffer_type == fmt.FramebufferType.RGB and len(ci) >= 6:
            tag.update(to_plain(parse(fmt.FramebufferRgb, ci, what="framebuffer colour info")))
    elif ttype == T.ELF_SECTIONS:
        tag.update(num=body.num, entsize=body.entsize, shndx=body.shndx,
                   sections_size=len(body.sections))
    elif ttype == T.EFI_MMAP:
        d = body.descr_size
        whole = body.map[:len(body.map) - len(body.map) % d]
        descs = [{"type": t, "type_name": _efi_spec_name(t), "physical_start": phys,
                  "number_of_pages": pages, "attribute": attr}
                 for t, phys, _virt, pages, attr in descriptor_struct(d).iter_unpack(whole)]
        tag.update(descr_size=d, descr_vers=body.descr_vers, descriptors=descs)
    elif ttype == T.VBE:
        tag.update(vbe_mode=body.vbe_mode, vbe_interface_seg=body.vbe_interface_seg,
                   vbe_interface_off=body.vbe_interface_off, vbe_interface_len=body.vbe_interface_len)
        tag.update(decode_vbe(body.vbe_control_info, body.vbe_mode_info))
    elif ttype in (T.ACPI_OLD, T.ACPI_NEW):
        tag["rsdp"] = body.rsdp.hex()
        tag["signature"] = body.rsdp[:8].decode("latin-1")
    else:
        tag.update(to_plain(body))
        if tag.get("payload") == "":
            del tag["payload"]
    return tag


# ------------------------------------------------------------------ Multiboot1 boot information

def decode_mb1_info(mem, mbi_addr):
    """Decode the MB1 info at *mbi_addr* through *mem*; problems for pointers outside the dump."""
    raw = mem.read(mbi_addr, fmt.MBI1_SIZE)
    if raw is None:
        raise FormatError(f"the MBI at {mbi_addr:#x} is not in the dump")
    info = parse(fmt.Multiboot1Info, raw, what="Multiboot1 information")
    flags = info.flags
    doc = {"flags": flags, "flags_set": flag_labels(F, flags)}
    problems = []
    # Loaders that never set the framebuffer bit (QEMU, Syslinux) write only 88 bytes.
    spans = [("mbi", mbi_addr, fmt.MBI1_SIZE if flags & F.FRAMEBUFFER else fmt.MBI1_SIZE_WITHOUT_FRAMEBUFFER)]

    def need(what, addr, length):
        data = mem.read(addr, length)
        if data is None:
            problems.append(f"{what} at {addr:#x} ({length} bytes) is not in the dump")
        else:
            spans.append((what, addr, length))
        return data

    def string(what, addr):
        s, n = mem.string(addr)
        if s is None:
            problems.append(f"{what} at {addr:#x} is not a NUL-terminated string in the dump")
            return None
        spans.append((what, addr, n))
        return s

    if flags & F.MEM:
        doc.update(mem_lower=info.mem_lower, mem_upper=info.mem_upper)
    if flags & F.BOOT_DEVICE:
        doc["boot_device"] = info.boot_device
    if flags & F.CMDLINE:
        doc["cmdline_addr"] = info.cmdline
        doc["cmdline"] = string("cmdline", info.cmdline)
    if flags & F.MODS:
        doc.update(mods_count=info.mods_count, mods_addr=info.mods_addr, modules=[])
        if info.mods_count > 1024:
            raise LimitError(f"mods_count {info.mods_count} (limit 1024)", offset=20)
        table = need("mods", info.mods_addr, MODULE_SIZE * info.mods_count) if info.mods_count else b""
        if table is not None:
            for i in range(info.mods_count):
                m = parse(fmt.Multiboot1Module, table, MODULE_SIZE * i, what=f"module {i}")
                doc["modules"].append({"mod_start": m.mod_start, "mod_end": m.mod_end,
                                       "mod_size": m.mod_end - m.mod_start, "cmdline_addr": m.cmdline,
                                       "string": string(f"module {i} string", m.cmdline)})
    if flags & F.AOUT_SYMS and not flags & F.ELF_SHDR:
        doc["aout_syms"] = to_plain(parse(fmt.Multiboot1AoutSymbols, info.syms, what="a.out symbols"))
    if flags & F.ELF_SHDR:
        doc["elf_sections"] = to_plain(parse(fmt.Multiboot1ElfSections, info.syms, what="ELF sections"))
    if flags & F.MMAP:
        doc.update(mmap_addr=info.mmap_addr, mmap_length=info.mmap_length)
        table = need("mmap", info.mmap_addr, info.mmap_length)
        if table is not None:
            doc["mmap"] = walk_mb1_mmap(table, info.mmap_addr)
    if flags & F.DRIVES:
        doc.update(drives_addr=info.drives_addr, drives_length=info.drives_length)
        need("drives", info.drives_addr, info.drives_length)
    if flags & F.CONFIG_TABLE:
        doc["config_table"] = info.config_table
    if flags & F.BOOT_LOADER_NAME:
        doc["boot_loader_name"] = string("boot_loader_name", info.boot_loader_name)
    if flags & F.APM_TABLE:
        apm = need("apm", info.apm_table, fmt.APM_TABLE_SIZE)
        if apm is not None:
            doc["apm"] = to_plain(parse(fmt.ApmTable, apm, what="APM table"))
    if flags & F.VBE:
        doc["vbe"] = {k: getattr(info, k) for k in ("vbe_control_info", "vbe_mode_info", "vbe_mode",
                                                     "vbe_interface_seg", "vbe_interface_off",
                                                     "vbe_interface_len")}
        ctl = need("vbe_control_info", info.vbe_control_info, fmt.VbeInfoBlock.sizeof())
        mode = need("vbe_mode_info", info.vbe_mode_info, fmt.VbeModeInfoBlock.sizeof())
        doc["vbe"].update(decode_vbe(ctl, mode))
    if flags & F.FRAMEBUFFER:
        doc["framebuffer"] = {k: getattr(info, k) for k in ("framebuffer_addr", "framebuffer_pitch",
                                                             "framebuffer_width", "framebuffer_height",
                                                             "framebuffer_bpp", "framebuffer_type")}
    check_overlaps(spans)
    return doc, problems


def decode_vbe(control, mode):
    """The interesting fields of the VBE controller and mode info blocks (either may be None)."""
    out = {}
    if control is not None:
        c = parse(fmt.VbeInfoBlock, control, what="VBE controller information")
        out["controller"] = {"signature": c.signature.decode("latin-1"), "version": c.version,
                             "total_memory_kib": c.total_memory * 64, "capabilities": c.capabilities}
    if mode is not None:
        m = parse(fmt.VbeModeInfoBlock, mode, what="VBE mode information")
        out["mode_info"] = {k: getattr(m, k) for k in (
            "mode_attributes", "x_resolution", "y_resolution", "bits_per_pixel", "memory_model",
            "bytes_per_scan_line", "phys_base_ptr")}
    return out


def walk_mb1_mmap(table, base):
    """Entries of an MB1 mmap buffer; FormatError for entries that do not fit or make no progress."""
    entries = []
    pos = 0
    while pos < len(table):
        if pos + 4 > len(table):
            raise FormatError(f"mmap entry at {base + pos:#x} cut off by mmap_length")
        size = struct.unpack_from("<I", table, pos)[0]
        if size < 20:
            raise FormatError(f"mmap entry at {base + pos:#x} has size {size} (minimum 20)")
        if pos + 4 + size > len(table):
            raise FormatError(f"mmap entry at {base + pos:#x} of size {size} runs past mmap_length")
        _, addr, length, mtype = struct.unpack_from("<IQQI", table, pos)
        entries.append({"size": size, "base_addr": addr, "length": length, "type": mtype})
        pos += size + 4
        if len(entries) > 4096:
            raise LimitError("more than 4096 mmap entries")
    return entries


def check_overlaps(spans):
    """Structures the MBI points at must not overlap (identical strings may be shared)."""
    ordered = sorted(set(spans), key=lambda s: (s[1], s[2]))
    for (n1, a1, l1), (n2, a2, l2) in zip(ordered, ordered[1:]):
        if a2 < a1 + l1 and not (a1 == a2 and l1 == l2 and "string" in n1 + n2 or
                                 a1 == a2 and l1 == l2 and "cmdline" in n1 + n2):
            raise FormatError(f"MB1 pointers overlap or loop: {n1} [{a1:#x}, {a1 + l1:#x}) overlaps "
                              f"{n2} [{a2:#x}, {a2 + l2:#x})")


# ------------------------------------------------------------------ the report

def decode_dump(data):
    eax, ebx, regions, complete = parse_dump(data)
    doc = {"eax": eax, "ebx": ebx, "magic": eax, "mbi_address": ebx, "complete": complete,
           "regions": [{"name": r.name, "address": r.address, "length": len(r.data)} for r in regions]}
    problems = [] if complete else ["dump ends before DONE (the kernel stopped or was cut off)"]
    if eax == fmt.MB2_BOOTLOADER_MAGIC:
        doc["protocol"] = "multiboot2"
        mbi = next((r for r in regions if r.name == "mbi"), None)
        if mbi is None:
            raise FormatError("Multiboot2 dump without an mbi region")
        if mbi.address != ebx:
            problems.append(f"mbi region at {mbi.address:#x} but EBX is {ebx:#x}")
        doc["multiboot2"] = decode_mb2_info(mbi.data, mbi.file_offset)
    elif eax == fmt.MB1_BOOTLOADER_MAGIC:
        doc["protocol"] = "multiboot1"
        try:
            info, more = decode_mb1_info(Memory(regions), ebx)
        except FormatError as exc:
            mbi = next((r for r in regions if r.name == "mbi"), None)
            raise exc.located(offset=mbi.file_offset if mbi else 0)
        doc["multiboot1"] = info
        problems += more
    else:
        doc["protocol"] = None
        problems.append(f"EAX {eax:#x} is no Multiboot boot magic")
    return doc, problems


@dataclass
class DumpReport(Report):
    doc: dict = field(default_factory=dict)

    def to_json(self):
        return self.doc

    def render_text(self):
        d = self.doc
        out = [f"{self.path}: Multiboot dump, EAX {d['eax']:#010x} ({d['protocol'] or 'unknown'}), "
               f"MBI at {d['ebx']:#x}{'' if d['complete'] else ' (incomplete)'}"]
        for r in d["regions"]:
            out.append(f"  region {r['name']:<8} {r['address']:#10x} {r['length']:#8x} bytes")
        if d.get("multiboot2"):
            m = d["multiboot2"]
            out.append(f"  total_size {m['total_size']:#x}, {len(m['tags'])} tags")
            for t in m["tags"]:
                out.append("  " + _tag_line(t))
        if d.get("multiboot1"):
            m = d["multiboot1"]
            out.append(f"  flags {m['flags']:#x}: {', '.join(m['flags_set'])}")
            for k, v in m.items():
                if k in ("flags", "flags_set", "modules", "mmap"):
                    continue
                out.append(f"    {k}: {v:#x}" if isinstance(v, int) else f"    {k}: {v}")
            for i, mod in enumerate(m.get("modules", [])):
                out.append(f"    module {i}: [{mod['mod_start']:#x}, {mod['mod_end']:#x}) "
                           f"{mod['mod_size']} bytes {mod['string']!r}")
            for e in m.get("mmap", []):
                out.append(f"    mmap {e['base_addr']:#018x} +{e['length']:#x} type {e['type']}")
        for p in self.problems:
            out.append(f"  problem: {p}")
        return "\n".join(out)


def _tag_line(t):
    name = f"tag {t['type']:2d} {t['name']:<17}"
    if t["type"] in (1, 2):
        return f"{name} {t['string']!r}"
    if t["type"] == 3:
        return f"{name} [{t['mod_start']:#x}, {t['mod_end']:#x}) {t['mod_size']} bytes {t['string']!r}"
    if t["type"] == 6:
        rows = "; ".join(f"{e['base_addr']:#x}+{e['length']:#x} t{e['type']}" for e in t["entries"])
        return f"{name} {len(t['entries'])} entries: {rows}"
    if t["type"] == 17:
        return f"{name} {len(t['descriptors'])} descriptors of {t['descr_size']} bytes"
    extra = {k: v for k, v in t.items() if k not in ("type", "name", "size", "position")}
    return f"{name} " + ", ".join(f"{k} {v:#x}" if isinstance(v, int) else f"{k} {v}"
                                  for k, v in extra.items())
