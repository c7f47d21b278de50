"""EFI option-ROM drivers signed before compression ([[rom.images]] type "efi" with the
secureboot_* keys) and what `inspect` says about them under Secure Boot. iPXE's e1000 driver
(ipxe-qemu's efi-e1000.rom, image 1) signed with Debian's snakeoil key: sbverify accepts the
PE PciBusDxe hands LoadImage (the decompressed payload, or the uncompressed image to the end
of its initialization size). A real boot shows Debian's OVMF runs option-ROM drivers without
verifying them, as inspect says."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require, run_bootforge
from test_sign import SNAKEOIL_CERT, SNAKEOIL_KEY, sbverify

IPXE_ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom"


def rom_recipe(directory, compress="efi", signed=True, name="e1000.rom"):
    require(IPXE_ROM)
    directory = Path(directory)
    (directory / "pp").write_text("snakeoil\n")
    keys = (f'secureboot_private_key = "{SNAKEOIL_KEY}"\nsecureboot_certificate = "{SNAKEOIL_CERT}"\n'
            'secureboot_key_passphrase_file = "pp"\n') if signed else ""
    recipe = directory / f"{name}.toml"
    recipe.write_text(f'[rom]\nvendor_id = 0x8086\ndevice_ids = [0x100e]\noutput = "{name}"\n\n'
                      f'[[rom.images]]\ntype = "efi"\nfile = "{IPXE_ROM}"\nindex = 1\ncompress = "{compress}"\n'
                      + keys)
    run_bootforge("build", recipe, check=0)
    return directory / name


def uefi_verdict(rom, *extra):
    r = run_bootforge("inspect", "--json", rom, *extra)
    return json.loads(r.stdout)["images"][0]["uefi"]


@pytest.mark.parametrize("compress", ["efi", "none"])
def test_signed_driver_verifies(tmp_path, compress):
    rom = rom_recipe(tmp_path, compress)
    driver = tmp_path / "driver.efi"
    run_bootforge("extract", rom, "-o", driver, check=0)
    v = sbverify(SNAKEOIL_CERT, driver)
    assert v.returncode == 0 and "Signature verification OK" in v.stdout, v.stdout + v.stderr
    verdict = uefi_verdict(rom, "--db", SNAKEOIL_CERT)
    facts = verdict["facts"]["secure_boot"]
    assert verdict["ok"] and [s["ok"] for s in facts["signatures"]] == [True]
    assert facts["deny_execute_policy"]["ok"]


def test_unsigned_driver_is_refused_only_by_a_verifying_policy(tmp_path):
    rom = rom_recipe(tmp_path, signed=False)
    verdict = uefi_verdict(rom, "--db", SNAKEOIL_CERT)
    facts = verdict["facts"]["secure_boot"]
    assert verdict["ok"] and facts["signatures"] == []
    assert not facts["deny_execute_policy"]["ok"] and "ALWAYS_EXECUTE" in facts["ovmf"]
    # Without a db nothing is said about an unsigned driver (the verdict of issue 25's ROMs as before).
    assert "secure_boot" not in uefi_verdict(rom)["facts"]


@pytest.mark.qemu
def test_ovmf_runs_an_unsigned_option_rom_with_secure_boot_on(tmp_path):
    """The observation behind OVMF_OPTION_ROM_POLICY: snakeoil OVMF, Secure Boot on, an e1000
    whose ROM is the unsigned driver: iPXE's banner is on the console."""
    require("qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd")
    rom = rom_recipe(tmp_path, signed=False)
    shutil.copyfile("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd", tmp_path / "vars.fd")
    serial = tmp_path / "serial.log"
    proc = subprocess.Popen(["qemu-system-x86_64", "-M", "q35", "-m", "512", "-nodefaults", "-display", "none",
                             "-no-reboot", "-drive",
                             "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd",
                             "-drive", f"if=pflash,format=raw,file={tmp_path / 'vars.fd'}",
                             "-netdev", "user,id=n0,restrict=on", "-device", f"e1000,netdev=n0,romfile={rom}",
                             "-serial", f"file:{serial}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            text = serial.read_text("latin-1") if serial.exists() else ""
            if "Open Source Network Boot Firmware" in text or "No bootable option" in text:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert "Open Source Network Boot Firmware" in text, text[-2000:]
