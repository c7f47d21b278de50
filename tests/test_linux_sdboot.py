"""[image] loader = "systemd-boot": a GPT disk whose ESP holds Debian's systemd-boot 252 as
EFI/BOOT/BOOTX64.EFI, /loader/loader.conf and a bootforge UKI as a Type #2 entry in
/EFI/Linux. `load` of the recipe and of the built disk predict with linux-efi-stub; Debian's
kernel booted from that disk under OVMF at 512M printed the E820, kernel block, "Memory"
total, command line and initrd checked here (tests/data/linux-sdboot/, command in
tests/data/README.md)."""

import json
from pathlib import Path

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_linux_uki_esp import assert_uki_boot, uki_disk_recipe

from bootforge.bootloaders import ConfigEntry, systemd_boot
from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-sdboot"


def image_recipe(directory, loader_path="/EFI/Linux/debian.efi", extra=""):
    return uki_disk_recipe(directory, "systemd-boot", "sdboot", loader_path, extra)


def test_loader_conf_round_trip():
    entries = [ConfigEntry("debian.efi", "linux", "/EFI/Linux/debian.efi", "")]
    text = systemd_boot.write(entries, 3)
    assert "timeout 3\n" in text and "default debian.efi\n" in text
    assert systemd_boot.parse(text) == entries
    assert systemd_boot.parse("timeout 5\ndefault debian-*\n")[0].protocol is None    # a glob: not resolved


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require(systemd_boot.EFI)
    d = tmp_path_factory.mktemp("sdboot")
    recipe = image_recipe(d)
    run_bootforge("build", recipe, check=0)
    return recipe, d / "sdboot.img"


@pytest.mark.parametrize("which", ["recipe", "image"])
def test_prediction_equals_the_kernels_words(built, which):
    source = built[0] if which == "recipe" else built[1]
    log = parse_kernel_log((FIXTURES / "sdboot-uki-512M.txt").read_text())
    report = json.loads(run_bootforge("load", source, "--platform", "qemu-q35-ovmf:512M", "--json", check=0).stdout)
    assert_uki_boot(report, log)
    start, last = log.ramdisk
    bounds = report["linux"]["initrd_bounds"]
    assert bounds["above"] <= start and last < bounds["below"]


def test_files_on_the_esp(built):
    _, image = built
    data = image.read_bytes()
    assert Path(systemd_boot.EFI).read_bytes()[:4096] in data      # BOOTX64.EFI
    assert b"default debian.efi" in data


def test_a_uki_outside_efi_linux_is_refused(tmp_path):
    require(systemd_boot.EFI)
    recipe = image_recipe(tmp_path, loader_path="/boot/debian.efi")
    assert_one_line_error(run_bootforge("build", recipe), "/EFI/Linux/NAME.efi", "/boot/debian.efi")


def test_bios_is_refused_in_the_declarations_words(tmp_path):
    require(systemd_boot.EFI)
    recipe = image_recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace('loader = "systemd-boot"', 'loader = "systemd-boot"\nfirmware = "bios"'))
    assert_one_line_error(run_bootforge("build", recipe), "systemd-boot is a UEFI loader")
