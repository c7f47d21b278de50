"""bootforge.compress on generated data: round trips through EDK2 both ways, edge sizes."""

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_compress_corpus import edk2

from bootforge.compress import compress, decompress, read_sizes
from bootforge.compress.formats import EFI, MAX_BLOCK_CODES, TIANO
from bootforge.errors import FormatError, LimitError

FORMATS = ["efi", "tiano"]
SLOW_OK = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)


def round_trip(data, fmt):
    """Both directions against EDK2; return bootforge's stream."""
    edk2_compress, edk2_decompress = edk2()[fmt]
    ours = compress(data, fmt)
    assert decompress(ours, fmt) == data
    assert edk2_decompress(ours, len(ours)) == data
    theirs = edk2_compress(data, len(data))
    assert decompress(theirs, fmt) == data
    assert read_sizes(ours) == (len(ours) - 8, len(data))
    return ours


def random_bytes(size, seed):
    return random.Random(seed).randbytes(size)


# Data with structure: runs, repeats at chosen distances, text, noise.
chunks = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(1, 700)),
    st.text("abcde \n", max_size=200).map(str.encode),
    st.sampled_from([b"\x00" * 300, b"\xff\xfe" * 100, b"MZ\x90\x00\x03", b"hello, world\n" * 5]),
)


@pytest.mark.parametrize("fmt", FORMATS)
@SLOW_OK
@given(parts=st.lists(chunks, max_size=12))
def test_generated_data_round_trips_both_ways(fmt, parts):
    round_trip(b"".join(parts), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@SLOW_OK
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_round_trip_both_ways(fmt, data):
    round_trip(data, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_and_tiny_inputs(fmt):
    assert compress(b"", fmt) == struct.pack("<II", 0, 0)
    assert decompress(compress(b"", fmt), fmt) == b""
    for data in (b"\x00", b"A", b"AB", b"ABC", b"AAAA"):
        round_trip(data, fmt)
    # One literal: block size 1, empty T set, C set "count 0, symbol 0x41", empty P set.
    assert compress(b"A", fmt)[8:] == bytes.fromhex("00010000041000")


@pytest.mark.parametrize("fmt", FORMATS)
def test_longest_matches(fmt):
    edk2_compress, _ = edk2()[fmt]
    # 100 000 zeros: 390 matches of 256 bytes at distance 1.
    run = b"\x00" * 100_000
    # 90 000 bytes of a 45-byte period: ~350 overlapping matches of 256 at distance 45.
    text = b"The quick brown fox jumps over the lazy dog. " * 2000
    for data, most in ((run, 80), (text, 400)):
        ours = round_trip(data, fmt)
        assert len(ours) <= min(most, len(edk2_compress(data, len(data))))


@pytest.mark.parametrize("variant", [EFI, TIANO], ids=["efi", "tiano"])
def test_matches_at_the_window_edge(variant):
    """A 200-byte repeat exactly max_distance back is used; one byte further it cannot be."""
    needle = random_bytes(200, 1)
    filler = random_bytes(variant.max_distance - len(needle), 2)
    inside = round_trip(needle + filler + needle, variant.name)
    outside = round_trip(needle + filler + b"\x00" + needle, variant.name)
    assert len(outside) - len(inside) > 150


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("literals", [MAX_BLOCK_CODES - 1, MAX_BLOCK_CODES, MAX_BLOCK_CODES + 1,
                                      2 * MAX_BLOCK_CODES + 1])
def test_sizes_around_the_block_limit(fmt, literals):
    """Incompressible data is all literals: one code per byte, so blocks must split at 65535 codes."""
    data = random_bytes(literals, literals)
    ours = round_trip(data, fmt)
    assert len(ours) < literals * 1.01 + 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_sizes_around_the_efi_window(fmt):
    pattern = random_bytes(3000, 3)
    for size in (EFI.max_distance - 1, EFI.max_distance, EFI.max_distance + 1, 3 * EFI.max_distance + 7):
        data = (pattern * (size // len(pattern) + 1))[:size]
        round_trip(data, fmt)


def test_tiano_reaches_further_than_efi():
    """A repeat 100 KiB back is a match for Tiano (19-bit window) and not for EFI (13-bit)."""
    first = random_bytes(20_000, 4)
    data = first + random_bytes(100_000, 5) + first
    efi, tiano = round_trip(data, "efi"), round_trip(data, "tiano")
    assert len(efi) - len(tiano) > 19_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_trailing_padding_is_ignored(fmt):
    data = b"option rom " * 50
    assert decompress(compress(data, fmt) + b"\xff" * 512, fmt) == data


def test_variants_are_not_interchangeable():
    """The P-set count is 4 bits in EFI and 5 in Tiano: a stream read as the other variant fails."""
    data = random_bytes(16, 6) * 40 + b"tail" * 30
    for written, read in (("efi", "tiano"), ("tiano", "efi")):
        with pytest.raises(FormatError):
            decompress(compress(data, written), read)


def test_size_limits_and_unknown_format():
    stream = compress(b"x" * 1000, "efi")
    with pytest.raises(LimitError) as info:
        decompress(stream, "efi", max_size=999)
    assert info.value.offset == 4
    assert decompress(stream, "efi", max_size=1000) == b"x" * 1000
    with pytest.raises(FormatError) as info:
        read_sizes(b"\x01\x02")
    assert info.value.offset == 0
    with pytest.raises(ValueError):
        compress(b"x", "lzma")


@pytest.mark.parametrize("fmt", FORMATS)
@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_flipped_and_truncated_streams_fail_cleanly(fmt, data):
    """Any damage gives the original bytes (a harmless flip) or a FormatError with an offset."""
    original = b"".join(random_bytes(40, i % 3) for i in range(30)) + b"Z" * 500
    stream = bytearray(compress(original, fmt))
    if data.draw(st.booleans()):
        bit = data.draw(st.integers(0, len(stream) * 8 - 1))
        stream[bit // 8] ^= 0x80 >> (bit % 8)
    else:
        cut = data.draw(st.integers(0, len(stream) - 1))
        stream = stream[:cut]
        if cut >= 8 and data.draw(st.booleans()):
            stream[0:4] = struct.pack("<I", cut - 8)     # a header that agrees with the cut
    try:
        result = decompress(bytes(stream), fmt, max_size=1 << 20)
    except FormatError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(stream)
    else:
        assert len(result) == read_sizes(stream)[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_segments_match_into_their_history(fmt, monkeypatch):
    """Long inputs are parsed in segments; matches still reach into the previous segment."""
    from bootforge.compress import encoder
    monkeypatch.setattr(encoder, "SEGMENT_SIZE", 4096)
    data = random_bytes(3000, 7) * 5          # 15 000 bytes: 4 segments, each a repeat
    ours = round_trip(data, fmt)
    assert len(ours) < 3000 + 200


def test_tiano_farthest_class_with_a_16_bit_p_code():
    """A 16-bit P code for Tiano's farthest class carries 18 extra bits: 34 bits, more than a
    64-bit word read at bit 31 of its first 32 holds (the decoder reads such blocks from wider
    words). The stream is written token by token with that code at such a bit; EDK2's decoder
    and bootforge's must give the same bytes."""
    from bootforge.compress.huffman import canonical_codes, code_lengths
    from bootforge.compress.writer import block_string, pack
    rng = random.Random(8)
    # Block 1: 512 KiB + 3 of history, 3 literals then 2048 matches of 256 at distance 3.
    block1 = block_string(list(b"abc") + [256 + 253] * 2048, [2] * 2048, TIANO)
    # Block 2: matches of 3 (its only C symbol: 0 bits each) whose distance classes have
    # Fibonacci counts, the farthest rarest, so that its code is pushed to the 16-bit limit.
    fib = [1, 1]
    while len(fib) < TIANO.np:
        fib.append(fib[-1] + fib[-2])
    farthest = TIANO.np - 1
    classes = [k for k in range(farthest) for _ in range(fib[farthest - k])]
    rng.shuffle(classes)
    values = [(1 << (k - 1)) + rng.randrange(1 << (k - 1)) if k else 0 for k in classes]
    p_freq = [0] * TIANO.np
    for v in values + [1 << (farthest - 1)]:
        p_freq[v.bit_length()] += 1
    p_lengths = code_lengths(p_freq)
    assert p_lengths[farthest] == 16
    # The farthest match goes where its code starts at bit 31 of a 32-bit word.
    code_bits = sum(p_lengths[k] + max(k - 1, 0) for k in range(TIANO.np) for _ in range(p_freq[k]))
    at = len(block1) + len(block_string([3 + 253] * (len(values) + 1), values + [1 << (farthest - 1)], TIANO)) - code_bits
    index = 0
    while at % 32 != 31:
        k = values[index].bit_length()
        at += p_lengths[k] + max(k - 1, 0)
        index += 1
    values.insert(index, (1 << (farthest - 1)) + rng.randrange(1 << (farthest - 1)))
    bits = block1 + block_string([3 + 253] * len(values), values, TIANO)
    assert bits[at:at + 16] == format(canonical_codes(p_lengths)[farthest], "016b")
    expected = bytearray(b"abc")
    for _ in range(2048):
        expected += (expected[-3:] * 86)[:256]
    for v in values:
        for _ in range(3):
            expected.append(expected[-(v + 1)])
    body = pack(bits)
    stream = struct.pack("<II", len(body), len(expected)) + body
    _, edk2_decompress = edk2()["tiano"]
    assert edk2_decompress(stream, len(stream)) == bytes(expected)
    assert decompress(stream, "tiano") == bytes(expected)



def test_c_code_of_a_small_block_is_complete_and_no_larger_than_huffman():
    """A small block's C code may be length-limited for a cheaper C set: still complete, never larger."""
    from bootforge.compress.formats import NC
    from bootforge.compress.huffman import code_lengths
    from bootforge.compress.writer import c_code_lengths, c_set_bits
    rng = random.Random(9)
    shorter = 0
    for _ in range(20):
        # A few thousand codes over ~300 symbols with a long tail, as a small GRUB module's block.
        c_freq = [0] * NC
        for _ in range(3000):
            c_freq[min(int(rng.paretovariate(0.8)), NC) - 1] += 1
        huffman, tuned = code_lengths(c_freq), c_code_lengths(c_freq)
        assert sum(2.0 ** -n for n in tuned if n) == 1.0
        assert [bool(n) for n in tuned] == [bool(f) for f in c_freq]
        assert c_set_bits(c_freq, tuned) <= c_set_bits(c_freq, huffman)
        shorter += c_set_bits(c_freq, tuned) < c_set_bits(c_freq, huffman)
    assert shorter
