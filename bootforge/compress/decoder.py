"""Table-driven decoder for the UEFI compression format.

Every Huffman code is decoded with one lookup in a table indexed by the
next `bits` bits of the stream (bits = the longest code of that set, at most
16). The stream is read through overlapping 64-bit words, so peeking at up
to 32 bits at any bit position is two shifts and a mask.

Strictness: the decoder refuses what EDK2's would silently accept or
misread: codes that are not complete prefix codes, counts larger than the
alphabet, position symbols beyond the variant's window, reads past the
declared compressed size, distances before the start of the output, and
blocks whose codes run past the declared original size.
"""

import struct
from functools import lru_cache
from itertools import chain, repeat

from bootforge.compress.formats import (CBIT, HEADER_SIZE, LENGTH_ESCAPE, MATCH_BASE, MAX_CODE_LEN, NC, NT,
                                        T_LENGTH_BASE, T_RUN_LONG_BITS, T_RUN_LONG_MIN, T_RUN_SHORT_BITS,
                                        T_RUN_SHORT_MIN, T_SPECIAL, T_ZERO, T_ZERO_LONG, T_ZERO_SHORT, TBIT)
from bootforge.errors import FormatError, LimitError

DEFAULT_MAX_SIZE = 256 << 20


def read_sizes(data):
    """Return (compressed_size, original_size) from the 8-byte header of *data*.

    :raises FormatError: fewer than 8 bytes.
    """
    if len(data) < HEADER_SIZE:
        raise FormatError(f"compressed stream of {len(data)} bytes is shorter than its "
                          f"{HEADER_SIZE}-byte header", offset=0)
    return struct.unpack_from("<II", data, 0)


def _overlapping_words(body):
    """64-bit big-endian words starting at every 4-byte boundary of *body* (zero padded).

    The even-numbered and odd-numbered words are each one struct unpack, interleaved
    by slice assignment (3x faster than or-ing shifted 32-bit halves).
    """
    padded = bytes(body) + bytes(12 + (-len(body)) % 4)
    count = len(padded) // 4 - 2
    words = [0] * count
    words[0::2] = struct.unpack_from(f">{(count + 1) // 2}Q", padded, 0)
    words[1::2] = struct.unpack_from(f">{count // 2}Q", padded, 4)
    return words


class _Decoder:
    def __init__(self, body, variant, original_size):
        self.words = _overlapping_words(body)
        self.end_bit = len(body) * 8
        self.pos = 0                    # bit position in body
        self.variant = variant
        self.original_size = original_size

    def error(self, message, exc=FormatError):
        if self.pos > self.end_bit and "compressed data ends" not in message:
            # Decoding the zero padding makes nonsense; the real fault is the missing data.
            message = f"compressed data ends early (then: {message})"
        return exc(message, offset=HEADER_SIZE + min(self.pos, self.end_bit) // 8)

    def bits(self, n):
        pos = self.pos
        value = (self.words[pos >> 5] >> (64 - n - (pos & 31))) & ((1 << n) - 1)
        self.pos = pos + n
        return value

    def check_inside(self, what):
        if self.pos > self.end_bit:
            raise self.error(f"compressed data ends inside {what}")

    def read_pt_set(self, nn, nbit, special, what, entries):
        """Code lengths of the T or P set: 3 bits each, 7 and up extended in unary."""
        start = self.pos
        count = self.bits(nbit)
        if count == 0:
            symbol = self.bits(nbit)
            if symbol >= nn:
                raise self.error(f"{what} single symbol {symbol} is outside 0..{nn - 1}")
            return [entries[symbol]], 0
        if count > nn:
            raise self.error(f"{what} count {count} exceeds its {nn} symbols")
        # One lookup per length in _length_codes() by the next 13 bits (3 + at most 10 unary
        # bits), which the 64-bit word at the length's first bit holds. Keys as in read_c_set.
        keys = []
        words = self.words
        length_codes = _length_codes()
        pos = self.pos
        i = 0
        while i < count:
            n, used = length_codes[(words[pos >> 5] >> (64 - 13 - (pos & 31))) & 0x1FFF]
            pos += used
            if n > MAX_CODE_LEN:
                self.pos = pos
                raise self.error(f"{what} code length over {MAX_CODE_LEN}")
            if n:
                keys.append(n << 9 | i)
            i += 1
            if i == special:            # that many zero lengths follow
                i += (words[pos >> 5] >> (64 - 2 - (pos & 31))) & 3
                pos += 2
        self.pos = pos
        self.check_inside(f"the {what} lengths")
        return self.key_table(keys, nn, what, start, entries)

    def key_table(self, keys, nn, what, start, entries):
        built = _sorted_key_table(keys, entries)
        if built is None:
            lengths = [0] * nn
            for key in keys:
                lengths[key & 511] = key >> 9
            raise FormatError(f"{what} code lengths {_short(lengths)} are not a complete prefix code",
                              offset=HEADER_SIZE + start // 8)
        return built

    def read_c_set(self, t_table, t_bits):
        start = self.pos
        count = self.bits(CBIT)
        c_entries = _c_entries()
        if count == 0:
            symbol = self.bits(CBIT)
            if symbol >= NC:
                raise self.error(f"C single symbol {symbol} is outside 0..{NC - 1}")
            return [c_entries[symbol]], 0
        if count > NC:
            raise self.error(f"C count {count} exceeds its {NC} symbols")
        # The T table's entries are (T symbol - T_LENGTH_BASE) << 9 << 5 | code length for a C
        # length (the sort key of the C symbol, less the symbol), T symbol << 5 | code length for
        # a zero run: the used C symbols' keys are collected here, so the table is one sort.
        keys = []
        add = keys.append
        words = self.words
        shift, mask = 64 - t_bits, (1 << t_bits) - 1
        pos = self.pos
        i = 0
        while i < count:
            entry = t_table[(words[pos >> 5] >> (shift - (pos & 31))) & mask]
            pos += entry & 31
            t = entry >> 5
            if t > T_ZERO_LONG:
                add(t + i)
                i += 1
                continue
            if t == T_ZERO:
                i += 1
            elif t == T_ZERO_SHORT:
                i += ((words[pos >> 5] >> (64 - T_RUN_SHORT_BITS - (pos & 31))) & 15) + T_RUN_SHORT_MIN
                pos += T_RUN_SHORT_BITS
            else:
                i += ((words[pos >> 5] >> (64 - T_RUN_LONG_BITS - (pos & 31))) & 511) + T_RUN_LONG_MIN
                pos += T_RUN_LONG_BITS
            if i > NC:
                self.pos = pos
                raise self.error(f"C zero run ends at symbol {i}, past {NC}")
        self.pos = pos
        self.check_inside("the C lengths")
        return self.key_table(keys, NC, "C", start, c_entries)

    def run(self):
        out = bytearray()
        original_size = self.original_size
        variant = self.variant
        append = out.append
        while len(out) < original_size:
            if self.pos >= self.end_bit:
                raise self.error(f"compressed data ends after {len(out)} of {original_size} bytes")
            try:
                block_size = self.bits(16) or 0x10000
                t_table, t_bits = self.read_pt_set(NT, TBIT, T_SPECIAL, "T", _t_key_entries())
                c_table, c_bits = self.read_c_set(t_table, t_bits)
                p_table, p_bits = self.read_pt_set(variant.np, variant.pbit, -1, "P", _p_entries(variant.np))
                self.check_inside("a block header")
                # A P code and its extra bits are read from one word: from any bit of a
                # 64-bit word at least 33 bits are left, enough unless a 16-bit P code
                # carries 18 extra bits (Tiano's farthest class); such a block is read
                # from 96-bit words.
                words, word_bits = self.words, 64
                if p_bits + variant.np - 2 > 33:
                    words, word_bits = self.wide_words(), 96
                    p_table = [(n, shift + 32, mask, distance) for n, shift, mask, distance in p_table]
                c_shift, c_mask = word_bits - c_bits, (1 << c_bits) - 1
                p_shift, p_mask = word_bits - p_bits, (1 << p_bits) - 1
                wi, bit = self.pos >> 5, self.pos & 31     # the stream position: word, bit in it
                left = block_size
                while left:
                    # Hot loop. A C entry is (byte, code length) for a literal and
                    # (-match length, code length) for a match; a P entry is (code
                    # length + extra bits, their shift, their mask, distance before them).
                    # Overrunning the original size is checked every OVERRUN_CHECK codes,
                    # which bounds what a bad block makes us write to 256 bytes each.
                    # Measured with timeit on CPython 3.11 (the ints past 256 it makes are the
                    # cost): repeat(), not range(), saves ~9 ns a code; the position as word and
                    # bit (0..31) rather than one bit count ~15 ns a literal.
                    for _ in repeat(None, min(left, OVERRUN_CHECK)):
                        c, n = c_table[(words[wi] >> (c_shift - bit)) & c_mask]
                        bit += n
                        if bit > 31:
                            wi += 1
                            bit -= 32
                        if c >= 0:
                            append(c)
                            continue
                        word = words[wi]
                        n, shift, mask, distance = p_table[(word >> (p_shift - bit)) & p_mask]
                        distance += (word >> (shift - bit)) & mask
                        bit += n
                        wi += bit >> 5
                        bit &= 31
                        source = len(out) - distance
                        if source < 0:
                            self.pos = (wi << 5) + bit
                            raise self.error(f"match distance {distance} reaches before the start "
                                             f"of the output (at byte {len(out)})")
                        if distance >= -c:
                            out += out[source:source - c]
                        else:               # overlapping copy: repeat the period
                            out += (out[source:] * (-c // distance + 1))[:-c]
                    left -= min(left, OVERRUN_CHECK)
                    if len(out) > original_size:
                        break
                pos = (wi << 5) + bit
            except IndexError:
                # Reading went past the zero padding after the body: far past its end.
                self.pos = self.end_bit + 1
                raise self.error("compressed data ends inside a block") from None
            self.pos = pos
            if self.pos > self.end_bit:
                raise self.error(f"compressed data ends inside a block (after {len(out)} bytes out)")
            if len(out) > original_size:
                raise self.error(f"block of {block_size} codes overruns the original size "
                                 f"of {original_size} bytes")
        return bytes(out)

    def wide_words(self):
        """96-bit words at every 4-byte boundary (the 64-bit word and the next 32 bits)."""
        following = self.words[1:] + [0]
        return [(word << 32) | (next_word & 0xFFFFFFFF) for word, next_word in zip(self.words, following)]


# Codes decoded between checks that a block has not overrun the original size (at most).
OVERRUN_CHECK = 1024


def _sorted_key_table(keys, entries):
    """Decode table (table, bits) of a code given as the keys code length << 9 | symbol of its
    used symbols: canonical codes are handed out in key order, so the table is each key's entry
    repeated over its span. None when the code is not complete."""
    if not keys:
        return None
    keys.sort()
    bits = keys[-1] >> 9
    spans = list(map(_spans(bits).__getitem__, keys))
    if sum(spans) != 1 << bits:
        return None
    return list(chain.from_iterable(map(repeat, map(entries.__getitem__, keys), spans))), bits


@lru_cache(maxsize=None)
def _spans(bits):
    """Table entries a code of each length covers in a *bits*-bit table, by length << 9 | symbol."""
    return list(chain.from_iterable(repeat(1 << (bits - n), 512) for n in range(bits + 1)))


@lru_cache(maxsize=None)
def _length_codes():
    """(code length, bits used) by the next 13 bits, for a T/P length: 3 bits, and when they
    are 7 one more per 1 bit up to a 0; (MAX_CODE_LEN + 1, 13) when the unary part runs over."""
    codes = []
    for v in range(1 << 13):
        n, used = v >> 10, 3
        if n == LENGTH_ESCAPE:
            while n <= MAX_CODE_LEN and (v >> (12 - used)) & 1:
                n += 1
                used += 1
            used += n <= MAX_CODE_LEN    # the terminating 0
        codes.append((n, used))
    return codes


@lru_cache(maxsize=None)
def _t_key_entries():
    """T table entries by code length << 9 | T symbol: value << 5 | code length, the value
    being a C code length's sort key less the symbol ((T symbol - T_LENGTH_BASE) << 9, from
    512 up) or the zero-run symbol itself (0..2)."""
    return [(t if t <= T_ZERO_LONG else (t - T_LENGTH_BASE) << 9) << 5 | n
            for n in range(MAX_CODE_LEN + 1) for t in range(512)]


@lru_cache(maxsize=None)
def _c_entries():
    """C table entries by code length << 9 | symbol: (byte, code length) for a literal,
    (-match length, code length) for a match. Built once: a block's table is then
    C-level maps over this list."""
    return [(symbol if symbol < 256 else MATCH_BASE - symbol, length)
            for length in range(MAX_CODE_LEN + 1) for symbol in range(512)]


@lru_cache(maxsize=None)
def _p_entries(np):
    """P table entries by code length << 9 | symbol: (code length + extra bits, the shift that
    brings the extra bits down from a 64-bit word read at the code's first bit, their mask,
    distance before them). P symbol p stands for distance values 2^(p-1) + the next p-1 bits (p >= 2)."""
    entries = [None] * ((MAX_CODE_LEN + 1) << 9)
    for length in range(MAX_CODE_LEN + 1):
        for symbol in range(np):
            extra = symbol - 1 if symbol > 1 else 0
            value = 1 << (symbol - 1) if symbol else 0
            entries[length << 9 | symbol] = (length + extra, 64 - length - extra, (1 << extra) - 1, value + 1)
    return entries


def _short(lengths):
    used = [f"{s}:{n}" for s, n in enumerate(lengths) if n]
    return "{" + ", ".join(used[:6]) + (", ..." if len(used) > 6 else "") + "}"


def decompress(data, variant, max_size=DEFAULT_MAX_SIZE):
    compressed_size, original_size = read_sizes(data)
    if original_size > max_size:
        raise LimitError(f"declared original size {original_size} is over the limit "
                         f"of {max_size} bytes", offset=4)
    available = len(data) - HEADER_SIZE
    if compressed_size > available:
        raise FormatError(f"declared compressed size {compressed_size} but only "
                          f"{available} bytes follow the header", offset=0)
    body = memoryview(data)[HEADER_SIZE:HEADER_SIZE + compressed_size]
    decoder = _Decoder(body, variant, original_size)
    if original_size == 0:
        if compressed_size == 0:
            return b""          # what bootforge's encoder writes for no input
        _empty_block(decoder)
        out = b""
    else:
        out = decoder.run()
    _check_end(decoder, compressed_size)
    return out


# Unread bits a whole stream may end with: the last byte's padding (EDK2 PutBits(UINT8_BIT - 1, 0)
# in HufEncodeEnd) and the NUL byte EDK2's EfiCompress/TianoCompress append and count in the
# compressed size ("Null terminate the compressed data", PutDword (mCompSize + 1)).
END_SLACK_BITS = 7 + 8


def _empty_block(decoder):
    """EDK2's compressor writes one block of 0 codes for empty input (HufEncodeEnd -> SendBlock):
    read its code sets, so that a header declaring 0 bytes is checked like any other stream."""
    try:
        decoder.bits(16)
        t_table, t_bits = decoder.read_pt_set(NT, TBIT, T_SPECIAL, "T", _t_key_entries())
        decoder.read_c_set(t_table, t_bits)
        decoder.read_pt_set(decoder.variant.np, decoder.variant.pbit, -1, "P", _p_entries(decoder.variant.np))
    except IndexError:
        decoder.pos = decoder.end_bit + 1
    decoder.check_inside("a block header")


def _check_end(decoder, compressed_size):
    """The stream must end where its header says: decoding that stops well before the declared
    compressed size consumed something that is not this stream (a PE file, the other variant)."""
    left = decoder.end_bit - decoder.pos
    if left > END_SLACK_BITS:
        used = (decoder.pos + 7) // 8
        raise FormatError(f"decoding ends after {used} of the {compressed_size} compressed bytes the "
                          f"header declares ({compressed_size - used} left over): not a whole UEFI-compressed "
                          f"stream in this variant", offset=HEADER_SIZE + used)
