"""`make aavmf-verify`: the AAVMF boots make test leaves out (tests/test_aavmf_boot.py boots 1G of
each): Debian's arm64 kernel from the bootforge disk image, by QEMU -kernel with an initrd, and in
an arm64 UKI on a disk, at 512M, 2G and 3G, each predicted from the 1G captures moved with the end
of RAM (bootforge/loader/aavmf_pages.py Capture.at), every field exact."""

import pytest

from aavmf_disk import build_esp_image, build_uki_esp_image, kernel_initrd, qemu_kernel_args
from conftest import require
from dtboot import verify_json

SIZES = ["512M", "2G", "3G"]


@pytest.mark.parametrize("memory", SIZES)
def test_esp(tmp_path, memory):
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd")
    report, fields = verify_json(build_esp_image(tmp_path), "--platform", f"qemu-virt-aarch64:{memory}")
    assert report["ok"] and fields["dtb bytes"]["observed"] == "equal"


@pytest.mark.parametrize("memory", SIZES)
def test_qemu_kernel_with_an_initrd(tmp_path, memory):
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd")
    report, fields = verify_json(*qemu_kernel_args(tmp_path, memory), "--module", kernel_initrd(tmp_path))
    assert report["ok"] and fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"


@pytest.mark.parametrize("memory", SIZES)
def test_uki_disk(tmp_path, memory):
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd")
    report, fields = verify_json(build_uki_esp_image(tmp_path), "--platform", f"qemu-virt-aarch64:{memory}")
    assert report["ok"] and fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"


@pytest.mark.parametrize("memory", ["1G", "2G"])
def test_qemu_kernel_without_an_initrd(tmp_path, memory):
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd")
    report, fields = verify_json(*qemu_kernel_args(tmp_path, memory))
    assert report["ok"] and fields["dtb bytes"]["observed"] == "equal"


@pytest.mark.parametrize("memory", ["1G", "3G"])
def test_uki_by_qemu_kernel(tmp_path, memory):
    """The disk's UKI given to AAVMF by QEMU -kernel (no -append, no -initrd: .cmdline, .initrd); the
    UKI file is the one the disk builder leaves beside the disk image."""
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd")
    build_uki_esp_image(tmp_path)
    report, fields = verify_json(tmp_path / "uki-arm64.efi", "--platform", f"qemu-virt-aarch64:{memory}",
                                 "--loader", "linux-efi-stub-arm64")
    assert report["ok"] and fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
