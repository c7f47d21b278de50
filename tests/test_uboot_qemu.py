"""U-Boot 2023.01 (qemu_arm64) `bootm` of FITs bootforge builds, against the uboot-bootm
verdict: the FIT boots the dump kernel at its load address, a FIT whose configuration names
no DTB matching the board is refused, a changed byte is refused, each in U-Boot's words;
and `booti` of the dump kernel's Image where uboot-booti predicts it runs (moved or not),
with the DTB U-Boot hands it equal to the prediction byte for byte."""

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.fit import read_fit
from bootforge.fdtboot.handover import masked, read_dtdump
from bootforge.fdtboot.libfdt import Fdt
from bootforge.fdtboot.machines import machine_dtb
from bootforge.machines import MACHINES
from conftest import DATA, require, run_bootforge
from dtboot import (UBOOT_ARM, UBOOT_ARM64, UBOOT_LOAD_ADDR, UBOOT_RISCV64_SMODE, dump_kernel, legacy_uimage, make_initrd,
                    uboot_run, verify_json)

LOAD = 0x40400000
RECIPE = """[fit]
description = "dtdump through bootm"
[[fit.images]]
name = "kernel-1"
path = "{kernel}"
type = "kernel"
arch = "arm64"
os = "linux"
load = {load:#x}
entry = {load:#x}
hashes = ["sha256"]
[[fit.images]]
name = "ramdisk-1"
path = "initrd.img"
type = "ramdisk"
arch = "arm64"
os = "linux"
hashes = ["sha1"]
{fdt_image}
[[fit.configurations]]
name = "conf-1"
kernel = "kernel-1"
ramdisk = "ramdisk-1"
{fdt_ref}
"""
FDT_IMAGE = """[[fit.images]]
name = "fdt-1"
path = "virt.dtb"
type = "flat_dt"
arch = "arm64"
hashes = ["sha256"]"""


def _fit(tmp_path, with_fdt=True):
    kernel = dump_kernel("aarch64")
    make_initrd(tmp_path / "initrd.img", 4096)
    dtb, _ = machine_dtb(MACHINES["qemu-virt-aarch64"], 1 << 30)
    (tmp_path / "virt.dtb").write_bytes(dtb)
    (tmp_path / "fit.toml").write_text(RECIPE.format(kernel=kernel, load=LOAD,
                                                     fdt_image=FDT_IMAGE if with_fdt else "",
                                                     fdt_ref='fdt = ["fdt-1"]' if with_fdt else ""))
    run_bootforge("build", tmp_path / "fit.toml", "-o", tmp_path / "fit.itb", check=0)
    return tmp_path / "fit.itb"


def _verdict(path, check):
    proc = run_bootforge("inspect", "--json", path)
    assert proc.returncode == check, proc.stderr
    return next(v for v in json.loads(proc.stdout)["verdicts"] if v["subject"] == "uboot-bootm")


def test_bootm_boots_a_bootforge_fit(tmp_path):
    fit = _fit(tmp_path)
    v = _verdict(fit, 0)
    assert v["ok"] and v["facts"]["configuration"] == "conf-1"
    console = uboot_run(fit, f"bootm {UBOOT_LOAD_ADDR:#x}")
    assert "   Using 'conf-1' configuration" in console
    assert "Verifying Hash Integrity ... sha256+ OK" in console and "sha1+ OK" in console
    dump = read_dtdump(console)
    assert dump.done and dump.image == LOAD
    # The prediction: x0 (U-Boot's DTB copy), the ramdisk copy, the DTB's bytes.
    proc = run_bootforge("load", fit, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm", "--json",
                         "--mbi-out", tmp_path / "predicted.dtb", check=0)
    result = json.loads(proc.stdout)
    assert dump.registers == result["linux"]["registers"]
    ramdisk = result["mbi"]["modules"][0]
    assert f"Loading Ramdisk to {ramdisk['start']:08x}, end {ramdisk['end']:08x} ... OK" in console
    assert result["linux"]["devicetree"]["random_bytes"] == result["linux"]["devicetree"]["loader_chosen_bytes"] == []
    assert dump.full_dtb() == (tmp_path / "predicted.dtb").read_bytes()


def test_bootm_refusals_in_uboots_words(tmp_path):
    fit = _fit(tmp_path, with_fdt=False)
    v = _verdict(fit, 0)
    assert not v["ok"]
    console = uboot_run(fit, f"bootm {UBOOT_LOAD_ADDR:#x}")
    assert v["words"] in console.splitlines()
    # One byte of the kernel changed: U-Boot's hash check, in its words.
    (tmp_path / "bad").mkdir()
    fit = _fit(tmp_path / "bad")
    data = bytearray(fit.read_bytes())
    at = data.find(b"ARM\x64") + 0x20
    data[at] ^= 1
    fit.write_bytes(data)
    v = _verdict(fit, 1)
    assert not v["ok"]
    console = uboot_run(fit, f"bootm {UBOOT_LOAD_ADDR:#x}")
    assert v["words"] in console, console[-800:]


@pytest.mark.parametrize("address,mem", [(0x44000000, "1G"), (0x44100000, "1G"), (0x44000000, "3G")])
def test_booti_places_the_image(tmp_path, address, mem):
    kernel = dump_kernel("aarch64")
    # The load address is a [load.options] value: a recipe gives it.
    recipe = tmp_path / "booti.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-virt-aarch64:{mem}"\nloader = "uboot-booti"\n'
                      f'cmdline = "console=ttyAMA0"\n[load.options]\nimage_address = {address:#x}\n')
    proc = run_bootforge("load", recipe, "--json", "--mbi-out", tmp_path / "predicted.dtb", check=0)
    result = json.loads(proc.stdout)
    console = uboot_run(kernel, f"setenv bootargs console=ttyAMA0; booti {address:#x} - ${{fdtcontroladdr}}",
                        address=address, mem=int(mem[:-1]) << 30)
    dump = read_dtdump(console)
    assert dump.done and dump.image == result["linux"]["entry"]
    moved = result["linux"]["move"]
    assert (moved in console) if moved else "Moving Image" not in console
    assert bool(moved) == (address % (2 << 20) != 0)
    # x0 too: U-Boot's DTB copy where its lmb puts it.
    assert dump.registers == result["linux"]["registers"]
    assert f"Loading Device Tree to {dump.registers['x0']:016x}" in console
    # The DTB U-Boot hands over, byte for byte apart from QEMU's random bytes.
    spans = result["linux"]["devicetree"]["random_bytes"]
    assert masked(dump.full_dtb(), spans) == masked((tmp_path / "predicted.dtb").read_bytes(), spans)


def test_bootm_dtb_of_a_fit_without_ramdisk(tmp_path):
    """uboot-bootm: the kernel at the FIT's load address, the FIT's DTB as U-Boot edits it, exactly."""
    kernel = dump_kernel("aarch64")
    dtb, _ = machine_dtb(MACHINES["qemu-virt-aarch64"], 1 << 30)
    (tmp_path / "virt.dtb").write_bytes(dtb)
    recipe = RECIPE.format(kernel=kernel, load=LOAD, fdt_image=FDT_IMAGE, fdt_ref='fdt = ["fdt-1"]')
    recipe = recipe.replace('ramdisk = "ramdisk-1"\n', "")
    (tmp_path / "fit.toml").write_text(recipe.replace('path = "initrd.img"', f'path = "{kernel}"'))
    fit = tmp_path / "fit.itb"
    run_bootforge("build", tmp_path / "fit.toml", "-o", fit, check=0)
    proc = run_bootforge("load", fit, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm",
                         "--cmdline", "console=ttyAMA0 via=bootm", "--json", "--mbi-out", tmp_path / "predicted.dtb",
                         check=0)
    result = json.loads(proc.stdout)
    console = uboot_run(fit, f"setenv bootargs console=ttyAMA0 via=bootm; bootm {UBOOT_LOAD_ADDR:#x}")
    dump = read_dtdump(console)
    assert dump.done and dump.image == result["linux"]["entry"] == LOAD
    assert result["linux"]["devicetree"]["random_bytes"] == []
    assert dump.full_dtb() == (tmp_path / "predicted.dtb").read_bytes()


def test_booti_with_a_ramdisk(tmp_path):
    """booti ADDR RD:SIZE: the ramdisk copy, the DTB copy (x0) and the DTB's bytes (its /memreserve/
    and linux,initrd-start/end for the ramdisk) all as predicted, apart from QEMU's random bytes."""
    kernel = dump_kernel("aarch64")
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    recipe = tmp_path / "booti.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-virt-aarch64:1G"\nloader = "uboot-booti"\n'
                      f'cmdline = "console=ttyAMA0"\ninitrd = "{initrd}"\n'
                      f'[load.options]\nimage_address = 0x44000000\n')
    result = json.loads(run_bootforge("load", recipe, "--json", "--mbi-out", tmp_path / "predicted.dtb",
                                      check=0).stdout)
    console = uboot_run(kernel, "setenv bootargs console=ttyAMA0; booti 0x44000000 0x48000000:0x1388 "
                        "${fdtcontroladdr}", preload=[(initrd, 0x48000000)])
    dump = read_dtdump(console)
    dt = result["linux"]["devicetree"]
    assert dt["loader_chosen_bytes"] == []          # the ramdisk's address is predicted too
    spans = dt["random_bytes"]
    got = dump.full_dtb()
    assert dump.registers == result["linux"]["registers"]
    assert masked(got, spans) == masked((tmp_path / "predicted.dtb").read_bytes(), spans)
    assert result["mbi"]["modules"][0]["start"] == int.from_bytes(
        Fdt(got).getprop(Fdt(got).path_offset("/chosen"), "linux,initrd-start"), "big")
    fdt = Fdt(got)
    chosen = fdt.path_offset("/chosen")
    start = int.from_bytes(fdt.getprop(chosen, "linux,initrd-start"), "big")
    end = int.from_bytes(fdt.getprop(chosen, "linux,initrd-end"), "big")
    assert end - start == 5000 and f"Loading Ramdisk to {start:x}, end {end:x} ... OK" in console
    assert struct.unpack_from(">QQ", got, 0x30) == (start, 5000)


@pytest.mark.parametrize("mem", ["512M", "1G"])
def test_bootz_of_the_32bit_dump_kernel(tmp_path, mem):
    """U-Boot qemu_arm bootz: the zImage runs where it was loaded, r0-r2 (r2: the control DTB edited
    in place), and that DTB byte for byte apart from QEMU's random bytes."""
    kernel = dump_kernel("arm")
    recipe = tmp_path / "bootz.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-virt-arm:{mem}"\nloader = "uboot-bootz"\n'
                      f'cmdline = "console=ttyAMA0 via=bootz"\n[load.options]\nimage_address = 0x44000000\n')
    result = json.loads(run_bootforge("load", recipe, "--json", "--mbi-out", tmp_path / "predicted.dtb",
                                      check=0).stdout)
    console = uboot_run(kernel, "setenv bootargs console=ttyAMA0 via=bootz; bootz 0x44000000 - ${fdtcontroladdr}",
                        mem=int(mem[:-1]) << (30 if mem.endswith("G") else 20), machine="qemu-virt-arm",
                        bios=UBOOT_ARM)
    dump = read_dtdump(console)
    assert dump.done and dump.arch == "arm" and dump.image == 0x44000000
    assert dump.registers == result["linux"]["registers"]
    assert any(n.removeprefix("U-Boot prints: ") in console for n in result["notes"] if "Kernel image @" in n)
    spans = result["linux"]["devicetree"]["random_bytes"]
    assert masked(dump.full_dtb(), spans) == masked((tmp_path / "predicted.dtb").read_bytes(), spans)


@pytest.mark.parametrize("mem", ["512M", "1G"])
def test_booti_on_riscv64(tmp_path, mem):
    """qemu-riscv64_smode U-Boot (after OpenSBI) booti: the Image moved to RAM + text_offset, a0/a1,
    and the DTB (OpenSBI's tree with U-Boot's edits, in place) byte for byte apart from the random
    bytes and U-Boot's own memory past its copy of the tree."""
    kernel = dump_kernel("riscv64")
    recipe = tmp_path / "booti.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-virt-riscv64:{mem}"\nloader = "uboot-booti"\n'
                      f'cmdline = "console=ttyS0 via=booti"\n')
    result = json.loads(run_bootforge("load", recipe, "--json", "--mbi-out", tmp_path / "predicted.dtb",
                                      check=0).stdout)
    console = uboot_run(kernel, "setenv bootargs console=ttyS0 via=booti; booti 0x84000000 - ${fdtcontroladdr}",
                        address=0x84000000, mem=int(mem[:-1]) << (30 if mem.endswith("G") else 20),
                        machine="qemu-virt-riscv64", bios=UBOOT_RISCV64_SMODE, how="-kernel")
    dump = read_dtdump(console)
    assert dump.done and dump.image == result["linux"]["entry"] == 0x80200000
    assert "Moving Image from 0x84000000 to 0x80200000, end=80210000" in console
    assert dump.registers == result["linux"]["registers"]
    dt = result["linux"]["devicetree"]
    spans = dt["random_bytes"] + dt["loader_chosen_bytes"]
    assert masked(dump.full_dtb(), spans) == masked((tmp_path / "predicted.dtb").read_bytes(), spans)


def test_verify_boots_booti_with_a_ramdisk(tmp_path):
    """`bootforge verify` types booti at U-Boot's prompt and stops at the entry: x0 (U-Boot's DTB
    copy), the ramdisk copy's place and bytes, and the DTB byte for byte apart from QEMU's seeds."""
    kernel = dump_kernel("aarch64")
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    report, fields = verify_json(kernel, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-booti",
                                 "--cmdline", "console=ttyAMA0 via=verify", "--module", initrd)
    assert "booti 0x40400000 0x" in report["medium"] or report["medium"].startswith("U-Boot qemu_arm64 booti")
    assert fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
    assert fields["dtb /chosen u-boot,version"]["match"]
    assert fields["x0"]["observed"] == fields["dtb address"]["observed"]


def test_verify_boots_bootm_of_a_fit_and_its_refusal(tmp_path):
    """verify of bootm: a bootforge FIT boots exactly as predicted; a FIT with no DTB for the board
    is refused by U-Boot in the words uboot-bootm predicts (a row of its own, exit 0)."""
    fit = _fit(tmp_path)
    report, fields = verify_json(fit, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm")
    assert fields["kernel entry"]["observed"] == LOAD and fields["dtb bytes"]["match"]
    assert fields["dtb /chosen u-boot,bootconf"]["observed"] == "conf-1"
    (tmp_path / "nodtb").mkdir()
    fit = _fit(tmp_path / "nodtb", with_fdt=False)
    proc = run_bootforge("verify", fit, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm",
                         "--json", "-q")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["status"] == "refused", proc.stdout[-2000:]
    assert report["predicted_refusal"] in report["loader_words"].split(" | ")
    assert report["fields"][0]["name"] == "loader" and report["fields"][0]["match"]


@pytest.mark.parametrize("arch,mem,loader,ramdisk_at", [("arm", "512M", "uboot-bootz", 0x45000000),
                                                        ("riscv64", "512M", "uboot-booti", 0x86000000)])
def test_verify_ramdisk_left_in_place(tmp_path, arch, mem, loader, ramdisk_at):
    """qemu_arm bootz and qemu-riscv64_smode booti with a ramdisk (initrd_high = ~0): U-Boot
    leaves it where it was loaded; its /memreserve/ and linux,initrd-start/end in the DTB it
    edits in place, byte for byte apart from QEMU's seeds."""
    kernel = dump_kernel(arch)
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-virt-{arch}:{mem}"\nloader = "{loader}"\n'
                      f'cmdline = "console=ttyAMA0 via=ramdisk"\ninitrd = "{initrd}"\n'
                      f'[load.options]\nramdisk_address = {ramdisk_at:#x}\n')
    proc = run_bootforge("verify", recipe, "--json", "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    fields = {f["name"]: f for f in json.loads(proc.stdout)["fields"]}
    assert fields["initrd start"]["observed"] == ramdisk_at and fields["initrd end"]["observed"] == ramdisk_at + 5000
    assert fields["dtb /memreserve/"]["observed"] == [[ramdisk_at, 5000]]
    assert fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"


def test_verify_bootm_of_a_legacy_uimage(tmp_path):
    """bootm of a mkimage uImage (load = entry 0x40400000) with a raw ramdisk: U-Boot copies the
    data to ih_load and edits its control DTB as booti does; verify stops at ih_ep with x0 where
    predicted and the kernel's bytes (the uImage's data), ramdisk and DTB as predicted."""
    uimage = legacy_uimage(dump_kernel("aarch64"), tmp_path / "uImage")
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    _, fields = verify_json(uimage, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm",
                            "--cmdline", "console=ttyAMA0 via=bootm", "--module", initrd)
    assert fields["kernel entry"]["observed"] == 0x40400000 and fields["kernel bytes"]["match"]
    assert fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
    assert fields["dtb /memreserve/"]["observed"] == [[fields["initrd start"]["observed"], 5000]]


# Compressed legacy uImages (boot/image.c image_decomp): the dump kernel compressed by each tool
# and wrapped by mkimage -C; one too large for CONFIG_SYS_BOOTM_LEN (64 MiB of output + the
# kernel). Their U-Boot consoles are captured in tests/data/uboot-bootm-compressed/ (regenerate:
# .venv/bin/python tests/test_uboot_qemu.py compressed; only the FIT's: ... fit).
COMPRESSED = DATA / "uboot-bootm-compressed"
COMPRESSORS = {"gzip": ["gzip", "-n", "-9", "-c"], "lzma": ["lzma", "-9", "-c"], "lz4": ["lz4", "-q", "-9", "-c"],
               "zstd": ["zstd", "-q", "-19", "-c"],
               "lzo": ["gzip", "-n", "-9", "-c"]}    # no lzop here: U-Boot stops at the type, before the data
# Streams U-Boot's decoders refuse: a gzip cut short (inflate -5 at the end of input) and an LZ4 frame
# with dependent blocks (ulz4fn: -EPROTONOSUPPORT; the kernel and 8 MiB of zeros: lz4 keeps -BD only
# for more than one 4 MiB block).
BROKEN = {"gzip-truncated": ("gzip", ["sh", "-c", "gzip -n -9 -c | head -c 400"]),
          "lz4-dependent-blocks": ("lz4", ["lz4", "-q", "-9", "-BD", "-c"])}
TOO_LARGE_LOAD = 0x48000000         # decompressing 64 MiB there stays clear of the uImage at 0x44000000


def compressed_uimage(kind, payload, out, load=LOAD, tool=None):
    """*payload* compressed by *kind*'s own tool (or *tool*), wrapped by mkimage -C *kind*
    (SOURCE_DATE_EPOCH=0: the same bytes every time)."""
    tool = tool or COMPRESSORS[kind]
    require(tool[0], "mkimage")
    packed = subprocess.run(tool, input=payload, capture_output=True, check=True).stdout
    raw = out.with_suffix(f".{kind}")
    raw.write_bytes(packed)
    subprocess.run(["mkimage", "-A", "arm64", "-O", "linux", "-T", "kernel", "-C", kind, "-a", hex(load), "-e",
                    hex(load), "-n", f"dtdump {kind}", "-d", str(raw), str(out)], check=True, capture_output=True,
                   env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    raw.unlink()
    return out


def too_large_payload():
    return (DATA / "dtdump-aarch64.Image").read_bytes() + bytes(64 << 20)


@pytest.mark.parametrize("kind", ["gzip", "lzma", "lz4"])
def test_verify_bootm_of_a_compressed_uimage(tmp_path, kind):
    """bootm decompresses the data to ih_load ("Uncompressing Kernel Image"): verify stops at ih_ep
    with the decompressed kernel's bytes there, x0, the ramdisk and the DTB as predicted."""
    uimage = compressed_uimage(kind, dump_kernel("aarch64").read_bytes(), tmp_path / "uImage")
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    report, fields = verify_json(uimage, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm",
                                 "--cmdline", "console=ttyAMA0 via=bootm", "--module", initrd)
    assert report["ok"] and fields["kernel entry"]["observed"] == LOAD
    assert fields["kernel bytes"]["predicted"].startswith(f"{len(dump_kernel('aarch64').read_bytes()):#x} bytes")
    assert fields["kernel bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
    assert fields["initrd bytes"]["match"]


@pytest.mark.parametrize("kind,payload,words", [
    ("zstd", "kernel", "Unimplemented compression type 6"),
    ("gzip", "too large", "gzip compressed: uncompress error -1")])
def test_verify_bootm_refuses_compressed_uimages(tmp_path, kind, payload, words):
    """No zstd decompressor in Debian's qemu_arm64 build (back at the prompt), and gzip output past
    CONFIG_SYS_BOOTM_LEN (the decoder fails, "Must RESET board to recover", the board resets):
    verify boots both and reads U-Boot's own words."""
    data = dump_kernel("aarch64").read_bytes() if payload == "kernel" else too_large_payload()
    uimage = compressed_uimage(kind, data, tmp_path / "uImage", LOAD if payload == "kernel" else TOO_LARGE_LOAD)
    report, fields = verify_json(uimage, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm")
    assert report["status"] == "refused" and fields["loader"]["match"]
    assert words in report["loader_words"] and report["predicted_refusal"] == words


def compressed_fit_recipe(kind):
    """RECIPE with its kernel compressed by *kind* (compression = "<kind>") and no ramdisk in conf-1."""
    recipe = RECIPE.format(kernel=f"kernel.{kind}", load=LOAD, fdt_image=FDT_IMAGE, fdt_ref='fdt = ["fdt-1"]')
    return recipe.replace('ramdisk = "ramdisk-1"\n', "").replace(
        'os = "linux"\nload', f'os = "linux"\ncompression = "{kind}"\nload', 1)


def compressed_fit(tmp_path, kind, kernel=None, dtb=None, out=None):
    """A bootforge FIT of compressed_fit_recipe(*kind*): the dump kernel compressed by *kind*'s tool,
    QEMU's virt tree (or *dtb*) as fdt-1."""
    require(COMPRESSORS[kind][0])
    kernel = kernel if kernel is not None else dump_kernel("aarch64").read_bytes()
    (tmp_path / f"kernel.{kind}").write_bytes(subprocess.run(COMPRESSORS[kind], input=kernel, capture_output=True,
                                                             check=True).stdout)
    (tmp_path / "virt.dtb").write_bytes(dtb if dtb is not None else machine_dtb(MACHINES["qemu-virt-aarch64"],
                                                                                 1 << 30)[0])
    make_initrd(tmp_path / "initrd.img", 4096)
    (tmp_path / "fit.toml").write_text(compressed_fit_recipe(kind))
    out = out or tmp_path / "fit.itb"
    run_bootforge("build", tmp_path / "fit.toml", "-o", out, check=0)
    return out


def test_verify_bootm_of_a_fit_with_a_gzip_kernel(tmp_path):
    """A FIT kernel with compression = "gzip": bootm_load_os decompresses it to its load address like
    a legacy uImage's data; verify compares the decompressed kernel there, x0 and the DTB. A zstd one
    gets the same image_decomp refusal as a legacy uImage (observed there)."""
    (tmp_path / "zstd").mkdir()
    zstd = read_fit(compressed_fit(tmp_path / "zstd", "zstd").read_bytes())
    refused = verdicts.uboot_bootm_fit(zstd, "aarch64")
    assert not refused.ok and refused.words == "Unimplemented compression type 6"
    fit = compressed_fit(tmp_path, "gzip")
    v = _verdict(fit, 0)
    assert v["ok"] and v["facts"]["decompressed_size"] == len(dump_kernel("aarch64").read_bytes())
    report, fields = verify_json(fit, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm")
    assert report["ok"] and fields["kernel entry"]["observed"] == LOAD and fields["kernel bytes"]["match"]
    assert fields["dtb bytes"]["match"]


def test_compressed_uimage_captures():
    """The captured consoles (tests/data/uboot-bootm-compressed/<case>.console, each uImage beside
    it): every verdict is U-Boot's, without QEMU: the decompressed kernel ran at ih_load and got
    x0 from U-Boot; the refusals are U-Boot's own lines."""
    cases = json.loads((COMPRESSED / "cases.json").read_text())
    assert sorted(cases) == ["gzip", "gzip-too-large", "gzip-truncated", "lz4", "lz4-dependent-blocks", "lz4-too-large",
                             "lzma", "lzma-too-large", "lzo", "zstd"]
    for name, case in cases.items():
        console = (COMPRESSED / f"{name}.console").read_text()
        data = (COMPRESSED / f"{name}.uImage").read_bytes()
        v = verdicts.uboot_bootm_legacy(data, "aarch64")
        assert "   Uncompressing Kernel Image" in console.splitlines(), name
        if case["boots"]:
            assert v.ok, (name, v.reason)
            dump = read_dtdump(console)
            assert dump.done and dump.image == v.facts["load"] and dump.registers["x1"] == 0
            assert kernels.bootm_loaded_bytes(data, verdicts.SYS_BOOTM_LEN) == \
                (DATA / "dtdump-aarch64.Image").read_bytes()
        else:
            assert not v.ok and v.words in console.splitlines(), (name, v.words)


FIT_CAPTURE = "fit-gzip"
FIT_CAPTURE_DTB = "dtdump-aarch64-1024M-initrd.machine.dtb"     # QEMU's virt tree (linux,dummy-virt), packed


def test_compressed_fit_capture(tmp_path):
    """The kept bootm of a bootforge FIT whose kernel is gzip'd (tests/data/uboot-bootm-compressed/
    fit-gzip.*): the kernel ran at its load address, and the DTB U-Boot handed over equals the
    uboot-bootm prediction byte for byte (no QEMU; U-Boot's binary gives its version string)."""
    require(UBOOT_ARM64)
    from dtboot import fixture_board, predict
    fit = (COMPRESSED / f"{FIT_CAPTURE}.itb").read_bytes()
    board = fixture_board("qemu-virt-aarch64", 1 << 30, FIT_CAPTURE_DTB.removesuffix(".machine.dtb"))
    res = predict(board, fit, "uboot-bootm")
    dump = read_dtdump((COMPRESSED / f"{FIT_CAPTURE}.console").read_text())
    assert dump.done and dump.image == res.linux["entry"] == LOAD
    assert dump.registers == res.linux["registers"] and dump.full_dtb() == res.mbi_bytes
    kernel_at = next(p for p in res.placements if p.kind == "kernel")
    assert kernel_at.end - kernel_at.start == len((DATA / "dtdump-aarch64.Image").read_bytes())


SHORT_FDT_CAPTURE = "fit-short-fdt"


def test_fit_with_a_short_fdt_image(tmp_path):
    """A FIT whose fdt image is QEMU's tree cut after its last used byte (its header still says
    totalsize 1 MiB; tests/data/uboot-bootm-compressed/fit-short-fdt.*): U-Boot's libfdt reads the
    root compatible in place and takes the configuration (kept console: "Using 'conf-1'
    configuration", then it copies 1 MiB + 0x3000 from there); the verdict takes it too, and load
    refuses to predict the bytes U-Boot copies past the image (one line, exit 2)."""
    path = COMPRESSED / f"{SHORT_FDT_CAPTURE}.itb"
    fit = read_fit(path.read_bytes())
    v = verdicts.uboot_bootm_fit(fit, "aarch64")
    console = (COMPRESSED / f"{SHORT_FDT_CAPTURE}.console").read_text()
    assert v.ok and f"   Using '{v.facts['configuration']}' configuration" in console.splitlines()
    proc = run_bootforge("load", path, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-bootm")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "totalsize 0x100000" in proc.stderr and "not modelled" in proc.stderr


def regenerate_fit_capture():
    import tempfile
    # QEMU's tree packed (the fixture keeps its used bytes of a 1 MiB totalsize).
    head = (DATA / FIT_CAPTURE_DTB).read_bytes()
    tree = Fdt(head + bytes(int.from_bytes(head[4:8], "big") - len(head)))
    tree.pack()
    for name, dtb, how in ((FIT_CAPTURE, tree.blob(), "packed"), (SHORT_FDT_CAPTURE, head, "as kept: cut short")):
        with tempfile.TemporaryDirectory() as tmp:
            compressed_fit(Path(tmp), "gzip", (DATA / "dtdump-aarch64.Image").read_bytes(), dtb,
                           COMPRESSED / f"{name}.itb")
        command = f"bootm {UBOOT_LOAD_ADDR:#x}"
        console = uboot_run(COMPRESSED / f"{name}.itb", command)
        (COMPRESSED / f"{name}.console").write_text(
            f"# {name}.itb: tests/test_uboot_qemu.py regenerate_fit_capture (compressed_fit gzip, fdt "
            f"tests/data/{FIT_CAPTURE_DTB} {how}); qemu-system-aarch64 -M virt -cpu cortex-a57 -m 1G -bios "
            f"{UBOOT_ARM64} -device loader,file={name}.itb,addr={UBOOT_LOAD_ADDR:#x},force-raw=on; at the prompt: "
            f"{command}\n" + console[console.find("=> bootm"):])


def regenerate_compressed():
    COMPRESSED.mkdir(exist_ok=True)
    kernel = (DATA / "dtdump-aarch64.Image").read_bytes()
    cases = {}
    for kind in ("gzip", "lzma", "lz4", "zstd", "lzo"):
        compressed_uimage(kind, kernel, COMPRESSED / f"{kind}.uImage")
        cases[kind] = {"boots": kind in ("gzip", "lzma", "lz4")}
    for kind in ("gzip", "lzma", "lz4"):
        compressed_uimage(kind, too_large_payload(), COMPRESSED / f"{kind}-too-large.uImage", TOO_LARGE_LOAD)
        cases[f"{kind}-too-large"] = {"boots": False}
    for name, (kind, tool) in BROKEN.items():
        compressed_uimage(kind, kernel + bytes(8 << 20), COMPRESSED / f"{name}.uImage", tool=tool)
        cases[name] = {"boots": False}
    command = f"bootm {UBOOT_LOAD_ADDR:#x} - ${{fdtcontroladdr}}"
    for name, case in cases.items():
        console = uboot_run(COMPRESSED / f"{name}.uImage", command)
        tool = BROKEN[name][1] if name in BROKEN else COMPRESSORS[name.split("-")[0]]
        case["made_by"] = (f"tests/test_uboot_qemu.py compressed_uimage: {' '.join(tool)} "
                           "| mkimage -A arm64 -O linux -T kernel -C <kind> (SOURCE_DATE_EPOCH=0)")
        case["command"] = (f"qemu-system-aarch64 -M virt -cpu cortex-a57 -m 1G -bios {UBOOT_ARM64} -device "
                           f"loader,file={name}.uImage,addr={UBOOT_LOAD_ADDR:#x},force-raw=on; at the prompt: "
                           + command)
        (COMPRESSED / f"{name}.console").write_text(console[console.find("=> bootm"):])
    (COMPRESSED / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(DATA.parent))
    if sys.argv[1:] == ["compressed"]:
        regenerate_compressed()
        regenerate_fit_capture()
    elif sys.argv[1:] == ["fit"]:
        regenerate_fit_capture()
