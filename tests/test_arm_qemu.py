"""QEMU -kernel on virt (AArch64 and 32-bit ARM) against the qemu-arm-kernel prediction: the
dtdump kernel reports x0-x3 (r0-r2), where it runs, where the initrd is (found by its magic)
and the DTB it was handed; the prediction must equal it byte for byte except the bytes
declared random.

Real boots at 128M (initrd at RAM/2), 1G and 3G on AArch64 and 128M, 256M, 1G on ARM, with
and without an initrd, and one with a board DTB (-dtb); the captures
in tests/data/dtdump-aarch64-*.serial (with the machine DTB of the same QEMU) are checked
without QEMU. Regenerate them: .venv/bin/python tests/test_arm_qemu.py
"""

import json
import subprocess
import sys

import pytest

from bootforge.fdtboot.handover import masked, read_dtdump
from bootforge.fdtboot.libfdt import Fdt
from bootforge.loader.policies.qemu_arm_kernel import RANDOM
from conftest import DATA, assert_one_line_error, require, run_bootforge
from dtboot import (MIB, boot, dump_kernel, fixture_board, legacy_uimage, make_initrd, predict, qemu_command,
                    verify_json)

CMDLINE = "console=ttyAMA0 bootforge=dtdump"
INITRD_SIZE = 5000
FIXTURES = [("1024M", True), ("128M", False)]


def _check(dump, registers, kernel_at, initrd_at, dtb, random_bytes, arch="aarch64"):
    assert dump.done and dump.arch == arch
    assert dump.registers == registers
    assert dump.image == kernel_at
    assert dump.initrd == initrd_at
    assert dump.dtb_address == registers["x0" if arch == "aarch64" else "r2"]
    got = dump.full_dtb()
    assert got is not None, "bytes after the DTB's last block were not zero"
    assert len(got) == len(dtb)
    assert masked(got, random_bytes) == masked(dtb, random_bytes)
    assert sum(n for _, n in random_bytes) <= 32 + 8 + 4      # the seeds and a few stale padding bytes
    # The random properties are there with their sizes (their values differ per boot).
    fdt = Fdt(got)
    chosen = fdt.path_offset("/chosen")
    for r in RANDOM:
        if r.part == "value":
            assert len(fdt.getprop(chosen, r.name)) == r.size


@pytest.mark.parametrize("arch,mem", [("aarch64", "128M"), ("aarch64", "1G"), ("aarch64", "3G"),
                                      ("arm", "128M"), ("arm", "256M"), ("arm", "1G")])
@pytest.mark.parametrize("with_initrd", [False, True])
def test_qemu_kernel_boot(tmp_path, arch, mem, with_initrd):
    kernel = dump_kernel(arch)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE) if with_initrd else None
    machine = f"qemu-virt-{arch}"
    args = ["load", kernel, "--platform", f"{machine}:{mem}", "--loader", "qemu-arm-kernel", "--cmdline", CMDLINE,
            "--json", "--mbi-out", tmp_path / "predicted.dtb"] + (["--initrd", initrd] if initrd else [])
    proc = run_bootforge(*args, check=0)
    result = json.loads(proc.stdout)
    placements = {p["kind"]: p for p in result["placements"]}
    serial, _ = boot(machine, int(mem[:-1]) * (1024 if mem.endswith("G") else 1) * MIB, kernel,
                     tmp_path, initrd, CMDLINE)
    dump = read_dtdump(serial)
    _check(dump, result["linux"]["registers"], placements["kernel"]["start"],
           placements["module"]["start"] if initrd else None, (tmp_path / "predicted.dtb").read_bytes(),
           result["linux"]["devicetree"]["random_bytes"], arch)


BOARD_DTS = b"""/dts-v1/;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	model = "bootforge test board";
	compatible = "acme,board";
	memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x1000000>; };
	chosen { stdout-path = "/pl011@9000000"; };
	pl011@9000000 { compatible = "arm,pl011", "arm,primecell"; reg = <0 0x9000000 0 0x1000>; };
};
"""


def test_qemu_kernel_with_a_users_dtb(tmp_path):
    """-dtb FILE: the board's /memory (16 MiB) is replaced by the machine's RAM, /psci added."""
    require("dtc")
    kernel = dump_kernel("aarch64")
    dtb = tmp_path / "board.dtb"
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(dtb), "-"], input=BOARD_DTS, check=True,
                   capture_output=True)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    proc = run_bootforge("load", kernel, "--platform", "qemu-virt-aarch64:256M", "--loader", "qemu-arm-kernel",
                         "--cmdline", CMDLINE, "--initrd", initrd, "--dtb", dtb, "--json",
                         "--mbi-out", tmp_path / "predicted.dtb", check=0)
    result = json.loads(proc.stdout)
    placements = {p["kind"]: p for p in result["placements"]}
    argv_extra = ["-dtb", str(dtb)]
    serial, _ = boot("qemu-virt-aarch64", 256 * MIB, kernel, tmp_path, initrd, CMDLINE, extra=argv_extra)
    dump = read_dtdump(serial)
    assert dump.registers == result["linux"]["registers"] and dump.initrd == placements["module"]["start"]
    got, predicted = dump.full_dtb(), (tmp_path / "predicted.dtb").read_bytes()
    assert result["linux"]["devicetree"]["random_bytes"] == []
    assert got == predicted
    fdt = Fdt(got)
    memory = fdt.path_offset("/memory@40000000")
    assert fdt.getprop(memory, "reg") == (0x40000000).to_bytes(8, "big") + (256 * MIB).to_bytes(8, "big")


@pytest.mark.parametrize("mem,with_initrd", FIXTURES)
def test_captured_boots(tmp_path, mem, with_initrd):
    """The captures made by QEMU 7.2 (tests/data), predicted from the machine DTB captured with them."""
    name = f"dtdump-aarch64-{mem}{'-initrd' if with_initrd else ''}"
    text = (DATA / f"{name}.serial").read_text()
    kernel = (DATA / "dtdump-aarch64.Image").read_bytes()
    board = fixture_board("qemu-virt-aarch64", int(mem[:-1]) * MIB, name)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE) if with_initrd else None
    res = predict(board, kernel, "qemu-arm-kernel", initrd, CMDLINE)
    placements = {p.kind: p for p in res.placements}
    _check(read_dtdump(text), res.linux["registers"], placements["kernel"].start,
           placements["module"].start if initrd else None, res.mbi_bytes,
           res.linux["devicetree"]["random_bytes"])


def regenerate():
    """Boot QEMU for each fixture; write the serial capture (its first line: the command) and
    the machine DTB dumped by the same QEMU (its used bytes)."""
    import shutil
    import tempfile
    from pathlib import Path
    from bootforge.fdtboot.machines import machine_dtb
    from bootforge.machines import MACHINES
    kernel = dump_kernel("aarch64")
    shutil.copy(kernel, DATA / "dtdump-aarch64.Image")
    for mem, with_initrd in FIXTURES:
        name = f"dtdump-aarch64-{mem}{'-initrd' if with_initrd else ''}"
        size = int(mem[:-1]) * MIB
        with tempfile.TemporaryDirectory() as tmp:
            initrd = make_initrd(Path(tmp) / "initrd.img", INITRD_SIZE) if with_initrd else None
            serial, argv = boot("qemu-virt-aarch64", size, DATA / "dtdump-aarch64.Image", tmp, initrd, CMDLINE)
        command = " ".join(qemu_command("qemu-virt-aarch64", size, "tests/data/dtdump-aarch64.Image",
                                        "initrd.img" if initrd else None, CMDLINE))
        (DATA / f"{name}.serial").write_text(
            f"# {command}  (initrd.img: tests/dtboot.py make_initrd, {INITRD_SIZE} bytes)\n" + serial)
        dtb, _ = machine_dtb(MACHINES["qemu-virt-aarch64"], size)
        end = max(int.from_bytes(dtb[12:16], "big") + int.from_bytes(dtb[32:36], "big"),
                  int.from_bytes(dtb[8:12], "big") + int.from_bytes(dtb[36:40], "big"))
        assert not any(dtb[end:])
        (DATA / f"{name}.machine.dtb").write_bytes(dtb[:end])


if __name__ == "__main__":
    sys.path.insert(0, str(DATA.parent))
    regenerate()


def test_load_prints_the_dtb_handed_over(tmp_path):
    """`load` text: placements, registers, the DTB's diff against the machine's DTB, its DTS, the map."""
    kernel = dump_kernel("aarch64")
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    proc = run_bootforge("load", kernel, "--platform", "qemu-virt-aarch64:1G", "--loader", "qemu-arm-kernel",
                         "--cmdline", CMDLINE, "--initrd", initrd, check=0)
    text = proc.stdout
    assert "registers at entry: x0 0x48200000, x1 0x0, x2 0x0, x3 0x0" in text
    diff = text[text.index("DTB diff against the machine's DTB:"):text.index("DTB handed over (DTS):")]
    assert f'+\t\tbootargs = "{CMDLINE}";' in diff
    assert "+\t\tlinux,initrd-start = <0x48000000>;" in diff
    assert f"+\t\tlinux,initrd-end = <{0x48000000 + INITRD_SIZE:#x}>;" in diff
    assert "\tchosen {" in text[text.index("DTB handed over (DTS):"):]
    assert "0x0000000040000000 0x0000000040000000 type 1 (ram)" in text


def test_qemu_kernel_of_a_uimage(tmp_path):
    """-kernel uImage (mkimage, load/entry 0x40400000): the data at ih_load, entered at ih_ep, the
    initrd at 128 MiB, the DTB after it, all as predicted."""
    uimage = legacy_uimage(dump_kernel("aarch64"), tmp_path / "uImage")
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    proc = run_bootforge("load", uimage, "--platform", "qemu-virt-aarch64:1G", "--loader", "qemu-arm-kernel",
                         "--cmdline", CMDLINE, "--initrd", initrd, "--json", "--mbi-out", tmp_path / "predicted.dtb",
                         check=0)
    result = json.loads(proc.stdout)
    placements = {p["kind"]: p for p in result["placements"]}
    serial, _ = boot("qemu-virt-aarch64", 1024 * MIB, uimage, tmp_path, initrd, CMDLINE)
    _check(read_dtdump(serial), result["linux"]["registers"], placements["kernel"]["start"],
           placements["module"]["start"], (tmp_path / "predicted.dtb").read_bytes(),
           result["linux"]["devicetree"]["random_bytes"])
    assert result["linux"]["entry"] == 0x40400000 and result["linux"]["kernel_format"] == "uimage"


def test_refusals_are_one_line():
    """Wrong kernels and platforms for the device-tree policies: one line, exit 2. An ELF is QEMU's
    only for its own machine (load_elf's e_machine); any other file is copied raw."""
    stubs = dump_kernel("aarch64").parent
    dump_kernel("arm")
    dump_kernel("riscv64")
    arm_elf, riscv_elf = stubs / "dtdump-arm.elf", stubs / "dtdump-riscv64.elf"
    require(str(stubs / "mbdump.elf"))          # `make stubs`
    cases = [
        (arm_elf, "qemu-virt-arm:256M", "qemu-arm-kernel", "an ELF kernel"),
        (arm_elf, "qemu-virt-aarch64:1G", "qemu-arm-kernel", "copies the file raw"),
        (riscv_elf, "qemu-virt-riscv64:512M", "qemu-riscv-kernel", "an ELF kernel"),
        (arm_elf, "qemu-virt-riscv64:512M", "qemu-riscv-kernel", "not a Linux Image"),
        (arm_elf, "qemu-virt-aarch64:1G", "uboot-booti", "ARM\\x64"),
        (dump_kernel("aarch64"), "qemu-pc-seabios:256M", "qemu-arm-kernel", "device-tree platform"),
        (dump_kernel("aarch64"), "qemu-virt-riscv64:512M", "qemu-arm-kernel", "qemu-virt-aarch64"),
        (stubs / "mbdump.elf", "qemu-virt-aarch64:1G", "grub-pc-mb2", "BIOS"),
    ]
    for kernel, platform, loader, words in cases:
        proc = run_bootforge("load", kernel, "--platform", platform, "--loader", loader)
        assert_one_line_error(proc, words)


@pytest.mark.parametrize("arch,mem", [("aarch64", "1G"), ("arm", "256M")])
def test_verify_boots_qemu_kernel(tmp_path, arch, mem):
    """`bootforge verify` makes the boot above itself (QEMU -kernel, the gdbstub at the entry):
    every counted field matches, QEMU's seeds are listed per boot with their sizes and reasons,
    and what it read equals what load predicts (registers, initrd placement, DTB address)."""
    kernel = dump_kernel(arch)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    args = (kernel, "--platform", f"qemu-virt-{arch}:{mem}", "--loader", "qemu-arm-kernel", "--cmdline", CMDLINE)
    report, fields = verify_json(*args, "--module", initrd)
    predicted = json.loads(run_bootforge("load", *args, "--initrd", initrd, "--json", check=0).stdout)
    assert report["ok"] and report["status"] == "entry" and report["mismatches"] == []
    for name, value in predicted["linux"]["registers"].items():
        assert report["registers"][name] == value == fields[name]["observed"]
    assert fields["initrd start"]["observed"] == predicted["mbi"]["modules"][0]["start"]
    assert fields["dtb bytes"]["observed"] == "equal" and fields["initrd bytes"]["match"]
    per_boot = [f for f in report["fields"] if f["name"].startswith("per boot: ")]
    assert [f["name"] for f in per_boot if f["counted"]] == ["per boot: /chosen rng-seed", "per boot: /chosen kaslr-seed"]
    assert all(f["observed"].startswith(("32 bytes", "8 bytes")) for f in per_boot if f["counted"])
    assert fields["dtb /chosen bootargs"]["observed"] == CMDLINE


@pytest.mark.parametrize("link,dtb_at", [(0x40200000, 0x40000000), (0x40100000, None)])
def test_verify_elf_program(tmp_path, link, dtb_at):
    """-kernel of an ELF (the 32-bit dump code linked into RAM by ld): QEMU's bare-program boot,
    r0-r2 = 0, the segment at its p_paddr, no initrd, and the machine's DTB (with bootargs) at the
    RAM base when its 1 MiB fits below the ELF (0x40200000), none when it does not (0x40100000)."""
    require("arm-linux-gnueabihf-ld")
    stubs = dump_kernel("arm").parent
    elf = tmp_path / "dtdump.elf"
    subprocess.run(["arm-linux-gnueabihf-ld", f"-Ttext={link:#x}", "-e", hex(link), "--build-id=none", "-o",
                    str(elf), str(stubs / "dtdump-arm.o")], check=True, capture_output=True)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    report, fields = verify_json(elf, "--platform", "qemu-virt-arm:256M", "--loader", "qemu-arm-kernel",
                                 "--cmdline", CMDLINE, "--module", initrd)
    assert report["registers"] == {"r0": 0, "r1": 0, "r2": 0, "pc": link}
    assert fields["ELF segment 0 bytes"]["match"] and "initrd start" not in fields
    assert fields["dtb at the RAM base"]["observed"] == dtb_at
    if dtb_at:
        assert fields["dtb bytes"]["observed"] == "equal" and fields["dtb /chosen bootargs"]["observed"] == CMDLINE
