"""What a device-tree loader hands the kernel, shared by the QEMU/U-Boot policies: the DTB
prediction's report (DTS, diff against the machine's DTB, the memory map it describes,
the properties declared random) and the comparison with a dump kernel's capture.
"""

import difflib
import re
from dataclasses import dataclass, field

from bootforge.errors import FormatError
from bootforge.fdt.dts import to_dts
from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot.libfdt import Fdt


@dataclass(frozen=True)
class RandomProperty:
    """A property whose value differs per boot: predicted present, with its size."""
    path: str
    name: str
    size: int
    reason: str
    part: str = "value"         # "value", or "padding": the alignment bytes after it (libfdt's stale bytes)


def dts_diff(before, after, before_name="machine DTB", after_name="handed to the kernel"):
    return list(difflib.unified_diff(to_dts(parse_dtb(before)).splitlines(), to_dts(parse_dtb(after)).splitlines(),
                                     before_name, after_name, lineterm="", n=1))


def mark_random(fdt, random_props):
    """Mark the bytes of *random_props* in *fdt* (a libfdt.Fdt) as random before edits move them."""
    for r in random_props:
        node = fdt.path_offset(r.path)
        found = fdt.value_span(node, r.name) if node is not None else None
        if found is None:
            continue
        start, length = found
        if r.part == "padding":
            start, length = start + length, -length % 4
        fdt.mark_random(start, length)


def masked(blob, spans):
    """*blob* with every byte of *spans* [(offset, length)] zeroed: what must match exactly."""
    out = bytearray(blob)
    for start, length in spans:
        out[start:start + length] = bytes(length)
    return bytes(out)


def devicetree_facts(machine_dtb, handed, address, registers, random_props, source, random_bytes):
    """The JSON facts of a DTB hand-over (LoadResult.linux["devicetree"]); *random_bytes*: the
    [(offset, length)] spans that differ per boot (the random properties where the edits moved
    them, and the stale copies of them libfdt left in alignment padding)."""
    tree = parse_dtb(handed)
    return {"address": address, "totalsize": len(handed), "registers": registers, "machine_dtb": source,
            "random_bytes": [list(span) for span in random_bytes],
            "nodes": tree.node_count(),
            "random": [{"path": r.path, "property": r.name, "part": r.part, "size": r.size, "reason": r.reason}
                       for r in random_props],
            "diff": dts_diff(machine_dtb, handed), "dts": to_dts(tree)}


@dataclass
class DtDump:
    """A dtdump kernel's capture (stubs/dtdump-*.S)."""
    arch: str
    registers: dict
    image: int
    initrd: int | None
    dtb_address: int | None
    dtb: bytes                      # the dumped part: up to the end of its last block
    totalsize: int | None
    tail_zero: bool | None
    done: bool
    facts: dict = field(default_factory=dict)

    def full_dtb(self):
        """The DTB as the kernel got it (totalsize bytes), when everything after the dump is zero."""
        if self.totalsize is None or not self.tail_zero:
            return None
        return self.dtb + bytes(self.totalsize - len(self.dtb))


def read_dtdump(text, path=None):
    """Parse a dtdump capture (serial output; anything before the BFDTDUMP line is firmware's)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("BFDTDUMP ")), None)
    if start is None:
        raise FormatError("no BFDTDUMP line: not a dtdump capture", path=path)
    words = lines[start].split()
    if len(words) != 3 or words[1] != "1":
        raise FormatError(f"dtdump line {lines[start]!r} is not version 1", path=path)
    regs, image, initrd, address, dtb, total, tail, done = {}, None, None, None, b"", None, None, False
    i = start + 1
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if re.fullmatch(r"[XAR]\d [0-9a-f]{16}", line):
            regs[line[:2].lower()] = int(line[3:], 16)
        elif line.startswith("IMAGE "):
            image = int(line[6:], 16)
        elif line.startswith("INITRD "):
            initrd = None if line[7:] == "none" else int(line[7:], 16)
        elif line.startswith("REGION dtb "):
            _, _, addr, size = line.split()
            address, size = int(addr, 16), int(size, 16)
            chunks = []
            while i < len(lines) and lines[i].strip() != "END":
                chunks.append(lines[i].strip())
                i += 1
            i += 1
            try:
                dtb = bytes.fromhex("".join(chunks))
            except ValueError:
                raise FormatError("DTB hex lines are not hex", path=path) from None
            if len(dtb) != size:
                raise FormatError(f"DTB region says {size:#x} bytes, the lines hold {len(dtb):#x}", path=path)
        elif line.startswith("TAIL "):
            parts = line.split()
            total, tail = int(parts[1], 16), parts[2] == "zero"
        elif line == "DONE":
            done = True
            break
    return DtDump(words[2], regs, image, initrd, address, dtb, total, tail, done)
