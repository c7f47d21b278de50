"""`bootforge inspect` on the real corpus: values checked against an
independent struct reading and against what the packages are known to hold."""

import json
import struct
from pathlib import Path

import pytest

from conftest import require, require_module, run_bootforge
from romcorpus import IPXE_DIR, SEABIOS_DIR, corpus, walk


def inspect_json(*paths, check=0):
    proc = run_bootforge("inspect", "--json", *paths, check=check)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("path", corpus(), ids=lambda p: Path(p).name)
def test_images_match_an_independent_reading(path):
    data = Path(path).read_bytes()
    doc = inspect_json(path)
    assert doc["file"] == path and doc["format"] == "option-rom" and doc["size"] == len(data)
    assert doc["problems"] == []
    images = walk(data)
    assert [i["offset"] for i in doc["images"]] == [off for off, _ in images]
    for image, (off, pcir_at) in zip(doc["images"], images):
        if pcir_at is None:  # ISA-style VGA ROM
            assert image["pcir"] is None and image["size"] == data[off + 2] * 512
            assert image["seabios"]["ok"] is False and image["uefi"]["ok"] is False
            continue
        vendor, device = struct.unpack_from("<HH", data, off + pcir_at + 4)
        ilen, crev, ctype, indicator = struct.unpack_from("<HHBB", data, off + pcir_at + 0x10)
        cls = int.from_bytes(data[off + pcir_at + 0x0D:off + pcir_at + 0x10], "little")
        p = image["pcir"]
        assert (p["offset"], p["vendor_id"], p["device_id"], p["class_code"], p["code_revision"]) == \
            (pcir_at, vendor, device, cls, crev)
        assert image["image_length"] == ilen * 512 and image["code_type"] == ctype
        assert image["last"] == bool(indicator & 0x80)
        if ctype == 3:
            init = struct.unpack_from("<H", data, off + 2)[0] * 512
            assert image["size"] == init
            assert image["efi"]["image_offset"] == struct.unpack_from("<H", data, off + 0x16)[0]
        else:
            size = data[off + 2] * 512
            assert image["size"] == size
            assert image["checksum_ok"] == (sum(data[off:off + size]) % 256 == 0) is True


def test_ipxe_e1000_combined_rom_values():
    doc = inspect_json(f"{IPXE_DIR}/efi-e1000.rom")
    legacy, efi = doc["images"]
    # Debian 1.0.0+git-20190125 efi-e1000.rom: a 147-block iPXE legacy image,
    # then the 341-block X64 boot-service driver.
    assert (legacy["offset"], legacy["size"], legacy["last"]) == (0, 147 * 512, False)
    assert legacy["pcir"]["revision"] == 3 and legacy["pcir"]["device_list"] == [0x100E]
    assert legacy["pcir"]["class_code"] == 0x020000
    assert legacy["pnp"]["product"] == "iPXE" and legacy["pnp"]["manufacturer"] == "http://ipxe.org"
    assert legacy["pnp"]["bev"] != 0 and legacy["pnp"]["checksum_ok"]
    assert legacy["undi"]["checksum_ok"] and legacy["undi"]["bus_type"] == "PCIR"
    assert legacy["ipxe"]["checksum_ok"]
    assert legacy["seabios"] == {"subject": "seabios", "ok": True, "severity": "error", "words": None,
                                 "facts": {"pci_ids": ["8086:100e"]}, "reason": legacy["seabios"]["reason"]}
    assert legacy["uefi"]["ok"] is False
    assert (efi["offset"], efi["image_length"], efi["last"]) == (147 * 512, 341 * 512, True)
    assert efi["efi"]["subsystem"] == 11 and efi["efi"]["machine"] == 0x8664
    assert efi["efi"]["compression"] == 0 and efi["efi"]["image_offset"] == 0x38
    assert efi["seabios"]["ok"] is False and efi["uefi"]["ok"] is True
    assert "PciBusDxe loads" in efi["uefi"]["reason"]


def test_pe_facts_agree_with_lief():
    lief = require_module("lief")
    path = f"{IPXE_DIR}/efi-virtio.rom"
    data = Path(path).read_bytes()
    efi = inspect_json(path)["images"][1]
    pe_at = efi["offset"] + efi["efi"]["image_offset"]
    binary = lief.PE.parse(list(data[pe_at:efi["offset"] + efi["image_length"]]))
    pe = efi["efi"]["pe"]
    assert pe["machine"] == int(binary.header.machine.value)
    assert pe["subsystem"] == int(binary.optional_header.subsystem.value)
    assert pe["size_of_image"] == binary.optional_header.sizeof_image
    assert pe["entry_point"] == binary.optional_header.addressof_entrypoint


def test_text_output_is_efirom_style_with_checksum_verdicts():
    out = run_bootforge("inspect", f"{IPXE_DIR}/pxe-rtl8139.rom", check=0).stdout
    assert "Image 0 -- Offset 0x0" in out
    assert "Vendor ID                 0x10ec" in out and "Device ID                 0x8139" in out
    assert "Code type                 0x00 (x86)" in out
    assert "Indicator                 0x80 (last image)" in out
    assert out.count("(OK)") == 4  # image, $PnP, UNDI, iPXE
    assert "No problems found." in out


def test_several_files_give_a_list_and_the_worst_status():
    good = f"{IPXE_DIR}/pxe-pcnet.rom"
    proc = run_bootforge("inspect", "--json", good, f"{SEABIOS_DIR}/vgabios-stdvga.bin", check=0)
    docs = json.loads(proc.stdout)
    assert [d["file"] for d in docs] == [good, f"{SEABIOS_DIR}/vgabios-stdvga.bin"]
    assert docs[1]["images"][0]["pcir"]["vendor_id"] == 0x1234


def test_bad_checksum_is_a_defect_with_status_1(tmp_path):
    data = bytearray(Path(f"{IPXE_DIR}/pxe-e1000.rom").read_bytes())
    data[0x200] ^= 0x01
    bad = tmp_path / "bad.rom"
    bad.write_bytes(data)
    doc = inspect_json(bad, check=1)
    image = doc["images"][0]
    assert image["checksum_ok"] is False and image["checksum"] in (0x01, 0xFF)
    assert image["seabios"]["ok"] is False
    assert "Found option rom with bad checksum" in image["seabios"]["reason"]
    assert any("checksum" in p for p in doc["problems"])
    text = run_bootforge("inspect", bad, check=1).stdout
    assert "INCORRECT" in text


def test_missing_last_image_bit_is_a_defect(tmp_path):
    data = bytearray(Path(f"{IPXE_DIR}/pxe-e1000.rom").read_bytes())
    pcir = struct.unpack_from("<H", data, 0x18)[0]
    data[pcir + 0x15] &= 0x7F
    data[6] = (data[6] + 0x80) & 0xFF  # keep the image sum at 0: only the bit is wrong
    bad = tmp_path / "nolast.rom"
    bad.write_bytes(data)
    doc = inspect_json(bad, check=1)
    assert doc["images"][0]["last"] is False and doc["images"][0]["checksum_ok"] is True
    assert any("last-image bit" in p for p in doc["problems"])


def test_lief_is_not_imported_to_inspect_an_efi_rom():
    import subprocess
    import sys
    code = ("import sys; from bootforge.cli import main\n"
            "try: main(['inspect', '--json', sys.argv[1]])\n"
            "except SystemExit: pass\n"
            "assert 'lief' not in sys.modules, 'lief imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, f"{IPXE_DIR}/efi-e1000.rom"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_offset_says_what_it_is_relative_to():
    """efi-e1000.rom: the device list's PCIR-relative pointer 0x4bf is printed with the file
    offset it lands on, 0x4db (read back from the file); image 1's structures at their file
    offsets, not their offsets in the image."""
    rom = f"{IPXE_DIR}/efi-e1000.rom"
    require(rom)
    data = Path(rom).read_bytes()
    pcir = struct.unpack_from("<H", data, 0x18)[0]
    dlist = struct.unpack_from("<H", data, pcir + 8)[0]
    assert (pcir, dlist) == (0x1C, 0x4BF) and struct.unpack_from("<H", data, pcir + dlist)[0] == 0x100E
    second = struct.unpack_from("<H", data, pcir + 0x10)[0] * 512
    out = run_bootforge("inspect", rom).stdout
    assert "Device list               0x100e (PCIR + 0x4bf = file offset 0x4db)" in out
    assert "PCIR offset               0x1c (file offset 0x1c)" in out
    assert f"PCIR offset               0x1c (file offset {second + 0x1C:#x})" in out
    assert f"EFI image offset          0x38 (file offset {second + 0x38:#x})" in out
    assert "$PnP header at file offset 0x40" in out and "UNDI header at file offset 0x84" in out
    assert f"Image 1 -- Offset {second:#x} (file offset)" in out


def test_bare_efi_driver_says_whether_it_goes_in_an_option_rom(tmp_path):
    """iPXE's rtl8139 driver extracted from Debian's efi-rtl8139.rom, inspected alone: PE facts
    (lief agrees) and the option-ROM verdict, no kernel loader verdicts. The claim is then
    acted on: a [rom] recipe with type = "efi" builds it, and the built ROM's UEFI verdict loads
    it. The same driver with its subsystem set to 10 (an application) is refused by build
    in the words the rule gives."""
    lief = require_module("lief")
    rom = f"{IPXE_DIR}/efi-rtl8139.rom"
    require(rom)
    driver = tmp_path / "rtl.efi"
    run_bootforge("extract", "--image", "1", rom, "-o", driver, check=0)
    doc = inspect_json(str(driver))
    binary = lief.PE.parse(str(driver))
    assert doc["format"] == "efi-driver" and "loaders" not in doc
    assert doc["pe"]["machine"] == int(binary.header.machine.value) == 0x8664
    assert doc["pe"]["subsystem"] == int(binary.optional_header.subsystem.value) == 11
    verdict = doc["option_rom"]
    assert verdict["ok"] and verdict["facts"]["recipe_image_type"] == "efi"
    assert verdict["facts"]["loaded_by"] == "x64 UEFI (OVMF)"
    text = run_bootforge("inspect", driver, check=0).stdout
    assert ('Can go in an option ROM: [[rom.images]] type = "efi"; PciBusDxe of x64 UEFI (OVMF) loads it '
            "(EFI boot service driver, X64)") in text
    recipe = tmp_path / "rtl.toml"
    recipe.write_text(f'[rom]\nvendor_id = 0x10ec\ndevice_ids = [0x8139]\n[[rom.images]]\ntype = "efi"\n'
                      f'file = "{driver}"\n')
    built = tmp_path / "rtl.rom"
    run_bootforge("build", recipe, "-o", built, check=0)
    assert inspect_json(str(built))["images"][0]["uefi"]["ok"]
    # An application: the PE subsystem field (optional header + 0x44) set to 10.
    data = bytearray(driver.read_bytes())
    at = struct.unpack_from("<I", data, 0x3C)[0] + 0x5C
    struct.pack_into("<H", data, at, 10)
    app = tmp_path / "app.efi"
    app.write_bytes(data)
    recipe.write_text(recipe.read_text().replace(str(driver), str(app)))
    proc = run_bootforge("build", recipe, "-o", tmp_path / "app.rom")
    assert proc.returncode == 2 and ("PE subsystem 10 (EFI application): UEFI PciBusDxe loads only boot service "
                                     "(11) and runtime (12) drivers from option ROMs") in proc.stderr


def test_json_structures_carry_their_file_offsets():
    """Offsets inside an image's JSON count from the image (as the headers' pointers do); each
    structure's file_offset is where its signature is in the file (Debian's combined efi-e1000.rom:
    image 1 starts at 0x12600)."""
    rom = "/usr/lib/ipxe/qemu/efi-e1000.rom"
    require(rom)
    data = Path(rom).read_bytes()
    doc = json.loads(run_bootforge("inspect", "--json", rom, check=0).stdout)
    for image in doc["images"]:
        pcir = image["pcir"]
        assert pcir["file_offset"] == image["offset"] + pcir["offset"]
        assert data[pcir["file_offset"]:pcir["file_offset"] + 4] == b"PCIR"
        for name, magic in (("pnp", b"$PnP"), ("undi", b"UNDI")):
            if image[name] is not None:
                assert data[image[name]["file_offset"]:image[name]["file_offset"] + 4] == magic
        if image["efi"] is not None:
            assert image["efi"]["image_file_offset"] == image["offset"] + image["efi"]["image_offset"]
    assert doc["images"][1]["offset"] == 0x12600 and doc["images"][1]["efi"] is not None
