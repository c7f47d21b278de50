"""Canonical Huffman codes as the UEFI format lays them out.

Codes are canonical in the order EDK2's MakeTable assigns them: shorter
codes first, and within one length in increasing symbol order. Every code
with two or more symbols must be complete (Kraft sum exactly 1); a set with
one or no symbol is written in the "count 0, symbol" form instead.
"""

import heapq

from bootforge.compress.formats import MAX_CODE_LEN


def code_lengths(freqs, max_len=MAX_CODE_LEN):
    """Optimal prefix-code lengths for *freqs*, none longer than *max_len*.

    Symbols of frequency 0 get length 0. With fewer than two used symbols
    every length is 0 (the caller writes the single-symbol form).
    """
    size = len(freqs)
    lengths = [0] * size
    # Heap entries are frequency << shift | node: one int compares as the pair
    # (frequency, node) would, faster than a tuple.
    shift = (2 * size).bit_length()
    mask = (1 << shift) - 1
    heap = [f << shift | s for s, f in enumerate(freqs) if f]
    if len(heap) < 2:
        return lengths
    heapq.heapify(heap)
    parent = [0] * (2 * size)
    node = size
    pop, replace = heapq.heappop, heapq.heapreplace
    while len(heap) > 1:
        a = pop(heap)
        b = heap[0]
        parent[a & mask] = parent[b & mask] = node
        replace(heap, ((a >> shift) + (b >> shift)) << shift | node)
        node += 1
    root = node - 1
    depth = [0] * node
    for inner in range(root - 1, size - 1, -1):   # parents are created after children
        depth[inner] = depth[parent[inner]] + 1
    longest = 0
    for s, f in enumerate(freqs):
        if f:
            d = lengths[s] = depth[parent[s]] + 1
            if d > longest:
                longest = d
    if longest > max_len:
        _limit_lengths(freqs, lengths, max_len)
    return lengths


def _limit_lengths(freqs, lengths, max_len):
    """Shorten an over-deep code to *max_len* keeping it complete (zlib's method).

    Each overflowing leaf is pulled up to max_len; to pay for two of them a
    leaf at the deepest level below max_len moves one level down and takes
    the pair as its sibling. Lengths are then handed out again, the longest
    to the rarest symbols.
    """
    count = [0] * (max(lengths) + 1)
    for n in lengths:
        if n:
            count[n] += 1
    overflow = sum(count[max_len + 1:])
    count[max_len] += overflow
    del count[max_len + 1:]
    # The Kraft excess is overflow/2^max_len-ish; fix it exactly, leaf by leaf.
    kraft = sum(c << (max_len - n) for n, c in enumerate(count) if n)
    while kraft > 1 << max_len:
        bits = max_len - 1
        while count[bits] == 0:
            bits -= 1
        count[bits] -= 1
        count[bits + 1] += 2
        count[max_len] -= 1
        kraft -= 1
    used = sorted((s for s, f in enumerate(freqs) if f), key=lambda s: (freqs[s], -lengths[s], -s))
    k = 0
    for n in range(max_len, 0, -1):
        for _ in range(count[n]):
            lengths[used[k]] = n
            k += 1


def canonical_codes(lengths):
    """Code values (right-aligned) for *lengths*, in EDK2's canonical order."""
    count = [0] * (MAX_CODE_LEN + 2)
    for n in lengths:
        count[n] += 1
    count[0] = 0
    next_code = [0] * (MAX_CODE_LEN + 2)
    code = 0
    for n in range(1, MAX_CODE_LEN + 1):
        code = (code + count[n - 1]) << 1
        next_code[n] = code
    codes = [0] * len(lengths)
    for s, n in enumerate(lengths):
        if n:
            codes[s] = next_code[n]
            next_code[n] += 1
    return codes

