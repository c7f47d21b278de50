"""`bootforge load` of Linux images given alone: a bare UKI names its loader (linux-efi-stub)
and its firmware (UEFI), so `load uki.efi` needs neither --loader nor --platform. The
predictions are checked against the kernel's own words under OVMF (tests/data/linux-ovmf/,
kept by tests/test_uki_load.py's boots; commands in tests/data/README.md)."""

import json

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_uki_build import KERNEL, bootforge_uki

from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-ovmf"


def test_a_bare_uki_loads_with_the_efi_stub_on_ovmf(tmp_path):
    """`load uki.efi --platform qemu-q35-ovmf:512M`: the E820 Debian's kernel printed booting
    this UKI at 512M (fixture bootforge-uki-512M), with no --loader."""
    uki = bootforge_uki(tmp_path)
    log = parse_kernel_log((FIXTURES / "bootforge-uki-512M.txt").read_text())
    out = tmp_path / "e820.txt"
    proc = run_bootforge("load", uki, "--platform", "qemu-q35-ovmf:512M", "--json", "--map-out", out,
                         "--map-format", "e820-dmesg", check=0)
    report = json.loads(proc.stdout)
    assert report["loader"] == "linux-efi-stub" and report["linux"]["boot_path"] == "uki"
    assert out.read_text().splitlines() == [f"BIOS-e820: [mem {a:#018x}-{b:#018x}] {t}" for a, b, t in log.e820]
    assert report["mbi"]["cmdline"] == log.command_line          # the UKI's .cmdline


def test_a_bare_uki_alone_is_qemus_uefi_machine(tmp_path):
    """`load uki.efi` alone: the same as naming linux-efi-stub on qemu-q35-ovmf:256M."""
    uki = bootforge_uki(tmp_path)
    alone = json.loads(run_bootforge("load", uki, "--json", check=0).stdout)
    named = json.loads(run_bootforge("load", uki, "--platform", "qemu-q35-ovmf:256M", "--loader", "linux-efi-stub",
                                     "--json", check=0).stdout)
    assert alone == named and alone["platform"]["name"] == "qemu-q35-ovmf:256M"


def test_a_bare_kernel_still_needs_its_loader(tmp_path):
    """A bzImage alone names no loader (GRUB, QEMU -kernel and the EFI stub all take it)."""
    require(KERNEL)
    assert_one_line_error(run_bootforge("load", KERNEL), KERNEL, "--platform P --loader L")


def test_a_kernel_alignment_no_build_can_have_is_one_line(tmp_path):
    """Debian's kernel with kernel_alignment (0x230) set to 0 (the load-kernel fuzzer's input: the
    EFI stub's placement divided by it). The stub aligns by its own CONFIG_PHYSICAL_ALIGN, which
    the header repeats; 0 says nothing of it: one line naming the offset, exit 2."""
    require(KERNEL)
    data = bytearray(open(KERNEL, "rb").read())
    assert int.from_bytes(data[0x230:0x234], "little") == 0x200000
    for bad in (0, 0x300000):
        data[0x230:0x234] = bad.to_bytes(4, "little")
        kernel = tmp_path / "vmlinuz"
        kernel.write_bytes(data)
        proc = run_bootforge("load", kernel, "--platform", "qemu-q35-ovmf:256M", "--loader", "linux-efi-stub")
        assert_one_line_error(proc, f"{kernel}: offset 0x230: setup header kernel_alignment {bad:#x} is not a "
                              "power of two in [0x200000, 0x1000000]")
