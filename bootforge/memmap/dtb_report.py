"""`bootforge inspect` for DTBs: header, reservation block, memory summary, DTS text.

It lives in memmap, not fdt, because it reports the memory map the tree
describes: fdt (parse, build, dts) sits below memmap and never imports it.
"""

from bootforge.fdt.dts import to_dts
from bootforge.fdt.dts_checks import check_device_tree
from bootforge.fdt.parse import parse_dtb, parse_header
from bootforge.formats.e820 import E820Type
from bootforge.memmap.convert import fdt_to_map
from bootforge.memmap.formats.json import map_to_json
from bootforge.memmap.model import span_text
from bootforge.memmap.verify import verify_map
from bootforge.report import Report


def inspect_dtb(path, data):
    header = parse_header(data, path)
    tree = parse_dtb(data, path)
    if header["size_dt_struct"] is None:       # version 16: the size the walk found
        header["size_dt_struct"] = tree.layout.struct_size
    memory = fdt_to_map(tree)
    checks = verify_map(memory)
    problems = [c.line() for c in checks if c.fails]
    # Normal for the kind (no /memory in a tree the boot loader fills in, a property
    # dtc warns about and Linux reads around): reported, never failing.
    warnings = [c.line() for c in checks if not c.ok and c.warning]
    # dtc's own checks, as `dtc -I dtb` prints them. Its error-level lines (a name dtc's
    # lexer would not take, a duplicated phandle) are reported too, but as warnings: firmware
    # and Linux read such trees, and only dtc refuses them (unless -f).
    dtc_warnings, dtc_errors = check_device_tree(tree, str(path))
    warnings += dtc_warnings + dtc_errors
    return DtbReport(path=str(path), format="dtb", problems=problems, tree=tree, header=header,
                     memory=memory, memory_json=map_to_json(memory), trailing=len(data) - header["totalsize"],
                     warnings=warnings)


class DtbReport(Report):
    def __init__(self, *, tree, header, memory, memory_json, trailing, warnings=(), **kw):
        super().__init__(**kw)
        self.tree, self.header, self.memory = tree, header, memory
        self.warnings = list(warnings)
        self.memory_json, self.trailing = memory_json, trailing

    def to_json(self):
        h = self.header
        return {
            "header": {k: h[k] for k in ("totalsize", "off_dt_struct", "off_dt_strings", "off_mem_rsvmap",
                                         "version", "last_comp_version", "boot_cpuid_phys",
                                         "size_dt_strings", "size_dt_struct")},
            "trailing_bytes": self.trailing,
            "nodes": self.tree.node_count(),
            "reservations": [{"address": a, "size": s} for a, s in self.tree.reservations],
            "memory": self.memory_json["entries"],
            "dynamic_reserved": self.memory.facts.get("dynamic", []),
            "warnings": self.warnings,
            # Names are the DTB's bytes as latin-1 code points: encode with latin-1 for dtc's bytes.
            "dts": to_dts(self.tree),
        }

    def render_text(self):
        h = self.header
        lines = [f"Flattened device tree, version {h['version']} (last compatible {h['last_comp_version']})",
                 f"  totalsize        {h['totalsize']:#x}" + (f" ({self.trailing} bytes after it in the file)"
                                                             if self.trailing else ""),
                 f"  structure block  {h['off_dt_struct']:#x} ({h['size_dt_struct']:#x} bytes)",
                 f"  strings block    {h['off_dt_strings']:#x} ({h['size_dt_strings']:#x} bytes)",
                 f"  reservation map  {h['off_mem_rsvmap']:#x} ({len(self.tree.reservations)} entries)",
                 f"  boot cpu         {h['boot_cpuid_phys']}",
                 f"  nodes            {self.tree.node_count()}",
                 "Memory reservation block:"]
        lines += [f"  {a:#018x} {s:#018x}" for a, s in self.tree.reservations] or ["  (empty)"]
        lines.append("Memory:")
        for r in self.memory.ranges:
            kind = ("memreserve" if "memreserve" in r.flags else
                    "memory" if r.type == E820Type.RAM else "reserved-memory")
            extra = " ".join(sorted(f for f in r.flags if f != "memreserve"))
            lines.append(f"  [{span_text(r.start, r.size, '#014x')}] {kind:<16} "
                         f"{r.label or ''} {extra}".rstrip())
        for d in self.memory.facts.get("dynamic", []):
            lines.append(f"  dynamic {d['name']}: size {d['size']:#x}"
                         + (f" alignment {d['alignment']:#x}" if "alignment" in d else "")
                         + (" " + " ".join(d["flags"]) if d["flags"] else ""))
        for w in self.warnings:
            lines.append(f"Warning: {w}")
        for p in self.problems:
            lines.append(f"Problem: {p}")
        lines.append("")
        lines.append(to_dts(self.tree).rstrip("\n"))
        return "\n".join(lines)

    def render_bytes(self):
        """The text as bytes, byte-exact where dtc is: node and property names are the DTB's
        own bytes (parse_dtb decodes them as latin-1, one code point per byte), which dtc
        prints unchanged; UTF-8 would turn byte 0xe9 into 0xc3 0xa9 and a recompiled tree
        would change. Everything else in the report is ASCII."""
        return self.render_text().encode("latin-1", "backslashreplace")
