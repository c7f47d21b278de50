"""`bootforge load` of a machine with devices and no kernel: the POST report as text, JSON
and an SVG of the first MiB with the option-ROM area."""

from html import escape

from bootforge.memmap import svg as base
from bootforge.text import human_size

REGION_COLOURS = {"ram": "#2ca02c", "ebda": "#8c8c8c", "vga-memory": "#17becf", "option-rom": "#d32f2f",
                  "option-rom-freed": "#f4a6a6", "umb-free": "#bcbd22", "seabios": "#455a64",
                  "bios-tables": "#7b1fa2"}
BAR = 44
ROW = 13


def post_json(result):
    doc = {"machine": {"memory_bytes": result.machine.memory_bytes,
                       "vga": "std" if result.machine.vga else "none",
                       "devices": [{"device": d.model.name, "pci_ids": d.model.ids, "slot": f"00:{d.slot:02x}.0",
                                    "romfile": None if d.rom_path is None else str(d.rom_path),
                                    "bootindex": d.bootindex} for d in result.machine.devices]},
           "firmware": "SeaBIOS 1.16.2 (Debian 12) on QEMU 7.2 pc"}
    doc.update(result.to_json())
    doc["bcv_calls"] = result.bcv_calls
    return doc


def post_text(result):
    m = result.machine
    out = [f"SeaBIOS POST on QEMU pc, {human_size(m.memory_bytes)}, VGA {'std' if m.vga else 'none'}, "
           f"{len(m.devices)} device(s)", "", "Option ROMs (in scan order)"]
    for r in result.option_roms:
        where = f"{r.segment:04x}:0003" if r.address is not None else "-"
        sizes = "" if r.size is None else f" {human_size(r.size)}"
        if r.size_after_init is not None and r.size_after_init != r.size:
            sizes += f" -> {human_size(r.size_after_init)} after init"
        out.append(f"  {r.device:<22} {'runs' if r.runs else 'no':<5} {where:<10}{sizes}")
        out.append(f"      {r.reason}")
        if r.words:
            out.append(f"      SeaBIOS: {r.words}")
        if r.file:
            out.append(f"      file {r.file}")
    out.append("")
    out.append("UMB space left: " + ", ".join(f"[{a:#x}, {b:#x})" for a, b in result.umb_free))
    out.append("")
    out.append("Boot sequence (int 19h, then int 18h for each failure)")
    for i, b in enumerate(result.boot_entries, 1):
        what = {"bev": "ROM BEV", "harddisk": "Hard Disk", "floppy": "Floppy", "cdrom": "DVD/CD"}[b.kind]
        extra = f" {b.vector}" if b.vector else ""
        dev = f" ({b.device})" if b.device else ""
        out.append(f"  {i}. {what}{extra}{dev}  priority {b.priority}  {b.description or ''}".rstrip())
    if result.bcv_calls:
        out.append("  BCVs called before booting: " + ", ".join(result.bcv_calls))
    out.append("")
    out.append("PMM calls during POST")
    if not result.pmm:
        out.append("  none")
    for c in result.pmm:
        line = f"  {c.device:<10} {c.function:<8} handle {c.handle:#010x} ({c.purpose})"
        if c.function == "allocate":
            line += f" {human_size(c.paragraphs * 16)} flags {c.flags}"
        line += f": {c.outcome}" + (f" at {c.result:#x}" if c.result else "")
        out.append(line)
    out.append("")
    out.append(f"EBDA at {result.ebda['start']:#x} ({result.ebda['size']} bytes), not moved: "
               f"{result.ebda['reason']}")
    out.append(f"BDA 40:13 after POST: {result.bda_fbms_kib} KiB")
    out.append("")
    out.append("E820 after POST")
    for r in result.e820_after_post.ranges:
        out.append(f"  [{r.start:#018x}, {r.start + r.size:#018x}) {result.e820_after_post.type_name(r)}")
    return "\n".join(out) + "\n"


def low_regions(result):
    """The first MiB after POST: [(start, end, kind, label)], in address order."""
    regions = [(0, result.ebda["start"], "ram", "RAM (INT 12h)"),
               (result.ebda["start"], result.ebda["start"] + result.ebda["size"], "ebda", "EBDA"),
               (0xA0000, 0xC0000, "vga-memory", "VGA memory")]
    for r in result.option_roms:
        if r.address is None:
            continue
        kept = r.address + r.size_after_init
        regions.append((r.address, kept, "option-rom", f"{r.device} ROM"))
    (umb_lo, umb_hi), (fseg_lo, fseg_hi) = result.umb_free
    regions.append((umb_lo, umb_hi, "umb-free", "UMB free"))
    regions.append((umb_hi, 0xF0000, "seabios", "SeaBIOS low memory (ZoneLow)"))
    regions.append((0xF0000, fseg_lo, "seabios", "SeaBIOS"))
    regions.append((fseg_lo, fseg_hi, "umb-free", "f-segment free"))
    regions.append((fseg_hi, 0x100000, "bios-tables", "SMBIOS, MP table, PIR, SeaBIOS"))
    return sorted(regions)


def post_svg(result):
    """The E820 after POST (memmap's drawing), then the first MiB and the option-ROM area zoomed."""
    drawing = base.draw_map(result.e820_after_post, f"SeaBIOS POST on QEMU pc, {human_size(result.machine.memory_bytes)}")
    x0 = base.MARGIN + base.LABEL_WIDTH
    width = base.WIDTH - base.LABEL_WIDTH - 2 * base.MARGIN
    parts, y = [], drawing.height
    regions = low_regions(result)
    for lo, hi, title in ((0, 0x100000, "0 - 1 MiB after POST"), (0xC0000, 0x100000, "option-ROM area")):
        parts.append(f'<text x="{base.MARGIN}" y="{y + 4}" font-size="13">{escape(title)} '
                     f'[{lo:#x}, {hi:#x})</text>')
        y += 14
        parts.append(f'<rect x="{x0}" y="{y}" width="{width}" height="{BAR}" fill="white" stroke="#333"/>')
        shown = [r for r in regions if r[1] > lo and r[0] < hi and r[1] > r[0]]
        span = hi - lo
        for j, (a, b, kind, label) in enumerate(shown):
            a, b = max(a, lo), min(b, hi)
            x, w = x0 + (a - lo) * width / span, max((b - a) * width / span, 1.5)
            c = REGION_COLOURS[kind]
            parts.append(f'<rect x="{x:.2f}" y="{y + 4}" width="{w:.2f}" height="{BAR - 8}" fill="{c}" '
                         f'fill-opacity="0.8" stroke="#000" stroke-width="0.4"><title>{escape(label)} '
                         f'[{a:#x}, {b:#x})</title></rect>')
            ly = y + BAR + 12 + j * ROW
            parts.append(f'<line x1="{x:.2f}" y1="{y + BAR - 4}" x2="{x:.2f}" y2="{ly - 9}" stroke="{c}" '
                         'stroke-width="0.6"/>')
            anchor = "end" if x > x0 + width * 0.6 else "start"
            parts.append(f'<text x="{x + (-3 if anchor == "end" else 3):.2f}" y="{ly}" fill="{c}" font-size="10" '
                         f'text-anchor="{anchor}">{escape(label)} {a:#x} ({escape(human_size(b - a))})</text>')
        y += BAR + 20 + len(shown) * ROW
    kinds = [(k, c) for k, c in REGION_COLOURS.items() if any(r[2] == k for r in regions)]
    y += base.legend(kinds, y, parts) + base.MARGIN
    return base.svg_document(y, drawing.elements + parts)
