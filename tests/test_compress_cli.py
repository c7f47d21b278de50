"""`bootforge compress` / `bootforge decompress`: round trips and bad input, through the real CLI."""

import struct

import pytest
from conftest import assert_one_line_error, require, run_bootforge
from test_compress_corpus import edk2

from bootforge.compress import compress

SAMPLE = b"".join(b"entry %d: jmp init; call pnp\n" % (i % 37) for i in range(400))


def stream(bits, original_size, compressed_size=None):
    """Header + an MSB-first bit string, zero padded: hand-made streams for bad-input tests."""
    bits += "0" * (-len(bits) % 8)
    body = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    size = len(body) if compressed_size is None else compressed_size
    return struct.pack("<II", size, original_size) + body


def b(value, width):
    return format(value, f"0{width}b")


# Block pieces (EFI: P count is 4 bits). "Empty" sets use the count-0 single-symbol form.
NO_T = b(0, 5) + b(0, 5)
NO_P = b(0, 4) + b(0, 4)


def single_c(symbol):
    return NO_T + b(0, 9) + b(symbol, 9)


@pytest.mark.parametrize("fmt", ["efi", "tiano"])
def test_cli_round_trip_decodes_with_edk2(tmp_path, fmt):
    source = tmp_path / "in.bin"
    source.write_bytes(SAMPLE)
    packed, unpacked = tmp_path / "in.cmp", tmp_path / "out.bin"
    run_bootforge("compress", "--format", fmt, source, "-o", packed, check=0)
    data = packed.read_bytes()
    assert data == compress(SAMPLE, fmt)
    assert len(data) < len(SAMPLE) // 5
    _, edk2_decompress = edk2()[fmt]
    assert edk2_decompress(data, len(data)) == SAMPLE
    run_bootforge("decompress", "--format", fmt, packed, "-o", unpacked, check=0)
    assert unpacked.read_bytes() == SAMPLE


def test_cli_decompresses_edk2_output(tmp_path):
    edk2_compress, _ = edk2()["tiano"]
    packed = tmp_path / "edk2.cmp"
    packed.write_bytes(edk2_compress(SAMPLE, len(SAMPLE)))
    run_bootforge("decompress", "--format", "tiano", packed, "-o", tmp_path / "out", check=0)
    assert (tmp_path / "out").read_bytes() == SAMPLE


def test_hand_made_stream_decodes():
    """The helpers below build valid streams: three literal 'A' from a one-symbol code."""
    from bootforge.compress import decompress
    assert decompress(stream(b(3, 16) + single_c(0x41) + NO_P, 3), "efi") == b"AAA"


BAD_STREAMS = {
    # name: (stream bytes, fragments the one-line error must contain)
    "header-truncated": (b"\x10\x00\x00", ["offset 0x0", "shorter than its 8-byte header"]),
    "body-truncated": (compress(SAMPLE, "efi")[:40], ["offset 0x0", "only 32 bytes follow"]),
    "declared-4gib": (stream(b(1, 16) + single_c(0x41) + NO_P, 0xFFFFFFFF),
                      ["offset 0x4", "4294967295", "over the limit"]),
    "not-a-prefix-code": (stream(b(1, 16) + b(3, 5) + "001" * 3 + b(0, 2), 1),
                          ["offset 0xa", "not a complete prefix code"]),
    "incomplete-code": (stream(b(1, 16) + b(3, 5) + "001" + "010" + "000" + b(0, 2), 1),
                        ["not a complete prefix code"]),
    "distance-before-start": (stream(b(1, 16) + single_c(256) + NO_P, 3),
                              ["reaches before the start of the output"]),
    "distance-past-output": (stream(b(2, 16) + NO_T + b(0, 9) + b(0x41, 9) + NO_P
                                    + b(1, 16) + single_c(256) + b(0, 4) + b(5, 4) + b(0, 4), 4),
                             ["match distance 17 reaches before the start"]),
    "block-overruns": (stream(b(5, 16) + single_c(0x41) + NO_P, 3),
                       ["block of 5 codes overruns the original size of 3"]),
    "runs-out-of-bits": (stream(b(1, 16) + single_c(0x41) + NO_P, 2),
                         ["offset 0xf", "compressed data ends inside a block"]),
    "count-too-large": (stream(b(1, 16) + b(25, 5), 1), ["T count 25 exceeds its 19 symbols"]),
    "position-symbol-outside-window": (stream(b(1, 16) + single_c(0x41) + b(0, 4) + b(14, 4), 1),
                                       ["P single symbol 14 is outside 0..13"]),
}


@pytest.mark.parametrize("name", sorted(BAD_STREAMS))
def test_bad_streams_are_one_line_errors(tmp_path, name):
    data, fragments = BAD_STREAMS[name]
    bad = tmp_path / f"{name}.cmp"
    bad.write_bytes(data)
    proc = run_bootforge("decompress", "--format", "efi", bad, "-o", tmp_path / "out")
    assert_one_line_error(proc, str(bad), *fragments)
    assert not (tmp_path / "out").exists()


def test_truncated_stream_with_agreeing_header(tmp_path):
    good = compress(SAMPLE, "efi")
    cut = good[:60]
    bad = tmp_path / "cut.cmp"
    bad.write_bytes(struct.pack("<I", len(cut) - 8) + cut[4:])
    proc = run_bootforge("decompress", bad, "-o", tmp_path / "out")
    assert_one_line_error(proc, "offset 0x", "compressed data ends")


def test_flipped_bits_never_traceback(tmp_path):
    good = bytearray(compress(SAMPLE, "efi"))
    outcomes = set()
    for bit in range(64, len(good) * 8, 97):      # every 97th bit of the body
        bad = bytearray(good)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        path = tmp_path / "flip.cmp"
        path.write_bytes(bad)
        proc = run_bootforge("decompress", path, "-o", tmp_path / "out")
        if proc.returncode == 0:
            assert len((tmp_path / "out").read_bytes()) == len(SAMPLE)
            outcomes.add("decoded")
        else:
            assert_one_line_error(proc, "offset 0x")
            outcomes.add("error")
    assert "error" in outcomes


def test_max_size_option(tmp_path):
    packed = tmp_path / "s.cmp"
    packed.write_bytes(compress(SAMPLE, "efi"))
    proc = run_bootforge("decompress", packed, "-o", tmp_path / "out", "--max-size", "1K")
    assert_one_line_error(proc, "offset 0x4", f"declared original size {len(SAMPLE)}", "limit of 1024")
    run_bootforge("decompress", packed, "-o", tmp_path / "out", "--max-size", "64K", check=0)
    assert (tmp_path / "out").read_bytes() == SAMPLE


def test_missing_input_is_one_line(tmp_path):
    proc = run_bootforge("compress", tmp_path / "nope.bin", "-o", tmp_path / "out")
    assert_one_line_error(proc, "nope.bin")


def test_plain_pe_is_not_a_stream(tmp_path):
    """iPXE's rtl8139 EFI driver (extracted from Debian's efi-rtl8139.rom) starts "MZ\\0\\0\\0\\0\\0\\0":
    read as a header, 0x5a4d compressed bytes holding 0 original ones. Decoding consumes
    7 of them: an error naming the leftover, exit 2, no output file."""
    require("/usr/lib/ipxe/qemu/efi-rtl8139.rom")
    driver = tmp_path / "rtl.efi"
    run_bootforge("extract", "--image", "1", "/usr/lib/ipxe/qemu/efi-rtl8139.rom", "-o", driver, check=0)
    assert driver.read_bytes()[:8] == b"MZ" + bytes(6)
    for fmt in ("efi", "tiano"):
        proc = run_bootforge("decompress", "--format", fmt, driver, "-o", tmp_path / "x")
        assert_one_line_error(proc, str(driver), "of the 23117 compressed bytes the header declares")
        assert not (tmp_path / "x").exists()


def test_stream_must_end_at_its_declared_size(tmp_path):
    """A valid stream with its compressed size declared 16 bytes too long (the extra bytes
    present): decoding stops early, which is an error, not silently ignored bytes."""
    good = compress(SAMPLE, "efi")
    padded = tmp_path / "long.cmp"
    padded.write_bytes(struct.pack("<I", len(good) - 8 + 16) + good[4:] + bytes(16))
    proc = run_bootforge("decompress", padded, "-o", tmp_path / "out")
    assert_one_line_error(proc, str(padded), "16 left over")
    assert not (tmp_path / "out").exists()
    # Bytes after the declared size (a ROM's 512-byte padding) are still not part of the stream.
    tail = tmp_path / "tail.cmp"
    tail.write_bytes(good + bytes(100))
    run_bootforge("decompress", tail, "-o", tmp_path / "out", check=0)
    assert (tmp_path / "out").read_bytes() == SAMPLE


@pytest.mark.parametrize("fmt", ["efi", "tiano"])
def test_edk2_streams_with_its_nul_byte_decode(tmp_path, fmt):
    """EDK2's compressor counts a trailing NUL in the compressed size, and writes one block of
    0 codes for empty input (its 8-byte stream of 0 bytes): both are whole streams."""
    edk2_compress, _ = edk2()[fmt]
    for data in (b"", b"a", SAMPLE):
        packed = tmp_path / "edk2.cmp"
        packed.write_bytes(edk2_compress(data, len(data)))
        run_bootforge("decompress", "--format", fmt, packed, "-o", tmp_path / "out", check=0)
        assert (tmp_path / "out").read_bytes() == data
