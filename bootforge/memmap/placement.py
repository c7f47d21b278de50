"""Placement invariants (memory-policies.md, invariants 6, 7 and 9) as named checks.

The loader issue decides where things go; these checks judge any such
decision against the input map: components in usable memory, clear of each
other, of hidden regions and of FDT reservations, retyped in the output map;
the policy rules of the real loaders; and a move plan simulated on an
ownership map.
"""

from bisect import bisect_right
from dataclasses import dataclass

from bootforge.memmap.ops import free_intervals, find_free, usable_types
from bootforge.verdict import check

MIB = 1 << 20
GIB4 = 1 << 32
PAGE = 4096
IPXE_MAX_ADDR = 0xFFF00000


@dataclass(frozen=True)
class Component:
    """Something a loader placed: [start, start + size) under a name."""

    name: str
    start: int
    size: int

    @property
    def end(self):
        return self.start + self.size


def _span(c):
    return f"{c.name} [{c.start:#x}, {c.end:#x})"


def _overlaps(a_start, a_end, b_start, b_end):
    return a_start < b_end and b_start < a_end


def check_placement(input_map, output_map, components, *, hidden=(), reservations=()):
    """Invariant 6. *hidden* and *reservations* are (start, size) pairs."""
    checks = []
    free = free_intervals(input_map)
    outside = [c for c in components if c.size <= 0 or not any(lo <= c.start and c.end <= hi for lo, hi in free)]
    checks.append(check("placement-in-usable-memory", not outside,
                        f"{len(components)} component(s) wholly in usable memory of the input map" if not outside
                        else f"{_span(outside[0])} is not wholly in usable memory"))
    ordered = sorted(components, key=lambda c: c.start)
    clash = next(((a, b) for a, b in zip(ordered, ordered[1:]) if b.start < a.end), None)
    checks.append(check("placement-no-overlap", clash is None, "no two components overlap" if clash is None
                        else f"{_span(clash[0])} overlaps {_span(clash[1])}"))
    for name, regions, what in (("placement-clear-of-hidden", hidden, "hidden region"),
                                ("placement-clear-of-reservations", reservations, "FDT reservation")):
        hit = next(((c, s, n) for c in components for s, n in regions if _overlaps(c.start, c.end, s, s + n)), None)
        checks.append(check(name, hit is None, f"no component touches a {what} ({len(regions)} given)"
                            if hit is None else f"{_span(hit[0])} overlaps {what} [{hit[1]:#x}, {hit[1] + hit[2]:#x})"))
    still_free = free_intervals(output_map, usable_types(output_map))
    free_starts = [lo for lo, _hi in still_free]

    def still_usable(c):    # sorted, disjoint intervals: bisect to the first that may overlap c
        k = max(bisect_right(free_starts, c.start) - 1, 0)
        while k < len(still_free) and still_free[k][0] < c.end:
            if _overlaps(c.start, c.end, *still_free[k]):
                return True
            k += 1
        return False
    loose = [c for c in components if still_usable(c)]
    checks.append(check("placement-retyped", not loose, "every component is retyped in the output map" if not loose
                        else f"{_span(loose[0])} is still usable memory in the output map"))
    return checks


def check_trampoline(component):
    """Invariant 7: a real-mode trampoline ends at or below 1 MiB and is page aligned."""
    ok = component.end <= MIB and component.start % PAGE == 0
    return check("trampoline-below-1mib", ok, f"{_span(component)}: must end <= 0x100000 and be 4 KiB aligned")


def check_xen_image(component):
    """Invariant 7: the Xen image lies below 4 GiB, 2 MiB aligned."""
    ok = component.end <= GIB4 and component.start % (2 * MIB) == 0
    return check("xen-image-placement", ok, f"{_span(component)}: must end <= 4 GiB and be 2 MiB aligned")


def check_ipxe_relocation(old_start, component):
    """Invariant 7: iPXE's relocation ends by 0xfff00000 and keeps the address mod 4096."""
    ok = component.end <= IPXE_MAX_ADDR and component.start % PAGE == old_start % PAGE
    return check("ipxe-relocation", ok, f"{_span(component)} from {old_start:#x}: must end <= 0xfff00000 "
                                        "and keep start mod 4096")


def check_top_down(input_map, component, align=PAGE, limit=GIB4):
    """Invariant 7: a top-down allocation is the highest aligned fit below *limit*."""
    best = find_free(input_map, component.size, align=align, max_addr=limit)
    ok = best == component.start
    return check("top-down-highest-fit", ok, f"{_span(component)}; the highest {align:#x}-aligned fit below "
                                             f"{limit:#x} is {'none' if best is None else hex(best)}")


def check_low_page_untouched(components):
    """Invariant 7: nothing is placed in [0, 0x1000) (real-mode IVT and BDA)."""
    hit = [c for c in components if c.start < PAGE and c.size > 0]
    return check("low-page-untouched", not hit, "nothing in [0, 0x1000)" if not hit else f"{_span(hit[0])} is in it")


def check_bda_base_memory(fbms_kib, hidden_base_start):
    """Invariant 7: the BDA word at 0x413 (KiB) times 1024 is where hidden base memory starts."""
    ok = fbms_kib * 1024 == hidden_base_start
    return check("bda-fbms-matches", ok, f"0x413 says {fbms_kib} KiB = {fbms_kib * 1024:#x}; "
                                         f"hidden base memory starts at {hidden_base_start:#x}")


@dataclass(frozen=True)
class Move:
    """Copy *size* bytes of fragment *name* from *source* to *destination* (memmove semantics)."""

    name: str
    source: int
    destination: int
    size: int


def check_move_plan(input_map, fragments, moves):
    """Invariant 9: simulate *moves* on an ownership map.

    *fragments* maps a name to (current start, size, final destination).
    A move may read only bytes its fragment owns, and write only to free
    memory of *input_map*, to the fragment's own final destination, or over
    its own current bytes (a shifting memmove); every fragment must end at
    its destination. Returns two checks: the writes, and completion.
    """
    free = free_intervals(input_map)
    owned = {name: [(start, start + size)] for name, (start, size, _dst) in fragments.items()}
    problems = []

    def owner_at(lo, hi, exclude):
        for other, spans in owned.items():
            if other != exclude and any(_overlaps(lo, hi, a, b) for a, b in spans):
                return other
        return None

    def covered(lo, hi, spans):
        spans = sorted(spans)
        pos = lo
        for a, b in spans:
            if a <= pos < b:
                pos = b
            if pos >= hi:
                return True
        return pos >= hi

    for i, mv in enumerate(moves):
        if mv.name not in fragments:
            problems.append(f"move {i}: unknown fragment {mv.name!r}")
            continue
        src_lo, src_hi = mv.source, mv.source + mv.size
        dst_lo, dst_hi = mv.destination, mv.destination + mv.size
        if not covered(src_lo, src_hi, owned[mv.name]):
            problems.append(f"move {i}: {mv.name} does not own [{src_lo:#x}, {src_hi:#x})")
            continue
        final = fragments[mv.name][2]
        allowed = free + [(final, final + fragments[mv.name][1])] + owned[mv.name]
        clobbered = owner_at(dst_lo, dst_hi, mv.name)
        if clobbered is not None:
            problems.append(f"move {i}: writing [{dst_lo:#x}, {dst_hi:#x}) clobbers {clobbered}")
            continue
        if not covered(dst_lo, dst_hi, allowed):
            problems.append(f"move {i}: [{dst_lo:#x}, {dst_hi:#x}) is neither free nor {mv.name}'s destination")
            continue
        # The fragment now owns its bytes at the destination instead of the source.
        kept = []
        for a, b in owned[mv.name]:
            if a < src_lo:
                kept.append((a, min(b, src_lo)))
            if b > src_hi:
                kept.append((max(a, src_hi), b))
        owned[mv.name] = sorted(kept + [(dst_lo, dst_hi)])
    writes = check("move-plan-writes", not problems, f"{len(moves)} move(s) write only free memory or own "
                   "destinations" if not problems else "; ".join(problems[:3]))
    misplaced = [name for name, (_s, size, dst) in fragments.items()
                 if not covered(dst, dst + size, owned[name]) or sum(b - a for a, b in owned[name]) != size]
    done = check("move-plan-complete", not misplaced, "every fragment ends at its destination" if not misplaced
                 else f"not at their destinations: {', '.join(misplaced)}")
    return [writes, done]
