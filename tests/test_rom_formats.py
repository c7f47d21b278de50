"""Every header in the real corpus parses and rebuilds byte-identical."""

import struct
from pathlib import Path

import pytest

from bootforge.formats import optionrom as fmt
from romcorpus import corpus, walk


def _roundtrip(struct_, data, at, length):
    parsed = struct_.parse(data[at:])
    assert struct_.build(parsed) == data[at:at + length]
    return parsed


@pytest.mark.parametrize("path", corpus(), ids=lambda p: Path(p).name)
def test_every_header_rebuilds_byte_identical(path):
    data = Path(path).read_bytes()
    seen = set()
    for off, pcir_at in walk(data):
        is_efi = struct.unpack_from("<I", data, off + 4)[0] == 0x0EF1
        if is_efi:
            h = _roundtrip(fmt.EfiRomHeader, data, off, fmt.EFI_HEADER_SIZE)
            seen.add("efi")
            assert h.efi_signature == 0x0EF1
        else:
            h = _roundtrip(fmt.LegacyRomHeader, data, off, 0x1C)
            seen.add("legacy")
        if pcir_at is None:
            continue
        length = struct.unpack_from("<H", data, off + pcir_at + 0x0A)[0]
        p = _roundtrip(fmt.PciDataStructure, data, off + pcir_at, length)
        assert (p.vendor_id, p.device_id) == struct.unpack_from("<HH", data, off + pcir_at + 4)
        if is_efi:
            continue
        pnp_at = struct.unpack_from("<H", data, off + 0x1A)[0]
        if pnp_at and data[off + pnp_at:off + pnp_at + 4] == b"$PnP":
            _roundtrip(fmt.PnpExpansionHeader, data, off + pnp_at, 0x20)
            seen.add("pnp")
        ipxe_at, _, _, undi_at = struct.unpack_from("<HHHH", data, off + 0x10)
        if data[off + undi_at:off + undi_at + 4] == b"UNDI":
            _roundtrip(fmt.UndiRomId, data, off + undi_at, 0x16)
            seen.add("undi")
        if data[off + ipxe_at:off + ipxe_at + 4] == b"iPXE":
            _roundtrip(fmt.IpxeHeader, data, off + ipxe_at, 0x0C)
            seen.add("ipxe")
    name = Path(path).name
    if name.startswith("efi-"):
        assert seen == {"legacy", "efi", "pnp", "undi", "ipxe"}
    elif name.startswith("pxe-"):
        assert seen == {"legacy", "pnp", "undi", "ipxe"}


def test_pci30_fields_only_when_the_structure_is_long_enough():
    pcir = dict(vendor_id=0x8086, device_id=0x100E, device_list_offset=0, length=0x18, revision=0,
                class_code=0x020000, image_length=1, code_revision=0, code_type=0, indicator=0x80,
                max_runtime_length=0, pci30=None)
    assert len(fmt.PciDataStructure.build(pcir)) == 0x18
    pcir.update(length=0x1C, revision=3, pci30=dict(config_utility_offset=0, dmtf_clp_offset=0))
    assert len(fmt.PciDataStructure.build(pcir)) == 0x1C
