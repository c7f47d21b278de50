"""qemu-linux: QEMU 7.2 -kernel/-initrd/-append of Debian's bzImage on SeaBIOS, against what
the kernel printed (tests/data/linux-qemu-seabios/, commands in tests/data/README.md): the
command line, the E820 table and the initrd address at 512M (initrd_max from RAM) and 3G
(XLF_CAN_BE_LOADED_ABOVE_4G lifts initrd_addr_max). One real boot (512M) runs here."""

import json
import subprocess

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_uki_build import INITRD_SIZE, KERNEL, make_initrd

from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-qemu-seabios"
CMDLINE = "console=ttyS0 earlyprintk=serial nokaslr panic=-1"


def predict(tmp_path, memory):
    initrd = make_initrd(tmp_path / "initrd.img")
    proc = run_bootforge("load", KERNEL, "--platform", f"qemu-pc-seabios:{memory}", "--loader", "qemu-linux",
                         "--cmdline", CMDLINE, "--module", initrd, "--json", check=0)
    return json.loads(proc.stdout), initrd


def assert_matches(report, log):
    assert report["mbi"]["cmdline"] == log.command_line == CMDLINE
    assert [(e["start"], e["start"] + e["size"] - 1) for e in report["mbi"]["mmap"]] == [(a, b) for a, b, _ in log.e820]
    start, last = log.ramdisk
    assert report["linux"]["ramdisk_image"] == start and report["linux"]["ramdisk_size"] == INITRD_SIZE
    assert last + 1 == -(-(start + INITRD_SIZE) // 4096) * 4096        # RAMDISK ends on the page-aligned end


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_prediction_equals_the_kernels_words(tmp_path, memory):
    require(KERNEL)
    report, _ = predict(tmp_path, memory)
    assert_matches(report, parse_kernel_log((FIXTURES / f"kernel-initrd-{memory}.txt").read_text()))


def test_qemu_linux_needs_a_bzimage(tmp_path):
    (tmp_path / "k").write_bytes(b"\x7fELF" + bytes(4096))
    assert_one_line_error(run_bootforge("load", tmp_path / "k", "--platform", "qemu-pc-seabios:512M",
                                        "--loader", "qemu-linux"), "not a bzImage")


def test_real_boot_at_512m(tmp_path):
    require(KERNEL, "qemu-system-x86_64")
    report, initrd = predict(tmp_path, "512M")
    serial = tmp_path / "serial.txt"
    subprocess.run(["qemu-system-x86_64", "-machine", "pc", "-cpu", "qemu64", "-m", "512M", "-kernel", KERNEL,
                    "-initrd", str(initrd), "-append", CMDLINE, "-display", "none", "-serial", f"file:{serial}",
                    "-no-reboot", "-nodefaults", "-vga", "std"], timeout=300, check=True)
    text = serial.read_text(errors="replace")
    assert "VFS: Unable to mount root" in text
    assert_matches(report, parse_kernel_log(text))
