"""`[fit]` recipes: the FIT bootforge builds is read by U-Boot's own tools (mkimage -l lists
every image with the hash bootforge wrote, dumpimage extracts each image byte for byte),
and the same recipe gives the same bytes wherever and whenever it is built."""

import os
import re
import subprocess

import pytest

from conftest import assert_one_line_error, require, run_bootforge
from test_arm_images import stand_in_arm64

RECIPE = """[fit]
description = "stand-in on virt"
{external}
[[fit.images]]
name = "kernel-1"
description = "stand-in kernel"
path = "Image"
type = "kernel"
arch = "arm64"
os = "linux"
load = 0x40200000
entry = 0x40200000
hashes = ["sha256", "crc32"]
[[fit.images]]
name = "fdt-1"
path = "board.dtb"
type = "flat_dt"
arch = "arm64"
hashes = ["sha1"]
[[fit.images]]
name = "ramdisk-1"
path = "initrd"
type = "ramdisk"
arch = "arm64"
os = "linux"
hashes = ["md5", "sha512"]
[[fit.configurations]]
name = "conf-1"
description = "boot"
kernel = "kernel-1"
fdt = ["fdt-1"]
ramdisk = "ramdisk-1"
"""


def _inputs(d):
    require("dtc")
    stand_in_arm64(d / "Image")
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(d / "board.dtb"), "-"], check=True,
                   capture_output=True, input=b'/dts-v1/; / { model = "Test board"; compatible = "acme,test"; };')
    (d / "initrd").write_bytes(b"0123456789abc")


@pytest.mark.parametrize("external", [False, True])
def test_mkimage_and_dumpimage_read_it(tmp_path, external):
    require("mkimage", "dumpimage")
    _inputs(tmp_path)
    recipe = tmp_path / "fit.toml"
    recipe.write_text(RECIPE.format(external="external = true" if external else ""))
    out = tmp_path / "out.itb"
    run_bootforge("build", recipe, "-o", out, check=0)
    listing = subprocess.run(["mkimage", "-l", str(out)], capture_output=True, text=True, check=True).stdout
    assert "FIT description: stand-in on virt" in listing
    assert " Default Configuration: 'conf-1'" in listing
    assert re.findall(r"Image \d+ \((\S+)\)", listing) == ["kernel-1", "fdt-1", "ramdisk-1"]
    assert "Load Address: 0x40200000" in listing and "Architecture: AArch64" in listing
    # The hash values mkimage reads back are the digests of the files (hashlib, independently).
    import hashlib
    import zlib
    files = [tmp_path / "Image", tmp_path / "board.dtb", tmp_path / "initrd"]
    want = [hashlib.sha256(files[0].read_bytes()).hexdigest(), f"{zlib.crc32(files[0].read_bytes()):08x}",
            hashlib.sha1(files[1].read_bytes()).hexdigest(), hashlib.md5(files[2].read_bytes()).hexdigest(),
            hashlib.sha512(files[2].read_bytes()).hexdigest()]
    assert re.findall(r"Hash value:\s+([0-9a-f]+)", listing) == want
    for i, f in enumerate(files):
        extracted = tmp_path / f"part{i}"
        subprocess.run(["dumpimage", "-T", "flat_dt", "-p", str(i), "-o", str(extracted), str(out)],
                       check=True, capture_output=True)
        assert extracted.read_bytes() == f.read_bytes()


def test_same_bytes_every_time(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b" / "deeper"
    for d in (a, b):
        d.mkdir(parents=True)
        _inputs(d)
        (d / "fit.toml").write_text(RECIPE.format(external="external = true"))
    run_bootforge("build", a / "fit.toml", "-o", a / "out.itb", check=0)
    os.utime(b / "Image", (0, 0))
    run_bootforge("build", b / "fit.toml", "-o", b / "out.itb", check=0)
    assert (a / "out.itb").read_bytes() == (b / "out.itb").read_bytes()


def test_recipe_errors(tmp_path):
    _inputs(tmp_path)
    recipe = tmp_path / "fit.toml"
    recipe.write_text(RECIPE.format(external="").replace('ramdisk = "ramdisk-1"\n', 'ramdisk = "nope"\n'))
    assert_one_line_error(run_bootforge("build", recipe), "fit.toml", "nope")
    recipe.write_text(RECIPE.format(external="").replace('type = "kernel"', 'type = "kernal"'))
    assert_one_line_error(run_bootforge("build", recipe), "fit.toml", "type")
