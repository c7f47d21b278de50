"""`bootforge fdt apply` against the real fdtoverlay: the same merged blob byte for byte, and
fdtoverlay's words when it fails (one line, exit 2, nothing written)."""

import subprocess

import pytest

from conftest import assert_one_line_error, require, run_bootforge

BASE = """/dts-v1/;
/ {
	#address-cells = <1>;
	#size-cells = <1>;
	compatible = "test,base";
	aliases { serial0 = &uart; };
	chosen { };
	soc: soc {
		#address-cells = <1>;
		#size-cells = <1>;
		ranges;
		uart: serial@1000 { compatible = "ns16550a"; reg = <0x1000 0x100>; status = "disabled"; };
		intc: interrupt-controller@2000 {
			reg = <0x2000 0x100>;
			interrupt-controller;
			#interrupt-cells = <1>;
			#address-cells = <0>;
		};
		clk: clock { #clock-cells = <0>; };
	};
};
"""

OVERLAYS = {
    # Changed and new properties (odd lengths: libfdt leaves stale bytes in the padding),
    # new nested nodes, references into the base and inside the overlay.
    "merge": """/dts-v1/;
/plugin/;
&uart { status = "okay"; odd = [01 02 03]; name-longer-than-before = "abcdefghijk"; clocks = <&clk>; };
&soc {
	dev: device@3000 {
		compatible = "test,dev"; reg = <0x3000 0x10>;
		interrupt-parent = <&intc>; interrupts = <5>; self = <&dev>; peer = <&peer>;
		child { x = /bits/ 8 <1 2 3 4 5>; grandchild { y; }; };
	};
	peer: device@4000 { reg = <0x4000 4>; back = <&dev &uart>; };
};
""",
    "target-path": """/dts-v1/;
/plugin/;
&{/chosen} { bootargs = "console=ttyS0"; };
/ {
	fragment@7 { target-path = "/"; __overlay__ { model = "overlaid"; }; };
	fragment@8 { target-path = "serial0"; __overlay__ { via-alias; }; };
	fragment@9 { target = <&intc>; __overlay__ { extra = <1 2>; }; };
};
""",
    "second": """/dts-v1/;
/plugin/;
&dev { more = "yes"; uses = <&peer &intc>; };
""",
}


def dtc_blob(tmp_path, name, source, *args):
    require("dtc")
    src = tmp_path / f"{name}.dts"
    src.write_text(source)
    out = tmp_path / f"{name}.dtb"
    subprocess.run(["dtc", "-q", *args, "-o", str(out), str(src)], check=True)
    return out


def fdtoverlay(tmp_path, base, overlays, out_name="ref.dtb"):
    require("fdtoverlay")
    out = tmp_path / out_name
    proc = subprocess.run(["fdtoverlay", "-i", str(base), "-o", str(out), *map(str, overlays)],
                          capture_output=True, text=True)
    return proc, out


@pytest.mark.parametrize("symbols", [True, False], ids=["dtbo-with-symbols", "dtbo-plain"])
@pytest.mark.parametrize("sequence", [["merge"], ["target-path"], ["merge", "second"], ["merge", "target-path"]],
                         ids="+".join)
def test_apply_gives_fdtoverlays_bytes(tmp_path, sequence, symbols):
    base = dtc_blob(tmp_path, "base", BASE, "-@")
    overlays = [dtc_blob(tmp_path, name, OVERLAYS[name], *(["-@"] if symbols else [])) for name in sequence]
    proc, ref = fdtoverlay(tmp_path, base, overlays)
    out = tmp_path / "mine.dtb"
    mine = run_bootforge("fdt", "apply", base, *overlays, "-o", out)
    if proc.returncode != 0:
        # A later overlay naming a label of an earlier one that was compiled without -@.
        assert sequence == ["merge", "second"] and not symbols
        assert_one_line_error(mine, proc.stderr.strip().splitlines()[0])
        return
    assert mine.returncode == 0, mine.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_base_without_symbols_takes_an_overlay_without_fixups(tmp_path):
    base = dtc_blob(tmp_path, "base", BASE)          # no -@
    overlay = dtc_blob(tmp_path, "ov", "/dts-v1/;\n/plugin/;\n&{/soc} { added { a; }; };\n")
    proc, ref = fdtoverlay(tmp_path, base, [overlay])
    assert proc.returncode == 0, proc.stderr
    run_bootforge("fdt", "apply", base, overlay, "-o", tmp_path / "mine.dtb", check=0)
    assert (tmp_path / "mine.dtb").read_bytes() == ref.read_bytes()


FAILURES = {
    "missing-label": ("-@", "/dts-v1/;\n/plugin/;\n&nolabel { x; };\n"),
    "no-symbols-in-base": ("", "/dts-v1/;\n/plugin/;\n&uart { x; };\n"),
    "missing-target-path": ("-@", "/dts-v1/;\n/plugin/;\n/ { fragment@0 { target-path = \"/nope\"; "
                                  "__overlay__ { x; }; }; };\n"),
    "bad-target-phandle": ("-@", "/dts-v1/;\n/plugin/;\n/ { fragment@0 { target = <0x7777>; "
                                 "__overlay__ { x; }; }; };\n"),
    "fragment-without-target": ("-@", "/dts-v1/;\n/plugin/;\n/ { fragment@0 { __overlay__ { x; }; }; };\n"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failure_in_fdtoverlays_words(tmp_path, case):
    base_flag, source = FAILURES[case]
    base = dtc_blob(tmp_path, "base", BASE, *([base_flag] if base_flag else []))
    overlay = dtc_blob(tmp_path, "ov", source)
    proc, ref = fdtoverlay(tmp_path, base, [overlay])
    assert proc.returncode != 0
    words = proc.stderr.strip().splitlines()[0]        # "Failed to apply '...': FDT_ERR_..."
    assert words.startswith("Failed to apply")
    out = tmp_path / "mine.dtb"
    mine = run_bootforge("fdt", "apply", base, overlay, "-o", out)
    assert_one_line_error(mine, words)
    assert not out.exists()


def test_not_a_blob_is_one_line(tmp_path):
    base = dtc_blob(tmp_path, "base", BASE, "-@")
    junk = tmp_path / "junk.dtbo"
    junk.write_bytes(b"\xd0\x0d\xfe\xed" + b"\xff" * 60)
    proc = run_bootforge("fdt", "apply", base, junk, "-o", tmp_path / "out.dtb")
    assert_one_line_error(proc, "junk.dtbo")
    assert not (tmp_path / "out.dtb").exists()


def test_a_fixup_past_its_property_ends_in_fdtoverlays_words(tmp_path):
    """A __fixups__ entry whose offset (8) is past its 4-byte target property (the fdt-overlay
    fuzz harness's hang): libfdt's in-place write says NOSPACE, so fdtoverlay grows its buffer
    by 64 KiB and retries until fdt_open_into's int size goes negative (seconds); bootforge
    answers with those words at once instead of replaying the loop (it had hung)."""
    base = dtc_blob(tmp_path, "base", BASE, "-@")
    overlay = dtc_blob(tmp_path, "ov", "/dts-v1/;\n/plugin/;\n&uart { x; };\n")
    data = overlay.read_bytes()
    assert data.count(b"/fragment@0:target:0\0") == 1
    overlay.write_bytes(data.replace(b"/fragment@0:target:0\0", b"/fragment@0:target:8\0"))
    proc, _ = fdtoverlay(tmp_path, base, [overlay])
    assert proc.returncode != 0
    words = proc.stderr.strip().splitlines()[0]
    assert words == "Failed to make temporary copy: FDT_ERR_NOSPACE"
    out = tmp_path / "mine.dtb"
    assert_one_line_error(run_bootforge("fdt", "apply", base, overlay, "-o", out), words, "no buffer size fixes")
    assert not out.exists()
