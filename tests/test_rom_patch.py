"""`bootforge patch` on real ROMs: hex ids, device lists kept, only validated bytes written,
bad checksums not hidden (issue 15 items 4, 5, 6)."""

import json
import struct
from pathlib import Path

from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge
from romcorpus import IPXE_DIR

HELLO_STUB = BUILD / "stubs" / "hello-rom.elf"
E1000 = f"{IPXE_DIR}/pxe-e1000.rom"


def pcir_of(data, image_offset=0):
    at = image_offset + struct.unpack_from("<H", data, image_offset + 0x18)[0]
    vendor, device, dlist, length, rev = struct.unpack_from("<HHHHB", data, at + 4)
    return at, vendor, device, dlist


def device_list(data, image_offset=0):
    at, _, _, dlist = pcir_of(data, image_offset)
    ids, p = [], at + dlist
    while (dev := struct.unpack_from("<H", data, p)[0]) != 0:
        ids.append(dev)
        p += 2
    return ids


def changed(a, b):
    return [i for i in range(len(a)) if a[i] != b[i]]


def multi_device_rom(tmp_path):
    require(str(HELLO_STUB))
    out = tmp_path / "md.rom"
    run_bootforge("build", REPO / "recipes/multi-device.toml", "-o", out, check=0)
    return out


# -- item 4: ids are hex, as lspci prints them ----------------------------------

def test_ids_are_read_as_hex_with_or_without_0x(tmp_path):
    require(E1000)
    for spelling in ("10ec", "0x10ec", "10EC", "0X10EC"):
        out = tmp_path / f"{spelling}.rom"
        run_bootforge("patch", E1000, "-o", out, "--vendor-id", spelling, "--device-id", "8139", check=0)
        _, vendor, device, _ = pcir_of(out.read_bytes())
        assert (vendor, device) == (0x10EC, 0x8139), spelling
    # The case: 8086 was read as decimal and 0x1f96 written.
    out = tmp_path / "8086.rom"
    run_bootforge("patch", E1000, "-o", out, "--vendor-id", "8086", "--device-id", "100f", check=0)
    assert pcir_of(out.read_bytes())[1] == 0x8086


def test_bad_hex_ids_are_usage_errors_and_help_says_hex(tmp_path):
    require(E1000)
    for value, fragment in (("80861", "does not fit 16 bits"), ("0xzz", "not a hexadecimal"), ("", "not a hex")):
        proc = run_bootforge("patch", E1000, "-o", tmp_path / "x.rom", "--vendor-id", value)
        assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "x.rom").exists()
    help_text = " ".join(run_bootforge("patch", "--help", check=0).stdout.split())
    for option in ("--vendor-id HEX", "--device-id HEX", "--class-code HEX", "--device-list HEX,HEX"):
        assert option in help_text
    assert "hexadecimal, with or without 0x" in help_text


# -- item 5: the device list is kept unless asked, every range reported ---------

def test_device_id_keeps_the_four_id_list_of_multi_device(tmp_path):
    src = multi_device_rom(tmp_path)
    before = src.read_bytes()
    assert device_list(before) == [0x100E, 0x100F, 0x10D3, 0x153A]
    out = tmp_path / "p.rom"
    proc = run_bootforge("patch", src, "-o", out, "--device-id", "1234", check=0)
    after = out.read_bytes()
    pcir_at, _, device, _ = pcir_of(after)
    assert device == 0x1234 and device_list(after) == [0x100E, 0x100F, 0x10D3, 0x153A]
    # Exactly the device id word and the checksum byte changed, and the report names both ranges.
    assert changed(before, after) == [6, pcir_at + 6, pcir_at + 7]
    assert f"bytes changed (ROM offsets): 0x6, {pcir_at + 6:#x}-{pcir_at + 7:#x}" in proc.stdout
    assert "device_id 0x100e -> 0x1234" in proc.stdout
    assert sum(after[:512]) % 256 == 0


def test_device_list_replaces_the_list_within_its_room(tmp_path):
    src = multi_device_rom(tmp_path)
    before = src.read_bytes()
    out = tmp_path / "p.rom"
    proc = run_bootforge("patch", src, "-o", out, "--device-list", "1234,0x5678", check=0)
    after = out.read_bytes()
    pcir_at, _, device, dlist = pcir_of(after)
    assert device == 0x100E and device_list(after) == [0x1234, 0x5678]
    list_at = pcir_at + dlist
    # The old list was 4 ids + terminator: 10 bytes; the rest is zeroed, nothing past it moves.
    assert after[list_at:list_at + 10] == struct.pack("<5H", 0x1234, 0x5678, 0, 0, 0)
    assert set(changed(before, after)) <= {6, *range(list_at, list_at + 10)}
    assert "device_list [0x100e, 0x100f, 0x10d3, 0x153a] -> [0x1234, 0x5678]" in proc.stdout
    assert f"{list_at:#x}-{list_at + 7:#x}" in proc.stdout
    doc = json.loads(run_bootforge("inspect", "--json", out, check=0).stdout)
    assert doc["images"][0]["pcir"]["device_list"] == [0x1234, 0x5678]
    # More ids than the list holds: refused, nothing written.
    proc = run_bootforge("patch", src, "-o", tmp_path / "big.rom", "--device-list", "1,2,3,4,5")
    assert_one_line_error(proc, str(src), "holds 4 id(s); 5 do not fit")
    assert not (tmp_path / "big.rom").exists()


def test_ipxe_device_list_in_its_text_is_kept_and_replaceable(tmp_path):
    """iPXE places its list (0x100e, 0) at 0x4db, right after a ret in its prefix code."""
    require(E1000)
    before = Path(E1000).read_bytes()
    out = tmp_path / "p.rom"
    run_bootforge("patch", E1000, "-o", out, "--device-id", "100f", check=0)
    assert device_list(out.read_bytes()) == [0x100E]
    run_bootforge("patch", E1000, "-o", out, "--device-list", "100f", check=0)
    after = out.read_bytes()
    assert device_list(after) == [0x100F] and changed(before, after) == [6, 0x4DB]
    # ne2k's list is empty (the terminator alone): nothing fits.
    proc = run_bootforge("patch", f"{IPXE_DIR}/pxe-ne2k_pci.rom", "-o", out, "--device-list", "8029")
    assert_one_line_error(proc, "holds 0 id(s)")


def test_device_list_pointer_into_code_is_never_written(tmp_path):
    """The same ROM made the way the broken ones are: the PCI 3.0 list pointer moved onto
    the init code (iPXE's entry at 0xa8). --device-id writes the PCIR word and the checksum
    byte only; --device-list is refused."""
    require(E1000)
    data = bytearray(Path(E1000).read_bytes())
    pcir_at = 0x1C
    entry = 6 + struct.unpack_from("<h", data, 4)[0]
    struct.pack_into("<H", data, pcir_at + 8, entry - pcir_at)
    data[6] = (data[6] - sum(data[:data[2] * 512])) & 0xFF       # keep the ROM balanced
    rom = tmp_path / "code.rom"
    rom.write_bytes(data)
    out = tmp_path / "p.rom"
    run_bootforge("patch", rom, "-o", out, "--device-id", "1234", check=0)
    assert changed(data, out.read_bytes()) == [6, pcir_at + 6, pcir_at + 7]
    proc = run_bootforge("patch", rom, "-o", out, "--device-list", "100f")
    assert_one_line_error(proc, str(rom), "overlaps the init entry", "will not write there")


def test_pci23_rom_has_no_list_to_replace(tmp_path):
    vga = "/usr/share/seabios/vgabios-stdvga.bin"
    require(vga)
    proc = run_bootforge("patch", vga, "-o", tmp_path / "o.rom", "--device-list", "1234")
    assert_one_line_error(proc, "PCI 2.x data structure has no device list")


# -- item 6: a checksum that was already bad is not re-balanced silently --------

def test_already_bad_checksum_is_refused_without_fix_checksums(tmp_path):
    require(E1000)
    data = bytearray(Path(E1000).read_bytes())
    data[0x1000] ^= 0x40            # a corrupted payload byte: the image no longer sums to 0
    rom = tmp_path / "bad.rom"
    rom.write_bytes(data)
    out = tmp_path / "p.rom"
    proc = run_bootforge("patch", rom, "-o", out, "--device-id", "100f")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "checksum was already bad" in proc.stderr and "--fix-checksums" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    run_bootforge("patch", rom, "-o", out, "--device-id", "100f", "--fix-checksums", check=0)
    fixed = out.read_bytes()
    assert sum(fixed[:fixed[2] * 512]) % 256 == 0 and fixed[0x1000] == data[0x1000]


# -- class codes as lspci shows them --------------------------------------------------

def class_code_of(data, image_offset=0):
    at = pcir_of(data, image_offset)[0]
    return int.from_bytes(data[at + 0x0D:at + 0x10], "little")


def test_class_code_in_both_lspci_forms(tmp_path):
    """`lspci -n` prints 0200 (class, subclass), `lspci -nn`'s prog-if form is 020000: both are
    0x020000 in the PCIR, with or without 0x; the result's class is printed by name."""
    require(E1000)
    for text, code, name in [("0x0300", 0x030000, "VGA compatible controller [0300], prog-if 00"),
                             ("0300", 0x030000, "VGA compatible controller [0300], prog-if 00"),
                             ("030000", 0x030000, "VGA compatible controller [0300], prog-if 00"),
                             ("0x0c0330", 0x0C0330, "USB controller [0c03], prog-if 30")]:
        out = tmp_path / "p.rom"
        proc = run_bootforge("patch", E1000, "--class-code", text, "-o", out, check=0)
        assert class_code_of(out.read_bytes()) == code, text
        assert f"class_code 0x020000 (Ethernet controller [0200], prog-if 00) -> {code:#08x} ({name})" \
            in proc.stdout, proc.stdout
    # Setting what is there already still names it.
    proc = run_bootforge("patch", E1000, "--class-code", "0200", "-o", tmp_path / "same.rom", check=0)
    assert "class_code 0x020000 (Ethernet controller [0200], prog-if 00) unchanged" in proc.stdout


def test_ambiguous_class_code_lengths_are_refused(tmp_path):
    require(E1000)
    for text in ("200", "0x200", "20000", "2"):
        proc = run_bootforge("patch", E1000, "--class-code", text, "-o", tmp_path / "x.rom")
        assert proc.returncode == 2 and "ambiguous" in proc.stderr and "0200" in proc.stderr, text
        assert not (tmp_path / "x.rom").exists()


# -- a device list on a combined ROM ---------------------------------------------------

EFI_E1000 = f"{IPXE_DIR}/efi-e1000.rom"


def test_device_list_goes_to_the_images_that_have_one(tmp_path):
    """efi-e1000.rom: image 0 (legacy, PCI 3.0, list [0x100e] at file offset 0x4db) takes the
    list; image 1 (EFI, PCI 2.x PCIR) cannot and is named as skipped."""
    require(EFI_E1000)
    before = Path(EFI_E1000).read_bytes()
    out = tmp_path / "p.rom"
    proc = run_bootforge("patch", "--device-list", "10d3", EFI_E1000, "-o", out, check=0)
    after = out.read_bytes()
    assert device_list(after) == [0x10D3]
    assert changed(before, after) == [0x6, 0x4DB]          # image 0's checksum byte and the list
    second = struct.unpack_from("<H", before, 0x1C + 0x10)[0] * 512
    assert f"image 1 at {second:#x}: --device-list skipped: PCI 2.x data structure has no device list" \
        in proc.stdout
    assert "image 0 at 0x0: checksum byte at file offset 0x6" in proc.stdout
    # Asked of that image alone, it is still an error.
    proc = run_bootforge("patch", "--device-list", "10d3", "--image", "1", EFI_E1000, "-o", tmp_path / "x.rom")
    assert_one_line_error(proc, "image 1: PCI 2.x data structure has no device list")
    # No image able to take it: an error naming why, nothing written.
    proc = run_bootforge("patch", "--device-list", "10d3", "/usr/share/seabios/vgabios-stdvga.bin",
                         "-o", tmp_path / "y.rom")
    assert_one_line_error(proc, "no image can take a device list", "image 0 at 0x0")
    assert not (tmp_path / "y.rom").exists()
