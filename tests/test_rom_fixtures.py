"""What SeaBIOS logged in real runs (tests/data/seabios-*.log), checked
against bootforge without booting QEMU."""

import json
import re

from conftest import BUILD, DATA, REPO, require, run_bootforge


def test_bootforge_computes_the_sum_seabios_logged(tmp_path):
    require(str(BUILD / "stubs" / "hello-rom.elf"))
    rom = tmp_path / "hello.rom"
    run_bootforge("build", REPO / "recipes/hello-rom.toml", "-o", rom, check=0)
    data = bytearray(rom.read_bytes())
    data[0x1F0] ^= 0x01  # as the run that produced the log
    rom.write_bytes(data)
    log = (DATA / "seabios-hello-rom-bad-checksum.log").read_text()
    found = re.search(r"Found option rom with bad checksum: loc=(0x[0-9a-f]+) len=(\d+) sum=([0-9a-f]+)", log)
    image = json.loads(run_bootforge("inspect", "--json", rom, check=1).stdout)["images"][0]
    assert (image["size"], image["checksum"]) == (int(found.group(2)), int(found.group(3), 16))
    assert image["seabios"]["ok"] is False
    # SeaBIOS ran no ROM on slot 3, and booted nothing from it.
    assert "Searching bootorder for: /pci@i0cf8/*@3" not in log


def test_logged_ipxe_init_used_pmm_and_hello_did_not():
    ipxe = (DATA / "seabios-e1000-combined.log").read_text()
    hello = (DATA / "seabios-hello-rom.log").read_text()
    after_scan = ipxe.split("Scan for option roms\n")[1]
    assert re.match(r"Running option rom at ca00:0003\n(pmm call arg1=[01]\n)+Searching bootorder for: "
                    r"/pci@i0cf8/\*@3\n", after_scan), after_scan[:300]
    assert re.search(r"Scan for option roms\nRunning option rom at ca00:0003\nSearching bootorder for: "
                     r"/pci@i0cf8/\*@3\n", hello)
