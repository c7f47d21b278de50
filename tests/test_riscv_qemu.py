"""QEMU -kernel on riscv64 virt (OpenSBI 1.1 fw_dynamic) against the qemu-riscv-kernel
prediction: the dtdump kernel reports a0/a1, where it runs, where the initrd is and the DTB
OpenSBI handed on; the prediction (QEMU's placement, its /chosen edits and fdt_pack, then
OpenSBI's fixups with the stale bytes its deletions leave) must equal it byte for byte
except rng-seed.

Real boots at 128M, 512M and 2G (the DTB below 3 GiB), with and without an initrd; the
captures in tests/data/dtdump-riscv64-*.serial (with the machine DTB dumped by the same
QEMU) are checked without QEMU. Regenerate them: .venv/bin/python tests/test_riscv_qemu.py
"""

import json
import sys

import pytest

from bootforge.fdtboot import opensbi
from bootforge.fdtboot.handover import masked, read_dtdump
from bootforge.fdtboot.libfdt import Fdt
from conftest import DATA, require, run_bootforge
from dtboot import MIB, boot, dump_kernel, fixture_board, make_initrd, predict, qemu_command, verify_json

CMDLINE = "console=ttyS0 bootforge=dtdump"
INITRD_SIZE = 5000
FIXTURES = [("512M", True), ("128M", False)]


def _check(dump, registers, kernel_at, initrd_at, dtb, random_bytes):
    assert dump.done and dump.arch == "riscv64"
    assert dump.registers == registers
    assert dump.image == kernel_at
    assert dump.initrd == initrd_at
    assert dump.dtb_address == registers["a1"]
    got = dump.full_dtb()
    assert got is not None and len(got) == len(dtb)
    assert masked(got, random_bytes) == masked(dtb, random_bytes)
    assert sum(n for _, n in random_bytes) == 32
    fdt = Fdt(got)
    assert len(fdt.getprop(fdt.path_offset("/chosen"), "rng-seed")) == 32
    # OpenSBI's own memory, as the kernel is told about it.
    resv = fdt.path_offset("/reserved-memory")
    assert [name for name, _ in fdt.subnodes(resv)] == ["mmode_resv0@80000000"]


def _mem(text):
    return int(text[:-1]) * (1024 if text.endswith("G") else 1) * MIB


@pytest.mark.parametrize("mem", ["128M", "512M", "2G"])
@pytest.mark.parametrize("with_initrd", [False, True])
def test_qemu_kernel_boot(tmp_path, mem, with_initrd):
    kernel = dump_kernel("riscv64")
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE) if with_initrd else None
    args = ["load", kernel, "--platform", f"qemu-virt-riscv64:{mem}", "--loader", "qemu-riscv-kernel",
            "--cmdline", CMDLINE, "--json", "--mbi-out", tmp_path / "predicted.dtb"]
    proc = run_bootforge(*(args + (["--initrd", initrd] if initrd else [])), check=0)
    result = json.loads(proc.stdout)
    placements = {p["kind"]: p for p in result["placements"]}
    serial, _ = boot("qemu-virt-riscv64", _mem(mem), kernel, tmp_path, initrd, CMDLINE)
    _check(read_dtdump(serial), result["linux"]["registers"], placements["kernel"]["start"],
           placements["module"]["start"] if initrd else None, (tmp_path / "predicted.dtb").read_bytes(),
           result["linux"]["devicetree"]["random_bytes"])


@pytest.mark.parametrize("mem,with_initrd", FIXTURES)
def test_captured_boots(tmp_path, mem, with_initrd):
    require(str(opensbi.FIRMWARE_ELF), str(opensbi.FIRMWARE_BIN))
    name = f"dtdump-riscv64-{mem}{'-initrd' if with_initrd else ''}"
    board = fixture_board("qemu-virt-riscv64", _mem(mem), name, CMDLINE)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE) if with_initrd else None
    res = predict(board, (DATA / "dtdump-riscv64.Image").read_bytes(), "qemu-riscv-kernel", initrd, CMDLINE)
    placements = {p.kind: p for p in res.placements}
    _check(read_dtdump((DATA / f"{name}.serial").read_text()), res.linux["registers"], placements["kernel"].start,
           placements["module"].start if initrd else None, res.mbi_bytes, res.linux["devicetree"]["random_bytes"])


def regenerate():
    import shutil
    import tempfile
    from pathlib import Path
    from bootforge.fdtboot.machines import machine_dtb
    from bootforge.machines import MACHINES
    shutil.copy(dump_kernel("riscv64"), DATA / "dtdump-riscv64.Image")
    for mem, with_initrd in FIXTURES:
        name = f"dtdump-riscv64-{mem}{'-initrd' if with_initrd else ''}"
        with tempfile.TemporaryDirectory() as tmp:
            initrd = make_initrd(Path(tmp) / "initrd.img", INITRD_SIZE) if with_initrd else None
            serial, _ = boot("qemu-virt-riscv64", _mem(mem), DATA / "dtdump-riscv64.Image", tmp, initrd, CMDLINE)
        command = " ".join(qemu_command("qemu-virt-riscv64", _mem(mem), "tests/data/dtdump-riscv64.Image",
                                        "initrd.img" if initrd else None, CMDLINE))
        (DATA / f"{name}.serial").write_text(
            f"# {command}  (initrd.img: tests/dtboot.py make_initrd, {INITRD_SIZE} bytes)\n" + serial)
        dtb, _ = machine_dtb(MACHINES["qemu-virt-riscv64"], _mem(mem), CMDLINE)
        # The whole buffer counts: OpenSBI's open_into() brings bytes past the packed totalsize back
        # into the tree the kernel reads (QEMU's stale bytes there are kept up to the last non-zero one).
        (DATA / f"{name}.machine.dtb").write_bytes(dtb.rstrip(b"\0"))


if __name__ == "__main__":
    sys.path.insert(0, str(DATA.parent))
    regenerate()


def test_verify_boots_qemu_kernel_on_riscv64(tmp_path):
    """`bootforge verify` on riscv64 virt (OpenSBI, the gdbstub at the entry): a0/a1, the initrd and
    OpenSBI's edited DTB byte for byte apart from rng-seed."""
    kernel = dump_kernel("riscv64")
    initrd = make_initrd(tmp_path / "initrd.img", 5000)
    report, fields = verify_json(kernel, "--platform", "qemu-virt-riscv64:512M", "--loader", "qemu-riscv-kernel",
                                 "--cmdline", "console=ttyS0", "--module", initrd)
    assert report["registers"]["a0"] == 0 and report["registers"]["a1"] == fields["dtb address"]["observed"]
    assert fields["dtb bytes"]["match"] and fields["initrd bytes"]["match"]
    assert [f["name"] for f in report["fields"] if f["name"].startswith("per boot")] == ["per boot: /chosen rng-seed"]
