"""Linux's E820 semantics: sanitize (e820__update_table), range update/remove,
and the allocators built on the model (find_free, carve)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootforge.memmap import MemoryMap, MemoryMapError, MemoryRange
from bootforge.memmap.ops import (
    carve, find_free, free_intervals, range_remove, range_update, sanitize, sanitize_entries,
)

RAM, RES, ACPI, NVS, UNUSABLE, PMEM, PRAM = 1, 2, 3, 4, 5, 7, 12
SOFT = 0xEFFFFFFF
NOMERGE = {PRAM, SOFT}


def reference_sanitize(entries):
    """Brute force, address by address: the type at each elementary interval is the
    highest covering type; neighbours merge unless PRAM/SOFT_RESERVED."""
    if len(entries) < 2 or any(a + s >= 1 << 64 for a, s, _ in entries):
        return None
    cuts = sorted({p for a, s, _ in entries if s for p in (a, a + s)})
    out = []
    for lo, hi in zip(cuts, cuts[1:]):
        typ = max([t for a, s, t in entries if s and a <= lo and hi <= a + s], default=0)
        if typ == 0:
            continue
        if out and out[-1][2] == typ and out[-1][0] + out[-1][1] == lo and typ not in NOMERGE:
            out[-1] = (out[-1][0], out[-1][1] + hi - lo, typ)
        else:
            out.append((lo, hi - lo, typ))
    return out


def per_address_sanitize(entries):
    """Brute force for small addresses, one address at a time: the type of each address,
    a new entry wherever the type changes, and for PRAM/SOFT_RESERVED also at every
    address where any entry starts or ends (Linux's change points)."""
    if len(entries) < 2:
        return None
    top = max([a + s for a, s, _ in entries] + [0])
    cuts = {p for a, s, _ in entries if s for p in (a, a + s)}
    out = []
    for addr in range(top):
        typ = max([t for a, s, t in entries if a <= addr < a + s], default=0)
        if typ == 0:
            continue
        if out and out[-1][2] == typ and out[-1][0] + out[-1][1] == addr and not (typ in NOMERGE and addr in cuts):
            out[-1] = (out[-1][0], out[-1][1] + 1, typ)
        else:
            out.append((addr, 1, typ))
    return out


# ---- hand-made tricky cases with their values written out ------------------

@pytest.mark.parametrize("entries, expected", [
    # nested overlaps: the highest type wins at every depth
    ([(0, 0x1000, RAM), (0x100, 0x800, RES), (0x200, 0x100, ACPI)],
     [(0, 0x100, RAM), (0x100, 0x100, RES), (0x200, 0x100, ACPI), (0x300, 0x600, RES), (0x900, 0x700, RAM)]),
    # equal starts: the higher type takes the common head
    ([(0, 100, RAM), (0, 50, RES)], [(0, 50, RES), (50, 50, RAM)]),
    # equal starts and ends, three types
    ([(10, 10, NVS), (10, 10, RAM), (10, 10, ACPI)], [(10, 10, NVS)]),
    # adjacent different types stay apart, adjacent equal types merge
    ([(0, 10, RAM), (10, 10, RES)], [(0, 10, RAM), (10, 10, RES)]),
    ([(10, 10, RAM), (0, 10, RAM)], [(0, 20, RAM)]),
    # zero sizes vanish (and still count towards "at least two entries")
    ([(0, 0, RAM), (5, 10, RAM)], [(5, 10, RAM)]),
    ([(0, 0, RAM), (0, 0, RES)], []),
    # holes stay holes
    ([(0, 10, RAM), (20, 10, RAM)], [(0, 10, RAM), (20, 10, RAM)]),
    # PRAM and SOFT_RESERVED never merge, and split at every change point inside them
    ([(0, 10, PRAM), (10, 10, PRAM)], [(0, 10, PRAM), (10, 10, PRAM)]),
    ([(0, 100, PRAM), (20, 10, RAM)], [(0, 20, PRAM), (20, 10, PRAM), (30, 70, PRAM)]),
    ([(0, 0x1000, SOFT), (0x1000, 0x1000, SOFT), (0x2000, 0x1000, RAM)],
     [(0, 0x1000, SOFT), (0x1000, 0x1000, SOFT), (0x2000, 0x1000, RAM)]),
    # PMEM (7) merges normally
    ([(0, 10, PMEM), (10, 10, PMEM)], [(0, 20, PMEM)]),
    # unknown types keep their numbers and still compete by value
    ([(0, 100, 6), (50, 100, 20)], [(0, 50, 6), (50, 100, 20)]),
    # a range ending exactly at 2^64 - 1 is fine
    ([(0, 10, RAM), ((1 << 64) - 0x1001, 0x1000, RES)], [(0, 10, RAM), ((1 << 64) - 0x1001, 0x1000, RES)]),
])
def test_sanitize_tricky_cases(entries, expected):
    assert sanitize_entries(entries) == expected
    assert reference_sanitize(entries) == expected
    if all(a + s < 0x2000 for a, s, _ in entries):
        assert per_address_sanitize(entries) == expected


@pytest.mark.parametrize("entries", [
    [(0, 10, RAM)],                                  # fewer than two entries: Linux returns -1
    [],
    [(0, 10, RAM), ((1 << 64) - 0x1000, 0x1000, RES)],   # addr + size == 2^64 wraps to 0
    [(0, 10, RAM), ((1 << 64) - 16, 32, RES)],
])
def test_sanitize_refuses_like_linux(entries):
    assert sanitize_entries(entries) is None
    m = MemoryMap("e820", [MemoryRange(*e) for e in entries])
    assert sanitize(m).keys() == entries          # the table is left alone


def test_sanitize_max_entries_stops_like_the_kernel_table():
    entries = [(i * 20, 10, RAM) for i in range(10)]
    assert sanitize_entries(entries, max_entries=4) == entries[:4]


def test_sanitize_refuses_efi_maps():
    with pytest.raises(MemoryMapError):
        sanitize(MemoryMap("efi", [MemoryRange(0, 4096, 7), MemoryRange(4096, 4096, 7)]))


TYPES = st.sampled_from([0, RAM, RES, ACPI, NVS, UNUSABLE, 6, PMEM, PRAM, 128, SOFT])
ENTRY = st.tuples(st.integers(0, 64), st.integers(0, 40), TYPES)


@settings(max_examples=400, deadline=None)
@given(st.lists(ENTRY, max_size=14))
def test_sanitize_matches_per_address_brute_force(entries):
    assert sanitize_entries(entries) == per_address_sanitize(entries)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, (1 << 64) - 1), st.integers(0, 1 << 63), TYPES), max_size=8))
def test_sanitize_matches_brute_force_at_64_bit_edges(entries):
    assert sanitize_entries(entries) == reference_sanitize(entries)


@settings(max_examples=200, deadline=None)
@given(st.lists(ENTRY, min_size=2, max_size=14))
def test_sanitize_is_idempotent_and_sorted(entries):
    once = sanitize_entries(entries)
    if len(once) >= 2:
        assert sanitize_entries(once) == once
    assert all(a + s <= b for (a, s, _), (b, _, _) in zip(once, once[1:]))
    assert all(s > 0 and t != 0 for _, s, t in once)


# ---- range update / remove ------------------------------------------------

def emap(*entries):
    return MemoryMap("e820", [MemoryRange(*e) for e in entries])


def test_range_update_splits_in_three_and_appends():
    m = emap((0, 0x1000, RAM))
    assert range_update(m, 0x100, 0x100, RAM, RES) == 0x100
    assert m.keys() == [(0, 0x100, RAM), (0x100, 0x100, RES), (0x200, 0xE00, RAM)]


def test_range_update_partial_head_and_tail():
    m = emap((0x1000, 0x1000, RAM), (0x3000, 0x1000, RAM))
    assert range_update(m, 0x800, 0x1000, RAM, RES) == 0x800         # covers the head of entry 0
    assert range_update(m, 0x3800, 0x1000, RAM, RES) == 0x800        # covers the tail of entry 1
    assert m.keys() == [(0x1800, 0x800, RAM), (0x3000, 0x800, RAM), (0x1000, 0x800, RES),
                        (0x3800, 0x800, RES)]


def test_range_update_only_touches_old_type_and_retypes_whole_entries():
    m = emap((0, 0x1000, RES), (0x1000, 0x1000, RAM), (0x2000, 0x1000, ACPI))
    assert range_update(m, 0, 0x3000, RAM, UNUSABLE) == 0x1000
    assert m.keys() == [(0, 0x1000, RES), (0x1000, 0x1000, UNUSABLE), (0x2000, 0x1000, ACPI)]


def test_range_update_clamps_at_2_to_the_64():
    m = emap((0xFFFF_F000_0000_0000, 0x1000, RAM))
    assert range_update(m, 0xFFFF_F000_0000_0800, 1 << 64, RAM, RES) == 0x800
    assert m.keys() == [(0xFFFF_F000_0000_0000, 0x800, RAM), (0xFFFF_F000_0000_0800, 0x800, RES)]


def test_range_update_same_type_is_refused():
    with pytest.raises(MemoryMapError):
        range_update(emap((0, 10, RAM)), 0, 5, RAM, RAM)


def test_range_remove_zeroes_covered_entries_and_keeps_the_rest():
    m = emap((0, 0x1000, RAM), (0x1000, 0x1000, RES), (0x2000, 0x2000, RAM))
    assert range_remove(m, 0x1000, 0x2000) == 0x2000
    # entry 1 is memset to zero in place; entry 2 loses its head
    assert m.keys() == [(0, 0x1000, RAM), (0, 0, 0), (0x3000, 0x1000, RAM)]
    assert sanitize(m).keys() == [(0, 0x1000, RAM), (0x3000, 0x1000, RAM)]


def test_range_remove_with_type_check_and_inside_split():
    m = emap((0, 0x10000, RAM), (0x2000, 0x1000, RES))
    assert range_remove(m, 0x1000, 0x4000, old_type=RAM) == 0x4000
    assert m.keys() == [(0, 0x1000, RAM), (0x2000, 0x1000, RES), (0x5000, 0xB000, RAM)]


def test_this_machines_boot_edits_replayed():
    """dmesg here: 'e820: update [mem 0x00000000-0x00000fff] usable ==> reserved' and
    'e820: remove [mem 0x000a0000-0x000fffff] usable' on the firmware map, then sanitize."""
    m = emap((0, 0x9FC00, RAM), (0x9FC00, 0x60400, RES), (0x100000, 0xBFF00000, RAM),
             (0xEEC00000, 0x10000000, RES), (0x100000000, 0x540000000, RAM))
    assert range_update(m, 0, 0x1000, RAM, RES) == 0x1000
    assert range_remove(m, 0xA0000, 0x60000, old_type=RAM) == 0
    assert sanitize(m).keys() == [(0, 0x1000, RES), (0x1000, 0x9EC00, RAM), (0x9FC00, 0x60400, RES),
                                  (0x100000, 0xBFF00000, RAM), (0xEEC00000, 0x10000000, RES),
                                  (0x100000000, 0x540000000, RAM)]


# ---- allocators --------------------------------------------------------------

# QEMU 7.2 + SeaBIOS, -m 256 (tests/data/memmap-qemu-seabios-m256.txt)
QEMU_256 = emap((0, 0x9FC00, RAM), (0x9FC00, 0x400, RES), (0xF0000, 0x10000, RES),
                (0x100000, 0xFEE0000, RAM), (0xFFE0000, 0x20000, RES), (0xFFFC0000, 0x40000, RES),
                (0xFD00000000, 0x300000000, RES))


def test_find_free_top_down_and_bottom_up():
    assert find_free(QEMU_256, 0x1000) == 0xFFDF000
    assert find_free(QEMU_256, 0x1000, max_addr=0x100000) == 0x9E000          # trampoline below 1 MiB
    assert find_free(QEMU_256, 0x200000, align=0x200000, max_addr=1 << 32) == 0xFC00000   # Xen: 2 MiB aligned
    assert find_free(QEMU_256, 0x1000, top_down=False) == 0
    assert find_free(QEMU_256, 0x1000, top_down=False, min_addr=0x1000) == 0x1000
    assert find_free(QEMU_256, 0x1000, top_down=False, min_addr=0x9F000) == 0x100000
    assert find_free(QEMU_256, 0x10, align=0x10, top_down=False, min_addr=0x9FBF8) == 0x100000
    assert find_free(QEMU_256, 0x100000, align=0x200000, top_down=False, min_addr=0x100000) == 0x200000
    assert find_free(QEMU_256, 0x10000000) is None                           # 256 MiB does not fit


def test_find_free_ignores_ram_under_reserved_in_an_unsanitized_map():
    m = emap((0, 0x10000, RAM), (0x8000, 0x1000, RES))
    assert free_intervals(m) == [(0, 0x8000), (0x9000, 0x10000)]
    assert find_free(m, 0x1000, max_addr=0x9000) == 0x7000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 48), st.integers(1, 16), st.sampled_from([RAM, RAM, RES])), max_size=6),
       st.integers(1, 12), st.sampled_from([1, 2, 4, 8]), st.integers(0, 40), st.integers(0, 70), st.booleans())
def test_find_free_matches_brute_force(entries, size, align, lo, hi, top_down):
    m = emap(*entries)
    free = {a for a in range(80) if any(s <= a < s + n and t == RAM for s, n, t in entries)
            and not any(s <= a < s + n and t != RAM for s, n, t in entries)}
    fits = [b for b in range(0, 80, align) if b >= lo and b + size <= hi and all(x in free for x in range(b, b + size))]
    expected = (max(fits) if top_down else min(fits)) if fits else None
    assert find_free(m, size, align=align, min_addr=lo, max_addr=hi, top_down=top_down) == expected


def test_carve_splits_and_retypes():
    out = carve(QEMU_256, 0x200000, 0x100000, 128)
    assert out.keys()[3:6] == [(0x100000, 0x100000, RAM), (0x200000, 0x100000, 128), (0x300000, 0xFCE0000, RAM)]
    assert len(out) == len(QEMU_256) + 2
    assert QEMU_256.keys()[3] == (0x100000, 0xFEE0000, RAM)      # input untouched


def test_carve_refuses_memory_that_is_not_free():
    with pytest.raises(MemoryMapError, match="not wholly in free memory"):
        carve(QEMU_256, 0x9F000, 0x2000, 128)
