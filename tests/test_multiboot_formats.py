"""Multiboot layouts: parse and build give byte-identical round trips, on built and real bytes."""

import gzip
import struct

import pytest

from bootforge.formats import multiboot as fmt
from bootforge.multiboot import build, dump, headers
from conftest import DATA, require


def test_mb1_header_round_trips_plain_kludge_and_video():
    plain = build.build_mb1_header({})
    assert len(plain) == 12 and struct.unpack("<III", plain) == (fmt.MB1_MAGIC, 3, (-(fmt.MB1_MAGIC + 3)) & 0xFFFFFFFF)
    kludge = build.build_mb1_header({"memory_info": False}, dict(
        header_addr=0x101000, load_addr=0x100000, load_end_addr=0x102000, bss_end_addr=0x103000,
        entry_addr=0x100010))
    video = build.build_mb1_header({"video": {"mode_type": 0, "width": 1024, "height": 768, "depth": 32}})
    assert (len(kludge), len(video)) == (32, 48)
    for blob in (plain, kludge, video):
        parsed = fmt.Multiboot1Header.parse(blob)
        assert fmt.Multiboot1Header.build(parsed) == blob
        assert (parsed.magic + parsed.flags + parsed.checksum) & 0xFFFFFFFF == 0
    assert fmt.Multiboot1Header.parse(kludge).addresses.entry_addr == 0x100010
    assert fmt.Multiboot1Header.parse(video).video.width == 1024


def test_mb2_header_with_every_tag_round_trips():
    tags = build.build_mb2_tags({
        "information_request": {"types": [1, 2, 3, 6, 17], "optional": True},
        "console_flags": {"console_required": True, "ega_text_supported": True},
        "framebuffer": {"width": 800, "height": 600, "depth": 32, "optional": True},
        "module_alignment": True,
        "efi_boot_services": True,
        "entry_address_efi32": 0x100020,
        "entry_address_efi64": 0x100040,
        "relocatable": {"min_addr": 0x100000, "max_addr": 0x10000000, "align": 0x1000, "preference": "low"},
    }, entry=0x100000, address=dict(header_addr=0x100000, load_addr=0x100000, load_end_addr=0, bss_end_addr=0))
    blob = build.build_mb2_header(tags)
    assert sorted(t["type"] for t in tags) == list(range(1, 11))
    parsed = fmt.Multiboot2Header.parse(blob)
    assert fmt.Multiboot2Header.build(parsed) == blob
    assert parsed.fixed.header_length == len(blob)
    assert sum(struct.unpack_from("<4I", blob)) & 0xFFFFFFFF == 0
    decoded = headers.decode_mb2(blob, 0)
    by_type = {t["type"]: t for t in decoded["tags"]}
    assert by_type[1]["requests"] == [1, 2, 3, 6, 17] and by_type[1]["optional"]
    assert by_type[4]["console_flags"] == 3
    assert by_type[10]["preference_name"] == "low"
    assert by_type[9]["entry_addr"] == 0x100040 and by_type[2]["load_addr"] == 0x100000
    assert [t["size"] for t in decoded["tags"]] == [28, 24, 12, 12, 20, 8, 8, 12, 12, 24, 8]
    for t in decoded["tags"]:
        assert t["position"] % 8 == 0


def test_xen_headers_round_trip_byte_identical():
    require("/boot/xen-4.17-amd64.gz")
    data = gzip.decompress(open("/boot/xen-4.17-amd64.gz", "rb").read())
    mb1 = headers.find_mb1(data)
    mb2 = headers.find_mb2(data)
    assert (mb1["offset"], mb1["flags"]) == (0x88, 3)
    raw = data[mb2["offset"]:mb2["offset"] + mb2["header_length"]]
    assert fmt.Multiboot2Header.build(fmt.Multiboot2Header.parse(raw)) == raw
    raw1 = data[mb1["offset"]:mb1["offset"] + 12]
    assert fmt.Multiboot1Header.build(fmt.Multiboot1Header.parse(raw1)) == raw1


@pytest.mark.parametrize("name", ["mb-grub-pc-mb2.dump", "mb-grub-efi-mb2.dump"])
def test_captured_mb2_information_round_trips(name):
    _, _, regions, complete = dump.parse_dump((DATA / name).read_bytes())
    assert complete
    mbi = regions[0].data
    total = struct.unpack_from("<I", mbi)[0]
    parsed = fmt.Multiboot2Info.parse(mbi[:total])
    assert fmt.Multiboot2Info.build(parsed) == mbi[:total]
    assert {t.type for t in parsed.tags} >= {0, 1, 2, 3, 6, 21}


@pytest.mark.parametrize("name", ["mb-grub-pc-mb1.dump", "mb-qemu-mb1.dump", "mb-syslinux-mb1.dump"])
def test_captured_mb1_structures_round_trip(name):
    _, _, regions, _ = dump.parse_dump((DATA / name).read_bytes())
    by_name = {r.name: r.data for r in regions}
    info = fmt.Multiboot1Info.parse(by_name["mbi"])
    assert fmt.Multiboot1Info.build(info) == by_name["mbi"]
    mmap = by_name["mmap"]
    pos = 0
    while pos < len(mmap):
        entry = fmt.Multiboot1MmapEntry.parse(mmap[pos:])
        size = entry.size + 4
        assert fmt.Multiboot1MmapEntry.build(entry) == mmap[pos:pos + size]
        pos += size
    for key, layout in (("vbe_control", fmt.VbeInfoBlock), ("vbe_mode", fmt.VbeModeInfoBlock)):
        if key in by_name:
            assert layout.build(layout.parse(by_name[key])) == by_name[key]
    mods = by_name["mods"]
    for i in range(len(mods) // 16):
        assert fmt.Multiboot1Module.build(fmt.Multiboot1Module.parse(mods[16 * i:])) == mods[16 * i:16 * i + 16]


def test_every_info_tag_type_parses_and_builds():
    def tag(ttype, body):
        size = 8 + len(body)
        return struct.pack("<II", ttype, size) + body + bytes(-size % 8)
    bodies = {
        1: b"cmd\0", 2: b"loader\0", 3: struct.pack("<II", 0x1000, 0x2000) + b"m\0",
        4: struct.pack("<II", 639, 1000), 5: struct.pack("<III", 0xE0, 0xFFFFFFFF, 0xFFFFFFFF),
        6: struct.pack("<II", 24, 0) + struct.pack("<QQII", 0, 0x9FC00, 1, 0),
        7: struct.pack("<HHHH", 3, 0, 0, 0) + bytes(768),
        8: struct.pack("<QIIIBBH", 0xFD000000, 4096, 1024, 768, 32, 1, 0) + bytes([16, 8, 8, 8, 0, 8]),
        9: struct.pack("<III", 2, 40, 1) + bytes(80), 10: bytes(20), 11: struct.pack("<I", 0x7000),
        12: struct.pack("<Q", 0x7000), 13: bytes([3, 0]) + bytes(6) + b"_SM3_",
        14: b"RSD PTR " + bytes(12), 15: b"RSD PTR " + bytes(28), 16: b"\x02dhcp",
        17: struct.pack("<II", 48, 1) + bytes(96), 18: b"", 19: struct.pack("<I", 1),
        20: struct.pack("<Q", 1), 21: struct.pack("<I", 0x100000),
    }
    body = b"".join(tag(t, b) for t, b in bodies.items()) + tag(0, b"")
    mbi = struct.pack("<II", 8 + len(body), 0) + body
    parsed = fmt.Multiboot2Info.parse(mbi)
    assert fmt.Multiboot2Info.build(parsed) == mbi
    decoded = dump.decode_mb2_info(mbi)
    types = [t["type"] for t in decoded["tags"]]
    assert types == list(range(1, 22)) + [0]
    named = {t["type"]: t for t in decoded["tags"]}
    assert named[8]["red_field_position"] == 16 and named[8]["framebuffer_width"] == 1024
    assert named[9]["num"] == 2 and named[9]["sections_size"] == 80
    assert len(named[17]["descriptors"]) == 2
    assert named[3]["mod_size"] == 0x1000 and named[3]["string"] == "m"
