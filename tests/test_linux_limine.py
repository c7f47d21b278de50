"""Limine 11.4.1 `protocol: linux` on BIOS and on UEFI (OVMF): [image] Linux entries with loader
"limine" write `protocol: linux` entries and read back; limine-linux's prediction against the zero
pages a real Limine handed Debian's kernel (tests/data/linux-limine/, commands in
tests/data/README.md), and one `bootforge verify` of the disk the recipe builds per firmware
(BIOS 3G, UEFI 512M; BIOS 512M and UEFI 3G in test_linux_image_verify.py)."""

import json
import struct
from pathlib import Path

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_linux_grub import CMDLINE, image_recipe
from test_uki_build import INITRD_SIZE, KERNEL, make_initrd

from bootforge.bootloaders import ConfigEntry, limine
from bootforge.loader.policies.limine_linux import DECLARED, UEFI_DECLARED, e820_of_exit_map
from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-limine"


def limine_recipe(directory, firmware="bios"):
    p = image_recipe(directory)
    p.write_text(p.read_text().replace('loader = "grub"', 'loader = "limine"')
                 .replace('firmware = ["bios"]', f'firmware = ["{firmware}"]'))
    return p


# The UEFI boot with other inputs: the kernel 1234567 bytes longer (zeros appended) and a
# 5 MiB + 12345-byte initrd (tests/data/README.md).
LONGER_KERNEL, BIGGER_INITRD = 1234567, 5 * 1048576 + 12345


UCODE_SIZE = 10243          # a first module whose size is not a multiple of 4


def uefi_recipe(directory, bigger=False, two_modules=False):
    p = limine_recipe(directory, "uefi")
    if two_modules:
        (Path(directory) / "ucode.img").write_bytes(bytes(range(256)) * 40 + b"abc")
        p.write_text(p.read_text().replace("[[image.entries.modules]]", '[[image.entries.modules]]\npath = '
                                           '"ucode.img"\nloader_path = "/boot/ucode.img"\n[[image.entries.modules]]', 1))
    if bigger:
        kernel = Path(directory) / "vmlinuz-longer"
        kernel.write_bytes(Path(KERNEL).read_bytes() + bytes(LONGER_KERNEL))
        make_initrd(Path(directory) / "initrd.img", BIGGER_INITRD)
        p.write_text(p.read_text().replace(f'kernel = "{KERNEL}"', f'kernel = "{kernel}"'))
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


@pytest.mark.parametrize("memory,top", [("512M", 0x1FFE0000), ("3G", 0xBFFE0000)])
def test_bios_boot_params_is_one_of_the_disk_cache_sizes(memory, top):
    """On BIOS boot_params moves with the disk cache fastest_xfer_size() sizes by timing: the kept
    boots' boot_params (the command line 0x5f000 above it) is one of the places the policy lists."""
    from bootforge.loader.policies.limine_linux import BOOT_PARAMS_POSSIBLE
    page = (FIXTURES / f"zero-page-{memory}.bin").read_bytes()
    cmd_line_ptr = struct.unpack_from("<I", page, 0x228)[0]
    assert top - (cmd_line_ptr - 0x5F000) in BOOT_PARAMS_POSSIBLE


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


@pytest.mark.parametrize("memory,fixture,bigger", [("512M", "512M", False), ("3G", "3G", False),
                                                    ("512M", "512M-bigger", True)])
def test_uefi_prediction_equals_limines_zero_page(tmp_path, memory, fixture, bigger):
    """Under OVMF: the whole zero page, byte for byte, but the framebuffer BAR: kernel entry,
    initrd, command line and boot_params addresses (the longer kernel's cluster chain moves
    boot_params 3 pages down; the bigger initrd sits 4 MiB lower), E820, efi_info, screen_info."""
    require(KERNEL)
    out = tmp_path / "zp.bin"
    proc = run_bootforge("load", uefi_recipe(tmp_path, bigger), "--platform", f"qemu-q35-ovmf:{memory}", "--json",
                         "--mbi-out", out, check=0)
    report = json.loads(proc.stdout)
    real = (FIXTURES / f"uefi-zero-page-{fixture}.bin").read_bytes()
    predicted = out.read_bytes()
    skip = {i for o, n, _w in UEFI_DECLARED for i in range(o, o + n)}
    assert report["loader"] == "limine-linux" and len(predicted) == len(real) == 4096
    assert [i for i in range(4096) if predicted[i] != real[i] and i not in skip] == []
    assert report["linux"]["entry"] == 0x1600000 and report["linux"]["varies_per_boot"] == {}
    assert report["mbi"]["address"] == report["linux"]["boot_params"]
    assert report["linux"]["ramdisk_size"] == (BIGGER_INITRD if bigger else INITRD_SIZE)


def test_uefi_limine_from_a_cd_says_no_capture(tmp_path):
    """OVMF's disk stack sizes its block by the medium: a Limine ISO's map is not the captured
    disk's, so load of its linux entry under OVMF is one line naming what is captured, exit 2."""
    require(KERNEL, "xorriso")
    recipe = uefi_recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace('format = "disk"', 'format = "iso"')
                      .replace('output = "grub-linux.img"', 'output = "grub-linux.iso"'))
    run_bootforge("build", recipe, check=0)
    image = next(tmp_path.glob("*.iso"))
    assert_one_line_error(run_bootforge("load", image, "--platform", "qemu-q35-ovmf:512M"),
                          "captured for a FAT16 ESP on a disk, not a FAT12 ESP on a cdrom")


@pytest.mark.parametrize("fixture", ["512M", "3G", "512M-bigger"])
def test_uefi_e820_is_the_exit_map_the_kernel_printed(fixture):
    """get_raw_memmap's rule on the EFI map each kept kernel printed (efi=debug) gives the E820
    table in that boot's zero page: by address, usable runs merged, one entry per other descriptor."""
    log = parse_kernel_log((FIXTURES / f"uefi-{fixture}.txt").read_text())
    page = (FIXTURES / f"uefi-zero-page-{fixture}.bin").read_bytes()
    table = [struct.unpack_from("<QQI", page, 0x2D0 + 20 * i) for i in range(page[0x1E8])]
    assert e820_of_exit_map(log.efi) == table and len(table) == 18 + (fixture == "3G")


def test_verify_limine_linux_uefi_image_recipe_at_512m(tmp_path):
    """Two modules, the first of 10243 bytes: 11.4.1 puts them back to back (no padding to 4
    bytes, unlike newer source), ramdisk_size their plain sum; the rest as with one module."""
    require(KERNEL, "qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    proc = run_bootforge("verify", uefi_recipe(tmp_path, two_modules=True), "--platform", "qemu-q35-ovmf:512M",
                         "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    rows = {r["name"]: r for r in report["fields"]}
    assert rows["kernel entry"]["observed"] == 0x1600000 and rows["boot_params (ESI)"]["counted"]
    assert rows["ramdisk_image"]["observed"] == 0x19B00000 and rows["initrd bytes"]["match"]
    assert rows["ramdisk_size"]["observed"] == UCODE_SIZE + INITRD_SIZE
    assert rows["cmdline"]["observed"] == CMDLINE and rows["zero page bytes"]["match"]
    assert rows["cmd_line_ptr"]["counted"] and rows["mmap entries"]["observed"] == 18
