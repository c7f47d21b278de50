"""An SVG of physical memory with every placement drawn and labelled.

The firmware map is drawn by bootforge.memmap.svg (broken axis: the first
MiB, 1 MiB - 4 GiB, above 4 GiB); placements are overlaid on the same
bands as outlined boxes in the lower half of each band, labelled below it.
"""

from html import escape

from bootforge.memmap import svg as base
from bootforge.memmap.io import human_size

KIND_COLOURS = {"kernel": "#d32f2f", "module": "#7b1fa2", "mbi": "#f57c00", "boot-info": "#fbc02d",
                "loader": "#0097a7", "firmware": "#455a64", "data": "#5d4037"}
LABEL_ROWS = 6


def render_load_svg(result):
    memory_map = result.platform.memory_map
    title = f"bootforge load: {result.loader} on {result.platform.name}"
    doc = base.render_svg(memory_map, title)
    top = max([r.start + r.size for r in memory_map.ranges] + [p.end for p in result.placements])
    bands = [(0, 1 << 20), (1 << 20, 1 << 32)] + ([(1 << 32, top)] if top > 1 << 32 else [])
    bar_width = base.WIDTH - base.LABEL_WIDTH - 2 * base.MARGIN
    x0 = base.MARGIN + base.LABEL_WIDTH
    extra = LABEL_ROWS * 12 + 10
    out = []
    for i, (lo, hi) in enumerate(bands):
        y = base.MARGIN * 2 + i * (base.BAND_HEIGHT + 30)
        scale = bar_width / (hi - lo)
        row = 0
        for p in sorted(result.placements, key=lambda p: p.start):
            a, b = max(p.start, lo), min(p.end, hi)
            if a >= b:
                continue
            colour = KIND_COLOURS.get(p.kind, "#000")
            x, w = x0 + (a - lo) * scale, max((b - a) * scale, 2)
            yy = y + base.BAND_HEIGHT * 0.55
            out.append(f'<rect x="{x:.2f}" y="{yy:.1f}" width="{w:.2f}" height="{base.BAND_HEIGHT * 0.4:.1f}" '
                       f'fill="{colour}" fill-opacity="0.75" stroke="#000" stroke-width="0.5">'
                       f'<title>{escape(p.name)} [{p.start:#x}, {p.end:#x}) {escape(human_size(p.end - p.start))}'
                       f' - {escape(p.rule)}</title></rect>')
            ly = y + base.BAND_HEIGHT + 26 + row * 12
            out.append(f'<line x1="{x:.2f}" y1="{yy + base.BAND_HEIGHT * 0.4:.1f}" x2="{x:.2f}" y2="{ly - 9}" '
                       f'stroke="{colour}" stroke-width="0.5"/>')
            out.append(f'<text x="{x:.2f}" y="{ly}" fill="{colour}" font-size="9">{escape(p.name)} '
                       f'{p.start:#x}</text>')
            row = (row + 1) % LABEL_ROWS
    # Make room under each band for the labels: shift the document down band by band.
    doc = doc.replace("</svg>\n", "\n".join(out) + "\n</svg>\n")
    return _stretch(doc, len(bands) * extra)


def _stretch(doc, more):
    head, _, rest = doc.partition('height="')
    h, _, rest = rest.partition('"')
    return f'{head}height="{int(float(h)) + more}"{rest}'
