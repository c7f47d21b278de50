"""Real Secure Boot under Debian's snakeoil OVMF (OVMF_CODE_4M.snakeoil.fd + a fresh copy of
OVMF_VARS_4M.snakeoil.fd per boot; q35, TCG): images signed by `bootforge sign` with the
snakeoil key start, a tampered one is refused in the words `bootforge inspect` predicted.
Three OVMF boots of ~10 s each, from a FAT ESP (EFI/BOOT/BOOTX64.EFI)."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require, run_bootforge
from test_sign import _sign
from test_uki_build import bootforge_uki
from test_uki_qemu import esp_image

pytestmark = pytest.mark.qemu

SNAKEOIL_CODE = "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"
SNAKEOIL_VARS = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
GRUB_MARKER = "bootforge-grub-secureboot: GRUB runs"


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


def test_signed_grub_boots_with_secure_boot_on(tmp_path):
    """GRUB's EFI image (grub-mkimage, Debian's grub-efi-amd64-bin modules, an embedded config
    that echoes a marker and halts) signed by bootforge: OVMF starts it."""
    require("grub-mkimage")
    cfg = tmp_path / "early.cfg"
    cfg.write_text(f'echo "{GRUB_MARKER}"\nsleep 1\nhalt\n')
    grub = tmp_path / "grubx64.efi"
    subprocess.run(["grub-mkimage", "-O", "x86_64-efi", "-o", str(grub), "-p", "/EFI/BOOT", "-c", str(cfg),
                    "echo", "sleep", "halt", "normal"], check=True, capture_output=True)
    signed = tmp_path / "grub.signed.efi"
    assert _sign(grub, signed).returncode == 0
    assert _verdict(signed)["ok"] and not _verdict(grub)["ok"]
    text = secureboot_boot(tmp_path, esp_image(tmp_path, signed), (GRUB_MARKER, "Access Denied"))
    assert GRUB_MARKER in text, text[-2000:]
