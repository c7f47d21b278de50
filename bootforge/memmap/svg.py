"""Draw a memory map as SVG on a broken axis.

One linear axis cannot show a 4 KiB page at 0 and 16 GiB above 4 GiB at
once, so the address space is cut into three bands drawn one under the
other, each to scale within itself: [0, 1 MiB), [1 MiB, 4 GiB) and
[4 GiB, end of map). Ranges are coloured by type and labelled where there
is room; a zig-zag marks each break.

A range narrower than MIN_WIDTH pixels at its band's scale (the 1 KiB EBDA
below 1 MiB, a 256 KiB BIOS flash under 4 GiB) is drawn MIN_WIDTH wide so
it stays visible; every range too narrow for its label inside gets a
call-out under the band: its type, address and size (neighbours closer
than a few pixels share one call-out). The
legend lists only the types drawn, in columns as wide as the longest name.
"""

from dataclasses import dataclass, field
from html import escape

from bootforge.text import human_size

WIDTH = 960
BAND_HEIGHT = 70
MARGIN = 20
LABEL_WIDTH = 130
MIN_WIDTH = 3.0             # px: no range is drawn narrower
CHAR_WIDTH = 6.7            # px per character of the 11 px monospace font (0.6 em, rounded up)
CALLOUT_ROW = 13            # px between call-out rows
AXIS_ROW = 16               # px under a band for its end addresses
BAND_GAP = 14               # px between one band's call-outs and the next band
MAX_CALLOUT_NAMES = 3       # type names a shared call-out lists before "..."

# One colour per unified type name, distinct in hue or lightness from every other
# (an EFI type shares its E820 counterpart's colour: they are never in one map).
# tests/test_issue15_memmap_svg.py checks that no two differ by less than MIN_COLOUR_DISTANCE.
COLOURS = {
    "ram": "#2ca02c", "conventional": "#2ca02c",
    "loader-code": "#1f77b4", "loader-data": "#7fb8e6",
    "boot-services-code": "#ff7f0e", "boot-services-data": "#ffe08a",
    "runtime-services-code": "#d62728", "runtime-services-data": "#ff8080",
    "reserved": "#8c8c8c",
    "acpi": "#9467bd", "acpi-reclaim": "#9467bd", "nvs": "#4b2a7b", "acpi-nvs": "#4b2a7b",
    "unusable": "#8c564b", "pmem": "#e377c2", "persistent": "#e377c2", "pram": "#f0a0f0",
    "soft-reserved": "#bcbd22", "mmio": "#17becf", "mmio-port-space": "#0a6570",
    "pal-code": "#5c3a12", "unaccepted": "#a0f0e0",
}
OTHER_COLOUR = "#d9d9d9"
MIN_COLOUR_DISTANCE = 60    # Euclidean distance in RGB (0-255 per channel)


def colour_of(name):
    return COLOURS.get(name, OTHER_COLOUR)


@dataclass
class Band:
    """One band of the broken axis: [lo, hi) drawn at y, from x0, width px wide."""

    lo: int
    hi: int
    label: str
    y: float
    x0: float = MARGIN + LABEL_WIDTH
    width: float = WIDTH - LABEL_WIDTH - 2 * MARGIN

    def x(self, address):
        return self.x0 + (address - self.lo) * self.width / (self.hi - self.lo)


@dataclass
class MapDrawing:
    """The elements of a drawn map, its bands (for marks drawn over them) and the used colours."""

    title: str
    elements: list = field(default_factory=list)
    bands: list = field(default_factory=list)
    used: dict = field(default_factory=dict)     # type name -> colour, of the ranges drawn
    height: float = 0


def _band_bounds(top):
    bands = [(0, 1 << 20, "0 - 1 MiB"), (1 << 20, 1 << 32, "1 MiB - 4 GiB")]
    if top > 1 << 32:
        bands.append((1 << 32, top, f"4 GiB - {human_size(top)}"))
    return bands


def text_width(text):
    return len(text) * CHAR_WIDTH


def place_callouts(callouts, left, right):
    """Rows for call-outs [(x, text)]: each label starts at its x (or ends there when it
    would run past *right*), on the first row where it overlaps no other label.
    Returns [(row, label_x, anchor)] in the order given."""
    rows = []           # per row: list of (x0, x1) taken
    out = []
    for x, text in callouts:
        w = text_width(text)
        if x + w <= right:
            x0, anchor = x, "start"
        else:
            x0, anchor = max(left, x - w), "end"
        x1 = x0 + w
        for i, taken in enumerate(rows):
            if all(x1 + 6 <= a or x0 >= b + 6 for a, b in taken):
                taken.append((x0, x1))
                out.append((i, x, anchor))
                break
        else:
            rows.append([(x0, x1)])
            out.append((len(rows) - 1, x, anchor))
    return out


def _callout_text(memory_map, group):
    if len(group) == 1:
        r = group[0]
        return f"{memory_map.type_name(r)} {r.start:#x} {human_size(r.size)}"
    names = []
    for r in group:
        name = memory_map.type_name(r)
        if name not in names:
            names.append(name)
    shown = ", ".join(names[:MAX_CALLOUT_NAMES]) + (", ..." if len(names) > MAX_CALLOUT_NAMES else "")
    last = max(r.start + r.size for r in group)
    return f"{len(group)} ranges in [{group[0].start:#x}, {last:#x}): {shown}"


def _draw_band(memory_map, band, out, used):
    """The band's ranges and their call-outs; returns the height the band takes."""
    y = band.y
    out.append(f'<text x="{MARGIN}" y="{y + BAND_HEIGHT / 2 + 4}">{escape(band.label)}</text>')
    out.append(f'<rect x="{band.x0}" y="{y}" width="{band.width}" height="{BAND_HEIGHT}" '
               'fill="white" stroke="#333"/>')
    narrow = []
    for r in memory_map.ranges:
        a, b = max(r.start, band.lo), min(r.start + r.size, band.hi)
        if a >= b:
            continue
        name = memory_map.type_name(r)
        colour = colour_of(name)
        used[name] = colour
        x, true_w = band.x(a), band.x(b) - band.x(a)
        w = max(true_w, MIN_WIDTH)
        x = min(x, band.x0 + band.width - w)        # a minimum-width range at the top end stays inside
        out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{BAND_HEIGHT}" fill="{colour}" '
                   f'stroke="#222" stroke-width="0.3"><title>{escape(name)} [{r.start:#x}, '
                   f'{r.start + r.size:#x}) {escape(human_size(r.size))}</title></rect>')
        if w > CHAR_WIDTH * max(len(name), 8) + 6:
            out.append(f'<text x="{x + 3:.2f}" y="{y + 14}">{escape(name)}</text>')
            out.append(f'<text x="{x + 3:.2f}" y="{y + 28}">{a:#x}</text>')
            out.append(f'<text x="{x + 3:.2f}" y="{y + 42}">{escape(human_size(b - a))}</text>')
        else:                   # no room inside: a call-out under the band names it
            narrow.append((x, x + w, true_w < MIN_WIDTH, r))
    out.append(f'<text x="{band.x0}" y="{y + BAND_HEIGHT + 13}">{band.lo:#x}</text>')
    out.append(f'<text x="{band.x0 + band.width}" y="{y + BAND_HEIGHT + 13}" text-anchor="end">'
               f'{band.hi:#x}</text>')
    # Call-outs for the ranges too narrow for their label; ranges drawn wider than they
    # are (under MIN_WIDTH) within a few pixels of each other share one.
    groups = []
    for x, x_end, tiny, r in sorted(narrow, key=lambda t: (t[0], t[3].start)):
        if groups and tiny and groups[-1][3] and x - groups[-1][1] <= 2 * MIN_WIDTH:
            groups[-1][1] = max(groups[-1][1], x_end)
            groups[-1][2].append(r)
        else:
            groups.append([x, x_end, [r], tiny])
    callouts = [((x0 + x1) / 2, _callout_text(memory_map, rs)) for x0, x1, rs, _ in groups]
    placed = place_callouts(callouts, band.x0, band.x0 + band.width)
    base = y + BAND_HEIGHT + AXIS_ROW + 12
    for (x, text), (row, _, anchor) in zip(callouts, placed):
        ly = base + row * CALLOUT_ROW
        out.append(f'<line x1="{x:.2f}" y1="{y + BAND_HEIGHT}" x2="{x:.2f}" y2="{ly - 9}" stroke="#777" '
                   'stroke-width="0.5"/>')
        dx = 2 if anchor == "start" else -2
        out.append(f'<text x="{x + dx:.2f}" y="{ly}" font-size="10" text-anchor="{anchor}" '
                   f'class="callout">{escape(text)}</text>')
    rows = 1 + max((row for row, _, _ in placed), default=-1)
    return BAND_HEIGHT + AXIS_ROW + rows * CALLOUT_ROW + (8 if rows else 0) + BAND_GAP


def legend(items, y, out, *, swatch_opacity=None):
    """Swatches and names of *items* [(name, colour)] from y down, in columns as wide as
    the longest name (never overlapping); returns the height taken."""
    if not items:
        return 0
    column = 12 + 4 + text_width(max((n for n, _ in items), key=len)) + 14
    per_row = max(1, int((WIDTH - 2 * MARGIN) // column))
    opacity = f' fill-opacity="{swatch_opacity}"' if swatch_opacity is not None else ""
    for j, (name, colour) in enumerate(items):
        x = MARGIN + (j % per_row) * column
        yy = y + (j // per_row) * 20
        out.append(f'<rect x="{x:.1f}" y="{yy}" width="12" height="12" fill="{colour}"{opacity} stroke="#222" '
                   'stroke-width="0.5"/>')
        out.append(f'<text x="{x + 16:.1f}" y="{yy + 10}" class="legend">{escape(name)}</text>')
    return ((len(items) + per_row - 1) // per_row) * 20


def draw_map(memory_map, title=None, top=None):
    """The MapDrawing of *memory_map*; *top*: draw the axis up to at least this address."""
    title = title or "memory map"
    end = max([r.start + r.size for r in memory_map.ranges] + [top or 0])
    d = MapDrawing(title)
    d.elements.append(f'<title>{escape(title)}</title>')
    d.elements.append(f'<text x="{MARGIN}" y="{MARGIN}" font-size="14">{escape(title)} '
                      f'({len(memory_map.ranges)} ranges, {memory_map.family})</text>')
    y = MARGIN * 2
    bounds = _band_bounds(end)
    for i, (lo, hi, label) in enumerate(bounds):
        band = Band(lo, hi, label, y)
        d.bands.append(band)
        height = _draw_band(memory_map, band, d.elements, d.used)
        if i + 1 < len(bounds):      # the break between this band and the next
            zy, x0 = y + BAND_HEIGHT + 18, band.x0
            d.elements.append(f'<polyline points="{x0 - 8},{zy} {x0 - 4},{zy - 4} {x0},{zy + 4} {x0 + 4},{zy}" '
                              'fill="none" stroke="#333"/>')
        y += height
    y += 6
    y += legend(sorted(d.used.items()), y, d.elements)
    d.height = y + MARGIN
    return d


def svg_document(height, elements):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{int(height)}" '
            f'font-family="monospace" font-size="11">\n' + "\n".join(elements) + "\n</svg>\n")


def render_svg(memory_map, title=None):
    """The SVG document (str) for *memory_map*."""
    d = draw_map(memory_map, title)
    return svg_document(d.height, d.elements)
