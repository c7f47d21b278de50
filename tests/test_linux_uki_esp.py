"""[image] loader = "uki": a GPT disk whose ESP holds a bootforge UKI as EFI/BOOT/BOOTX64.EFI, no
bootloader. `load` of the recipe and of the built disk predict with linux-efi-stub; Debian's
kernel booted from that disk under OVMF at 512M printed the E820, kernel block, "Memory" total,
command line and initrd size checked here (tests/data/linux-uki-esp/, command in
tests/data/README.md)."""

import json
from pathlib import Path

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_uki_build import INITRD_SIZE, KERNEL, STUB, bootforge_uki

from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-uki-esp"
PAGE = 4096
EFI_LOADER_CODE = 1


def uki_disk_recipe(directory, loader, name, loader_path, extra=""):
    """An [image] disk recipe with one Linux entry: bootforge's UKI at *loader_path*."""
    directory = Path(directory)
    uki = bootforge_uki(directory)
    p = directory / f"{name}.toml"
    p.write_text(f"""[image]
format = "disk"
loader = "{loader}"
output = "{name}.img"
[[image.entries]]
title = "debian"
kernel = "{uki.name}"
loader_path = "{loader_path}"
protocol = "linux"
{extra}""")
    return p


def image_recipe(directory, loader_path="/EFI/BOOT/BOOTX64.EFI", extra=""):
    return uki_disk_recipe(directory, "uki", "direct", loader_path, extra)


def assert_uki_boot(report, log):
    """linux-efi-stub's report of a UKI boot against the kernel's words: E820 as printed, the
    kernel's Loader Code block, the "Memory" total, .cmdline, the initrd's size."""
    assert report["loader"] == "linux-efi-stub" and report["linux"]["boot_path"] == "uki"
    printed = [(e["start"], e["start"] + e["size"] - 1) for e in report["maps"]["e820-printed"]["entries"]]
    assert printed == [(a, b) for a, b, _ in log.e820]
    kernel = next(p for p in report["placements"] if p["kind"] == "kernel")
    assert (EFI_LOADER_CODE, kernel["start"], kernel["end"]) in log.efi
    assert report["linux"]["memory_total_kib"] == log.memory_kib[1]
    assert report["mbi"]["cmdline"] == log.command_line
    start, last = log.ramdisk
    assert report["linux"]["initrd_size"] == INITRD_SIZE and last + 1 - start == -(-INITRD_SIZE // PAGE) * PAGE


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require(KERNEL, STUB)
    d = tmp_path_factory.mktemp("uki-esp")
    recipe = image_recipe(d)
    run_bootforge("build", recipe, check=0)
    return recipe, d / "direct.img"


@pytest.mark.parametrize("which", ["recipe", "image"])
def test_prediction_equals_the_kernels_words(built, which):
    source = built[0] if which == "recipe" else built[1]
    log = parse_kernel_log((FIXTURES / "uki-esp-512M.txt").read_text())
    report = json.loads(run_bootforge("load", source, "--platform", "qemu-q35-ovmf:512M", "--json", check=0).stdout)
    assert_uki_boot(report, log)


def test_the_uki_is_the_removable_path(built):
    recipe, image = built
    uki = (recipe.parent / "uki.efi").read_bytes()
    assert uki[:1 << 16] in image.read_bytes()
    summary = run_bootforge("build", recipe, "-o", recipe.parent / "again.img", check=0).stdout
    assert "loader uki for uefi" in summary and "None" not in summary
    assert (recipe.parent / "again.img").read_bytes() == image.read_bytes()


def test_elsewhere_or_with_a_cmdline_is_refused(tmp_path):
    require(KERNEL, STUB)
    assert_one_line_error(run_bootforge("build", image_recipe(tmp_path, loader_path="/EFI/Linux/x.efi")),
                          "/EFI/BOOT/BOOTX64.EFI", "/EFI/Linux/x.efi")
    assert_one_line_error(run_bootforge("build", image_recipe(tmp_path, extra='cmdline = "quiet"\n')),
                          "no load options")
