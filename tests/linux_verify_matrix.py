"""`make linux-verify`: the Linux verify boots make test leaves out (tests/test_linux_verify.py
boots GRUB at 3G and QEMU -kernel at 512M): GRUB i386-pc `linux` at 256M and 512M (the initrd
under GRUB's heap at the top of RAM) and 1G, QEMU -kernel at 3G (XLF_CAN_BE_LOADED_ABOVE_4G
lifts initrd_addr_max, below_4g - acpi_data_size caps it), Limine's linux protocol under OVMF
at 256M, 1G, 3G and 5G (tests/test_linux_limine.py boots 512M), and a UKI of another size on an
ESP under OVMF (tests/test_ovmf_pages_boots.py boots the -kernel size rule; make test's time
budget has no room for a third OVMF boot)."""

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


@pytest.mark.parametrize("memory", ["256M", "512M", "1G"])
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


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_bare_uki_under_ovmf(tmp_path, memory):
    """A bare UKI under QEMU -kernel on OVMF, stopped at the 64-bit entry the EFI stub jumps to:
    E820, ramdisk, command line, setup_data (SETUP_PCI), boot_params, cmd_line_ptr and ramdisk_image
    from OVMF's allocator model (captures at 512M and 3G) and the zero page as linux-efi-stub predicts."""
    require(KERNEL, "qemu-system-x86_64")
    from test_uki_build import bootforge_uki
    uki = bootforge_uki(tmp_path)
    rows, report = verified(uki, "--platform", f"qemu-q35-ovmf:{memory}", "--loader", "linux-efi-stub")
    assert rows["setup_data"]["match"] and rows["mmap entries"]["match"]
    assert rows["boot_params (ESI)"]["counted"] and rows["zero page bytes"]["counted"]


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_uki_on_esp_under_ovmf(tmp_path, memory):
    require(KERNEL, "qemu-system-x86_64")
    from test_linux_uki_esp import image_recipe as uki_esp_recipe
    rows, _ = verified(uki_esp_recipe(tmp_path), "--platform", f"qemu-q35-ovmf:{memory}")
    assert rows["cmdline"]["match"] and rows["ramdisk_size"]["match"]


@pytest.mark.parametrize("memory", ["256M", "1G", "3G", "5G"])
def test_limine_linux_uefi(tmp_path, memory):
    """Limine's linux protocol under OVMF (make test boots 512M): E820, initrd, command line,
    boot_params and the zero page as limine-linux predicts from the 512M (256M, 1G) and 3G (3G,
    5G) captures."""
    require(KERNEL, "qemu-system-x86_64")
    from test_linux_limine import uefi_recipe
    rows, _ = verified(uefi_recipe(tmp_path), "--platform", f"qemu-q35-ovmf:{memory}")
    assert rows["zero page bytes"]["match"] and rows["initrd bytes"]["match"]
    for name in ("boot_params (ESI)", "cmd_line_ptr", "ramdisk_image"):
        assert rows[name]["counted"] and rows[name]["match"], rows[name]
    if memory == "3G":
        assert rows["ramdisk_image"]["observed"] == 0x79B00000


def test_grub_efi_linux_3g(tmp_path):
    """GRUB x86_64-efi `linux` from the UEFI disk at 3G (make test verifies 512M): the initrd under
    the 0x37ffffff cap, the zero page with the exit map's size."""
    require(KERNEL, "qemu-system-x86_64", "grub-mkimage")
    from test_linux_grub_efi import image_recipe as grub_efi_recipe
    rows, _ = verified(grub_efi_recipe(tmp_path), "--platform", "qemu-q35-ovmf:3G")
    assert rows["zero page bytes"]["match"] and rows["initrd bytes"]["match"]
    assert rows["ramdisk_image"]["observed"] == 0x37DE7000


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
