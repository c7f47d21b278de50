"""Debian's arm64 kernel on AAVMF from a bootforge disk image, for real: `bootforge verify` boots
the image (EFI/BOOT/BOOTAA64.EFI = the kernel, AAVMF 2022.11 on qemu-virt-aarch64 1G), stops at
primary_entry through QEMU's gdbstub and compares what the EFI stub handed over with
linux-efi-stub-arm64's prediction: pc, x0-x3, the image's bytes where LoadImage put them, the
stub's DTB byte for byte and each /chosen property."""

import json

from aavmf_disk import KERNEL_CMDLINE, KERNEL_INITRD_SIZE, build_esp_image, kernel_initrd, qemu_kernel_args
from conftest import require, run_bootforge
from dtboot import verify_json


def test_verify_debian_kernel_on_aavmf_from_a_disk_image(tmp_path):
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")
    image = build_esp_image(tmp_path)
    predicted = json.loads(run_bootforge("load", image, "--json", check=0).stdout)
    report, fields = verify_json(image)
    assert report["status"] == "entry"
    assert report["registers"]["pc"] == predicted["linux"]["entry"]
    assert {k: report["registers"][k] for k in ("x0", "x1", "x2", "x3")} == predicted["linux"]["registers"]
    assert fields["dtb bytes"]["observed"] == "equal" and fields["dtb totalsize"]["observed"] == 0x188
    for name in ("linux,uefi-mmap-start", "linux,uefi-mmap-size", "linux,uefi-system-table",
                 "linux,uefi-secure-boot"):
        assert fields[f"dtb /chosen {name}"]["match"], name
    assert "dtb /chosen bootargs" not in fields         # no load options from the removable-media boot
    assert fields["kernel bytes (first MiB)"]["match"] and fields["kernel bytes (last MiB)"]["match"]


def test_verify_debian_kernel_by_aavmf_qemu_kernel_with_an_initrd(tmp_path):
    """AAVMF's QEMU -kernel/-initrd/-append: bootargs with AAVMF's " initrd=initrd", and the initrd
    where linux-efi-stub-arm64 put it, read from the LINUX_EFI_INITRD_MEDIA table in the EFI system
    table's configuration tables at the entry, byte for byte."""
    require("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")
    initrd = kernel_initrd(tmp_path)
    predicted = json.loads(run_bootforge("load", *qemu_kernel_args(tmp_path), "--initrd", initrd, "--json",
                                         check=0).stdout)
    report, fields = verify_json(*qemu_kernel_args(tmp_path), "--module", initrd)
    assert report["registers"]["pc"] == predicted["linux"]["entry"]
    assert report["registers"]["x0"] == predicted["linux"]["registers"]["x0"]
    assert fields["dtb /chosen bootargs"]["observed"] == KERNEL_CMDLINE + " initrd=initrd"
    module = predicted["mbi"]["modules"][0]
    assert fields["initrd start (LINUX_EFI_INITRD_MEDIA table)"]["observed"] == module["start"]
    assert fields["initrd size (LINUX_EFI_INITRD_MEDIA table)"]["observed"] == KERNEL_INITRD_SIZE
    assert fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
