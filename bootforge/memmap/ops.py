"""Operations on memory maps, with Linux's semantics where Linux defines them.

sanitize       arch/x86/kernel/e820.c e820__update_table()
range_update   __e820__range_update()
range_remove   e820__range_remove()
carve, find_free   the allocators a loader needs (top-down like memblock and
                   Limine, bottom-up like Syslinux's zonelist).
"""

from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EfiMemoryType
from bootforge.memmap.model import MemoryMapError, MemoryRange, U64_LIMIT

U64_MASK = U64_LIMIT - 1
_TYPE_BITS = 32
_TYPE_MASK = (1 << _TYPE_BITS) - 1

# Linux e820_nomerge(): ranges of these types may mark NUMA or protection
# boundaries, so every change point starts a new entry.
# Plain ints on the per-change-point path (measured when the tables were IntEnums: a set
# of enum members halved the speed of this loop; bench/memmap.py).
NOMERGE_TYPES = frozenset(map(int, (E820Type.PRAM, E820Type.SOFT_RESERVED)))


def sanitize_entries(entries, max_entries=None):
    """Linux's e820__update_table() on (addr, size, type) triples.

    Returns the new list of triples, or None where Linux returns -1 and
    leaves the table alone: fewer than two entries, or an entry whose
    addr + size wraps past 2**64. Types are E820 numbers < 2**32; on
    overlap the highest number wins, holes stay holes, zero-size entries
    vanish, and adjacent same-type pieces merge unless the type is PRAM or
    SOFT_RESERVED. *max_entries* mirrors the kernel's table capacity
    (E820_MAX_ENTRIES): the sweep stops once that many entries are out.

    Linux keeps an overlap list and rescans it at every change point; this
    keeps a count per type instead (a map has a handful of types), so the
    cost is the sort: O(n log n).
    """
    if len(entries) < 2:
        return None
    points = []
    append = points.append
    for addr, size, typ in entries:
        if addr + size > U64_MASK:
            return None
        if size:
            # One sortable int per change point: address, then start (0)
            # before end (1) at equal addresses, then the type.
            append((addr << (_TYPE_BITS + 1)) | typ)
            append(((((addr + size) << 1) | 1) << _TYPE_BITS) | typ)
    points.sort()

    active = {}             # type -> number of entries of that type covering the sweep
    current = last_type = 0
    last_addr = 0
    out = []
    nomerge = NOMERGE_TYPES
    for point in points:
        typ = point & _TYPE_MASK
        edge = point >> _TYPE_BITS
        if edge & 1:
            left = active[typ] - 1
            if left:
                active[typ] = left
            else:
                del active[typ]
                if typ == current:
                    current = max(active) if active else 0
        else:
            active[typ] = active.get(typ, 0) + 1
            if typ > current:
                current = typ
        if current != last_type or current in nomerge:
            addr = edge >> 1
            if last_type and addr != last_addr:
                out.append((last_addr, addr - last_addr, last_type))
                if max_entries is not None and len(out) >= max_entries:
                    break
            if current:
                last_addr = addr
            last_type = current
    return out


def sanitize(memory_map, max_entries=None):
    """A new, sanitized map (E820 family): Linux's e820__update_table().

    When Linux would refuse (fewer than two entries, wrap-around) the map is
    returned unchanged, as the kernel leaves its table unchanged. EFI maps
    must be converted to E820 first (convert.efi_to_e820).
    """
    if memory_map.family != "e820":
        raise MemoryMapError("sanitize applies to E820 maps: convert the EFI map to E820 first")
    result = sanitize_entries([r.key() for r in memory_map.ranges], max_entries)
    if result is None:
        return memory_map.replace(memory_map.ranges)
    return memory_map.replace(MemoryRange(a, s, t) for a, s, t in result)


def _clamp(start, size):
    # Linux clamps a range that would run past 2**64 - 1.
    if size > U64_MASK - start:
        size = U64_MASK - start
    return start + size, size


def range_update(memory_map, start, size, old_type, new_type):
    """Linux's __e820__range_update(): retype the *old_type* parts of [start, start+size).

    Works in place on memory_map.ranges exactly as the kernel does: a fully
    covered entry is retyped; an entry strictly containing the range is
    split (the new piece and the tail are appended at the end); a partial
    overlap is trimmed and the new piece appended. Nothing is sorted or
    merged (call sanitize). Returns the number of bytes retyped.
    """
    if old_type == new_type:
        raise MemoryMapError("range update with the same old and new type")
    end, size = _clamp(start, size)
    ranges = memory_map.ranges
    updated = 0
    i = 0
    while i < len(ranges):          # appended pieces are visited too, as in Linux
        entry = ranges[i]
        i += 1
        if entry.type != old_type:
            continue
        entry_end = entry.start + entry.size
        if entry.start >= start and entry_end <= end:
            entry.type = new_type
            updated += entry.size
            continue
        if entry.start < start and entry_end > end:
            ranges.append(MemoryRange(start, size, new_type))
            ranges.append(MemoryRange(end, entry_end - end, entry.type))
            entry.size = start - entry.start
            updated += size
            continue
        final_start = max(start, entry.start)
        final_end = min(end, entry_end)
        if final_start >= final_end:
            continue
        ranges.append(MemoryRange(final_start, final_end - final_start, new_type))
        updated += final_end - final_start
        entry.size -= final_end - final_start
        if entry.start < final_start:
            continue
        entry.start = final_end
    return updated


def range_remove(memory_map, start, size, old_type=None):
    """Linux's e820__range_remove(): cut [start, start+size) out of the map.

    With *old_type* only entries of that type are cut (check_type). A fully
    covered entry is zeroed in place (addr 0, size 0, type 0, as Linux's
    memset; sanitize drops it); a strictly containing entry keeps its head
    and gets its tail appended. Returns the number of bytes removed.
    """
    end, size = _clamp(start, size)
    ranges = memory_map.ranges
    removed = 0
    i = 0
    while i < len(ranges):
        entry = ranges[i]
        i += 1
        if old_type is not None and entry.type != old_type:
            continue
        entry_end = entry.start + entry.size
        if entry.start >= start and entry_end <= end:
            removed += entry.size
            entry.start = entry.size = entry.type = 0
            entry.attributes = None
            continue
        if entry.start < start and entry_end > end:
            ranges.append(MemoryRange(end, entry_end - end, entry.type))
            entry.size = start - entry.start
            removed += size
            continue
        final_start = max(start, entry.start)
        final_end = min(end, entry_end)
        if final_start >= final_end:
            continue
        removed += final_end - final_start
        entry.size -= final_end - final_start
        if entry.start < final_start:
            continue
        entry.start = final_end
    return removed


def usable_types(memory_map):
    """The types find_free and carve treat as free by default: RAM, or EFI conventional."""
    return frozenset({int(EfiMemoryType.CONVENTIONAL)} if memory_map.family == "efi" else {int(E820Type.RAM)})


def free_intervals(memory_map, usable=None):
    """Sorted, disjoint [start, end) intervals covered by usable types and by nothing else.

    An unsanitized map may overlap: any non-usable range over usable memory
    takes it away (the conservative reading, and what sanitize would give
    for RAM, the lowest E820 type).
    """
    usable = usable_types(memory_map) if usable is None else frozenset(usable)
    events = []
    for r in memory_map.ranges:
        if r.size <= 0:
            continue
        good = r.type in usable
        events.append((r.start, 0, good))
        events.append((r.start + r.size, 1, good))
    events.sort()
    good_depth = bad_depth = 0
    out = []
    open_at = None
    for addr, is_end, good in events:
        if is_end:
            if good:
                good_depth -= 1
            else:
                bad_depth -= 1
        elif good:
            good_depth += 1
        else:
            bad_depth += 1
        free = good_depth > 0 and bad_depth == 0
        if free and open_at is None:
            open_at = addr
        elif not free and open_at is not None:
            if addr > open_at:
                if out and out[-1][1] == open_at:
                    out[-1] = (out[-1][0], addr)
                else:
                    out.append((open_at, addr))
            open_at = None
    return out


def find_free(memory_map, size, *, align=4096, min_addr=0, max_addr=U64_LIMIT,
              top_down=True, usable=None):
    """The address of a free block of *size* bytes, or None.

    The block is aligned to *align*, starts at or above *min_addr* and ends
    at or below *max_addr* (an exclusive limit: 0x100000 means "ends by
    1 MiB"). Top-down returns the highest such address (memblock, Limine,
    EFI AllocateMaxAddress); bottom-up the lowest (Syslinux first fit).
    """
    if size <= 0 or align <= 0:
        raise MemoryMapError(f"find_free needs a positive size and alignment (got {size}, {align})")
    intervals = free_intervals(memory_map, usable)
    if top_down:
        for lo, hi in reversed(intervals):
            hi = min(hi, max_addr)
            lo = max(lo, min_addr)
            if hi - lo < size:
                continue
            base = (hi - size) // align * align
            if base >= lo:
                return base
    else:
        for lo, hi in intervals:
            hi = min(hi, max_addr)
            lo = max(lo, min_addr)
            base = -(-lo // align) * align
            if base + size <= hi:
                return base
    return None


def carve(memory_map, start, size, new_type, *, usable=None, label=None):
    """A new map with [start, start+size) taken out of free memory and typed *new_type*.

    Every byte of the range must be free (see free_intervals); the ranges
    it cuts keep their heads and tails, and the result is sorted by start.
    This is how a loader records what it placed (the loader issue).
    """
    end = start + size
    if size <= 0 or end > U64_LIMIT:
        raise MemoryMapError(f"cannot carve [{start:#x}, {end:#x})")
    usable = usable_types(memory_map) if usable is None else frozenset(usable)
    if not any(lo <= start and end <= hi for lo, hi in free_intervals(memory_map, usable)):
        raise MemoryMapError(f"[{start:#x}, {end:#x}) is not wholly in free memory")
    out = []
    for r in memory_map.ranges:
        r_end = r.start + r.size
        if r.type not in usable or r_end <= start or r.start >= end:
            out.append(MemoryRange(r.start, r.size, r.type, r.attributes, r.label, r.flags))
            continue
        if r.start < start:
            out.append(MemoryRange(r.start, start - r.start, r.type, r.attributes, r.label, r.flags))
        if r_end > end:
            out.append(MemoryRange(end, r_end - end, r.type, r.attributes, r.label, r.flags))
    attrs = next((r.attributes for r in memory_map.ranges
                  if r.type in usable and r.start <= start < r.start + r.size), None)
    out.append(MemoryRange(start, size, new_type, attrs, label))
    out.sort(key=lambda r: (r.start, r.size))
    return memory_map.replace(out)
