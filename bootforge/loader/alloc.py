"""Free-memory bookkeeping for the policies: a sorted list of free [lo, hi) intervals.

Loaders differ only in which free memory they start from and in the order
they search it; this keeps the intervals and answers "lowest aligned fit"
and "highest aligned fit" in O(log n + gaps skipped).
"""

from bisect import bisect_left, bisect_right

from bootforge.align import align_down, align_up
from bootforge.errors import RecipeError


def align_down(v, a):
    return v // a * a if a > 1 else v


def merge_intervals(intervals):
    """(starts, ends) of the union of [lo, hi) *intervals*: sorted, disjoint, touching ones
    joined, empty ones dropped."""
    merged = []
    for lo, hi in sorted(intervals):
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [a for a, _ in merged], [b for _, b in merged]


class FreeSpace:
    """Free [lo, hi) intervals, sorted and disjoint."""

    def __init__(self, intervals=()):
        self.lo, self.hi = merge_intervals(intervals)
        # Search hints per alignment, a staircase of (addr, room): no free interval below addr
        # has more than `room` bytes from its first aligned address to its end; addr and room
        # both increase along the list. Taking memory only shrinks or splits intervals, so a
        # bound, once true, stays true.
        self.hints = {}

    def intervals(self):
        return list(zip(self.lo, self.hi))

    def copy(self):
        out = FreeSpace()
        out.lo, out.hi = list(self.lo), list(self.hi)
        out.hints = {a: (list(x), list(y)) for a, (x, y) in self.hints.items()}
        return out

    def clip(self, lo, hi):
        """Only [lo, hi) stays free."""
        return FreeSpace((max(a, lo), min(b, hi)) for a, b in self.intervals())

    def is_free(self, start, size):
        i = bisect_right(self.lo, start) - 1
        return i >= 0 and start + size <= self.hi[i]

    def take(self, start, size):
        """Mark [start, start+size) used; every byte of it must be free."""
        if size <= 0:
            return
        i = bisect_right(self.lo, start) - 1
        if i < 0 or start + size > self.hi[i]:
            raise RecipeError(f"[{start:#x}, {start + size:#x}) is not free memory")
        lo, hi = self.lo[i], self.hi[i]
        pieces = [(a, b) for a, b in ((lo, start), (start + size, hi)) if b > a]
        self.lo[i:i + 1] = [a for a, _ in pieces]
        self.hi[i:i + 1] = [b for _, b in pieces]

    def take_overlap(self, start, size):
        """Mark whatever part of [start, start+size) is free as used (no error)."""
        end = start + size
        keep = [(a, b) for a, b in self.intervals() if b <= start or a >= end]
        cut = [(a, b) for a, b in self.intervals() if not (b <= start or a >= end)]
        for a, b in cut:
            if a < start:
                keep.append((a, start))
            if b > end:
                keep.append((end, b))
        keep.sort()
        self.lo = [a for a, _ in keep]
        self.hi = [b for _, b in keep]

    def lowest(self, size, align=1, min_addr=0, max_end=1 << 64):
        """Lowest start >= min_addr, aligned, with start + size <= max_end; or None."""
        align = max(align, 1)
        i = max(bisect_right(self.lo, min_addr) - 1, 0)
        covers_below = not self.lo or min_addr <= self.lo[0]
        longest = 0
        hint_addrs, hint_lens = self.hints.setdefault(align, ([], []))
        k = bisect_left(hint_lens, size) - 1        # the furthest hint whose bound is below size
        if k >= 0 and min_addr <= hint_addrs[k]:
            i = max(i, bisect_left(self.lo, hint_addrs[k]))
            covers_below, longest = True, hint_lens[k]
        found = None
        j = i
        for j in range(i, len(self.lo)):
            lo = max(self.lo[j], min_addr)
            if lo >= max_end:
                break
            base = align_up(lo, align)
            if base + size <= min(self.hi[j], max_end):
                found = base
                break
            room = self.hi[j] - align_up(self.lo[j], align)
            if room > longest:
                longest = room
        if covers_below and found is not None:
            self._hint(hint_addrs, hint_lens, self.lo[j], longest)
        return found

    @staticmethod
    def _hint(ha, hl, addr, longest):
        """Add (addr, longest) to a staircase, dropping the entries it makes useless."""
        p = bisect_left(ha, addr)
        if p < len(ha) and hl[p] <= longest:
            return          # a hint at or above addr with a bound as good already exists
        q = p
        while q > 0 and hl[q - 1] >= longest:
            q -= 1          # hints below addr with a worse (larger) bound are superseded
        ha[q:p] = [addr]
        hl[q:p] = [longest]

    def highest(self, size, align=1, min_addr=0, max_end=1 << 64):
        """Highest aligned start with [start, start+size) free, >= min_addr, ending <= max_end."""
        align = max(align, 1)
        j = bisect_right(self.lo, max_end) - 1
        for k in range(j, -1, -1):
            hi = min(self.hi[k], max_end)
            if hi <= min_addr:
                return None
            base = align_down(hi - size, align)
            if base >= max(self.lo[k], min_addr) and hi - size >= 0:
                return base
        return None
