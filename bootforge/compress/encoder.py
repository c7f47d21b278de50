"""Encoder for the UEFI compression format: matches, optimal parse, block split.

Pipeline (each stage chosen to beat EDK2's lazy-match, fixed-buffer encoder):

1. Match finder: two hash chains, over 3-byte prefixes for the nearest
   candidates and over 5-byte prefixes for the deep walk. At every position
   it records the "frontier": for each longer length, the nearest distance
   that reaches it (the cheapest way to copy that many bytes, since nearer
   distances have fewer extra bits).
2. A greedy parse gives first symbol statistics.
3. Block split: blocks end where the symbol statistics change enough to pay
   for a new set of Huffman trees: recursive best cuts by entropy estimates
   over prefix histograms, then merges checked with exact block sizes.
4. Optimal parse: shortest path through the bytes where every literal and
   every (length, distance) costs its bits under the block's current codes.
   Steps 3 and 4 alternate: new tokens, new statistics, new split.
5. Each block gets its own optimal length-limited Huffman codes.
"""

import math
import struct
from operator import sub

from bootforge.compress.formats import MATCH_BASE, MAX_BLOCK_CODES, MAX_MATCH, NC, THRESHOLD, VARIANTS
from bootforge.compress.huffman import code_lengths
from bootforge.compress.writer import block_bits, block_string, pack

# Match finder effort: candidates walked per position on the 3-byte chain
# (NEAR_DEPTH) and then on the DEEP_KEY-byte chain (CHAIN_DEPTH); a match of
# NICE_LENGTH is taken at once, without searching the positions inside it.
# (Measured on every 4th file of the corpus, efi: NEAR_DEPTH 8 -> 16 with
# CHAIN_DEPTH 48 -> 96 saves 0.1% of the output for ~4% more time; 32/192
# 0.13%, 64/512 0.16% for 1.7x the time. What deeper near walks find is short
# near matches; DEEP_KEY 4 instead of 5 gained 0.05% at NEAR_DEPTH 8, none at 16.)
CHAIN_DEPTH = 96
NEAR_DEPTH = 16
DEEP_KEY = 5
NICE_LENGTH = 128
# Past a match this long, walk at most GOOD_DEPTH more candidates.
GOOD_LENGTH = 32
GOOD_DEPTH = 8
# Lengths relaxed per frontier entry beyond which only the longest is tried.
RELAX_SPAN = 8
# Optimal-parse rounds (each: costs from the last parse, parse, re-split).
PARSE_ROUNDS = 2
# Input bytes parsed at once: bounds the memory of match lists and the parse.
SEGMENT_SIZE = 1 << 20
# Block split granularity in tokens, and how many checkpoints a file gets at most:
# coarse for the splits that only give the next parse its costs, fine for the
# final one, whose cuts are the blocks written (measured on the corpus: 512 -> 64
# tokens for the final split alone saves 0.2% of the output).
SPLIT_GRANULARITY = 512
SPLIT_MAX_CHECKPOINTS = 96
FINAL_SPLIT_GRANULARITY = 64
FINAL_SPLIT_MAX_CHECKPOINTS = 768
# The split's estimate of a block's header: bits per used C and P symbol (its
# length in the tree) and per block (size field, T set, counts).
SPLIT_C_SYMBOL_BITS = 4.5
SPLIT_P_SYMBOL_BITS = 3
SPLIT_BLOCK_BITS = 60
# Per code past MAX_BLOCK_CODES in a block the split would make: more than a
# checkpoint's move can change the estimate by.
OVER_LIMIT_BITS = 64
# A symbol absent from a block costs this much more than its rarest used one:
# using it would also add it to the code.
UNUSED_PENALTY = 2
# Segments of at most this many tokens price the split's merges with the C code
# block_string writes (writer.c_code_lengths, several Huffman codes per price);
# longer ones with the plain Huffman code. Measured on the corpus, efi: 0 tokens
# 1 780 075 bytes, 4096 1 779 507, 16384 1 779 493 for ~1% and ~4% more time.
TUNED_MERGE_TOKENS = 4096


def compress(data, variant):
    """Compress *data*; return header + bitstream."""
    data = bytes(data)
    n = len(data)
    if n == 0:
        return struct.pack("<II", 0, 0)
    bits = []
    for start in range(0, n, SEGMENT_SIZE):
        # A segment is parsed on its own (memory grows with the parsed span),
        # its matches reaching back into the previous window of history.
        history = max(0, start - variant.max_distance)
        window = data[history:start + SEGMENT_SIZE]
        bits += _compress_segment(window, start - history, variant)
    body = pack("".join(bits))
    return struct.pack("<II", len(body), n) + body


def _compress_segment(window, first, variant):
    """Bit strings of the blocks coding window[first:]; window[:first] is history."""
    found = find_matches(window, variant.max_distance, first)
    codes, values, starts = greedy_parse(window, found, first)
    for _ in range(PARSE_ROUNDS):
        blocks = split_blocks(codes, values, variant.np, variant.pbit)
        bounds = [starts[b] for b in blocks]
        costs = [block_costs(c, v, variant.np) for c, v in _block_slices(codes, values, blocks)]
        codes, values, starts = optimal_parse(window, found, bounds, costs)
    blocks = split_blocks(codes, values, variant.np, variant.pbit,
                          FINAL_SPLIT_GRANULARITY, FINAL_SPLIT_MAX_CHECKPOINTS)
    return [block_string(c, v, variant) for c, v in _block_slices(codes, values, blocks)]


def _block_slices(codes, values, blocks):
    """(codes, values) of each block; *blocks* are token indices where blocks start."""
    value_index = 0
    for a, b in zip(blocks, blocks[1:] + [len(codes)]):
        block_codes = codes[a:b]
        matches = sum(1 for c in block_codes if c > 255)
        yield block_codes, values[value_index:value_index + matches]
        value_index += matches


def find_matches(data, max_distance, first=0, depth=CHAIN_DEPTH, nice=NICE_LENGTH):
    """For each position from *first* on, None or a flat list [len1, dist1, len2, dist2, ...].

    Lengths increase and distances increase along the list: each entry is
    the nearest match at least that long. Positions inside a match of
    *nice* bytes or more are not searched: their candidate is that match's tail.
    """
    n = len(data)
    found = [None] * n
    if n < THRESHOLD:
        return found
    # Hash chains: prev[i] is the previous position with the same first 3
    # bytes (-1: none), deep[i] the same for the first DEEP_KEY bytes. The
    # nearest candidates come from prev (short matches pay only when near);
    # the long walk follows deep, where every candidate shares DEEP_KEY bytes.
    prev = _chain(data, THRESHOLD)
    deep = _chain(data, DEEP_KEY)
    i = first
    last = n - 2
    good, good_depth, near_depth = GOOD_LENGTH, GOOD_DEPTH, NEAR_DEPTH
    while i < last:
        j = prev[i]
        lowest = i - max_distance if i > max_distance else 0
        if j < lowest:
            i += 1
            continue
        longest = n - i if n - i < MAX_MATCH else MAX_MATCH
        best = THRESHOLD - 1
        head = data[i:i + best]
        probe = data[i + best]
        frontier = []
        # The same walk on both chains; the deep one only once the near one
        # is spent without a good match. Hot loop: kept to few operations.
        chain = prev
        left = near_depth
        while True:
            # Only a candidate matching one byte past the best can improve it.
            if data[j + best] == probe and data[j:j + best] == head:
                length = best + 1
                while length + 8 <= longest and data[j + length:j + length + 8] == data[i + length:i + length + 8]:
                    length += 8
                while length < longest and data[j + length] == data[i + length]:
                    length += 1
                best = length
                frontier += (length, i - j)
                if length >= longest:
                    break
                if length >= good and left > good_depth:
                    left = good_depth
                head = data[i:i + best]
                probe = data[i + best]
            left -= 1
            if left:
                j = chain[j]
                if j < lowest:
                    break
            elif chain is prev and best < good:
                # Switch to the deep chain, past the candidates already seen.
                chain = deep
                left = depth
                k = deep[i]
                while k >= j:
                    k = deep[k]
                j = k
                if j < lowest:
                    break
            else:
                break
        if frontier:
            found[i] = frontier
            if best >= nice:
                # Inside a long match, its tail is the candidate: no search there.
                distance = frontier[-1]
                for k in range(1, best - THRESHOLD + 1):
                    found[i + k] = [best - k, distance]
                i += best
                continue
        i += 1
    return found


def _chain(data, key_length):
    """prev[i]: the previous position whose key_length bytes equal those at i (-1: none)."""
    n = len(data)
    prev = [-1] * n
    head = {}
    get = head.get
    for i in range(n - key_length + 1):
        key = data[i:i + key_length]
        prev[i] = get(key, -1)
        head[key] = i
    return prev


def greedy_parse(data, found, first=0):
    """Longest match wherever there is one, from *first* on: a cheap first parse for statistics."""
    codes, values, starts = [], [], []
    i, n = first, len(data)
    while i < n:
        starts.append(i)
        frontier = found[i]
        if frontier:
            length = frontier[-2]
            codes.append(length + MATCH_BASE)
            values.append(frontier[-1] - 1)
            i += length
        else:
            codes.append(data[i])
            i += 1
    return codes, values, starts


def block_costs(codes, values, np):
    """Bit costs under the codes this block would get: (C costs, cost by P symbol incl. extra bits)."""
    c_freq = [0] * NC
    for c in codes:
        c_freq[c] += 1
    p_freq = [0] * np
    for v in values:
        p_freq[v.bit_length()] += 1
    c_lengths = _with_unused(code_lengths(c_freq))
    p_lengths = _with_unused(code_lengths(p_freq))
    return c_lengths, [n + max(p - 1, 0) for p, n in enumerate(p_lengths)]


def _with_unused(lengths):
    longest = max(lengths)
    if not longest:        # 0 or 1 symbol used: any symbol costs about a byte
        return [n or 8 for n in lengths] if any(lengths) else [8] * len(lengths)
    unused = longest + UNUSED_PENALTY
    return [n or unused for n in lengths]


_P_CLASSES = [0]       # index: match distance (0 unused)


def _position_classes(size):
    """P symbol of every distance up to *size*: the bit length of distance - 1 (cached)."""
    if len(_P_CLASSES) <= size:
        _P_CLASSES.extend((d - 1).bit_length() for d in range(len(_P_CLASSES), size + 1))
    return _P_CLASSES


def optimal_parse(data, found, bounds, costs):
    """Cheapest token sequence under per-block *costs*; blocks start at byte offsets *bounds*.

    Forward dynamic programming from bounds[0]: cost[i] is the fewest bits
    that produce data[bounds[0]:i]; every literal and every match length up
    to each frontier entry relaxes the position it reaches.
    """
    n = len(data)
    first = bounds[0]
    p_class = _position_classes(min(n, max(v.max_distance for v in VARIANTS.values())))
    infinity = 1 << 62
    cost = [infinity] * (n + 1)
    cost[first] = 0
    # How i was reached: token length | distance << 9 (length 1: a literal).
    how = [0] * (n + 1)
    ends = bounds[1:] + [n]
    span = RELAX_SPAN
    for start, end, (c_cost, p_cost) in zip(bounds, ends, costs):
        length_cost = [0] * THRESHOLD + c_cost[256:]      # indexed by match length
        for i, literal, frontier in zip(range(start, end), map(c_cost.__getitem__, data[start:end]),
                                        found[start:end]):
            here = cost[i]
            t = here + literal
            if t < cost[i + 1]:
                cost[i + 1] = t
                how[i + 1] = 1
            if frontier is None:
                continue
            shorter = THRESHOLD - 1
            pairs = iter(frontier)
            for length, distance in zip(pairs, pairs):
                base = here + p_cost[p_class[distance]]
                tag = distance << 9
                # Every length this distance adds, but of a long range only the
                # first few and the longest: truncating far inside rarely pays.
                if length - shorter > span:
                    for m in (*range(shorter + 1, shorter + span), length):
                        t = base + length_cost[m]
                        if t < cost[i + m]:
                            cost[i + m] = t
                            how[i + m] = m | tag
                else:
                    for m in range(shorter + 1, length + 1):
                        t = base + length_cost[m]
                        if t < cost[i + m]:
                            cost[i + m] = t
                            how[i + m] = m | tag
                shorter = length
    codes, values, starts = [], [], []
    i = n
    while i > first:
        h = how[i]
        m = h & 511
        i -= m
        starts.append(i)
        if m == 1:
            codes.append(data[i])
        else:
            codes.append(m + MATCH_BASE)
            values.append((h >> 9) - 1)
    codes.reverse()
    values.reverse()
    starts.reverse()
    return codes, values, starts


# x * log2(x), for entropy estimates of block sizes.
_XLOGX = [0.0]


def _xlogx_table(size):
    if len(_XLOGX) < size:
        _XLOGX.extend(x * math.log2(x) for x in range(len(_XLOGX), size))
    return _XLOGX


def split_blocks(codes, values, np, pbit, granularity=None, max_checkpoints=None):
    """Token indices where blocks start (the first is 0), minimising estimated bits.

    Checkpoints every *granularity* tokens (SPLIT_GRANULARITY; fewer
    checkpoints than *max_checkpoints*); prefix histograms of C and P
    symbols give any span's histogram by subtraction, and its cost is
    estimated as its entropy plus extra bits plus a header estimate. Spans
    are cut in two where that is cheapest, recursively (no block over 65535
    codes), then neighbours are merged again while exact block sizes say
    the cut does not pay.
    """
    total = len(codes)
    granularity = max(granularity or SPLIT_GRANULARITY,
                      -(-total // (max_checkpoints or SPLIT_MAX_CHECKPOINTS)))
    checkpoints = list(range(0, total, granularity)) + [total]
    xlogx = _xlogx_table(total + 1)
    # Histograms over the C symbols the segment uses only (often ~350 of 510).
    used = sorted(set(codes))
    compact = [0] * NC
    for index, symbol in enumerate(used):
        compact[symbol] = index
    c_prefix, p_prefix, extra_prefix = [], [], []
    c_hist, p_hist = [0] * len(used), [0] * np
    extra = 0
    value_index = 0
    k = 0
    for point in checkpoints:
        while k < point:
            c = codes[k]
            c_hist[compact[c]] += 1
            if c > 255:
                p = values[value_index].bit_length()
                value_index += 1
                p_hist[p] += 1
                if p > 1:
                    extra += p - 1
            k += 1
        c_prefix.append(c_hist[:])
        p_prefix.append(p_hist[:])
        extra_prefix.append(extra)

    memo = {}

    def span_cost(a, b):
        # Memoised: the recursion asks again for spans its parent priced.
        key = a * len(checkpoints) + b
        cost = memo.get(key)
        if cost is None:
            cost = memo[key] = _span_cost(a, b)
        return cost

    def _span_cost(a, b):
        c_span = list(map(sub, c_prefix[b], c_prefix[a]))
        p_span = list(map(sub, p_prefix[b], p_prefix[a]))
        c_total, p_total = sum(c_span), sum(p_span)
        bits = (xlogx[c_total] - sum(map(xlogx.__getitem__, c_span))
                + xlogx[p_total] - sum(map(xlogx.__getitem__, p_span))
                + extra_prefix[b] - extra_prefix[a])
        c_used = len(c_span) - c_span.count(0)
        p_used = np - p_span.count(0)
        return bits + SPLIT_C_SYMBOL_BITS * c_used + SPLIT_P_SYMBOL_BITS * p_used + SPLIT_BLOCK_BITS

    def split(a, b):
        """Checkpoint indices starting blocks in [a, b): best single cut, then recurse."""
        fits = checkpoints[b] - checkpoints[a] <= MAX_BLOCK_CODES
        best_cost, best_cut = (span_cost(a, b) if fits else math.inf), None
        if fits:
            for cut in range(a + 1, b):
                cost = span_cost(a, cut) + span_cost(cut, b)
                if cost < best_cost:
                    best_cost, best_cut = cost, cut
        else:
            # Too long for one block: cut where the halves are least over the
            # limit first (else cutting off small pieces one by one can look
            # cheapest, and the recursion goes as deep as there are checkpoints).
            for cut in range(a + 1, b):
                over = (max(0, checkpoints[cut] - checkpoints[a] - MAX_BLOCK_CODES)
                        + max(0, checkpoints[b] - checkpoints[cut] - MAX_BLOCK_CODES))
                cost = span_cost(a, cut) + span_cost(cut, b) + OVER_LIMIT_BITS * over
                if cost < best_cost:
                    best_cost, best_cut = cost, cut
        if best_cut is None:
            return [a]
        return split(a, best_cut) + split(best_cut, b)

    bounds = split(0, len(checkpoints) - 1) + [len(checkpoints) - 1]

    # Entropy overrates splits of small spans; merge neighbours while exact sizes say so.
    def exact(a, b):
        c_freq = [0] * NC
        for symbol, count in zip(used, map(sub, c_prefix[b], c_prefix[a])):
            c_freq[symbol] = count
        return block_bits(c_freq, list(map(sub, p_prefix[b], p_prefix[a])), pbit, tuned)

    tuned = total <= TUNED_MERGE_TOKENS
    sizes = [exact(a, b) for a, b in zip(bounds, bounds[1:])]
    merged = [None] * (len(bounds) - 2)
    while merged:
        for i, size in enumerate(merged):
            if size is None:
                fits = checkpoints[bounds[i + 2]] - checkpoints[bounds[i]] <= MAX_BLOCK_CODES
                merged[i] = exact(bounds[i], bounds[i + 2]) if fits else math.inf
        gain, i = max((sizes[i] + sizes[i + 1] - size, i) for i, size in enumerate(merged))
        if gain < 0:
            break
        del bounds[i + 1]
        sizes[i:i + 2] = [merged[i]]
        del merged[i]
        for j in (i - 1, i):
            if 0 <= j < len(merged):
                merged[j] = None
    return [checkpoints[b] for b in bounds[:-1]]
