"""[image] entries with protocol = "linux" on GRUB i386-pc (`linux`/`initrd`), and grub-pc-linux's
prediction against Debian's kernel booted from the image bootforge builds: the command line,
the E820 table and the initrd address the kernel printed (tests/data/linux-grub-pc/, commands
in tests/data/README.md), read from the kept boots; the real boot stopped at the kernel's 32-bit
entry (registers, boot_params, the zero page) is `bootforge verify`'s, in tests/test_linux_verify.py."""

import json
from pathlib import Path

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_uki_build import INITRD_SIZE, KERNEL, make_initrd

from bootforge.bootloaders import ConfigEntry, grub
from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-grub-pc"
CMDLINE = "console=ttyS0 earlyprintk=serial nokaslr panic=-1"
PAGE = 4096


def image_recipe(directory):
    """The recipe the fixtures were booted from: a GPT disk, GRUB for BIOS, Debian's kernel and
    the test initrd (test_uki_build.make_initrd: an empty cpio, so the kernel panics at root)."""
    directory = Path(directory)
    make_initrd(directory / "initrd.img")
    p = directory / "grub-linux.toml"
    p.write_text(f"""[image]
format = "disk"
loader = "grub"
firmware = ["bios"]
output = "grub-linux.img"
[[image.entries]]
title = "debian"
kernel = "{KERNEL}"
loader_path = "/boot/vmlinuz"
protocol = "linux"
cmdline = "{CMDLINE}"
[[image.entries.modules]]
path = "initrd.img"
loader_path = "/boot/initrd.img"
""")
    return p


def test_grub_cfg_linux_entries_round_trip():
    entries = [ConfigEntry("debian", "linux", "/boot/vmlinuz", "root=/dev/sda1 quiet",
                           [("/boot/ucode.img", ""), ("/boot/initrd.img", "")]),
               ConfigEntry("mb", "multiboot2", "/boot/k.elf", "a=b", [("/boot/m", "x")])]
    text = grub.write(entries)
    assert "\tlinux /boot/vmlinuz root=/dev/sda1 quiet\n\tinitrd /boot/ucode.img /boot/initrd.img\n" in text
    assert grub.parse(text) == entries


def test_grub_cfg_as_debian_writes_it():
    """update-grub's entry shape: `linux` with the root option, `initrd` on its own line, linuxefi too."""
    text = ("menuentry 'Debian GNU/Linux' --class debian {\n\tload_video\n\tinsmod gzio\n"
            "\techo 'Loading Linux 6.1.0-57-amd64 ...'\n"
            "\tlinux\t/boot/vmlinuz-6.1.0-57-amd64 root=UUID=1234 ro  quiet\n"
            "\tinitrd\t/boot/initrd.img-6.1.0-57-amd64\n}\n"
            "menuentry efi {\n linuxefi /vmlinuz x=1\n initrdefi /a /b\n}\n"
            "menuentry chain {\n chainloader /efi/x.efi\n}\n")
    debian, efi, chain = grub.parse(text)
    assert (debian.protocol, debian.kernel, debian.cmdline, debian.modules) == \
        ("linux", "/boot/vmlinuz-6.1.0-57-amd64", "root=UUID=1234 ro quiet", [("/boot/initrd.img-6.1.0-57-amd64", "")])
    assert (efi.protocol, efi.modules) == ("linux", [("/a", ""), ("/b", "")])
    assert chain.protocol is None and "not a Multiboot entry" in chain.note


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require(KERNEL, "grub-mkimage", grub.PC_DIR)
    d = tmp_path_factory.mktemp("grub-linux")
    recipe = image_recipe(d)
    run_bootforge("build", recipe, check=0)
    return recipe, d / "grub-linux.img"


def predict(source, memory):
    proc = run_bootforge("load", source, "--platform", f"qemu-pc-seabios:{memory}", "--json", check=0)
    return json.loads(proc.stdout)


def assert_matches_kernel(report, log):
    assert report["loader"] == "grub-pc-linux"
    assert report["mbi"]["cmdline"] == log.command_line == f"BOOT_IMAGE=/boot/vmlinuz {CMDLINE}"
    assert [(e["start"], e["start"] + e["size"] - 1) for e in report["mbi"]["mmap"]] == [(a, b) for a, b, _ in log.e820]
    initrd = next(p for p in report["placements"] if p["name"] == "initrd")
    start, last = log.ramdisk
    assert (initrd["start"], initrd["end"]) == (start, last + 1)        # RAMDISK ends at the page-aligned end
    assert report["linux"]["ramdisk_image"] == start
    assert report["linux"]["ramdisk_size"] == INITRD_SIZE


@pytest.mark.parametrize("memory", ["256M", "512M", "1G", "3G"])
def test_recipe_prediction_equals_the_kernels_words(built, memory):
    recipe, _ = built
    log = parse_kernel_log((FIXTURES / f"kernel-initrd-{memory}.txt").read_text(errors="replace"))
    assert_matches_kernel(predict(recipe, memory), log)


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_the_built_image_loads_as_its_recipe(built, memory):
    """`load IMAGE` reads grub.cfg back (linux + initrd) and predicts what `load RECIPE` does."""
    recipe, image = built
    a, b = predict(recipe, memory), predict(image, memory)
    assert a["placements"] == b["placements"] and a["mbi"] == b["mbi"] and a["linux"] == b["linux"]


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_zero_page_bytes_equal_grubs(built, tmp_path, memory):
    """The zero page GRUB handed the kernel (read at the 32-bit entry through the gdbstub, kept as
    tests/data/linux-grub-pc/zero-page-MEM.bin): its first 0x3fc bytes (GRUB's struct
    linux_kernel_params) byte for byte; the rest is declared as not written by GRUB."""
    recipe, _ = built
    out = tmp_path / "zp.bin"
    proc = run_bootforge("load", recipe, "--platform", f"qemu-pc-seabios:{memory}", "--json", "--mbi-out", out,
                         check=0)
    zp = json.loads(proc.stdout)["linux"]["zero_page"]
    real = (FIXTURES / f"zero-page-{memory}.bin").read_bytes()
    predicted = out.read_bytes()
    assert len(predicted) == zp["predicted_bytes"] == zp["not_written"]["offset"]
    assert predicted == real[:len(predicted)]
    assert zp["not_written"]["offset"] + zp["not_written"]["size"] == len(real) == PAGE


def test_same_recipe_same_bytes(built, tmp_path):
    recipe, image = built
    again = image_recipe(tmp_path)
    run_bootforge("build", again, check=0)
    assert (tmp_path / "grub-linux.img").read_bytes() == image.read_bytes()


def test_bad_linux_entries_are_one_line(built, tmp_path):
    """A file without a setup header as a linux entry, and a UEFI load GRUB x86_64-efi refuses
    (grub-efi-linux, tests/test_linux_grub_efi.py): one line."""
    recipe, _ = built
    (tmp_path / "k.elf").write_bytes(b"\x7fELF" + bytes(8192))
    make_initrd(tmp_path / "initrd.img")
    bad = tmp_path / "bad.toml"
    bad.write_text(recipe.read_text().replace(KERNEL, str(tmp_path / "k.elf")))
    assert_one_line_error(run_bootforge("build", bad), "k.elf", "no Linux setup header")
    both = tmp_path / "both.toml"
    both.write_text(recipe.read_text().replace('firmware = ["bios"]', 'firmware = ["bios", "uefi"]'))
    # UEFI's default machine (256M): GRUB x86_64-efi finds no room for the kernel's two 64 MiB chunks
    # beside its heap, as the real boot says (tests/data/linux-grub-efi/out-of-memory-256M.serial).
    assert_one_line_error(run_bootforge("load", both, "--firmware", "uefi"), "out of memory")
