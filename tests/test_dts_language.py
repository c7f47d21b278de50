"""DTS source to DTB: every feature of dtc 1.6's language, compiled by bootforge and by the real
dtc (device-tree-compiler) with the same options; the blobs and dtc's stderr must be equal."""

import subprocess

import pytest

from bootforge.fdt.dts_compile import DtcOptions, compile_dts
from conftest import require

HEAD = "/dts-v1/;\n"

CASES = {
    "empty-root": HEAD + "/ { };\n",
    "memreserve": HEAD + "/memreserve/ 0x10000000 0x4000;\nr2: /memreserve/ (1 << 32) 0x1000;\n/ { };\n",
    "strings-escapes": HEAD + r'/ { s = "a\tb\n\x41\101\"q\\", "second", ""; e = "\x7"; };' + "\n",
    "cells-and-bits": HEAD + "/ { c = <1 0x2 017 'a' '\\n'>; b8 = /bits/ 8 <1 0xff (-1)>; "
                             "b16 = /bits/ 16 <0xffff 2>; b64 = /bits/ 64 <0x100000000 (-2)>; "
                             "mix = <1>, \"s\", [0a0b], /bits/ 8 <3>; empty = <>; flag; };\n",
    "bytestrings": HEAD + "/ { a = [00 01 0aff]; b = [deadbeef]; c = [ l1: 01 l2: 02 ]; d = []; };\n",
    "expressions": HEAD + "/ { e = <(1 + 2 * 3) (10 / 3) (10 % 3) (1 << 4 >> 2) (~0) (-1) (!0) (!5) "
                          "(3 > 2) (2 >= 3) (1 < 2) (2 <= 2) (1 == 1) (1 != 1) (6 & 3) (6 | 3) (6 ^ 3) "
                          "(1 && 0) (0 || 2) (1 ? 7 : 8) (0 ? 7 : 0 ? 8 : 9) (2 + 3 << 1) (1 << 64) "
                          "((0xffffffff + 1) >> 32) ('A' + 1) (0x7fffffff * 2 + 1) (5 - 7 + 3)>; "
                          "w = /bits/ 64 <(0xffffffffffffffff + 2) (1 << 63) (-(1 << 63))>; };\n",
    "labels-and-refs": HEAD + "/ { a: node-a { p1: prop = <1>; v = <2 lv: 3>; }; "
                              "b { ref = <&a>; path = &a; pp = &{/node-a}; both = <&a &{/b}>, &{/b}; "
                              "strs = \"x\", &a, \"y\"; }; };\n",
    "phandle-order": HEAD + "/ { z: z { }; y: y { }; x: x { phandle = <7>; }; w: w { }; "
                            "u { a = <&w &y &z &x>; b = <&w>; }; t { c = <&z>; }; };\n",
    "explicit-phandles": HEAD + "/ { a: a { phandle = <1>; }; b: b { linux,phandle = <2>; }; c: c { }; "
                                "d { r = <&c &a &b>; }; s: self { phandle = <&s>; }; };\n",
    "merge-repeated-nodes": HEAD + "/ { a { x = <1>; y = <2>; sub { q; }; }; };\n"
                                   "/ { a { x = <3>; z = \"new\"; sub { r; }; sub2 { }; }; };\n"
                                   "/ { b { }; };\n",
    "merge-by-label-and-path": HEAD + "/ { l: a { x = <1>; }; soc { u: uart@10 { reg = <0x10>; }; }; };\n"
                                      "&l { x = <2>; y; };\n&{/soc/uart@10} { status = \"okay\"; };\n"
                                      "new: &u { extra; };\n/ { r = <&new>; };\n",
    "delete-node-and-property": HEAD + "/ { a: a { p = <1>; q = <2>; c1 { }; c2 { }; }; b: b { }; k { }; };\n"
                                       "/ { a { /delete-property/ q; /delete-node/ c1; }; };\n"
                                       "/delete-node/ &b;\n/delete-node/ &{/k};\n"
                                       "/ { a { q = <3>; c1 { back; }; }; };\n",
    "delete-then-revive": HEAD + "/ { a: a { p; x { y { }; }; }; };\n/delete-node/ &a;\n/ { a { p; }; };\n",
    "omit-if-no-ref": HEAD + "/ { /omit-if-no-ref/ unused { }; /omit-if-no-ref/ used: used { }; "
                             "kept: kept { }; user { r = <&used>; }; };\n/omit-if-no-ref/ &kept;\n",
    "label-on-everything": HEAD + "/ { n1: n2: node { l1: l2: p = l3: <l4: 1 l5: 2 l6:> l7:, l8: \"s\" l9:; }; };\n",
    "names-with-odd-chars": HEAD + "/ { #address-cells = <1>; #size-cells = <0>; "
                                   "n,o.d_e+x-1@1 { reg = <1>; a,b.c_d+e?f*g#h; }; \\escaped-name { }; };\n",
    "linemarkers": '# 1 "board.dts"\n# 1 "<built-in>"\n# 1 "board.dts"\n/dts-v1/;\n'
                   '# 1 "soc.dtsi" 1\n/ { soc { n@1 { }; }; };\n# 3 "board.dts" 2\n'
                   '/ { x { reg = <1>; }; };\n',
    "warnings": HEAD + "/ { #address-cells = <1>; #size-cells = <1>; node@1 { }; "
                       "bus { compatible = \"simple-bus\"; #address-cells = <1>; #size-cells = <1>; ranges; "
                       "dev@2 { reg = <1 2>; }; }; i2c { c@10 { reg = <0x10>; }; }; "
                       "intc: ic { interrupt-controller; }; user { interrupts = <1>; interrupt-parent = <&intc>; }; "
                       "aliases { Bad = \"/nope\"; }; chosen { bootargs = <1>; }; cpus { }; };\n",
    "plugin-overlay": HEAD + "/plugin/;\n&uart { status = \"okay\"; p = <&intc 1>; "
                             "sub: sub { q = <&sub>; r = <&ext>; }; };\n&{/soc} { x; };\n"
                             "/ { fragment@9 { target-path = \"/\"; __overlay__ { y; }; }; };\n",
    "plugin-ref-first": HEAD + "/plugin/;\n&target { a; };\n&{/path} { b; };\n",
    "boot-cpu-guess": HEAD + "/ { cpus { #address-cells = <1>; #size-cells = <0>; cpu@3 { reg = <3>; }; }; };\n",
}

OPTION_CASES = [
    ("labels-and-refs", ["-@"], DtcOptions(symbols=True)),
    ("phandle-order", ["-@"], DtcOptions(symbols=True)),
    ("plugin-overlay", ["-@"], DtcOptions(symbols=True)),
    ("labels-and-refs", ["-H", "both"], DtcOptions(phandle_format="both")),
    ("labels-and-refs", ["-H", "legacy"], DtcOptions(phandle_format="legacy")),
    ("memreserve", ["-R", "3"], DtcOptions(reserve=3)),
    ("memreserve", ["-p", "100"], DtcOptions(pad=100)),
    ("memreserve", ["-S", "1000"], DtcOptions(space=1000)),
    ("memreserve", ["-S", "10"], DtcOptions(space=10)),
    ("memreserve", ["-a", "64"], DtcOptions(align=64)),
    ("boot-cpu-guess", ["-b", "7"], DtcOptions(boot_cpuid=7)),
    ("merge-repeated-nodes", ["-s"], DtcOptions(sort=True)),
    ("warnings", ["-W", "no-unit_address_vs_reg", "-W", "no-avoid_default_addr_size"],
     DtcOptions(checks=[("W", "no-unit_address_vs_reg"), ("W", "no-avoid_default_addr_size")])),
    ("warnings", ["-q"], DtcOptions(quiet=1)),
]


def dtc_compile(tmp_path, name, source, args=()):
    require("dtc")
    src = tmp_path / name
    src.write_bytes(source.encode() if isinstance(source, str) else source)
    out = tmp_path / (name + ".dtb")
    proc = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", *args, "-o", str(out), str(src)],
                          capture_output=True, cwd=tmp_path)
    blob = out.read_bytes() if proc.returncode == 0 else None
    return blob, proc.stderr.decode(), str(src), str(out)


def bootforge_compile(source, src_name, options):
    data = source.encode() if isinstance(source, str) else source
    result = compile_dts(data, src_name, options)
    return result.dtb, "".join(m + "\n" for m in result.messages)


@pytest.mark.parametrize("case", sorted(CASES))
def test_feature_compiles_to_dtcs_bytes_and_warnings(tmp_path, case):
    blob, stderr, src, out = dtc_compile(tmp_path, case + ".dts", CASES[case])
    assert blob is not None, stderr
    mine, messages = bootforge_compile(CASES[case], src, DtcOptions(outname=out))
    assert mine == blob
    assert messages == stderr


@pytest.mark.parametrize("case,args,options", OPTION_CASES, ids=[f"{c}{''.join(a)}" for c, a, _ in OPTION_CASES])
def test_options_as_dtc(tmp_path, case, args, options):
    blob, stderr, src, out = dtc_compile(tmp_path, case + ".dts", CASES[case], args)
    assert blob is not None, stderr
    options.outname = out
    mine, messages = bootforge_compile(CASES[case], src, options)
    assert mine == blob
    assert messages == stderr


def test_include_relative_to_the_including_file_and_search_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "inc").mkdir()
    (tmp_path / "sub" / "a.dtsi").write_text('/include/ "b.dtsi"\n/ { a { from = "a"; }; };\n')
    (tmp_path / "sub" / "b.dtsi").write_text('/ { b { reg = <1>; }; };\n')
    (tmp_path / "inc" / "c.dtsi").write_text('/ { c@1 { }; };\n')
    (tmp_path / "bin.dat").write_bytes(bytes(range(20)))
    source = HEAD + '/include/ "sub/a.dtsi"\n/include/ "c.dtsi"\n' \
                    '/ { i = /incbin/("bin.dat"); j = /incbin/("bin.dat", 3, 5); k = /incbin/("bin.dat", 18, 10); };\n'
    blob, stderr, src, out = dtc_compile(tmp_path, "top.dts", source, ["-i", str(tmp_path / "inc")])
    assert blob is not None, stderr
    mine, messages = bootforge_compile(source, src, DtcOptions(outname=out, search_path=[str(tmp_path / "inc")]))
    assert mine == blob
    assert messages == stderr


def test_linux_style_preprocessed_source(tmp_path):
    """cpp as Linux's scripts/Makefile.lib runs it: the warnings name the .dtsi and its lines."""
    require("cpp", "dtc")
    (tmp_path / "soc.dtsi").write_text("#define BASE 0x1000\n/ {\n\tsoc {\n\t\tuart: serial@BASE {\n"
                                       "\t\t\treg = <BASE>;\n\t\t};\n\t};\n};\n")
    (tmp_path / "board.dts").write_text("/dts-v1/;\n#include \"soc.dtsi\"\n#define ON \"okay\"\n"
                                        "&uart { status = ON; };\n")
    pre = tmp_path / "board.dts.tmp"
    subprocess.run(["cpp", "-nostdinc", "-undef", "-D__DTS__", "-x", "assembler-with-cpp", "-o", str(pre),
                    "board.dts"], check=True, cwd=tmp_path)
    source = pre.read_bytes()
    blob, stderr, src, out = dtc_compile(tmp_path, "board.dts.tmp", source)
    assert "soc.dtsi:4." in stderr             # dtc names the original file and line
    mine, messages = bootforge_compile(source, src, DtcOptions(outname=out))
    assert mine == blob
    assert messages == stderr
