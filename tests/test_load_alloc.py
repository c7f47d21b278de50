"""The policies' free-space bookkeeping: the search hints never change an answer."""

import random

from bootforge.align import align_up
from bootforge.loader.alloc import FreeSpace


def brute_lowest(intervals, size, align, min_addr, max_end):
    for lo, hi in intervals:
        base = align_up(max(lo, min_addr), align)
        if base + size <= min(hi, max_end) and base >= min_addr:
            return base
    return None


def brute_highest(intervals, size, align, min_addr, max_end):
    best = None
    for lo, hi in intervals:
        hi = min(hi, max_end)
        base = (hi - size) // align * align
        if hi - size >= 0 and base >= max(lo, min_addr):
            best = base if best is None or base > best else best
    return best


def test_hinted_search_equals_brute_force():
    rng = random.Random(7)
    for _ in range(60):
        fs = FreeSpace([(0x1000, 0x9F000), (0x100000, 0x800000), (0x900000, 0x2000000)])
        for _ in range(300):
            size = rng.choice([1, 100, 4095, 4096, 5000, 70001, rng.randrange(1, 1 << 17)])
            align = rng.choice([1, 4, 8, 4096, 4096, 0x200000])
            min_addr = rng.choice([0, 0x1000, 0x100000, rng.randrange(0, 0x2000000)])
            max_end = rng.choice([1 << 64, 0xA0000, rng.randrange(0x100000, 0x2000000)])
            want = brute_lowest(fs.intervals(), size, align, min_addr, max_end)
            got = fs.lowest(size, align, min_addr, max_end)
            assert got == want, (size, align, min_addr, max_end)
            assert fs.highest(size, align, min_addr, max_end) == brute_highest(fs.intervals(), size, align,
                                                                             min_addr, max_end)
            if got is not None and rng.random() < 0.8:
                fs.take(got, size)
