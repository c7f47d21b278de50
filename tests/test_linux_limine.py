"""Limine 11.4.1 `protocol: linux` on BIOS: [image] Linux entries with loader "limine" write
`protocol: linux` entries and read back; limine-linux's prediction against the zero pages a real
Limine handed Debian's kernel (tests/data/linux-limine/, commands in tests/data/README.md), and
one `bootforge verify` of the disk the recipe builds (3G)."""

import json

import pytest

from conftest import DATA, require, run_bootforge
from test_linux_grub import CMDLINE, image_recipe
from test_uki_build import INITRD_SIZE, KERNEL

from bootforge.bootloaders import ConfigEntry, limine
from bootforge.loader.policies.limine_linux import DECLARED

FIXTURES = DATA / "linux-limine"


def limine_recipe(directory):
    p = image_recipe(directory)
    p.write_text(p.read_text().replace('loader = "grub"', 'loader = "limine"'))
    return p


def test_limine_conf_linux_entries_round_trip():
    entries = [ConfigEntry("debian", "linux", "/boot/vmlinuz", "root=/dev/sda1 quiet",
                           [("/boot/ucode.img", ""), ("/boot/initrd.img", "")])]
    text = limine.write(entries)
    assert ("    protocol: linux\n    path: boot():/boot/vmlinuz\n    cmdline: root=/dev/sda1 quiet\n"
            "    module_path: boot():/boot/ucode.img\n    module_path: boot():/boot/initrd.img\n") in text
    assert limine.parse(text) == entries


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_prediction_equals_limines_zero_page(tmp_path, memory):
    """The whole 4096-byte zero page Limine wrote, byte for byte, but the bytes declared as the
    firmware's (framebuffer BAR, RSDP address, EDID) or as varying per boot (cmd_line_ptr)."""
    require(KERNEL)
    recipe = limine_recipe(tmp_path)
    out = tmp_path / "zp.bin"
    proc = run_bootforge("load", recipe, "--platform", f"qemu-pc-seabios:{memory}", "--json", "--mbi-out", out,
                         check=0)
    report = json.loads(proc.stdout)
    assert report["loader"] == "limine-linux"
    real = (FIXTURES / f"zero-page-{memory}.bin").read_bytes()
    predicted = out.read_bytes()
    skip = {i for o, n, _w in DECLARED for i in range(o, o + n)}
    assert len(predicted) == len(real) == 4096
    assert [i for i in range(4096) if predicted[i] != real[i] and i not in skip] == []
    assert report["linux"]["ramdisk_image"] == int.from_bytes(real[0x218:0x21C], "little")
    assert report["linux"]["ramdisk_size"] == INITRD_SIZE


def test_verify_limine_linux_image_recipe_at_3g(tmp_path):
    require(KERNEL, "qemu-system-x86_64", "xorriso")
    recipe = limine_recipe(tmp_path)
    proc = run_bootforge("verify", recipe, "--platform", "qemu-pc-seabios:3G", "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    rows = {r["name"]: r for r in report["fields"]}
    assert rows["kernel entry"]["observed"] == 0x200000 and rows["code32_start"]["observed"] == 0x100000
    assert rows["ramdisk_image"]["observed"] == 0x7FE00000 and rows["initrd bytes"]["match"]
    assert rows["cmdline"]["observed"] == CMDLINE and rows["zero page bytes"]["match"]
    assert not rows["boot_params (ESI)"]["counted"]
