"""The SVG pictures of `memmap show --svg` and `load --svg`.

Ranges a few pixels wide stay visible and are named in call-outs; the legend
lists only what is drawn, without overlapping text; colours are distinct; and
librsvg (rsvg-convert, Debian librsvg2-bin) renders each picture at its size.
"""

import itertools
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib

import pytest

from conftest import DATA, require, run_bootforge

SVG = "{http://www.w3.org/2000/svg}"
# DejaVu Sans Mono (librsvg's monospace here): advance 1233/2048 em per character.
ADVANCE_EM = 1233 / 2048


def render_png(svg_path):
    """rsvg-convert's PNG of *svg_path*: (width, height, decompressed image data)."""
    require("rsvg-convert")
    png = svg_path.with_suffix(".png")
    subprocess.run(["rsvg-convert", "-o", png, svg_path], check=True, capture_output=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert kind == b"IHDR"
    pos, idat = 8, b""
    while pos < len(data):
        n, chunk = struct.unpack(">I4s", data[pos:pos + 8])
        if chunk == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return width, height, zlib.decompress(idat)


def range_rects(root):
    return [r for r in root.iter(SVG + "rect") if r.find(SVG + "title") is not None]


def texts(root, cls):
    return [t for t in root.iter(SVG + "text") if t.get("class") == cls]


def text_extent(t):
    size = float(t.get("font-size") or 11)
    w = len(t.text) * size * ADVANCE_EM
    x = float(t.get("x"))
    return (x - w, x) if t.get("text-anchor") == "end" else (x, x + w)


def check_picture(svg_path):
    """A valid SVG that librsvg renders at its declared size, with something drawn."""
    root = ET.parse(svg_path).getroot()
    width, height = int(root.get("width")), int(root.get("height"))
    png_w, png_h, pixels = render_png(svg_path)
    assert (png_w, png_h) == (width, height)
    assert len(set(pixels)) > 16           # not a blank page
    # nothing is drawn below the picture's bottom edge
    bottoms = [float(t.get("y")) for t in root.iter(SVG + "text")]
    bottoms += [float(r.get("y")) + float(r.get("height")) for r in root.iter(SVG + "rect")]
    assert max(bottoms) <= height
    return root


def no_overlap(elements):
    rows = {}
    for t in elements:
        rows.setdefault(float(t.get("y")), []).append(text_extent(t))
    for extents in rows.values():
        extents.sort()
        for (a0, a1), (b0, b1) in zip(extents, extents[1:]):
            assert a1 <= b0, (a0, a1, b0, b1)


def test_e820_picture_small_ranges_visible_and_called_out(tmp_path):
    out = tmp_path / "e820.svg"
    run_bootforge("memmap", "show", DATA / "mb-grub-pc-mb2.dump", "--svg", out, check=0)
    root = check_picture(out)
    rects = range_rects(root)
    assert min(float(r.get("width")) for r in rects) >= 3
    callouts = [t.text for t in texts(root, "callout")]
    # the EBDA (1 KiB), the 128 KiB below 256 MiB and the BIOS flash (256 KiB) under 4 GiB
    for name in ("reserved 0x9fc00 1 KiB", "reserved 0xffe0000 128 KiB", "reserved 0xfffc0000 256 KiB"):
        assert name in callouts
    no_overlap(texts(root, "callout"))
    assert sorted(t.text for t in texts(root, "legend")) == ["ram", "reserved"]


def test_efi_picture_of_128_ranges(tmp_path):
    out = tmp_path / "efi.svg"
    run_bootforge("memmap", "show", "--from", "mbdump-efi", DATA / "mb-grub-efi-mb2.dump", "--svg", out, check=0)
    doc = run_bootforge("memmap", "convert", "--from", "mbdump-efi", DATA / "mb-grub-efi-mb2.dump",
                        "--to", "json", check=0).stdout
    import json
    types = {e["type"] for e in json.loads(doc)["entries"]}
    assert len(json.loads(doc)["entries"]) == 128 and len(types) >= 10
    root = check_picture(out)
    legend = texts(root, "legend")
    assert sorted(t.text for t in legend) == sorted(types)            # only what is drawn, all of it
    no_overlap(legend)
    no_overlap(texts(root, "callout"))
    # each legend swatch has its own colour, far enough from every other one
    swatches = [r.get("fill") for r in root.iter(SVG + "rect")
                if r.get("width") == "12" and r.get("height") == "12"]
    assert len(swatches) == len(types) == len(set(swatches))
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in swatches]
    for a, b in itertools.combinations(rgb, 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 >= 60, (a, b)


def test_every_colour_distinct():
    from bootforge.memmap.svg import COLOURS, OTHER_COLOUR
    colours = sorted(set(COLOURS.values()) | {OTHER_COLOUR})
    assert len(colours) >= 18
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours]
    for a, b in itertools.combinations(rgb, 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 >= 60, (a, b)


@pytest.mark.parametrize("recipe", ["load-grub-pc-mb2.toml"])
def test_load_picture_renders_and_names_only_placed_kinds(tmp_path, recipe):
    out = tmp_path / "load.svg"
    run_bootforge("load", f"recipes/{recipe}", "--svg", out, check=0)
    root = check_picture(out)
    legend = [t.text for t in texts(root, "legend")]
    # "loader": GRUB i386-pc's own heap at the top of the RAM below 4 GiB, which its relocator avoids.
    assert legend == ["ram", "reserved", "kernel", "module", "mbi", "boot-info", "loader"]
    assert "reserved 0x9fc00 1 KiB" in [t.text for t in texts(root, "callout")]
