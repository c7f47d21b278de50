"""DTS text straight from a blob (bootforge.fdt.dts.dtb_to_dts, what `inspect -O dts` prints):
dtc's text, and on a damaged blob exactly the error parse_dtb gives."""

import random
import subprocess

from bootforge.errors import FormatError
from bootforge.fdt import parse_dtb, to_dts
from bootforge.fdt.dts import dtb_to_dts
from conftest import DATA, require

SOURCE = """/dts-v1/;
/memreserve/ 0x1000 0x2000;
/ {
	#address-cells = <2>; #size-cells = <1>;
	s = "plain", "two\\tescapes\\x01"; c = <1 0xffffffff>; b = [01 02 03]; e;
	n@1 { reg = <0 1 2>; deep { deeper { x = /bits/ 16 <7>; }; }; };
	m { };
};
"""


def test_text_is_dtcs(tmp_path):
    require("dtc")
    src = tmp_path / "t.dts"
    src.write_text(SOURCE)
    blob = subprocess.run(["dtc", "-q", "-O", "dtb", str(src)], capture_output=True, check=True).stdout
    ref = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", "-"], input=blob, capture_output=True,
                         check=True).stdout
    assert dtb_to_dts(blob).encode("latin-1") == ref
    fixture = (DATA / "fdt-reserved.dtb").read_bytes()
    assert dtb_to_dts(fixture) == to_dts(parse_dtb(fixture))


def _outcome(fn, data):
    try:
        return "ok", fn(data)
    except FormatError as exc:
        return "error", str(exc)


def test_damaged_blobs_fail_as_parse_dtb_does(tmp_path):
    require("dtc")
    src = tmp_path / "t.dts"
    src.write_text(SOURCE)
    blob = subprocess.run(["dtc", "-q", "-O", "dtb", str(src)], capture_output=True, check=True).stdout
    rng = random.Random(23)
    errors = 0
    for _ in range(3000):
        data = bytearray(blob)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[:rng.choice([len(data), rng.randrange(len(data))])])
        mine = _outcome(dtb_to_dts, data)
        theirs = _outcome(lambda d: to_dts(parse_dtb(d)), data)
        assert mine == theirs
        errors += mine[0] == "error"
    assert errors > 1000
