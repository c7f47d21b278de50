"""Readers, writers and conversions of memory maps, on real maps where there are any:
this machine's /sys/firmware/memmap and dmesg (captured in tests/data), QEMU's
SeaBIOS E820 (captured from its debug log), and an OVMF-shaped EFI map built
here descriptor by descriptor."""

import json
import re
import struct

import pytest

from bootforge.memmap import MemoryMap, MemoryRange, sanitize
from bootforge.memmap.convert import efi_to_e820, fdt_to_map, map_to_fdt
from bootforge.memmap.formats import registry
from bootforge.memmap.io import map_to_json, read_map, write_map

FORMATS = {name: (f.read, f.write, f.family) for name, f in registry().items()}
from bootforge.fdt import build_dtb, parse_dtb
from conftest import DATA, require, run_bootforge

RAM, RES, ACPI, NVS, UNUSABLE, PMEM = 1, 2, 3, 4, 5, 7
SOFT = 0xEFFFFFFF
WB, UC, SP, RUNTIME = 0x8, 0x1, 0x40000, 1 << 63

HOST_MAP = [(0, 0x9FC00, RAM), (0x9FC00, 0x60400, RES), (0x100000, 0xBFF00000, RAM),
            (0xEEC00000, 0x10000000, RES), (0x100000000, 0x540000000, RAM)]


def seabios_map(name):
    """The 'e820 map has N items' block of a SeaBIOS debug log, parsed here independently."""
    text = (DATA / name).read_text()
    rows = re.findall(r"^\s*\d+: ([0-9a-f]{16}) - ([0-9a-f]{16}) = (\d+)", text, re.M)
    count = int(re.search(r"e820 map has (\d+) items", text).group(1))
    assert len(rows) == count
    return MemoryMap("e820", [MemoryRange(int(a, 16), int(b, 16) - int(a, 16), int(t)) for a, b, t in rows])


QEMU_MAPS = ["memmap-qemu-seabios-m256.txt", "memmap-qemu-seabios-m4096.txt"]


# ---- real E820 maps ---------------------------------------------------------

def test_host_sysfs_and_dmesg_agree():
    sysfs = read_map(DATA / "memmap-sysfs-host", "e820-sysfs")
    dmesg = read_map(DATA / "memmap-dmesg-host.txt", "e820-dmesg")
    assert sysfs.keys() == HOST_MAP
    assert dmesg.keys() == HOST_MAP


def test_dmesg_writer_reproduces_the_kernels_lines():
    lines = [re.sub(r"^\[[^]]*\] ", "", line) for line in (DATA / "memmap-dmesg-host.txt").read_text().splitlines()]
    m = read_map(DATA / "memmap-dmesg-host.txt", "e820-dmesg")
    assert write_map(m, "e820-dmesg", None).decode().splitlines() == lines


def test_live_sysfs_reads_sorted_and_sanitized():
    require("/sys/firmware/memmap/0/type")      # the running kernel's firmware map (CI's machines have it)
    m = read_map("/sys/firmware/memmap", "e820-sysfs")
    assert len(m) >= 2 and m.ranges[0].start == 0 and m.ranges[0].type == RAM
    assert sanitize(m).keys() == m.keys()


def test_sysfs_writer_round_trip(tmp_path):
    m = read_map(DATA / "memmap-sysfs-host", "e820-sysfs")
    write_map(m, "e820-sysfs", tmp_path / "memmap")
    assert (tmp_path / "memmap" / "2" / "start").read_text() == "0x100000\n"
    assert (tmp_path / "memmap" / "2" / "end").read_text() == "0xbfffffff\n"
    assert (tmp_path / "memmap" / "3" / "type").read_text() == "Reserved\n"
    for n in range(5):
        for f in ("start", "end", "type"):
            assert (tmp_path / "memmap" / str(n) / f).read_text() == (DATA / "memmap-sysfs-host" / str(n) / f).read_text()


@pytest.mark.parametrize("name", QEMU_MAPS)
@pytest.mark.parametrize("fmt, options", [("e820-bin", {}), ("e820-bin", {"entry_size": 24}),
                                          ("mb1-mmap", {}), ("mb2-mmap", {}), ("json", {}),
                                          ("e820-dmesg", {})])
def test_qemu_e820_round_trips(tmp_path, name, fmt, options):
    m = seabios_map(name)
    out = tmp_path / "map"
    data = write_map(m, fmt, out, options)
    back = read_map(out, fmt, options)
    assert back.keys() == m.keys()
    assert write_map(back, fmt, None, options) == data


def test_binary_layouts_byte_for_byte():
    m = seabios_map("memmap-qemu-seabios-m256.txt")
    first = (0, 0x9FC00, 1)
    assert write_map(m, "e820-bin", None)[:20] == struct.pack("<QQI", *first)
    assert write_map(m, "e820-bin", None, {"entry_size": 24})[:24] == struct.pack("<QQII", *first, 1)
    mb1 = write_map(m, "mb1-mmap", None)
    assert len(mb1) == 24 * 7 and mb1[:24] == struct.pack("<IQQI", 20, *first)
    mb2 = write_map(m, "mb2-mmap", None)
    assert mb2[:8] == struct.pack("<II", 24, 0) and mb2[8:32] == struct.pack("<QQII", *first, 0)
    assert len(mb2) == 8 + 24 * 7


def test_qemu_e820_through_fdt_and_back(tmp_path):
    m = seabios_map("memmap-qemu-seabios-m4096.txt")
    tree = map_to_fdt(m)
    blob = build_dtb(tree)
    back = fdt_to_map(parse_dtb(blob))
    assert sanitize(back).keys() == sanitize(m).keys()
    assert [r.label for r in back.ranges if r.type == RES][:2] == ["reserved@9fc00", "reserved@f0000"]
    assert tree.node("/memory@0").prop("reg")[:16] == bytes.fromhex("00000000 00000000 00000000 0009fc00")


def test_mb1_reader_follows_size_fields():
    # GRUB writes 20; a 28-byte entry must be stepped over by its own size field
    data = struct.pack("<IQQI", 20, 0, 0x9FC00, 1) + struct.pack("<IQQI8x", 28, 0x100000, 0x1000, 2)
    m = FORMATS["mb1-mmap"][0]("x", data, {})
    assert m.keys() == [(0, 0x9FC00, 1), (0x100000, 0x1000, 2)]
    assert m.facts["mb1_entry_sizes"] == [20, 28]


# ---- EFI --------------------------------------------------------------------

# (type, start, pages, attribute): OVMF's shape plus every case the converters treat apart.
EFI_DESCRIPTORS = [
    (3, 0x0, 0x1, 0xF),                       # BS code at 0
    (7, 0x1000, 0x9F, 0xF),
    (4, 0x100000, 0x700, 0xF),                # after a hole at 640K-1M
    (7, 0x800000, 0x8, 0xF),
    (10, 0x808000, 0x8, 0xF),                 # ACPI NVS
    (7, 0x810000, 0x10, UC),                  # conventional without WB: Xen says unusable
    (1, 0x820000, 0x20, 0xF),
    (2, 0x840000, 0x20, 0xF),
    (9, 0x860000, 0x10, 0xF),                 # ACPI reclaim
    (6, 0x870000, 0x10, RUNTIME | 0xF),
    (5, 0x880000, 0x10, RUNTIME | 0xF),
    (7, 0x890000, 0x100, 0xF | SP),           # specific-purpose: Linux soft-reserves it
    (15, 0x990000, 0x10, 0xF),                # unaccepted
    (0x70000001, 0x9A0000, 0x10, 0),          # OEM: Linux's stub skips it
    (11, 0xFFC00000, 0x400, RUNTIME | UC),    # MMIO (flash)
    (14, 0x100000000, 0x1000, 0xF),           # persistent
    (8, 0x101000000, 0x10, 0xF),              # unusable
]

LINUX_STUB_E820 = [(0, 0xA0000, RAM), (0x100000, 0x708000, RAM), (0x808000, 0x8000, NVS),
                   (0x810000, 0x50000, RAM), (0x860000, 0x10000, ACPI), (0x870000, 0x20000, RES),
                   (0x890000, 0x100000, SOFT), (0x990000, 0x10000, RAM), (0xFFC00000, 0x400000, RES),
                   (0x100000000, 0x1000000, PMEM), (0x101000000, 0x10000, UNUSABLE)]

XEN_E820 = [(0, 0xA0000, RAM), (0x100000, 0x708000, RAM), (0x808000, 0x8000, NVS),
            (0x810000, 0x10000, UNUSABLE), (0x820000, 0x40000, RAM), (0x860000, 0x10000, ACPI),
            (0x870000, 0x20000, RES), (0x890000, 0x100000, RAM), (0x990000, 0x20000, RES),
            (0xFFC00000, 0x1400000, RES),          # MMIO and persistent are contiguous: one RESERVED
            (0x101000000, 0x10000, UNUSABLE)]


def efi_bin(descriptors=EFI_DESCRIPTORS, size=48):
    return b"".join(struct.pack("<IIQQQQ", t, 0, s, 0, p, a) + bytes(size - 40) for t, s, p, a in descriptors)


def efi_map(size=48):
    return FORMATS["efi-bin"][0]("efi.bin", efi_bin(size=size), {"descriptor_size": size})


def test_efi_to_e820_linux_stub_table():
    assert efi_to_e820(efi_map()).keys() == LINUX_STUB_E820


def test_efi_to_e820_linux_switches():
    plain = efi_to_e820(efi_map(), soft_reserve=False, unaccepted_memory=False).keys()
    assert (0x810000, 0x50000, RAM) in plain
    assert (0x890000, 0x100000, RAM) in plain                # no longer soft-reserved
    assert not any(a == 0x990000 for a, _, _ in plain)        # unaccepted skipped


def test_efi_to_e820_xen_table():
    assert efi_to_e820(efi_map(), "xen").keys() == XEN_E820
    with_bs = efi_to_e820(efi_map(), "xen", map_bs=True).keys()
    assert with_bs[:4] == [(0, 0x1000, RES), (0x1000, 0x9F000, RAM), (0x100000, 0x700000, RES), (0x800000, 0x8000, RAM)]


def test_efi_stub_merges_only_with_the_previous_descriptor():
    # out of order: Linux does not sort, so two RAM pieces stay apart
    shuffled = [(7, 0x2000, 1, 0xF), (7, 0x0, 1, 0xF), (7, 0x1000, 1, 0xF)]
    m = FORMATS["efi-bin"][0]("x", efi_bin(shuffled), {})
    assert efi_to_e820(m).keys() == [(0x2000, 0x1000, RAM), (0, 0x2000, RAM)]


@pytest.mark.parametrize("size", [40, 48, 56, 4096])
def test_efi_bin_round_trip_every_stride(size):
    data = efi_bin(size=size)
    m = FORMATS["efi-bin"][0]("x", data, {"descriptor_size": size})
    assert [(r.type, r.start, r.size // 4096, r.attributes) for r in m.ranges] == EFI_DESCRIPTORS
    assert write_map(m, "efi-bin", None) == data


def test_mb2_efi_mmap_tag_body():
    m = efi_map()
    body = write_map(m, "mb2-efi-mmap", None)
    assert body[:8] == struct.pack("<II", 48, 1) and body[8:] == efi_bin()
    back = FORMATS["mb2-efi-mmap"][0]("x", body, {})
    assert back.descriptor_size == 48 and back.keys() == m.keys()


def test_efi_json_keeps_types_and_attributes(tmp_path):
    m = efi_map()
    doc = map_to_json(m)
    assert doc["entries"][0] == {"start": 0, "size": 4096, "type": "boot-services-code", "efi_type": 3,
                                 "attributes": 0xF}
    assert doc["entries"][13]["type"] == "oem-0x70000001"
    write_map(m, "json", tmp_path / "m.json")
    back = read_map(tmp_path / "m.json", "json")
    assert back.family == "efi" and back.keys() == m.keys()
    assert write_map(back, "efi-bin", None) == efi_bin()


def test_json_by_type_names_only(tmp_path):
    (tmp_path / "m.json").write_text('{"entries": [{"start": 0, "size": 4096, "type": "ram"},'
                                     ' {"start": "0x1000", "size": 4096, "type": "soft-reserved"},'
                                     ' {"start": 8192, "size": 4096, "type": "e820-type-6"}]}')
    assert read_map(tmp_path / "m.json", "json").keys() == [(0, 4096, RAM), (0x1000, 4096, SOFT), (0x2000, 4096, 6)]
    (tmp_path / "e.json").write_text('{"entries": [{"start": 0, "size": 4096, "type": "conventional"}]}')
    assert read_map(tmp_path / "e.json", "json").family == "efi"


def test_efi_table_is_the_uefi_shell_layout():
    text = write_map(efi_map(), "table", None).decode().splitlines()
    assert text[0] == "Type       Start            End              # Pages          Attributes"
    assert text[1] == "BS_Code    0000000000000000-0000000000000FFF 0000000000000001 000000000000000F"
    assert text[10] == "RT_Data    0000000000870000-000000000087FFFF 0000000000000010 800000000000000F"
    assert "  Available :            439 Pages (1,798,144 Bytes)" in text


# ---- maps real loaders passed (the Multiboot issue's captured dumps) -----------------


def dump(name):
    return (DATA / name).read_bytes()


@pytest.mark.parametrize("name", ["mb-grub-pc-mb1.dump", "mb-grub-pc-mb2.dump", "mb-syslinux-mb1.dump"])
def test_bios_loaders_pass_seabios_e820_unchanged(name):
    """GRUB i386-pc and Syslinux at -m 256 hand over exactly the E820 SeaBIOS built."""
    m = read_map(DATA / name, "mbdump")
    assert m.keys() == seabios_map("memmap-qemu-seabios-m256.txt").keys()


def test_qemu_multiboot_loader_mmap():
    m = read_map(DATA / "mb-qemu-mb1.dump", "mbdump")
    assert m.keys()[3] == (0x100000, 0x7EE0000, RAM)        # -m 128
    assert m.facts["mb1_entry_sizes"] == [20]


@pytest.mark.parametrize("name", ["mb-grub-pc-mb1.dump", "mb-grub-pc-mb2.dump", "mb-syslinux-mb1.dump",
                                  "mb-qemu-mb1.dump", "mb-grub-efi-mb2.dump"])
def test_loader_maps_rebuild_byte_for_byte(name):
    from bootforge.memmap.formats.mbdump import mbdump_bodies
    (body, fmt), efi_body = mbdump_bodies(name, dump(name))
    m = FORMATS[fmt][0](name, body, {})
    assert write_map(m, fmt, None) == body
    if efi_body is not None:
        e = FORMATS["mb2-efi-mmap"][0](name, efi_body, {})
        assert len(e) == 128 and e.descriptor_size == 48
        assert write_map(e, "mb2-efi-mmap", None) == efi_body


def test_ovmf_map_through_the_linux_stub_agrees_with_grub():
    """OVMF's real EFI map (GRUB tag 17) converted by the stub's table equals GRUB's own
    tag 6 once GRUB's private type 20 (its runtime code) counts as reserved, both sanitized."""
    efi = read_map(DATA / "mb-grub-efi-mb2.dump", "mbdump-efi")
    grub = read_map(DATA / "mb-grub-efi-mb2.dump", "mbdump")
    stub = efi_to_e820(efi)
    assert stub.keys()[:3] == [(0, 0xA0000, RAM), (0x100000, 0x706000, RAM), (0x806000, 0x2000, NVS)]
    assert len(stub) == 16
    for r in grub.ranges:
        if r.type == 20:
            r.type = RES
    assert sanitize(stub).keys() == sanitize(grub).keys()
    assert sanitize(stub).keys() == stub.keys()         # the stub's output is already sanitized here


# ---- SMBIOS type 19 ------------------------------------------------------------

def test_smbios_type19_table_round_trip_with_extended_addresses():
    from bootforge.memmap.formats.smbios import build_smbios_table, read_smbios_table
    m = MemoryMap("e820", [MemoryRange(0, 0xA0000, RAM), MemoryRange(0xA0000, 0x60000, RES),
                           MemoryRange(0x100000, 0xBFF00000, RAM),
                           MemoryRange(0x400_0000_0000, 0x1_0000_0000, RAM)])     # 4 TiB: KiB overflow 32 bits
    table = build_smbios_table(m)
    # first structure, byte for byte: type 19, length 0x1F, handle 0x1300, KiB 0..0x27F, array 0x1000, width 1
    assert table[:0x21] == bytes.fromhex("131f0013 00000000 7f020000 0010 01") + bytes(16) + b"\0\0"
    third = table[2 * 0x21:3 * 0x21]
    assert struct.unpack_from("<II", third, 4) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack_from("<QQ", third, 0x0F) == (0x400_0000_0000, 0x400_FFFF_FFFF)
    assert table[-6:] == bytes.fromhex("7f04fffe0000")
    back = read_smbios_table("t", table)
    assert back.keys() == [(0, 0xA0000, RAM), (0x100000, 0xBFF00000, RAM), (0x400_0000_0000, 0x1_0000_0000, RAM)]


def test_smbios_reader_skips_other_structures_and_their_strings():
    from bootforge.memmap.formats.smbios import read_smbios_table
    bios = bytes([0, 0x12, 0, 0]) + bytes(0x0E) + b"SeaBIOS\0" + b"1.16.2\0\0"
    old19 = struct.pack("<BBHIIHB", 19, 0x0F, 0x1300, 0x400, 0x7FFFF, 0x1000, 1) + b"\0\0"
    table = bios + old19 + struct.pack("<BBH", 127, 4, 0xFEFF) + b"\0\0"
    assert read_smbios_table("t", table).keys() == [(0x100000, 0x1FF00000, RAM)]


def test_smbios_reader_rejects_lies():
    from bootforge.errors import FormatError
    from bootforge.memmap.formats.smbios import read_smbios_table
    with pytest.raises(FormatError, match="does not fit"):
        read_smbios_table("t", struct.pack("<BBH", 19, 0xF0, 0) + bytes(20))
    with pytest.raises(FormatError, match="no string-set terminator"):
        read_smbios_table("t", struct.pack("<BBH", 1, 4, 0) + b"abc")
    with pytest.raises(FormatError, match="ends .* before it starts"):
        read_smbios_table("t", struct.pack("<BBHIIHB", 19, 0x0F, 1, 0x800, 0x400, 0, 1) + b"\0\0")


@pytest.mark.parametrize("fmt", ["e820-bin", "mb1-mmap", "mb2-mmap", "json", "e820-dmesg", "fdt", "smbios"])
def test_host_map_round_trips_through_every_e820_form(tmp_path, fmt):
    m = read_map(DATA / "memmap-sysfs-host", "e820-sysfs")
    write_map(m, fmt, tmp_path / "out")
    back = read_map(tmp_path / "out", fmt)
    if fmt == "smbios":                      # type 19 describes RAM only
        assert back.keys() == [k for k in HOST_MAP if k[2] == RAM]
    elif fmt == "fdt":                       # memory first, then reserved-memory: equal once sanitized
        assert sanitize(back).keys() == HOST_MAP
    else:
        assert back.keys() == HOST_MAP


def test_efi_to_e820_add_efi_memmap_pass():
    # WB-less conventional memory is reserved, OEM and unaccepted are reserved (not skipped), sanitized.
    assert efi_to_e820(efi_map(), "add-efi-memmap").keys() == [
        (0, 0xA0000, RAM), (0x100000, 0x708000, RAM), (0x808000, 0x8000, NVS), (0x810000, 0x10000, RES),
        (0x820000, 0x40000, RAM), (0x860000, 0x10000, ACPI), (0x870000, 0x20000, RES),
        (0x890000, 0x100000, SOFT), (0x990000, 0x20000, RES), (0xFFC00000, 0x400000, RES),
        (0x100000000, 0x1000000, PMEM), (0x101000000, 0x10000, UNUSABLE)]


# ---- robustness: any bytes give a map or a located BootforgeError ----------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bootforge.errors import BootforgeError  # noqa: E402

BYTE_FORMATS = ["e820-bin", "efi-bin", "mb1-mmap", "mb2-mmap", "mb2-efi-mmap", "json", "e820-dmesg",
                "smbios", "fdt", "mbdump"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BYTE_FORMATS), st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_exceptions(fmt, data):
    try:
        m = FORMATS[fmt][0]("fuzz.bin", data, {})
    except BootforgeError:
        return
    assert all(0 <= r.start and r.start + r.size < 1 << 64 for r in m.ranges)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["mb-grub-efi-mb2.dump", "mb-qemu-mb1.dump"]), st.integers(0, 5000), st.integers(0, 255))
def test_damaged_dumps_never_escape_as_other_exceptions(name, at, value):
    data = bytearray(dump(name))
    data[at % len(data)] = value
    for fmt in ("mbdump", "mbdump-efi"):
        try:
            FORMATS[fmt][0](name, bytes(data), {})
        except BootforgeError:
            pass


# ---- GRUB lsefimmap text is a memory-map format like any other ----------------------------

LSEFIMMAP_256M = DATA / "load-ovmf-q35-256M.lsefimmap"


def test_lsefimmap_is_guessed_and_read_as_grub_printed_it():
    # Line 1 of the capture: "BS-code 0000000000000000-0000000000000fff 00000001 4KiB UC WC WT WB";
    # line 80: "RT-data 000000000eaa0000-000000000eba1fff 00000102 1032KiB RT UC WC WT WB".
    proc = run_bootforge("memmap", "convert", str(LSEFIMMAP_256M), "--to", "json", check=0)
    doc = json.loads(proc.stdout)
    assert doc["family"] == "efi"
    first = doc["entries"][0]
    assert (first["start"], first["size"], first["type"], first["attributes"]) == (0, 0x1000, "boot-services-code", 0xF)
    rt = next(e for e in doc["entries"] if e["start"] == 0xEAA0000)
    assert (rt["size"], rt["type"], rt["attributes"]) == (0x102 * 4096, "runtime-services-data", (1 << 63) | 0xF)


def test_lsefimmap_reads_the_same_through_memmap_inspect_and_the_platform_loader():
    from bootforge.loader.platforms import from_file
    text = run_bootforge("memmap", "show", "--from", "lsefimmap", str(LSEFIMMAP_256M), check=0).stdout
    inspected = json.loads(run_bootforge("inspect", "--json", str(LSEFIMMAP_256M), check=0).stdout)
    assert inspected["format"] == "lsefimmap"
    platform = from_file(LSEFIMMAP_256M)
    assert platform.firmware == "uefi" and platform.grub_heap_included
    assert [(e["start"], e["size"]) for e in inspected["entries"]] == [(r.start, r.size) for r in platform.memory_map.ranges]
    # 125 descriptors in the capture (one line each after the comment).
    lines = [ln for ln in LSEFIMMAP_256M.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(platform.memory_map.ranges) == len(lines) == 125
    assert text.splitlines()[-1].startswith("125 ranges (efi)")
