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
import os
import subprocess
import sys

import pytest

from bootforge.errors import LoaderRefusal
from bootforge.fdtboot import opensbi
from bootforge.fdtboot.handover import masked, read_dtdump
from bootforge.fdtboot.libfdt import Fdt
from conftest import DATA, require, run_bootforge
from dtboot import MIB, boot, dump_kernel, fixture_board, make_initrd, predict, qemu_command, verify_json

CMDLINE = "console=ttyS0 bootforge=dtdump"
INITRD_SIZE = 5000
FIXTURES = [("512M", True), ("128M", False)]
# The dump code as an ELF program: linked by ld -n (no headers in the segment) at ELF_LINK, with
# e_entry in its strings (never executed): QEMU hands fw_dynamic the lowest loaded address.
ELF_LINK, ELF_ENTRY = 0x80400000, 0x80400400
ELF_FIXTURE = "dtdump-riscv64-elf"
# The dump kernel's Image gzip'd in a mkimage uImage (load = entry = UIMAGE_LOAD): QEMU gunzips the
# data to ih_load and fw_dynamic enters ih_ep.
UIMAGE_LOAD = 0x80400000
UIMAGE_FIXTURE = "dtdump-riscv64-uimage-gzip"


def gzip_uimage(image, out, kind="kernel"):
    require("gzip", "mkimage")
    packed = out.with_suffix(".gz")
    packed.write_bytes(subprocess.run(["gzip", "-n", "-9", "-c", str(image)], capture_output=True,
                                      check=True).stdout)
    subprocess.run(["mkimage", "-A", "riscv", "-O", "linux", "-T", kind, "-C", "gzip", "-a", hex(UIMAGE_LOAD), "-e",
                    hex(UIMAGE_LOAD), "-n", "dtdump", "-d", str(packed), str(out)], check=True, capture_output=True,
                   env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    packed.unlink()
    return out


def link_elf(out):
    require("riscv64-linux-gnu-ld")
    obj = dump_kernel("riscv64").parent / "dtdump-riscv64.o"
    subprocess.run(["riscv64-linux-gnu-ld", "-n", f"-Ttext={ELF_LINK:#x}", "-e", hex(ELF_ENTRY), "--no-relax",
                    "--build-id=none", "-o", str(out), str(obj)], check=True, capture_output=True)
    return out


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


def test_captured_elf_boot(tmp_path):
    """The ELF program's capture (tests/data/dtdump-riscv64-elf.serial, 512M with an initrd; the
    machine DTB is the 512M fixture's, dumped by the same QEMU): the prediction without QEMU."""
    require(str(opensbi.FIRMWARE_ELF), str(opensbi.FIRMWARE_BIN))
    board = fixture_board("qemu-virt-riscv64", 512 * MIB, "dtdump-riscv64-512M-initrd", CMDLINE)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    elf = (DATA / f"{ELF_FIXTURE}.elf").read_bytes()
    assert int.from_bytes(elf[24:32], "little") == ELF_ENTRY
    res = predict(board, elf, "qemu-riscv-kernel", initrd, CMDLINE)
    assert res.linux["entry"] == ELF_LINK and res.linux["kernel_format"] == "elf"
    initrd_at = next(p.start for p in res.placements if p.kind == "module")
    assert initrd_at == ELF_LINK + 128 * MIB
    # The dump kernel names its Image header's place, 0x40 before the code it runs, and looks for
    # the initrd on pages from there (not page aligned here: INITRD none); the handed /chosen says.
    dump = read_dtdump((DATA / f"{ELF_FIXTURE}.serial").read_text())
    _check(dump, res.linux["registers"], ELF_LINK - 0x40, None, res.mbi_bytes,
           res.linux["devicetree"]["random_bytes"])
    chosen = Fdt(dump.full_dtb()).path_offset("/chosen")
    assert int.from_bytes(Fdt(dump.full_dtb()).getprop(chosen, "linux,initrd-start"), "big") == initrd_at


def test_captured_gzip_uimage_boot(tmp_path):
    """The gzip uImage's capture (tests/data/dtdump-riscv64-uimage-gzip.*): the data gunzipped at ih_load,
    entered at ih_ep, the initrd 128 MiB past ih_ep, OpenSBI's DTB byte for byte, without QEMU."""
    require(str(opensbi.FIRMWARE_ELF), str(opensbi.FIRMWARE_BIN))
    board = fixture_board("qemu-virt-riscv64", 512 * MIB, "dtdump-riscv64-512M-initrd", CMDLINE)
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    res = predict(board, (DATA / f"{UIMAGE_FIXTURE}.uImage").read_bytes(), "qemu-riscv-kernel", initrd, CMDLINE)
    assert res.linux["entry"] == UIMAGE_LOAD and res.linux["kernel_format"] == "uimage"
    kernel_at = next(p for p in res.placements if p.kind == "kernel")
    assert (kernel_at.start, kernel_at.end - kernel_at.start) == (UIMAGE_LOAD, len((DATA / "dtdump-riscv64.Image")
                                                                                    .read_bytes()))
    initrd_at = next(p.start for p in res.placements if p.kind == "module")
    _check(read_dtdump((DATA / f"{UIMAGE_FIXTURE}.serial").read_text()), res.linux["registers"], UIMAGE_LOAD,
           initrd_at, res.mbi_bytes, res.linux["devicetree"]["random_bytes"])


def test_a_refused_uimage_falls_through_to_the_raw_load(tmp_path):
    """A uImage QEMU's loader refuses (here a ramdisk-type one: QEMU 7.2 prints "Wrong image type 3,
    expected 2", observed) is loaded raw by riscv_load_kernel: the verdict says so in QEMU's words
    and load refuses to predict a boot into the uImage header (one line, exit 2)."""
    uimage = gzip_uimage(DATA / "dtdump-riscv64.Image", tmp_path / "rd.uImage", kind="ramdisk")
    proc = run_bootforge("load", uimage, "--platform", "qemu-virt-riscv64:512M", "--loader", "qemu-riscv-kernel")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "Wrong image type 3, expected 2" in proc.stderr and "raw" in proc.stderr
    assert "Wrong image type 3, expected 2\n" in REFUSALS_CAPTURE.read_text()


REFUSALS_CAPTURE = DATA / "riscv-qemu-refusals.txt"


def overlapping_elf(out):
    """The ELF fixture with its one PT_LOAD moved over fw_dynamic.bin (0x80010000)."""
    elf = bytearray((DATA / f"{ELF_FIXTURE}.elf").read_bytes())
    phoff, count = int.from_bytes(elf[32:40], "little"), int.from_bytes(elf[56:58], "little")
    load = next(phoff + 56 * i for i in range(count) if elf[phoff + 56 * i] == 1)     # the one PT_LOAD
    for field in (16, 24):                      # its p_vaddr, p_paddr
        elf[load + field:load + field + 8] = (0x80010000).to_bytes(8, "little")
    out.write_bytes(bytes(elf))
    return out


def qemu_stderr(kernel, seconds=3.0):
    """What qemu-system-riscv64 -kernel KERNEL prints on stderr before it exits or *seconds* pass."""
    import time
    from bootforge.machines import MACHINES
    m = MACHINES["qemu-virt-riscv64"]
    require(m.binary)
    argv = m.qemu_args(512 * MIB) + ["-display", "none", "-nographic", "-monitor", "none", "-serial", "null",
                                     "-kernel", str(kernel)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()
    return proc.communicate()[1].decode("latin-1"), argv


def test_qemu_says_the_refusals_words(tmp_path):
    """QEMU itself: an ELF over fw_dynamic.bin ends it before the boot, a ramdisk uImage is refused by its
    uImage loader (then loaded raw); each in the words the verdicts give."""
    said, _ = qemu_stderr(overlapping_elf(tmp_path / "overlap.elf"))
    assert "Some ROM regions are overlapping" in said
    said, _ = qemu_stderr(gzip_uimage(DATA / "dtdump-riscv64.Image", tmp_path / "rd.uImage", kind="ramdisk"), 1.0)
    assert said.splitlines()[0] == "Wrong image type 3, expected 2"


def test_elf_overlapping_the_firmware_is_refused(tmp_path):
    """An ELF over fw_dynamic.bin: QEMU exits before the boot (its ROM blobs overlap)."""
    require(str(opensbi.FIRMWARE_BIN))
    board = fixture_board("qemu-virt-riscv64", 512 * MIB, "dtdump-riscv64-512M-initrd", CMDLINE)
    elf = overlapping_elf(tmp_path / "overlap.elf").read_bytes()
    with pytest.raises(LoaderRefusal) as refusal:
        predict(board, elf, "qemu-riscv-kernel", None, CMDLINE)
    # QEMU's own words, kept (tests/data/riscv-qemu-refusals.txt; test_qemu_says_the_refusals_words).
    assert refusal.value.words == "Some ROM regions are overlapping"
    assert refusal.value.words in REFUSALS_CAPTURE.read_text()


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
    regenerate_elf()


def regenerate_elf():
    """The ELF program's and the gzip uImage's captures (their machine DTB is the 512M fixture's)."""
    import tempfile
    from pathlib import Path
    uimage = gzip_uimage(DATA / "dtdump-riscv64.Image", DATA / f"{UIMAGE_FIXTURE}.uImage")
    with tempfile.TemporaryDirectory() as tmp:
        initrd = make_initrd(Path(tmp) / "initrd.img", INITRD_SIZE)
        serial, _ = boot("qemu-virt-riscv64", 512 * MIB, uimage, tmp, initrd, CMDLINE)
    command = " ".join(qemu_command("qemu-virt-riscv64", 512 * MIB, f"tests/data/{UIMAGE_FIXTURE}.uImage",
                                    "initrd.img", CMDLINE))
    (DATA / f"{UIMAGE_FIXTURE}.serial").write_text(
        f"# gzip -n -9 tests/data/dtdump-riscv64.Image | mkimage -A riscv -O linux -T kernel -C gzip -a "
        f"{UIMAGE_LOAD:#x} -e {UIMAGE_LOAD:#x} (SOURCE_DATE_EPOCH=0); {command}  (initrd.img: tests/dtboot.py "
        f"make_initrd, {INITRD_SIZE} bytes)\n" + serial)
    elf = link_elf(DATA / f"{ELF_FIXTURE}.elf")
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for kernel in (overlapping_elf(Path(tmp) / "overlap.elf"),
                       gzip_uimage(DATA / "dtdump-riscv64.Image", Path(tmp) / "rd.uImage", kind="ramdisk")):
            said, argv = qemu_stderr(kernel, 1.0)
            out.append(f"# {' '.join(argv).replace(tmp, '.')}  ({kernel.name}: tests/test_riscv_qemu.py "
                       f"{'overlapping_elf' if kernel.suffix == '.elf' else 'gzip_uimage kind=ramdisk'})\n"
                       + said.replace(tmp, "."))
        REFUSALS_CAPTURE.write_text("".join(out))
    with tempfile.TemporaryDirectory() as tmp:
        initrd = make_initrd(Path(tmp) / "initrd.img", INITRD_SIZE)
        serial, _ = boot("qemu-virt-riscv64", 512 * MIB, elf, tmp, initrd, CMDLINE)
    command = " ".join(qemu_command("qemu-virt-riscv64", 512 * MIB, f"tests/data/{ELF_FIXTURE}.elf", "initrd.img",
                                    CMDLINE))
    (DATA / f"{ELF_FIXTURE}.serial").write_text(
        f"# riscv64-linux-gnu-ld -n -Ttext={ELF_LINK:#x} -e {ELF_ENTRY:#x} --no-relax --build-id=none "
        f"build/stubs/dtdump-riscv64.o; {command}  (initrd.img: tests/dtboot.py make_initrd, {INITRD_SIZE} "
        "bytes)\n" + serial)


if __name__ == "__main__":
    sys.path.insert(0, str(DATA.parent))
    regenerate_elf() if sys.argv[1:] == ["elf"] else regenerate()


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


def test_verify_elf_program_on_riscv64(tmp_path):
    """`bootforge verify` of an ELF program under QEMU -kernel (OpenSBI fw_dynamic): stopped at the ELF's
    lowest address, not its e_entry; a0/a1, the segment's bytes, the initrd 128 MiB past the ELF and
    OpenSBI's DTB byte for byte."""
    elf = link_elf(tmp_path / "dtdump.elf")
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    report, fields = verify_json(elf, "--platform", "qemu-virt-riscv64:512M", "--loader", "qemu-riscv-kernel",
                                 "--cmdline", CMDLINE, "--module", initrd)
    assert report["registers"]["pc"] == ELF_LINK and report["registers"]["a0"] == 0
    assert fields["ELF segment 0 bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
    assert fields["initrd start"]["observed"] == ELF_LINK + 128 * MIB and fields["initrd bytes"]["match"]


def test_verify_gzip_uimage_on_riscv64(tmp_path):
    """`bootforge verify` of a gzip'd kernel uImage under QEMU -kernel: stopped at ih_ep with the
    gunzipped Image there, the initrd and OpenSBI's DTB as predicted."""
    uimage = gzip_uimage(dump_kernel("riscv64"), tmp_path / "dtdump.uImage")
    initrd = make_initrd(tmp_path / "initrd.img", INITRD_SIZE)
    report, fields = verify_json(uimage, "--platform", "qemu-virt-riscv64:512M", "--loader", "qemu-riscv-kernel",
                                 "--cmdline", CMDLINE, "--module", initrd)
    assert report["registers"]["pc"] == UIMAGE_LOAD and fields["kernel bytes"]["match"]
    assert fields["dtb bytes"]["observed"] == "equal" and fields["initrd start"]["observed"] == UIMAGE_LOAD + 128 * MIB
