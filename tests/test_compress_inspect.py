"""`bootforge inspect` of a raw UEFI-compressed stream (issue 15 item 8): the stream cut out of
a real compressed option ROM is named, decoded with the right variant and its contents named."""

import json
import struct

from conftest import REPO, assert_one_line_error, require, run_bootforge

E1000 = "/usr/lib/ipxe/qemu/efi-e1000.rom"


def test_stream_cut_from_a_compressed_rom_is_named(tmp_path):
    require(E1000)
    rom = tmp_path / "c.rom"
    assert run_bootforge("build", REPO / "recipes/e1000-compressed.toml", "-o", rom).returncode == 0
    image = tmp_path / "image1"
    assert run_bootforge("extract", rom, "--image", "1", "--raw", "-o", image).returncode == 0
    raw = image.read_bytes()
    # The EFI ROM header's image offset (u16 at 0x16, PCI Firmware Spec 3.0 table 5-2).
    offset = struct.unpack_from("<H", raw, 0x16)[0]
    stream = tmp_path / "driver.efi.z"
    stream.write_bytes(raw[offset:])
    compressed, original = struct.unpack_from("<II", raw, offset)
    proc = run_bootforge("inspect", "--json", stream)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"] == "efi-compressed"
    assert (doc["compressed_size"], doc["original_size"]) == (compressed, original)
    assert doc["variant"] == "efi" and doc["decoded_format"] == "efi-driver"     # iPXE's e1000 EFI driver
    # and what it names is what decompression gives: the driver bytes of efi-e1000.rom's image 1
    driver = tmp_path / "driver.efi"
    assert run_bootforge("decompress", "--format", "efi", stream, "-o", driver).returncode == 0
    assert driver.read_bytes()[:2] == b"MZ" and len(driver.read_bytes()) == original
    text = run_bootforge("inspect", stream).stdout
    assert "UEFI compressed stream" in text and "decodes as       efi" in text


def test_tiano_stream_of_an_elf(tmp_path):
    packed = tmp_path / "ls.tiano"
    assert run_bootforge("compress", "--format", "tiano", "/bin/ls", "-o", packed).returncode == 0
    doc = json.loads(run_bootforge("inspect", "--json", packed).stdout)
    assert (doc["variant"], doc["decoded_format"]) == ("tiano", "elf")
    assert doc["original_size"] == len(open("/bin/ls", "rb").read())


def test_header_that_lies_is_not_taken_for_a_stream(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(struct.pack("<II", 10_000, 20) + bytes(100))     # size past the end
    proc = run_bootforge("inspect", junk)
    assert proc.returncode == 2 and "not a format bootforge knows" in proc.stderr


def test_named_format_of_a_file_shorter_than_the_header_is_one_line(tmp_path):
    """`inspect --format efi-compressed` of 5 bytes (the fuzz harness inspect-rest's input): one
    line at the file's end, not struct.error escaping from the header read."""
    short = tmp_path / "short.bin"
    short.write_bytes(b"hello")
    assert_one_line_error(run_bootforge("inspect", "--format", "efi-compressed", short), "short.bin", "offset 0x5",
                          "header has 8")
