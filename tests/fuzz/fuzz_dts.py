"""DTS source: the lexer, parser, checks and compiler (fdt/dts_*) as `bootforge build` /
`fdt compile` run them, then the compiled DTB read back (parse_dtb) and printed as DTS (dtb_to_dts).

Seeds: Linux's own DTS from linux-source-6.1 (the 300 smallest of build/dts-pre, cpp's output
of tests/dts_linux.py's preprocess() kept by an earlier corpus run, when it is there; else the
.dts files of the tree tests/dts_linux.py extracts under build/linux that need no cpp), tests/data/*.dts, and a few hand-written
files for the constructs the corpus rarely has (labels and references in cells, /delete-node/,
/incbin/ refused, /bits/, character literals, expressions)."""

import tempfile
from pathlib import Path

from common import REPO, attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.fdt.dts import dtb_to_dts
    from bootforge.fdt.dts_compile import compile_dts
    from bootforge.fdt.parse import parse_dtb

FAMILY = "dts"
# An empty directory as the input's home: a fuzzed /include/ "x" resolves there and finds nothing.
HOME = Path(tempfile.mkdtemp(prefix="fuzz-dts-")) / "fuzz.dts"

EXTRA = [
    b'/dts-v1/;\n/memreserve/ 0x1000 0x2000;\n/ {\n\tl1: a { p = <1 2 (3 + 4) (1 << 3) (~0 & 0xff)>;\n'
    b'\t\tq = /bits/ 16 <0x1234 \'a\'>; r = [de ad be ef]; s = "x", "y\\n"; };\n'
    b'\tb { ref = <&l1>; path = &l1; }; };\n&l1 { extra; };\n/delete-node/ &l1;\n',
    b'/dts-v1/;\n/ { x: node@1 { #address-cells = <1>; #size-cells = <0>; child@0 { reg = <0>; }; };\n'
    b'\t/delete-property/ nothing; __overlay__ { }; };\n',
    b'/dts-v1/;\n/plugin/;\n&{/soc} { status = "okay"; };\n',
]


def seeds():
    pre = sorted((REPO / "build" / "dts-pre").glob("*.dts"), key=lambda p: p.stat().st_size)[:300]
    out = [(str(p), p.read_bytes()) for p in pre]
    if not out:
        tree = sorted((REPO / "build" / "linux").glob("linux-source-*/arch/*/boot/dts/**/*.dts"),
                      key=lambda p: p.stat().st_size)
        out = [(str(p), d) for p in tree if b"#include" not in (d := p.read_bytes())][:300]
    out += files("tests/data/*.dts")
    out += [(f"extra-{i}.dts", d) for i, d in enumerate(EXTRA)]
    return out


def target(data):
    compiled = attempt(compile_dts, data, str(HOME))
    if compiled is not None:
        parse_dtb(compiled.dtb, "compiled.dtb")
        dtb_to_dts(compiled.dtb, "compiled.dtb")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
