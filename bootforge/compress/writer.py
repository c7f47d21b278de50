"""Writing blocks of the UEFI compression bitstream from a parsed token list.

A parse is two lists: `codes`, the C symbols (a byte value for a literal,
length + 253 for a match), and `values`, one distance value (distance - 1)
per match, in order. A block is a slice of both.
"""

from operator import mul

from bootforge.compress.formats import (CBIT, LENGTH_ESCAPE, MAX_CODE_LEN, NC, NT, T_LENGTH_BASE,
                                        T_RUN_LONG_BITS, T_RUN_LONG_MIN, T_RUN_SHORT_BITS, T_RUN_SHORT_MIN,
                                        T_SPECIAL, T_ZERO, T_ZERO_LONG, T_ZERO_SHORT, TBIT)
from bootforge.compress.huffman import canonical_codes, code_lengths

# Bits of a code length in a T or P set: 3, or for 7 and up "111", one 1 per
# step above 7, and a closing 0.
PT_LENGTH_BITS = [3] * LENGTH_ESCAPE + [n - 3 for n in range(LENGTH_ESCAPE, MAX_CODE_LEN + 1)]


def _bitstring(value, width):
    return format(value, f"0{width}b") if width else ""


def _pt_length_string(n):
    if n < LENGTH_ESCAPE:
        return format(n, "03b")
    return "111" + "1" * (n - LENGTH_ESCAPE) + "0"


def c_length_tokens(c_lengths):
    """The C-set lengths as T symbols: [(t, extra_bits_string)], trailing zeros dropped."""
    count = _used_prefix(c_lengths)
    tokens = []
    i = 0
    while i < count:
        n = c_lengths[i]
        if n:
            tokens.append((n + T_LENGTH_BASE, ""))
            i += 1
            continue
        run = 1
        while c_lengths[i + run] == 0:     # cannot pass count: c_lengths[count-1] != 0
            run += 1
        i += run
        # Zero runs: T0 is one zero, T1 3..18, T2 20..531; 19 is T0 + T1(18).
        if run < T_RUN_SHORT_MIN:
            tokens += [(T_ZERO, "")] * run
        elif run == T_RUN_LONG_MIN - 1:
            tokens += [(T_ZERO, ""), (T_ZERO_SHORT, _bitstring(run - 1 - T_RUN_SHORT_MIN, T_RUN_SHORT_BITS))]
        elif run < T_RUN_LONG_MIN:
            tokens.append((T_ZERO_SHORT, _bitstring(run - T_RUN_SHORT_MIN, T_RUN_SHORT_BITS)))
        else:
            tokens.append((T_ZERO_LONG, _bitstring(run - T_RUN_LONG_MIN, T_RUN_LONG_BITS)))
    return tokens


def _used_prefix(lengths):
    count = len(lengths)
    while count and not lengths[count - 1]:
        count -= 1
    return count


def _single_symbol(freqs):
    """The symbol to write in the 'count 0' form: the only used one, or 0."""
    used = [s for s, f in enumerate(freqs) if f]
    return used[0] if used else 0


def pt_set_string(lengths, freqs, nbit, special):
    """Bits of a T or P set; the single-symbol form when fewer than two symbols are used."""
    if sum(1 for n in lengths if n) < 2:
        return "0" * nbit + _bitstring(_single_symbol(freqs), nbit)
    count = _used_prefix(lengths)
    parts = [_bitstring(count, nbit)]
    i = 0
    while i < count:
        parts.append(_pt_length_string(lengths[i]))
        i += 1
        if i == special:
            zeros = 0
            while zeros < 3 and i + zeros < len(lengths) and lengths[i + zeros] == 0:
                zeros += 1
            parts.append(_bitstring(zeros, 2))
            i += zeros
    return "".join(parts)


def pt_set_bits(lengths, nbit, special):
    """Size in bits of pt_set_string for a code with two or more symbols."""
    count = _used_prefix(lengths)
    bits = nbit
    i = 0
    while i < count:
        bits += PT_LENGTH_BITS[lengths[i]]
        i += 1
        if i == special:
            bits += 2
            zeros = 0
            while zeros < 3 and i + zeros < len(lengths) and lengths[i + zeros] == 0:
                zeros += 1
            i += zeros
    return bits


def t_set(c_lengths):
    """The T-set that codes the C code lengths: (tokens, T frequencies, T code lengths)."""
    tokens = c_length_tokens(c_lengths)
    t_freq = [0] * NT
    for t, _ in tokens:
        t_freq[t] += 1
    return tokens, t_freq, code_lengths(t_freq)


def c_set_bits(c_freq, c_lengths):
    """Bits of the T set, the C set and the C codes of a block with two or more C symbols."""
    tokens, t_freq, t_lengths = t_set(c_lengths)
    if sum(1 for f in t_freq if f) < 2:
        bits = 2 * TBIT
    else:
        bits = pt_set_bits(t_lengths, TBIT, T_SPECIAL)
    bits += CBIT + sum(t_lengths[t] + len(extra) for t, extra in tokens)
    return bits + sum(map(mul, c_freq, c_lengths))


def c_code_lengths(c_freq):
    """C code lengths that write the fewest bits: the code lengths themselves cost header bits.

    The optimal Huffman lengths make the shortest codes, but in a small block
    the C set (its lengths, written with T codes) weighs as much as a tenth of
    it; a code limited to fewer bits has fewer distinct lengths and a cheaper
    set. Limits from the Huffman code's longest length down are tried while
    each writes fewer bits than the last (measured on the corpus, efi: going on
    past the first that does not saves 4 bytes of 1.78 MB), down to
    C_LIMIT_FLOOR and the shortest that fits the used symbols.
    """
    lengths = code_lengths(c_freq)
    longest = max(lengths)
    if not longest:
        return lengths
    used = len(lengths) - lengths.count(0)
    best, best_bits = lengths, c_set_bits(c_freq, lengths)
    limit = longest - 1
    while limit >= C_LIMIT_FLOOR and 1 << limit >= used:
        candidate = code_lengths(c_freq, limit)
        bits = c_set_bits(c_freq, candidate)
        if bits >= best_bits:
            break
        best, best_bits = candidate, bits
        limit -= 1
    return best


# The shortest C code limit c_code_lengths tries.
C_LIMIT_FLOOR = 9


def block_bits(c_freq, p_freq, pbit, tuned=True):
    """Exact size in bits of a block with these C and P symbol histograms.

    With *tuned* false, the C code is the plain Huffman code (cheaper to
    compute, at most a few bytes more than the code block_string writes).
    """
    bits = 16
    if sum(1 for f in c_freq if f) < 2:
        bits += 2 * TBIT + 2 * CBIT
    else:
        bits += c_set_bits(c_freq, c_code_lengths(c_freq) if tuned else code_lengths(c_freq))
    if sum(1 for f in p_freq if f) < 2:
        bits += 2 * pbit
        p_lengths = [0] * len(p_freq)
    else:
        p_lengths = code_lengths(p_freq)
        bits += pt_set_bits(p_lengths, pbit, -1)
    bits += sum(f * (n + max(p - 1, 0)) for p, (f, n) in enumerate(zip(p_freq, p_lengths)))
    return bits


def block_string(codes, values, variant):
    """All bits of one block holding *codes* (C symbols) and *values* (distance values)."""
    c_freq = [0] * NC
    for c in codes:
        c_freq[c] += 1
    p_freq = [0] * variant.np
    for v in values:
        p_freq[v.bit_length()] += 1
    c_lengths = c_code_lengths(c_freq)
    p_lengths = code_lengths(p_freq)
    parts = [_bitstring(len(codes), 16)]
    if sum(1 for f in c_freq if f) < 2:
        # One C symbol: an empty T set, then the C symbol itself; it costs 0 bits per use.
        parts += ["0" * TBIT * 2, "0" * CBIT, _bitstring(_single_symbol(c_freq), CBIT)]
    else:
        tokens, t_freq, t_lengths = t_set(c_lengths)
        parts.append(pt_set_string(t_lengths, t_freq, TBIT, T_SPECIAL))
        t_strings = [_bitstring(c, n) for c, n in zip(canonical_codes(t_lengths), t_lengths)]
        parts.append(_bitstring(_used_prefix(c_lengths), CBIT))
        parts += [t_strings[t] + extra for t, extra in tokens]
    parts.append(pt_set_string(p_lengths, p_freq, variant.pbit, -1))
    c_strings = [_bitstring(c, n) for c, n in zip(canonical_codes(c_lengths), c_lengths)]
    p_strings = [_bitstring(c, n) for c, n in zip(canonical_codes(p_lengths), p_lengths)]
    value_iter = iter(values)
    for c in codes:
        parts.append(c_strings[c])
        if c > 255:
            v = next(value_iter)
            p = v.bit_length()
            parts.append(p_strings[p])
            if p > 1:
                parts.append(_bitstring(v - (1 << (p - 1)), p - 1))
    return "".join(parts)


def pack(bit_string):
    """Bytes of an MSB-first bit string, zero padded to a byte boundary."""
    if not bit_string:
        return b""
    pad = -len(bit_string) % 8
    return int(bit_string + "0" * pad, 2).to_bytes((len(bit_string) + pad) // 8, "big")

