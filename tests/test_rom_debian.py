"""Debian's real option ROMs (qemu-system-data,
seabios and ipxe-qemu packages), each checked against the bytes and SeaBIOS's rules
(src/optionroms.c: get_pci_rom/get_pnp_rom return NULL without the signature,
vgarom_setup runs the VGA ROM with isvga, optionrom_setup skips VGA-class devices)."""

import json
import struct
from pathlib import Path

import pytest

from conftest import require, run_bootforge
from romcorpus import IPXE_DIR, SEABIOS_DIR

KVMVAPIC = "/usr/share/qemu/kvmvapic.bin"
NE2K = "/usr/lib/ipxe/qemu/pxe-ne2k_pci.rom"
VGA_ROMS = ("ati", "bochs-display", "cirrus", "qxl", "stdvga", "virtio", "vmware")


def inspect_json(path, status=0):
    proc = run_bootforge("inspect", "--json", path)
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    return json.loads(proc.stdout)


def test_kvmvapic_pointers_to_no_signature_are_notes():
    require(KVMVAPIC)
    data = Path(KVMVAPIC).read_bytes()
    pcir_at, pnp_at = struct.unpack_from("<HH", data, 0x18)
    # The bytes at 0x18 are code: neither pointer lands on its signature.
    assert data[pcir_at:pcir_at + 4] != b"PCIR" and data[pnp_at:pnp_at + 4] != b"$PnP"
    doc = inspect_json(KVMVAPIC)
    assert doc["problems"] == []
    image = doc["images"][0]
    assert image["pcir"] is None and image["pnp"] is None
    assert image["size"] == data[2] * 512
    assert any(f"PCIR pointer (offset 0x18) {pcir_at:#x}" in n and "no PCI data structure" in n
               for n in doc["notes"]), doc["notes"]
    assert any(f"$PnP pointer (offset 0x1a) {pnp_at:#x}" in n for n in doc["notes"]), doc["notes"]
    text = run_bootforge("inspect", KVMVAPIC, check=0).stdout
    assert "Notes:" in text and "No problems found." in text


def test_stray_next_pnp_pointer_is_a_note(tmp_path):
    # pxe-e1000.rom's one $PnP header at 0x40, its next pointer sent to bytes without '$PnP'.
    src = f"{IPXE_DIR}/pxe-e1000.rom"
    require(src)
    data = bytearray(Path(src).read_bytes())
    assert data[0x40:0x44] == b"$PnP"
    struct.pack_into("<H", data, 0x40 + 6, 0x200)
    data[0x40 + 9] = (data[0x40 + 9] - sum(data[0x40:0x60])) & 0xFF   # $PnP checksum byte
    size = data[2] * 512
    data[size - 1] = (data[size - 1] - sum(data[:size])) & 0xFF         # image checksum (last byte)
    path = tmp_path / "next.rom"
    path.write_bytes(bytes(data))
    doc = inspect_json(path)
    assert len(doc["images"][0]["pnp"]["chain"]) == 0
    assert any("next $PnP pointer of the header at 0x40 0x200 points at no '$PnP' signature" in n
               for n in doc["notes"]), doc["notes"]


@pytest.mark.parametrize("name", VGA_ROMS)
def test_seabios_runs_pci_vga_roms_at_post(name):
    path = f"{SEABIOS_DIR}/vgabios-{name}.bin"
    require(path)
    data = Path(path).read_bytes()
    pcir_at = struct.unpack_from("<H", data, 0x18)[0]
    assert data[pcir_at:pcir_at + 4] == b"PCIR"
    class_code = int.from_bytes(data[pcir_at + 0x0D:pcir_at + 0x10], "little")
    assert class_code >> 8 == 0x0300                     # VGA, from the bytes
    verdict = inspect_json(path)["images"][0]["seabios"]
    assert verdict["ok"] is True
    assert "run at POST as the VGA BIOS" in verdict["reason"]
    assert "gives no boot entry" in verdict["reason"]
    assert "BCV" not in verdict["reason"]


def test_rom_with_zero_ids_cannot_be_matched():
    require(NE2K)
    data = Path(NE2K).read_bytes()
    pcir_at = struct.unpack_from("<H", data, 0x18)[0]
    assert struct.unpack_from("<HH", data, pcir_at + 4) == (0, 0)
    verdict = inspect_json(NE2K)["images"][0]["seabios"]
    assert verdict["ok"] is False
    assert "cannot be matched to a device" in verdict["reason"]
    assert "runs on a PCI device" not in verdict["reason"]


def test_images_numbered_from_zero_with_pci30_pointers(tmp_path):
    # efi-e1000.rom: two images, the first a PCI 3.0 legacy image; set its configuration
    # utility and DMTF CLP pointers (PCIR + 0x18, 0x1A) as a vendor ROM would, and keep its
    # image checksum right through the last byte of the image.
    src = f"{IPXE_DIR}/efi-e1000.rom"
    require(src)
    data = bytearray(Path(src).read_bytes())
    pcir_at = struct.unpack_from("<H", data, 0x18)[0]
    assert data[pcir_at + 0x0C] == 3 and struct.unpack_from("<H", data, pcir_at + 0x0A)[0] >= 0x1C
    struct.pack_into("<HH", data, pcir_at + 0x18, 0x1234, 0x0560)
    size = data[2] * 512
    data[size - 1] = (data[size - 1] - sum(data[:size])) & 0xFF
    second = struct.unpack_from("<H", data, pcir_at + 0x10)[0] * 512
    path = tmp_path / "ptrs.rom"
    path.write_bytes(bytes(data))
    text = run_bootforge("inspect", path, check=0).stdout
    assert "Image 0 -- Offset 0x0" in text and f"Image 1 -- Offset {second:#x}" in text
    assert "Image 2" not in text
    first_text = text[:text.index("Image 1 -- ")]
    assert "Config utility            0x1234" in first_text and "DMTF CLP entry            0x0560" in first_text
    doc = inspect_json(path)
    assert [i["index"] for i in doc["images"]] == [0, 1]
    pcir = doc["images"][0]["pcir"]
    assert (pcir["config_utility_offset"], pcir["dmtf_clp_offset"]) == (0x1234, 0x560)
