"""Real firmware decides: ROMs built and patched by bootforge, booted in QEMU
under SeaBIOS and OVMF.

Set BOOTFORGE_UPDATE_FIXTURES=1 to store the SeaBIOS logs of these runs in
tests/data/ (tests/data/README.md lists the commands)."""

import json
import os
import re
import struct

import pytest

from conftest import BUILD, DATA, REPO, require, run_bootforge
from qemu import run_qemu, seabios_gave_up
from romcorpus import IPXE_DIR

pytestmark = pytest.mark.qemu
HELLO_INIT = "bootforge hello-rom: init"
HELLO_BEV = "bootforge hello-rom: bev"
# SeaBIOS runs a PCI ROM's init, then registers its boot entry under the
# device's path: the lines between are what the ROM's init did (iPXE's PMM calls).
RAN_ON_SLOT_3 = re.compile(r"Running option rom at ([0-9a-f]{4}):0003\n((?:(?!Running option rom).*\n)*?)"
                           r"Searching bootorder for: /pci@i0cf8/\*@3\n")
IPXE_BANNER = "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware"


def keep_log(name, text):
    if os.environ.get("BOOTFORGE_UPDATE_FIXTURES") == "1":
        (DATA / name).write_text(text)


@pytest.fixture(scope="module")
def hello_rom(tmp_path_factory):
    require(str(BUILD / "stubs" / "hello-rom.elf"))
    out = tmp_path_factory.mktemp("rom") / "hello.rom"
    run_bootforge("build", REPO / "recipes/hello-rom.toml", "-o", out, check=0)
    return out


def test_seabios_runs_the_hello_rom(hello_rom):
    run = run_qemu(["-device", f"e1000,addr=03,romfile={hello_rom}"], timeout=30)
    keep_log("seabios-hello-rom.log", run.seabios_log)
    # init at POST, then the BEV when SeaBIOS boots from it; the BEV ends QEMU: (0x21 << 1) | 1.
    assert run.debugcon == f"{HELLO_INIT}\n{HELLO_BEV}\n"
    assert run.returncode == 0x43
    assert RAN_ON_SLOT_3.search(run.seabios_log), run.seabios_log


def test_seabios_refuses_a_flipped_byte_and_bootforge_agrees(hello_rom, tmp_path):
    data = bytearray(hello_rom.read_bytes())
    data[0x1F0] ^= 0x01                      # a padding byte
    bad = tmp_path / "bad.rom"
    bad.write_bytes(data)
    run = run_qemu(["-device", f"e1000,addr=03,romfile={bad}"], until=seabios_gave_up, timeout=30)
    keep_log("seabios-hello-rom-bad-checksum.log", run.seabios_log)
    assert HELLO_INIT not in run.debugcon
    found = re.search(r"Found option rom with bad checksum: loc=0x[0-9a-f]+ len=(\d+) sum=([0-9a-f]+)",
                      run.seabios_log)
    assert found, run.seabios_log
    proc = run_bootforge("inspect", "--json", bad)
    assert proc.returncode == 1
    image = json.loads(proc.stdout)["images"][0]
    assert image["seabios"]["ok"] is False and image["checksum_ok"] is False
    assert (image["size"], image["checksum"]) == (int(found.group(1)), int(found.group(2), 16))


def test_seabios_runs_the_legacy_image_of_the_rebuilt_e1000_rom(tmp_path):
    out = tmp_path / "combined.rom"
    run_bootforge("build", REPO / "recipes/e1000-combined.toml", "-o", out, check=0)

    def ipxe_initialised(run):
        return RAN_ON_SLOT_3.search(run.seabios_log) is not None

    run = run_qemu(["-device", f"e1000,addr=03,romfile={out}"], until=ipxe_initialised, timeout=30)
    keep_log("seabios-e1000-combined.log", run.seabios_log)
    ran = RAN_ON_SLOT_3.search(run.seabios_log)
    assert ran, run.seabios_log
    # iPXE's init asks SeaBIOS's PMM for memory (seed 000): proof its code ran.
    assert "pmm call arg1=1\npmm call arg1=0\n" in ran.group(2)


def test_ovmf_loads_the_efi_image_of_the_rebuilt_e1000_rom(tmp_path):
    out = tmp_path / "combined.rom"
    run_bootforge("build", REPO / "recipes/e1000-combined.toml", "-o", out, check=0)
    run = run_qemu(["-netdev", "user,id=n0,restrict=on", "-device", f"e1000,netdev=n0,romfile={out}"],
                   firmware="ovmf", memory="256", until=lambda r: IPXE_BANNER in r.serial, timeout=120)
    assert IPXE_BANNER in run.serial, run.serial[-2000:]


def test_patched_ids_run_on_the_new_device_only(hello_rom, tmp_path):
    patched = tmp_path / "rtl.rom"
    run_bootforge("patch", hello_rom, "-o", patched, "--vendor-id", "0x10ec", "--device-id", "0x8139", check=0)
    on_new = run_qemu(["-device", f"rtl8139,addr=03,romfile={patched}"], timeout=30)
    assert on_new.debugcon == f"{HELLO_INIT}\n{HELLO_BEV}\n"
    on_old = run_qemu(["-device", f"e1000,addr=03,romfile={patched}"], until=seabios_gave_up, timeout=30)
    keep_log("seabios-patched-wrong-device.log", on_old.seabios_log)
    assert on_old.debugcon == "" and not RAN_ON_SLOT_3.search(on_old.seabios_log)


def test_a_patched_ipxe_rom_still_runs(tmp_path):
    """EfiRom's bug was a checksum written over payload; bootforge's patch keeps iPXE working."""
    require(IPXE_DIR)
    patched = tmp_path / "82545em.rom"
    run_bootforge("patch", f"{IPXE_DIR}/pxe-e1000.rom", "-o", patched, "--device-id", "0x100f", check=0)
    data = patched.read_bytes()
    assert struct.unpack_from("<H", data, 0x1C + 6)[0] == 0x100F

    def ipxe_initialised(run):
        return RAN_ON_SLOT_3.search(run.seabios_log) is not None

    run = run_qemu(["-device", f"e1000-82545em,addr=03,romfile={patched}"], until=ipxe_initialised, timeout=30)
    keep_log("seabios-ipxe-patched-82545em.log", run.seabios_log)
    ran = RAN_ON_SLOT_3.search(run.seabios_log)
    assert ran and "pmm call arg1=1\npmm call arg1=0\n" in ran.group(2), run.seabios_log
    on_old = run_qemu(["-device", f"e1000,addr=03,romfile={patched}"], until=seabios_gave_up, timeout=30)
    assert not RAN_ON_SLOT_3.search(on_old.seabios_log)


def test_ovmf_decompresses_and_runs_the_compressed_e1000_driver(tmp_path):
    out = tmp_path / "packed.rom"
    run_bootforge("build", REPO / "recipes/e1000-compressed.toml", "-o", out, check=0)
    run = run_qemu(["-netdev", "user,id=n0,restrict=on", "-device", f"e1000,netdev=n0,romfile={out}"],
                   firmware="ovmf", memory="256", until=lambda r: IPXE_BANNER in r.serial, timeout=120)
    assert IPXE_BANNER in run.serial, run.serial[-2000:]
