"""`make linux-verify`: the Linux verify boots make test leaves out (make test boots every
loader at 512M and 3G: tests/test_linux_image_verify.py says where): GRUB i386-pc `linux` at
256M (the initrd under GRUB's heap at the top of RAM) and 1G, QEMU -kernel at 3G
(XLF_CAN_BE_LOADED_ABOVE_4G lifts initrd_addr_max, below_4g - acpi_data_size caps it), Limine's
linux protocol under OVMF at 256M, 1G and 5G, and a UKI of another size on an ESP under OVMF
(tests/test_ovmf_pages_boots.py boots the -kernel size rule)."""

import json

import pytest

from conftest import require, run_bootforge
from test_linux_grub import CMDLINE, image_recipe
from test_uki_build import INITRD_SIZE, KERNEL, make_initrd


def verified(*args):
    proc = run_bootforge("verify", *args, "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    return {r["name"]: r for r in report["fields"]}, report


@pytest.mark.parametrize("memory", ["256M", "1G"])
def test_grub_linux(tmp_path, memory):
    require(KERNEL, "qemu-system-x86_64", "grub-mkimage")
    rows, report = verified(image_recipe(tmp_path), "--platform", f"qemu-pc-seabios:{memory}")
    assert rows["zero page bytes"]["match"] and rows["initrd bytes"]["match"]
    assert rows["ramdisk_size"]["observed"] == INITRD_SIZE


def test_qemu_linux_3g(tmp_path):
    require(KERNEL, "qemu-system-x86_64")
    initrd = make_initrd(tmp_path / "initrd.img")
    rows, _ = verified(KERNEL, "--platform", "qemu-pc-seabios:3G", "--loader", "qemu-linux", "--cmdline", CMDLINE,
                       "--module", initrd)
    assert rows["ramdisk_image"]["observed"] == 0xBFEDC000 and rows["initrd bytes"]["match"]


@pytest.mark.parametrize("memory", ["256M", "1G", "5G"])
def test_limine_linux_uefi(tmp_path, memory):
    """Limine's linux protocol under OVMF (make test boots 512M and 3G): E820, initrd, command
    line, boot_params and the zero page as limine-linux predicts from the 512M (256M, 1G) and 3G
    (5G) captures."""
    require(KERNEL, "qemu-system-x86_64")
    from test_linux_limine import uefi_recipe
    rows, _ = verified(uefi_recipe(tmp_path), "--platform", f"qemu-q35-ovmf:{memory}")
    assert rows["zero page bytes"]["match"] and rows["initrd bytes"]["match"]
    for name in ("boot_params (ESI)", "cmd_line_ptr", "ramdisk_image"):
        assert rows[name]["counted"] and rows[name]["match"], rows[name]


def test_bigger_uki_on_esp_under_ovmf_512m(tmp_path):
    """A UKI of a size no capture has (a 3 MiB + 777-byte initrd inside) as the disk's
    EFI/BOOT/BOOTX64.EFI: OVMF's map before it is the captured one (ovmf_pages.for_inputs, ESP
    paths), boot_params, cmd_line_ptr and the initrd counted and equal the prediction."""
    require(KERNEL, "qemu-system-x86_64")
    from test_uki_build import CMDLINE as UKI_CMDLINE, OS_RELEASE, write_recipe
    make_initrd(tmp_path / "initrd.img", 3 * 1048576 + 777)
    (tmp_path / "os-release").write_text(OS_RELEASE)
    run_bootforge("build", write_recipe(tmp_path, kernel=KERNEL, cmdline=UKI_CMDLINE, os_release="os-release",
                                        output="uki.efi", initrd=["initrd.img"]), check=0)
    recipe = tmp_path / "disk.toml"
    recipe.write_text('[image]\nformat = "disk"\nloader = "uki"\noutput = "disk.img"\n[[image.entries]]\n'
                      'title = "debian"\nkernel = "uki.efi"\nloader_path = "/EFI/BOOT/BOOTX64.EFI"\nprotocol = "linux"\n')
    rows, _ = verified(recipe, "--platform", "qemu-q35-ovmf:512M")
    for name in ("boot_params (ESI)", "cmd_line_ptr", "ramdisk_image", "setup_data"):
        assert rows[name]["counted"] and rows[name]["match"], rows[name]
