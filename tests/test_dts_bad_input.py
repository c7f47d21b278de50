"""Bad DTS source: one line naming file:line.column as dtc does, exit 2, nothing written, never a
traceback, a hang or an allocation sized by the input."""

import re
import subprocess

import pytest

from conftest import assert_one_line_error, require, run_bootforge

HEAD = "/dts-v1/;\n"

# name -> (source, the words of dtc's message)
BAD = {
    "syntax-error": (HEAD + "/ {\n\tp = <1> };\n", "syntax error"),
    "missing-semicolon-at-eof": (HEAD + "/ { }", "syntax error"),
    "no-dts-v1": ("/ { };\n", "syntax error"),
    "undefined-label-node": (HEAD + "/ { };\n&nolabel { x; };\n", "Label or path nolabel not found"),
    "undefined-path-node": (HEAD + "/ { };\n&{/no/such} { x; };\n", "Label or path /no/such not found"),
    "undefined-delete": (HEAD + "/ { };\n/delete-node/ &gone;\n", "Label or path gone not found"),
    "undefined-label-in-cells": (HEAD + "/ {\n\tp = <&nolabel>;\n};\n",
                                 'ERROR (phandle_references): /: Reference to non-existent node or label "nolabel"'),
    "undefined-label-as-path": (HEAD + "/ {\n\tp = &nolabel;\n};\n",
                                'ERROR (path_references): /: Reference to non-existent node or label "nolabel"'),
    "overflowing-expression": (HEAD + "/ {\n\tp = <(0xffffffff + 1)>;\n};\n",
                               "Value out of range for 32-bit array element"),
    "overflowing-literal-8-bit": (HEAD + "/ {\n\tp = /bits/ 8 <1 0x1ff 2>;\n};\n",
                                  "Value out of range for 8-bit array element"),
    "overflowing-8-bit": (HEAD + "/ { p = /bits/ 8 <(0x80 << 1)>; };\n", "Value out of range for 8-bit array element"),
    "literal-out-of-range": (HEAD + "/ { p = /bits/ 64 <0x10000000000000000>; };\n",
                             "Integer literal '0x10000000000000000' out of range"),
    "bad-octal": (HEAD + "/ { p = <08>; };\n", "Bad integer literal '08'"),
    "division-by-zero": (HEAD + "/ { p = <(1 / (2 - 2))>; };\n", "Division by zero"),
    "bad-bits": (HEAD + "/ { p = /bits/ 12 <1>; };\n", "Array elements must be 8, 16, 32 or 64-bits"),
    "ref-in-8-bit-array": (HEAD + "/ { a: a { }; p = /bits/ 8 <&a>; };\n",
                           "References are only allowed in arrays with 32-bit elements."),
    "property-after-subnode": (HEAD + "/ { n { }; p = <1>; };\n", "Properties must precede subnodes"),
    "empty-char-literal": (HEAD + "/ { p = <''>; };\n", "Empty character literal"),
    "duplicate-label": (HEAD + "/ { x: a { }; x: b { }; };\n", "ERROR (duplicate_label)"),
    "duplicate-node": (HEAD + "/ { a { }; a { }; };\n", "ERROR (duplicate_node_names)"),   # one body: not merged
    "repeated-node-merges": (HEAD + "/ { a { }; };\n/ { a { }; };\n", None),                 # two bodies: merged
}


def dtc_error(tmp_path, source):
    require("dtc")
    src = tmp_path / "bad.dts"
    src.write_text(source)
    proc = subprocess.run(["dtc", "-o", str(tmp_path / "dtc.dtb"), "bad.dts"], capture_output=True, text=True,
                          cwd=tmp_path)
    return proc


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_source_is_one_line_with_dtcs_position_and_words(tmp_path, case):
    source, words = BAD[case]
    ref = dtc_error(tmp_path, source)
    out = tmp_path / "out.dtb"
    proc = subprocess.run([*_argv(), "build", "bad.dts", "-o", str(out)], capture_output=True, text=True,
                          cwd=tmp_path)
    if words is None:
        assert ref.returncode == 0 and proc.returncode == 0
        assert out.read_bytes() == (tmp_path / "dtc.dtb").read_bytes()
        return
    assert ref.returncode != 0, "dtc accepts it"
    assert_one_line_error(proc, words)
    assert not out.exists()
    # The position dtc prints ("Error: bad.dts:2.7-22 ..." or "bad.dts:2.7-22: ERROR (...)").
    m = re.search(r"(bad\.dts:[0-9.\-]+)", ref.stderr)
    assert m, ref.stderr
    assert f"{m.group(1)}: " in proc.stderr
    assert words in ref.stderr


def _argv():
    import sys
    return [sys.executable, "-m", "bootforge"]


def test_cyclic_include_names_the_include_and_stops(tmp_path):
    (tmp_path / "a.dtsi").write_text('/ { };\n/include/ "b.dtsi"\n')
    (tmp_path / "b.dtsi").write_text('/include/ "a.dtsi"\n')
    (tmp_path / "top.dts").write_text(HEAD + '/include/ "a.dtsi"\n')
    if require("dtc") is None:
        ref = subprocess.run(["dtc", "-o", "/dev/null", "top.dts"], capture_output=True, text=True, cwd=tmp_path)
        assert "Includes nested too deeply" in ref.stderr
    proc = run_bootforge("build", tmp_path / "top.dts", "-o", tmp_path / "out.dtb")
    assert_one_line_error(proc, "Includes nested too deeply", "a.dtsi:2.1-19")
    assert not (tmp_path / "out.dtb").exists()


def test_missing_include(tmp_path):
    (tmp_path / "top.dts").write_text(HEAD + '/include/ "nowhere.dtsi"\n/ { };\n')
    proc = run_bootforge("build", tmp_path / "top.dts", "-o", tmp_path / "out.dtb")
    assert_one_line_error(proc, "top.dts:2.1-25", 'Couldn\'t open "nowhere.dtsi": No such file or directory')


def test_2gib_string_literal_is_refused_by_its_length_not_read_into_memory(tmp_path):
    """A sparse 2 GiB file holding one string literal: refused at the string's position,
    without reading or copying it (bash `ulimit -v` would kill a reader that did)."""
    src = tmp_path / "huge.dts"
    head = (HEAD + "/ {\n\tp = \"").encode()
    with open(src, "wb") as f:
        f.write(head)
        f.seek(len(head) + (2 << 30))
        f.write(b'";\n};\n')
    out = tmp_path / "out.dtb"
    # The peak resident size of the run shows nothing was copied: the file is memory-mapped and
    # scanned only as far as the limit.
    script = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
              "sys.stderr.write(p.stderr); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([_argv()[0], "-c", script, *_argv(), "build", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, "huge.dts:3.6-7", "string literal longer than")
    assert int(proc.stdout) < 600 * 1024, f"peak RSS {proc.stdout} KiB"
    assert not out.exists()


def test_deep_nesting_is_refused(tmp_path):
    src = tmp_path / "deep.dts"
    src.write_text(HEAD + "/ {" + " n {" * 400 + " };" * 400 + " };\n")
    proc = run_bootforge("build", src, "-o", tmp_path / "out.dtb")
    assert_one_line_error(proc, "deep.dts:2.", "nested deeper than 256")


def test_stdin_error_names_stdin(tmp_path):
    proc = run_bootforge("build", "-", "-o", tmp_path / "out.dtb", input=HEAD + "/ { p = ; };\n")
    assert_one_line_error(proc, "<stdin>:2.9-10: syntax error")


@pytest.mark.parametrize("source, words", [
    (HEAD + '/include/ "nsp\0\0dtsi"\n/ { };\n', 'Couldn\'t open "nsp": No such file or directory'),
    (HEAD + '/ { p = /incbin/("nsp\\0x"); };\n', 'Couldn\'t open "nsp": No such file or directory'),
    (HEAD + '# 1 "a\\x"\n/ { };\n', "\\x used with no following hex digits"),
])
def test_names_end_at_nul_and_a_bad_escape_in_a_line_marker_is_one_line(tmp_path, source, words):
    """Inputs a fuzzer found (a traceback before): a file name is a C string to dtc, and a line
    marker's name is unescaped like a string literal. dtc's words; it gives no position here."""
    ref = dtc_error(tmp_path, source)
    assert ref.returncode != 0 and words in ref.stderr, ref.stderr
    proc = subprocess.run([*_argv(), "build", "bad.dts", "-o", str(tmp_path / "out.dtb")], capture_output=True,
                          text=True, cwd=tmp_path)
    assert_one_line_error(proc, words)
    assert "bad.dts:2." in proc.stderr
    assert not (tmp_path / "out.dtb").exists()


def test_an_endpoint_under_the_root_is_a_warning_where_dtc_crashes(tmp_path):
    """`/ { endpoint { }; };` (the dts fuzzer's input: the graph check read the root's parent).
    Debian's dtc 1.6.1 dies of SIGSEGV on it; bootforge builds the tree and gives the next graph
    check's warning, that the root, now a graph port, is not named 'port'."""
    src = tmp_path / "ep.dts"
    src.write_text(HEAD + "/ {\n\tendpoint { };\n};\n")
    require("dtc")
    assert subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "dtc.dtb"), str(src)],
                          capture_output=True).returncode == -11
    proc = run_bootforge("build", src, "-o", tmp_path / "ep.dtb")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"{src}:2.3-4.3: Warning (graph_port): /: graph port node name should be 'port'"
    out = subprocess.run(["fdtget", "-l", str(tmp_path / "ep.dtb"), "/"], capture_output=True, text=True)
    assert out.stdout.split() == ["endpoint"]
