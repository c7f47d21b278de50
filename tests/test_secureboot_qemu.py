"""Real Secure Boot under Debian's snakeoil OVMF (OVMF_CODE_4M.snakeoil.fd + a fresh copy of
OVMF_VARS_4M.snakeoil.fd per boot; q35, TCG): images signed by `bootforge sign` with the
snakeoil key start, a tampered one is refused in the words `bootforge inspect` predicted.
Three OVMF boots of 10-40 s each, from a FAT ESP (EFI/BOOT/BOOTX64.EFI) or a bootforge disk image."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, require, run_bootforge
from test_sign import _sign
from test_uki_build import bootforge_uki
from test_uki_qemu import esp_image

pytestmark = pytest.mark.qemu

SNAKEOIL_CODE = "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"
SNAKEOIL_VARS = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"


def secureboot_boot(directory, esp, until, timeout=120, code=SNAKEOIL_CODE, variables=SNAKEOIL_VARS):
    """Boot *esp* (a FAT image) on OVMF (*code*, a fresh copy of *variables*; snakeoil by default)
    until one of *until* is on the serial console; return the serial text."""
    require("qemu-system-x86_64", code, str(variables))
    vars_copy = Path(directory) / "vars.fd"
    shutil.copyfile(variables, vars_copy)
    serial = Path(directory) / "serial.log"
    cmd = ["qemu-system-x86_64", "-M", "q35", "-m", "1024", "-display", "none", "-nic", "none", "-no-reboot",
           "-drive", f"if=pflash,format=raw,readonly=on,file={SNAKEOIL_CODE}",
           "-drive", f"if=pflash,format=raw,file={vars_copy}",
           "-drive", f"format=raw,file={esp}", "-serial", f"file:{serial}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = serial.read_text("latin-1") if serial.exists() else ""
            if any(u in text for u in until) or proc.poll() is not None:
                break
            time.sleep(0.5)
        text = serial.read_text("latin-1") if serial.exists() else ""
    finally:
        proc.kill()
        proc.wait()
    return text


def _verdict(path):
    r = run_bootforge("inspect", "--json", path, "--secureboot-vars", SNAKEOIL_VARS)
    return json.loads(r.stdout)["authenticode"]["secureboot"]


def test_signed_uki_boots_with_secure_boot_on(tmp_path):
    uki = bootforge_uki(tmp_path)
    signed = tmp_path / "signed.efi"
    assert _sign(uki, signed).returncode == 0
    assert _verdict(signed)["ok"]
    text = secureboot_boot(tmp_path, esp_image(tmp_path, signed),
                           ("secureboot: Secure boot enabled", "Access Denied", "Kernel panic"))
    assert "secureboot: Secure boot enabled" in text, text[-2000:]


def test_tampered_uki_is_refused_in_the_predicted_words(tmp_path):
    uki = bootforge_uki(tmp_path)
    signed = tmp_path / "signed.efi"
    assert _sign(uki, signed).returncode == 0
    data = bytearray(signed.read_bytes())
    data[len(data) // 2] ^= 0x01                 # a byte of .linux
    tampered = tmp_path / "tampered.efi"
    tampered.write_bytes(data)
    verdict = _verdict(tampered)
    assert not verdict["ok"] and verdict["words"]
    text = secureboot_boot(tmp_path, esp_image(tmp_path, tampered),
                           ("No bootable option", "secureboot: Secure boot enabled"))
    refusal = [line for line in text.splitlines() if "failed to load Boot" in line and "HARDDISK" in line]
    assert refusal and refusal[0].rstrip().endswith(": " + verdict["words"]), text[-2000:]
    assert "Linux version" not in text


def image_recipe(directory, signed=True):
    """A GPT disk image for UEFI, GRUB booting the dump kernel (recipes/kernel-mbdump-mb2.toml),
    with the [image] secureboot keys (Debian's snakeoil pair) when *signed*."""
    kernel = Path(directory) / "mbdump-mb2.elf"
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", check=0)
    shutil.copy(REPO / "build" / "kernels" / "mbdump-mb2.elf", kernel)
    (Path(directory) / "pp").write_text("snakeoil\n")
    keys = ('secureboot_private_key = "/usr/share/ovmf/PkKek-1-snakeoil.key"\n'
            'secureboot_certificate = "/usr/share/ovmf/PkKek-1-snakeoil.pem"\n'
            'secureboot_key_passphrase_file = "pp"\n') if signed else ""
    recipe = Path(directory) / "image.toml"
    recipe.write_text('[image]\nformat = "disk"\nloader = "grub"\nfirmware = ["uefi"]\noutput = "os.img"\n' + keys
                      + '\n[[image.entries]]\ntitle = "mbdump"\nkernel = "mbdump-mb2.elf"\nprotocol = "multiboot2"\n'
                      'cmdline = "console=ttyS0"\n')
    run_bootforge("build", recipe, check=0)
    return Path(directory) / "os.img"


def esp_file(image, path, out):
    """*path* copied out of the image's first GPT partition (the ESP) with mtools."""
    require("mcopy")
    data = Path(image).read_bytes()
    entries_lba = int.from_bytes(data[512 + 72:512 + 80], "little")
    first_lba = int.from_bytes(data[entries_lba * 512 + 32:entries_lba * 512 + 40], "little")
    subprocess.run(["mcopy", "-n", "-i", f"{image}@@{first_lba * 512}", f"::{path}", str(out)], check=True,
                   capture_output=True)
    return Path(out)


def test_signed_grub_image_boots_with_secure_boot_on(tmp_path):
    """[image] secureboot keys: the GRUB EFI binary on the image's ESP is signed (sbverify accepts
    it) and OVMF with Secure Boot on starts it; GRUB reads its grub.cfg and boots the entry, where
    GRUB 2.06's own Secure Boot check (no shim) refuses the Multiboot2 kernel in its words."""
    from test_sign import sbverify, SNAKEOIL_CERT
    image = image_recipe(tmp_path)
    efi = esp_file(image, "/EFI/BOOT/BOOTX64.EFI", tmp_path / "BOOTX64.EFI")
    assert sbverify(SNAKEOIL_CERT, efi).returncode == 0
    assert _verdict(efi)["ok"]
    text = secureboot_boot(tmp_path, image, ("shim_lock protocol not found", "Access Denied"))
    assert "Welcome to GRUB!" in text and "Booting `mbdump'" in text, text[-2000:]
    assert "error: shim_lock protocol not found." in text
