"""An SVG of physical memory with every placement drawn and labelled.

Top: the firmware map as bootforge.memmap.svg draws it (broken axis: the
first MiB, 1 MiB - 4 GiB, above 4 GiB), with each placement marked on it.
Below: one zoomed bar per cluster of placements (placements closer than
1 MiB share a cluster), to scale within the cluster, each placement a box
labelled with its name and address; the map's ranges are drawn under them.
"""

from html import escape

from bootforge.memmap import svg as base
from bootforge.text import human_size

KIND_COLOURS = {"kernel": "#d32f2f", "module": "#7b1fa2", "mbi": "#f57c00", "boot-info": "#c49000",
                "loader": "#0097a7", "firmware": "#455a64", "data": "#5d4037"}
BAR = 44
ROW = 13
GAP = 1 << 20


def _clusters(placements):
    out = []
    for p in sorted(placements, key=lambda p: p.start):
        if out and p.start - out[-1][1] < GAP:
            out[-1][1] = max(out[-1][1], p.end)
            out[-1][2].append(p)
        else:
            out.append([p.start, p.end, [p]])
    return out


def render_load_svg(result):
    memory_map = result.platform.memory_map
    title = f"bootforge load: {result.loader} on {result.platform.name}"
    # The axis reaches the highest placement too (a module above the map's last range).
    drawing = base.draw_map(memory_map, title, top=max([p.end for p in result.placements], default=0))
    x0 = base.MARGIN + base.LABEL_WIDTH
    width = base.WIDTH - base.LABEL_WIDTH - 2 * base.MARGIN
    # Mark each placement on the overview bands.
    marks = []
    for band in drawing.bands:
        for p in result.placements:
            a, b = max(p.start, band.lo), min(p.end, band.hi)
            if a < b:
                x, w = band.x(a), max(band.x(b) - band.x(a), 1.5)
                marks.append(f'<rect x="{x:.2f}" y="{band.y + base.BAND_HEIGHT - 12}" width="{w:.2f}" height="12" '
                             f'fill="{KIND_COLOURS.get(p.kind, "#000")}"><title>{escape(p.name)}</title></rect>')
    # Zoomed clusters.
    parts, y = [], drawing.height
    parts.append(f'<text x="{base.MARGIN}" y="{y + 4}" font-size="13">placements ({len(result.placements)}), '
                 'zoomed: boxes to scale within each bar</text>')
    y += 20
    for lo, hi, items in _clusters(result.placements):
        span = max(hi - lo, 1)
        parts.append(f'<text x="{base.MARGIN}" y="{y + BAR / 2}">{lo:#x}</text>')
        parts.append(f'<text x="{base.MARGIN}" y="{y + BAR / 2 + 13}">{escape(human_size(span))}</text>')
        parts.append(f'<rect x="{x0}" y="{y}" width="{width}" height="{BAR}" fill="white" stroke="#333"/>')
        for r in memory_map.ranges:
            a, b = max(r.start, lo), min(r.start + r.size, hi)
            if a < b:
                name = memory_map.type_name(r)
                parts.append(f'<rect x="{x0 + (a - lo) * width / span:.2f}" y="{y}" '
                             f'width="{max((b - a) * width / span, 0.5):.2f}" height="{BAR}" '
                             f'fill="{base.colour_of(name)}" fill-opacity="0.35"/>')
        for j, p in enumerate(items):
            x = x0 + (p.start - lo) * width / span
            w = max((p.end - p.start) * width / span, 1.5)
            c = KIND_COLOURS.get(p.kind, "#000")
            parts.append(f'<rect x="{x:.2f}" y="{y + 6}" width="{w:.2f}" height="{BAR - 12}" fill="{c}" '
                         f'fill-opacity="0.8" stroke="#000" stroke-width="0.4"><title>{escape(p.name)} '
                         f'[{p.start:#x}, {p.end:#x}) {escape(human_size(p.end - p.start))}: {escape(p.rule)}'
                         '</title></rect>')
            ly = y + BAR + 12 + j * ROW
            parts.append(f'<line x1="{x:.2f}" y1="{y + BAR - 6}" x2="{x:.2f}" y2="{ly - 9}" stroke="{c}" '
                         'stroke-width="0.6"/>')
            anchor = "end" if x > x0 + width * 0.6 else "start"
            parts.append(f'<text x="{x + (-3 if anchor == "end" else 3):.2f}" y="{ly}" fill="{c}" font-size="10" '
                         f'text-anchor="{anchor}">{escape(p.name)} {p.start:#x} '
                         f'({escape(human_size(p.end - p.start))})</text>')
        parts.append(f'<text x="{x0 + width}" y="{y - 3}" text-anchor="end" font-size="9">{hi:#x}</text>')
        y += BAR + 20 + len(items) * ROW
    # The legend names only the kinds placed.
    kinds = [(k, c) for k, c in KIND_COLOURS.items() if any(p.kind == k for p in result.placements)]
    y += base.legend(kinds, y, parts) + base.MARGIN
    return base.svg_document(y, drawing.elements + marks + parts)
