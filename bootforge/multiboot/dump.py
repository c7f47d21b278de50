"""The dump format of stubs/mbdump.S, and its report; the boot information it carries is
decoded by bootforge.multiboot.mbi1 (Multiboot 1) and mbi2 (Multiboot 2).

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

from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError
from bootforge.formats import multiboot as fmt
from bootforge.multiboot.mbi1 import decode_mb1_info, walk_mb1_mmap  # noqa: F401  (the decoders, by family)
from bootforge.multiboot.mbi2 import decode_info_tag, decode_mb2_info  # noqa: F401
from bootforge.report import DocumentReport
from bootforge.text import field_text

DUMP_BANNER = b"BFMBDUMP "
MAX_REGIONS = 1024
MAX_STRING = 4096


@dataclass
class Region:
    name: str
    address: int
    data: bytes
    file_offset: int                                # of its REGION line
    hex_lines: list = field(default_factory=list)   # (first byte index, file offset) of each hex line

    def byte_file_offset(self, index):
        """The file offset of the hex digits of byte *index* of the region."""
        at = self.file_offset
        for first, offset in self.hex_lines:
            if first > index:
                break
            at = offset + 2 * (index - first)
        return at


def parse_dump(data):
    """(eax, ebx, regions, complete) from the dump text; FormatError on a malformed frame."""
    if not data.startswith(DUMP_BANNER):
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
        words = line.split()
        if not words:           # a blank or whitespace-only line (what a serial console adds)
            continue
        if words[0] in (b"EAX", b"EBX") and len(words) == 2:
            regs[words[0].decode()] = hexnum(words[1], off, words[0].decode())
        elif words[0] == b"REGION" and len(words) == 4:
            if len(regions) >= MAX_REGIONS:
                raise LimitError(f"more than {MAX_REGIONS} regions", offset=off)
            name = words[1].decode("latin-1")
            addr = hexnum(words[2], off, "region address")
            length = hexnum(words[3], off, "region length")
            buf = bytearray()
            hex_lines = []
            for hoff, hline in it:
                if hline == b"END":
                    break
                hex_lines.append((len(buf), hoff))
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
            regions.append(Region(name, addr, bytes(buf), off, hex_lines))
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
        try:
            doc["multiboot2"] = decode_mb2_info(mbi.data)
        except FormatError as exc:
            # The decoder counts bytes of the region; the file offset is where their hex digits are.
            index = exc.offset or 0
            exc.offset = mbi.byte_file_offset(index)
            exc.message = f"mbi byte {index:#x}: {exc.message}"
            raise
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
class DumpReport(DocumentReport):
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
                out.append(f"    {k}: {field_text(k, v)}")
            for i, mod in enumerate(m.get("modules", [])):
                out.append(f"    module {i}: [{mod['mod_start']:#x}, {mod['mod_end']:#x}) "
                           f"{mod['mod_size']} bytes {mod['string']!r}")
            for e in m.get("mmap", []):
                out.append(f"    mmap {e['base_addr']:#018x} +{e['length']:#x} type {e['type']}")
        for p in self.problems:
            out.append(f"  problem: {p}")
        return "\n".join(out)


T = fmt.Mb2Tag


def _tag_line(t):
    name = f"tag {t['type']:2d} {t['name']:<17}"
    if t["type"] in (T.CMDLINE, T.BOOT_LOADER_NAME):
        return f"{name} {t['string']!r}"
    if t["type"] == T.MODULE:
        return f"{name} [{t['mod_start']:#x}, {t['mod_end']:#x}) {t['mod_size']} bytes {t['string']!r}"
    if t["type"] == T.MMAP:
        rows = "; ".join(f"{e['base_addr']:#x}+{e['length']:#x} t{e['type']}" for e in t["entries"])
        return f"{name} {len(t['entries'])} entries: {rows}"
    if t["type"] == T.EFI_MMAP:
        return f"{name} {len(t['descriptors'])} descriptors of {t['descr_size']} bytes"
    extra = {k: v for k, v in t.items() if k not in ("type", "name", "size", "position")}
    return f"{name} " + ", ".join(f"{k} {field_text(k, v)}" for k, v in extra.items())


def inspect_dump(path, data):
    """`bootforge inspect` of a BFMBDUMP file (bootforge/inspect.py's "mbdump" row)."""
    doc, problems = decode_dump(data)
    return DumpReport(path=str(path), format="mbdump", problems=problems, doc=doc)
