"""Draw a memory map as SVG on a broken axis.

One linear axis cannot show a 4 KiB page at 0 and 16 GiB above 4 GiB at
once, so the address space is cut into three bands drawn one under the
other, each to scale within itself: [0, 1 MiB), [1 MiB, 4 GiB) and
[4 GiB, end of map). Ranges are coloured by type and labelled where there
is room; a zig-zag marks each break.
"""

from html import escape

from bootforge.text import human_size

WIDTH = 960
BAND_HEIGHT = 70
MARGIN = 20
LABEL_WIDTH = 130

# Colours by unified type name; EFI names share their E820 counterpart's colour.
COLOURS = {
    "ram": "#4caf50", "conventional": "#4caf50", "loader-code": "#81c784", "loader-data": "#a5d6a7",
    "boot-services-code": "#aed581", "boot-services-data": "#c5e1a5",
    "reserved": "#9e9e9e", "runtime-services-code": "#ff8a65", "runtime-services-data": "#ffab91",
    "acpi": "#42a5f5", "acpi-reclaim": "#42a5f5", "nvs": "#1565c0", "acpi-nvs": "#1565c0",
    "unusable": "#e53935", "pmem": "#ab47bc", "persistent": "#ab47bc", "pram": "#ce93d8",
    "soft-reserved": "#ffca28", "mmio": "#616161", "mmio-port-space": "#757575",
}
OTHER_COLOUR = "#bdbdbd"


def render_svg(memory_map, title=None):
    """The SVG document (str) for *memory_map*."""
    top = 0
    for r in memory_map.ranges:
        top = max(top, r.start + r.size)
    bands = [(0, 1 << 20, "0 - 1 MiB"), (1 << 20, 1 << 32, "1 MiB - 4 GiB")]
    if top > 1 << 32:
        bands.append((1 << 32, top, f"4 GiB - {human_size(top)}"))
    bar_width = WIDTH - LABEL_WIDTH - 2 * MARGIN
    height = MARGIN * 3 + len(bands) * (BAND_HEIGHT + 30) + 20 * ((len(COLOURS) // 6) + 2)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<title>{escape(title or "memory map")}</title>',
           f'<text x="{MARGIN}" y="{MARGIN}" font-size="14">{escape(title or "memory map")} '
           f'({len(memory_map.ranges)} ranges, {memory_map.family})</text>']
    used = {}
    for i, (lo, hi, label) in enumerate(bands):
        y = MARGIN * 2 + i * (BAND_HEIGHT + 30)
        out.append(f'<text x="{MARGIN}" y="{y + BAND_HEIGHT / 2 + 4}">{escape(label)}</text>')
        x0 = MARGIN + LABEL_WIDTH
        out.append(f'<rect x="{x0}" y="{y}" width="{bar_width}" height="{BAND_HEIGHT}" '
                   'fill="white" stroke="#333"/>')
        scale = bar_width / (hi - lo)
        for r in memory_map.ranges:
            a, b = max(r.start, lo), min(r.start + r.size, hi)
            if a >= b:
                continue
            name = memory_map.type_name(r)
            colour = COLOURS.get(name, OTHER_COLOUR)
            used[name] = colour
            x, w = x0 + (a - lo) * scale, max((b - a) * scale, 0.5)
            out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{BAND_HEIGHT}" fill="{colour}" '
                       f'stroke="#222" stroke-width="0.3"><title>{escape(name)} [{r.start:#x}, '
                       f'{r.start + r.size:#x}) {escape(human_size(r.size))}</title></rect>')
            if w > 7 * max(len(name), 8):
                out.append(f'<text x="{x + 3:.2f}" y="{y + 14}">{escape(name)}</text>')
                out.append(f'<text x="{x + 3:.2f}" y="{y + 28}">{a:#x}</text>')
                out.append(f'<text x="{x + 3:.2f}" y="{y + 42}">{escape(human_size(b - a))}</text>')
        out.append(f'<text x="{x0}" y="{y + BAND_HEIGHT + 13}">{lo:#x}</text>')
        out.append(f'<text x="{x0 + bar_width}" y="{y + BAND_HEIGHT + 13}" text-anchor="end">{hi:#x}</text>')
        if i + 1 < len(bands):      # the break between this band and the next
            zy = y + BAND_HEIGHT + 18
            out.append(f'<polyline points="{x0 - 8},{zy} {x0 - 4},{zy - 4} {x0},{zy + 4} {x0 + 4},{zy}" '
                       'fill="none" stroke="#333"/>')
    y = MARGIN * 2 + len(bands) * (BAND_HEIGHT + 30) + 10
    for j, (name, colour) in enumerate(sorted(used.items())):
        x = MARGIN + (j % 6) * 150
        yy = y + (j // 6) * 20
        out.append(f'<rect x="{x}" y="{yy}" width="12" height="12" fill="{colour}" stroke="#222"/>')
        out.append(f'<text x="{x + 16}" y="{yy + 10}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
