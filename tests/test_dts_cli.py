"""The command line of the DTS compiler: `bootforge build X.dts`, `-` for standard input,
[dtb] recipes, dtc's options, `inspect -O dts` and dtc's checks in `inspect` of a DTB."""

import json
import subprocess

import pytest

from conftest import require, run_bootforge

SOURCE = """/dts-v1/;
/memreserve/ 0x80000000 0x10000;
/ {
	#address-cells = <1>;
	#size-cells = <1>;
	model = "bootforge test board";
	cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { reg = <0>; device_type = "cpu"; }; };
	memory@40000000 { device_type = "memory"; reg = <0x40000000 0x8000000>; };
	intc: interrupt-controller@1000 { reg = <0x1000 0x100>; interrupt-controller; #interrupt-cells = <1>; };
	serial@2000 { reg = <0x2000 0x100>; interrupt-parent = <&intc>; interrupts = <1>; };
	no-reg@3000 { };
};
"""


def dtc(tmp_path, *args, source=SOURCE):
    require("dtc")
    src = tmp_path / "board.dts"
    src.write_text(source)
    out = tmp_path / "dtc.dtb"
    proc = subprocess.run(["dtc", *args, "-o", str(out), str(src)], capture_output=True, text=True, check=True)
    return out.read_bytes(), proc.stderr


def test_build_dts_file_writes_dtcs_blob_and_prints_dtcs_warnings(tmp_path):
    blob, stderr = dtc(tmp_path, "-@", "-H", "both", "-p", "64")
    out = tmp_path / "dtc.dtb"          # dtc names its output in positionless warnings: use the same name
    out.unlink()
    proc = run_bootforge("build", tmp_path / "board.dts", "-@", "-H", "both", "-p", "64", "-o", out, check=0)
    assert out.read_bytes() == blob
    assert proc.stderr == stderr
    assert "no-reg@3000: node has a unit name, but no reg or ranges property" in proc.stderr


def test_build_from_standard_input(tmp_path):
    blob, _ = dtc(tmp_path, "-q")
    out = tmp_path / "stdin.dtb"
    run_bootforge("build", "-", "-q", "-o", out, input=SOURCE, check=0)
    assert out.read_bytes() == blob


def test_dtb_recipe(tmp_path):
    blob, _ = dtc(tmp_path, "-q", "-@", "-R", "2")
    (tmp_path / "board.toml").write_text('[dtb]\nsource = "board.dts"\nsymbols = true\nreserve = 2\n'
                                         'output = "recipe.dtb"\n')
    proc = run_bootforge("build", tmp_path / "board.toml", "--json", check=0)
    assert (tmp_path / "recipe.dtb").read_bytes() == blob
    summary = json.loads(proc.stdout)
    assert summary["format"] == "dtb" and summary["size"] == len(blob)


def test_dtb_recipe_unknown_key_is_one_line(tmp_path):
    (tmp_path / "board.dts").write_text(SOURCE)
    (tmp_path / "bad.toml").write_text('[dtb]\nsource = "board.dts"\nsymbolz = true\n')
    proc = run_bootforge("build", tmp_path / "bad.toml")
    assert proc.returncode == 2 and "symbolz" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_inspect_dts_prints_only_dtcs_text_and_round_trips(tmp_path):
    blob, _ = dtc(tmp_path, "-q")
    dtb = tmp_path / "x.dtb"
    dtb.write_bytes(blob)
    reference = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                               check=True).stdout
    for flags in (["-O", "dts"], ["--format", "dts"]):
        proc = subprocess.run([*_argv(), "inspect", *flags, str(dtb)], capture_output=True, check=True)
        assert proc.stdout == reference
    # inspect -O dts x.dtb | bootforge build - -o y.dtb gives back x.dtb
    y = tmp_path / "y.dtb"
    subprocess.run(["bash", "-c", f"{' '.join(_argv())} inspect -O dts {dtb} | {' '.join(_argv())} build - -q -o {y}"],
                   check=True)
    assert y.read_bytes() == blob


def test_inspect_of_a_dtb_reports_dtcs_warnings(tmp_path):
    blob, _ = dtc(tmp_path, "-q")
    dtb = tmp_path / "x.dtb"
    dtb.write_bytes(blob)
    reference = subprocess.run(["dtc", "-I", "dtb", "-O", "dtb", "-o", str(dtb), str(dtb)], capture_output=True,
                               text=True).stderr.splitlines()
    assert any("unit_address_vs_reg" in line for line in reference)
    doc = json.loads(run_bootforge("inspect", "--json", dtb, check=0).stdout)
    dtc_lines = [w for w in doc["warnings"] if " Warning (" in w or " ERROR (" in w]
    assert dtc_lines == reference


def _argv():
    import sys
    return [sys.executable, "-m", "bootforge"]


@pytest.mark.parametrize("source", [
    "/dts-v1/;\n/ {\n\tp = <&a>;\n\tx: a { };\n\tx: b { };\n};\n",
    # The first failed error-level check ends dtc's checks: &y is never resolved.
    "/dts-v1/;\n/ {\n\tp = <&y>;\n\tx: a { };\n\tx: b { };\n\ty: c { };\n};\n",
])
def test_force_writes_what_dtc_writes_despite_errors(tmp_path, source):
    blob, stderr = dtc(tmp_path, "-f", source=source)
    assert "ERROR (duplicate_label)" in stderr and "output forced" in stderr
    out = tmp_path / "dtc.dtb"
    out.unlink()
    proc = run_bootforge("build", tmp_path / "board.dts", "-f", "-o", out, check=0)
    assert out.read_bytes() == blob
    assert proc.stderr == stderr
