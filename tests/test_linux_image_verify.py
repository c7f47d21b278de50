"""Every way bootforge ships a Linux boot, verified live at 512M and 3G: the real loader boots
the image a recipe builds (or the bare UKI), verify stops at the kernel's entry and compares
E820, initrd, command line and the zero page with what `load` predicts.

The other memory size of each loader is booted where that loader's own tests are:
test_linux_efi_stub_zero_page.py (the bare UKI at 512M), test_linux_verify.py (GRUB i386-pc at
3G, QEMU -kernel at 512M), test_linux_grub_efi.py (GRUB x86_64-efi at 512M),
test_linux_limine.py (Limine BIOS at 3G, UEFI at 512M). `make linux-verify`
(tests/linux_verify_matrix.py) boots the sizes in between and beyond."""

import json

import pytest

from conftest import require, run_bootforge
from test_uki_build import KERNEL

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"


def bare_uki(tmp_path):
    from test_uki_build import bootforge_uki
    return [bootforge_uki(tmp_path), "--loader", "linux-efi-stub"]


def uki_on_esp(tmp_path):
    from test_linux_uki_esp import image_recipe
    return [image_recipe(tmp_path)]


def systemd_boot(tmp_path):
    from test_linux_sdboot import image_recipe
    return [image_recipe(tmp_path)]


def grub_pc(tmp_path):
    from test_linux_grub import image_recipe
    return [image_recipe(tmp_path)]


def grub_efi(tmp_path):
    from test_linux_grub_efi import image_recipe
    return [image_recipe(tmp_path)]


def limine_bios(tmp_path):
    from test_linux_limine import limine_recipe
    return [limine_recipe(tmp_path)]


def limine_uefi(tmp_path):
    from test_linux_limine import uefi_recipe
    return [uefi_recipe(tmp_path)]


# (what is booted, machine, memory, the tool it needs, rows that must be counted and match beyond
# the common ones, {row: the value the real boot showed})
BOOTS = [
    (bare_uki, "qemu-q35-ovmf", "3G", OVMF_CODE, ("setup_data", "boot_params (ESI)", "cmd_line_ptr"), {}),
    (uki_on_esp, "qemu-q35-ovmf", "512M", OVMF_CODE, ("boot_params (ESI)",), {}),
    (uki_on_esp, "qemu-q35-ovmf", "3G", OVMF_CODE, ("boot_params (ESI)",), {}),
    (systemd_boot, "qemu-q35-ovmf", "512M", OVMF_CODE, ("setup_data",), {}),
    (systemd_boot, "qemu-q35-ovmf", "3G", OVMF_CODE, ("setup_data",), {}),
    (grub_pc, "qemu-pc-seabios", "512M", "grub-mkimage", ("initrd bytes",), {}),
    # GRUB x86_64-efi: the initrd under the 0x37ffffff cap.
    (grub_efi, "qemu-q35-ovmf", "3G", "grub-mkimage", ("initrd bytes",), {"ramdisk_image": 0x37DE7000}),
    (limine_bios, "qemu-pc-seabios", "512M", "xorriso", ("initrd bytes",), {}),
    (limine_uefi, "qemu-q35-ovmf", "3G", OVMF_CODE, ("boot_params (ESI)", "cmd_line_ptr", "ramdisk_image"),
     {"ramdisk_image": 0x79B00000}),
]


@pytest.mark.parametrize("source,machine,memory,needs,counted,seen", BOOTS,
                         ids=[f"{b[0].__name__}-{b[2]}" for b in BOOTS])
def test_linux_boot_matches_its_prediction(tmp_path, source, machine, memory, needs, counted, seen):
    require(KERNEL, "qemu-system-x86_64", needs)
    proc = run_bootforge("verify", *source(tmp_path), "--platform", f"{machine}:{memory}", "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    rows = {r["name"]: r for r in report["fields"]}
    # The zero page is compared whole (its firmware-decided bytes listed apart), and so are the
    # E820 table the kernel got and the command line it read.
    for name in ("zero page bytes", "mmap entries", "cmdline", "ramdisk_size", *counted):
        assert rows[name]["counted"] and rows[name]["match"], rows[name]
    assert rows["ramdisk_size"]["observed"] > 0
    for name, value in seen.items():
        assert rows[name]["observed"] == value, rows[name]
