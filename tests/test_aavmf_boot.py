"""Debian's arm64 kernel on AAVMF (qemu-efi-aarch64 2022.11, qemu-virt-aarch64) through the CLI:
`bootforge load` of the bootforge disk images (EFI/BOOT/BOOTAA64.EFI the kernel itself, or an
arm64 UKI carrying an initrd and a command line) and of AAVMF's QEMU -kernel with an initrd,
against the kept real boots (tests/data/aavmf/), then `bootforge verify` of each for real: it
boots AAVMF, stops at primary_entry through QEMU's gdbstub and compares pc, x0-x3, the image's
bytes where LoadImage put them, the stub's DTB byte for byte and each /chosen property, and the
initrd where the stub's LINUX_EFI_INITRD_MEDIA table says, byte for byte."""

import json
from pathlib import Path

import pytest

from aavmf_disk import (KERNEL_CMDLINE, KERNEL_INITRD_SIZE, build_esp_image, build_uki_esp_image, debian_arm64_kernel,
                        kernel_initrd, qemu_kernel_args)
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import aavmf_pages
from bootforge.loader.policies.linux_efi_stub_arm64 import primary_entry_offset
from conftest import assert_one_line_error, require, run_bootforge
from dtboot import verify_json

DATA = Path(__file__).parent / "data" / "aavmf"
AAVMF = ("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")
# Where each kept boot's stub DTB was, found by its magic in the RAM dump (tests/data/README.md).
KEPT_DTB_AT = {"esp-1G": 0x7A200000, "qemu-kernel-initrd-1G": 0x7BF10000, "esp-uki-1G": 0x7A200000}


def kept(name):
    return (DATA / f"{name}-dtb.bin").read_bytes()


def kept_loader_code(name):
    return sorted(start for typ, start, _, _ in
                  aavmf_pages.parse_exit_map((DATA / f"{name}-exit-map.bin").read_bytes()) if typ == T.LOADER_CODE)


def kept_initrd_base(name):
    return int.from_bytes((DATA / f"{name}-initrd-table.bin").read_bytes()[:8], "little")


@pytest.fixture(scope="module")
def esp_image(tmp_path_factory):
    return build_esp_image(tmp_path_factory.mktemp("esp"))


@pytest.fixture(scope="module")
def uki_image(tmp_path_factory):
    return build_uki_esp_image(tmp_path_factory.mktemp("uki"))


@pytest.fixture(scope="module")
def initrd(tmp_path_factory):
    return kernel_initrd(tmp_path_factory.mktemp("initrd"))


def load(*args, out):
    return json.loads(run_bootforge("load", *args, "--json", "--mbi-out", out, check=0).stdout)


def test_load_of_the_disk_image_predicts_the_kept_boot(tmp_path, esp_image):
    """The DTB handed over equals the kept one, x0 is where it was, and the entry is primary_entry
    inside the Loader Code block (the kernel's log said "Kernel Offset: 0x10000": the image's
    offset in its 2 MiB, tests/data/aavmf/esp-1G-serial.txt)."""
    doc = load(esp_image, out=tmp_path / "dtb")
    assert doc["loader"] == "linux-efi-stub-arm64"
    assert (tmp_path / "dtb").read_bytes() == kept("esp-1G")
    assert doc["linux"]["registers"]["x0"] == KEPT_DTB_AT["esp-1G"]
    (code,) = kept_loader_code("esp-1G")
    assert doc["linux"]["image_base"] == code and code % (2 << 20) == 0x10000
    assert "Kernel Offset: 0x10000" in (DATA / "esp-1G-serial.txt").read_text()
    assert doc["linux"]["entry"] == code + primary_entry_offset(debian_arm64_kernel().read_bytes())


def test_ram_past_4gib_is_one_line(esp_image):
    proc = run_bootforge("load", esp_image, "--platform", "qemu-virt-aarch64:4G")
    assert_one_line_error(proc, "no AAVMF page capture", "4096 MiB")


def test_load_by_qemu_kernel_predicts_the_kept_boot(tmp_path, initrd):
    """AAVMF's -kernel/-initrd/-append: the DTB (bootargs with " initrd=initrd"), x0, and the initrd
    where the kept boot's LINUX_EFI_INITRD_MEDIA table (the kernel log's INITRD=) put it."""
    doc = load(*qemu_kernel_args(tmp_path), "--initrd", initrd, out=tmp_path / "dtb")
    assert (tmp_path / "dtb").read_bytes() == kept("qemu-kernel-initrd-1G")
    assert doc["linux"]["registers"]["x0"] == KEPT_DTB_AT["qemu-kernel-initrd-1G"]
    module = doc["mbi"]["modules"][0]
    assert (module["start"], module["end"] - module["start"]) == (kept_initrd_base("qemu-kernel-initrd-1G"),
                                                                  KERNEL_INITRD_SIZE)


def test_another_initrd_size_is_one_line(tmp_path):
    """An initrd whose pool outgrows the room AAVMF's Boot Services Data bin had in the capture
    (aavmf_pages.for_inputs) is refused, naming its size, not guessed."""
    # Function-level import: the initrd maker of the device-tree boot tests.
    from dtboot import make_initrd
    other = make_initrd(tmp_path / "other.img", KERNEL_INITRD_SIZE + (3 << 20))
    proc = run_bootforge("load", *qemu_kernel_args(tmp_path), "--initrd", other)
    assert_one_line_error(proc, "not predicted exactly", f"initrd size {KERNEL_INITRD_SIZE + (3 << 20)}")


def test_load_of_a_uki_disk_predicts_the_kept_boot(tmp_path, uki_image):
    """An arm64 UKI as BOOTAA64.EFI: the DTB (bootargs = .cmdline), the initrd where the kept boot's
    table put it, the UKI's own Loader Code pages and the kernel's at the 64 KiB boundary inside the
    other Loader Code run of the kept map."""
    doc = load(uki_image, out=tmp_path / "dtb")
    assert (tmp_path / "dtb").read_bytes() == kept("esp-uki-1G")
    assert doc["mbi"]["modules"][0]["start"] == kept_initrd_base("esp-uki-1G")
    at = {p["name"]: p["start"] for p in doc["placements"]}
    uki, kernel = kept_loader_code("esp-uki-1G")
    assert at["UKI image (AAVMF LoadImage)"] == uki
    assert at["kernel image (AAVMF LoadImage)"] == doc["linux"]["image_base"] == kernel + 0x1000
    assert doc["linux"]["registers"]["x0"] == KEPT_DTB_AT["esp-uki-1G"]


def exact(report, fields):
    assert report["status"] == "entry" and report["ok"], [f for f in fields.values() if not f["match"]]
    assert fields["kernel entry"]["match"] and fields["x0"]["match"]
    assert fields["dtb bytes"]["observed"] == "equal"
    assert fields["kernel bytes (first MiB)"]["match"] and fields["kernel bytes (last MiB)"]["match"]


def test_verify_debian_kernel_on_aavmf_from_a_disk_image(esp_image):
    require(*AAVMF)
    report, fields = verify_json(esp_image)
    exact(report, fields)
    assert report["registers"]["x0"] == KEPT_DTB_AT["esp-1G"]
    for name in ("linux,uefi-mmap-start", "linux,uefi-mmap-size", "linux,uefi-system-table",
                 "linux,uefi-secure-boot"):
        assert fields[f"dtb /chosen {name}"]["match"], name
    assert "dtb /chosen bootargs" not in fields         # no load options from the removable-media boot


def test_verify_debian_kernel_by_aavmf_qemu_kernel_with_an_initrd(tmp_path, initrd):
    require(*AAVMF)
    report, fields = verify_json(*qemu_kernel_args(tmp_path), "--module", initrd)
    exact(report, fields)
    assert fields["dtb /chosen bootargs"]["observed"] == KERNEL_CMDLINE + " initrd=initrd"
    assert fields["initrd size (LINUX_EFI_INITRD_MEDIA table)"]["observed"] == KERNEL_INITRD_SIZE
    assert fields["initrd start (LINUX_EFI_INITRD_MEDIA table)"]["match"] and fields["initrd bytes"]["match"]


def test_verify_an_arm64_uki_disk_with_its_initrd(uki_image):
    """AAVMF starts systemd-stub, which starts the kernel: bootargs is .cmdline, and .initrd is where
    the kernel stub's LINUX_EFI_INITRD_MEDIA table says, byte for byte."""
    require(*AAVMF)
    report, fields = verify_json(uki_image)
    exact(report, fields)
    assert fields["dtb /chosen bootargs"]["observed"] == KERNEL_CMDLINE
    assert fields["initrd start (LINUX_EFI_INITRD_MEDIA table)"]["observed"] == kept_initrd_base("esp-uki-1G")
    assert fields["initrd size (LINUX_EFI_INITRD_MEDIA table)"]["observed"] == KERNEL_INITRD_SIZE
    assert fields["initrd bytes"]["match"]
