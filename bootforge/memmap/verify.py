"""The invariants of a verified memory map (memory-policies.md), as named checks.

Each check returns a bootforge.verdict.Verdict: subject = the check's name,
whether it held, and a reason that says what was found (severity "warning"
for what is normal for the kind of map). Placement invariants (6, 7, 9) belong to the loader.
"""

from bootforge.errors import MemoryMapError
from bootforge.formats.e820 import BOOT_PARAMS_E820_MAX, E820Type
from bootforge.formats.efi_memmap import (
    EFI_DESCRIPTOR_MIN_SIZE, EFI_DESCRIPTOR_VERSION, EFI_OEM_TYPES, EFI_OS_LOADER_TYPES,
    EFI_PAGE_SIZE, EfiMemoryAttribute, EfiMemoryType,
)
from bootforge.formats.multiboot import MB1_MMAP_SIZE_FIELD, MB2_MMAP_ENTRY_SIZE
from bootforge.memmap.convert import RESERVED_MEMORY_UNSUPPORTED, efi_to_e820
from bootforge.memmap.model import (
    FLAG_MEMRESERVE, FLAG_NO_MAP, FLAG_REUSABLE, U64_LIMIT, MemoryMap,
)
from bootforge.memmap.ops import carve, find_free, sanitize, sanitize_entries
from bootforge.verdict import check

EFI_RUNTIME_TYPES = (EfiMemoryType.RUNTIME_SERVICES_CODE, EfiMemoryType.RUNTIME_SERVICES_DATA)


def _fmt(r):
    return f"[{r.start:#x}, {r.start + r.size:#x})"


def _entry_checks(ranges, what="entries"):
    checks = [check("has-entries", bool(ranges), f"{len(ranges)} {what}" if ranges
                    else f"no {what}: an empty map describes no memory")]
    bad = [r for r in ranges if r.size <= 0]
    checks.append(check("size-nonzero", not bad,
                        f"{len(ranges)} {what}, none empty" if not bad
                        else f"{len(bad)} empty, first at {bad[0].start:#x}"))
    wrap = [r for r in ranges if r.start + r.size > U64_LIMIT - 1]
    checks.append(check("no-wraparound", not wrap, "no entry wraps past 2^64" if not wrap
                        else f"{_fmt(wrap[0])} wraps"))
    unsorted = next((i for i in range(1, len(ranges)) if ranges[i].start < ranges[i - 1].start), None)
    checks.append(check("sorted", unsorted is None, "sorted by start" if unsorted is None
                        else f"entry {unsorted} {_fmt(ranges[unsorted])} starts below entry {unsorted - 1} "
                             f"{_fmt(ranges[unsorted - 1])}"))
    ordered = sorted(ranges, key=lambda r: r.start)
    overlap = next(((a, b) for a, b in zip(ordered, ordered[1:]) if b.start < a.start + a.size), None)
    checks.append(check("no-overlap", overlap is None, "no two entries overlap" if overlap is None
                        else f"{_fmt(overlap[0])} overlaps {_fmt(overlap[1])}"))
    return checks


def _e820_checks(m):
    checks = []
    keys = m.keys()
    once = sanitize_entries(keys)
    if once is None:
        checks.append(check("sanitized", len(keys) < 2,
                            "fewer than two entries: nothing to sanitize" if len(keys) < 2
                            else "Linux refuses to sanitize a map with a wrapping entry"))
    else:
        same = once == [k for k in keys]
        first = next((i for i, (a, b) in enumerate(zip(once, keys)) if a != b), min(len(once), len(keys)))
        checks.append(check("sanitized", same,
                            "equal to Linux's e820__update_table() of itself (merged, highest type wins)"
                            if same else f"sanitizing changes it: {len(keys)} -> {len(once)} entries, "
                                         f"first difference at entry {first}"))
        twice = sanitize_entries(once) if len(once) >= 2 else once
        checks.append(check("sanitize-idempotent", twice == once,
                            "sanitizing the sanitized map changes nothing" if twice == once
                            else "sanitize(sanitize(map)) differs from sanitize(map)"))
    n = len(keys)
    checks.append(check("boot-params-fit", n <= BOOT_PARAMS_E820_MAX,
                        f"{n} entries fit boot_params' e820_table[{BOOT_PARAMS_E820_MAX}]" if n <= BOOT_PARAMS_E820_MAX
                        else f"{n} entries: {BOOT_PARAMS_E820_MAX} in boot_params, {n - BOOT_PARAMS_E820_MAX} "
                             "in a SETUP_E820_EXT setup_data", warning=True))
    return checks


def _efi_checks(m):
    checks = []
    ds = m.descriptor_size
    checks.append(check("descriptor-size", ds >= EFI_DESCRIPTOR_MIN_SIZE and ds % 8 == 0,
                        f"DescriptorSize {ds} (>= 40, multiple of 8, used as the stride)"))
    checks.append(check("descriptor-version", m.descriptor_version == EFI_DESCRIPTOR_VERSION,
                        f"DescriptorVersion {m.descriptor_version} (want 1)"))
    bad = [r for r in m.ranges if r.start % EFI_PAGE_SIZE]
    checks.append(check("page-aligned", not bad, "every PhysicalStart is 4 KiB aligned" if not bad
                        else f"{len(bad)} unaligned, first at {bad[0].start:#x}"))
    bad = [r for r in m.ranges if r.size == 0 or r.size % EFI_PAGE_SIZE]
    checks.append(check("pages-nonzero", not bad, "every NumberOfPages is non-zero" if not bad
                        else f"{len(bad)} with no whole pages, first at {bad[0].start:#x}"))
    bad = [r for r in m.ranges if not (r.type <= 15 or r.type in EFI_OEM_TYPES or r.type in EFI_OS_LOADER_TYPES)]
    checks.append(check("known-types", not bad, "types 0-15, OEM or OS-loader ranges" if not bad
                        else f"type {bad[0].type:#x} at {bad[0].start:#x} is in no defined range"))
    bad = [r for r in m.ranges if r.type in EFI_RUNTIME_TYPES and not (r.attributes or 0) & EfiMemoryAttribute.RUNTIME]
    checks.append(check("runtime-attribute", not bad,
                        "runtime-services code/data carry EFI_MEMORY_RUNTIME" if not bad
                        else f"{len(bad)} runtime descriptor(s) without EFI_MEMORY_RUNTIME, first at {bad[0].start:#x}"))
    return checks


def _fdt_checks(m):
    checks = []
    memory = [r for r in m.ranges if r.type == E820Type.RAM and FLAG_MEMRESERVE not in r.flags]
    static = [r for r in m.ranges if r.type != E820Type.RAM and FLAG_MEMRESERVE not in r.flags]
    rsv = [r for r in m.ranges if FLAG_MEMRESERVE in r.flags]
    # No /memory range, or a zero-size placeholder, is normal for a tree the boot loader
    # fills in (U-Boot's fdt_fixup_memory, the EFI stub): a warning, not a defect.
    filled_in = ("has-entries", "size-nonzero")
    checks += [check(f"memory-{c.subject}", c.ok,
                     c.reason + (" (normal for a tree the boot loader fills in)"
                                 if not c.ok and c.subject in filled_in else ""),
                     warning=c.subject in filled_in)
               for c in _entry_checks(memory, "memory ranges")
               if c.subject in ("has-entries", "size-nonzero", "no-overlap")]
    wrap = [r for r in m.ranges if r.start + r.size > U64_LIMIT - 1]
    checks.append(check("no-wraparound", not wrap, "no range ends past 2^64 - 1" if not wrap
                        else f"{wrap[0].label or 'reservation'} {_fmt(wrap[0])} wraps past 2^64"))
    for warning in m.facts.get("warnings", []):
        checks.append(check("fdt-property", False, warning, warning=True))
    ordered = sorted(rsv, key=lambda r: r.start)
    overlap = next(((a, b) for a, b in zip(ordered, ordered[1:]) if b.start < a.start + a.size), None)
    checks.append(check("reservations-no-overlap", overlap is None,
                        f"{len(rsv)} reservation-block entries, aligned and terminated (checked on parse), "
                        "none overlapping" if overlap is None
                        else f"reservation {_fmt(overlap[0])} overlaps {_fmt(overlap[1])}"))
    cells = m.facts.get("reserved_memory_cells")
    if cells is not None:
        want = (m.facts.get("address_cells"), m.facts.get("size_cells"))
        ok = tuple(cells) == want and m.facts.get("reserved_memory_ranges_empty")
        ignored = m.facts.get("reserved_memory_ignored")
        checks.append(check("reserved-memory-cells", bool(ok),
                            ignored or f"/reserved-memory cells {tuple(cells)} vs root {want}, "
                            f"ranges {'empty' if m.facts.get('reserved_memory_ranges_empty') else 'not empty'}",
                            words=RESERVED_MEMORY_UNSUPPORTED if ignored else None))
    both = [r for r in static if FLAG_NO_MAP in r.flags and FLAG_REUSABLE in r.flags]
    both_dyn = [d for d in m.facts.get("dynamic", []) if {"no-map", "reusable"} <= set(d["flags"])]
    checks.append(check("no-map-reusable-exclusive", not both and not both_dyn,
                        "no region is both no-map and reusable" if not (both or both_dyn)
                        else f"{(both[0].label if both else both_dyn[0]['name'])} is both no-map and reusable"))
    outside = [r for r in static if memory and not any(
        mr.start <= r.start and r.start + r.size <= mr.start + mr.size for mr in memory)]
    checks.append(check("static-inside-memory", not outside,
                        f"{len(static)} static reserved region(s) inside /memory" if not outside
                        else f"{outside[0].label or _fmt(outside[0])} {_fmt(outside[0])} is not inside /memory",
                        warning=True))
    if wrap:        # no allocation can be modelled in an address space that wraps
        return checks
    checks.extend(_dynamic_checks(m, memory, static + rsv))
    return checks


def _dynamic_checks(m, memory, taken):
    """Allocate the dynamic /reserved-memory regions as Linux does: in order,
    top-down inside alloc-ranges (or all of /memory), clear of static regions."""
    dynamic = m.facts.get("dynamic", [])
    if not dynamic:
        return []
    if not any(r.size for r in memory):
        # Nothing to allocate in until the boot loader fills /memory in: not a defect of the tree.
        return [check("dynamic-regions-allocatable", False,
                      f"{len(dynamic)} dynamic region(s) not placed: no /memory range to allocate them in "
                      "(normal for a tree the boot loader fills in)", warning=True)]
    view = sanitize(MemoryMap("e820", list(memory) + list(taken)))
    problems, placed = [], []
    for d in dynamic:
        align = d.get("alignment") or 4096
        if align & (align - 1):
            problems.append(f"{d['name']}: alignment {align:#x} is not a power of two")
            continue
        if d["size"] == 0:
            problems.append(f"{d['name']}: size 0")
            continue
        addr = None
        for lo, size in d.get("alloc-ranges") or [(0, U64_LIMIT)]:
            try:
                addr = find_free(view, d["size"], align=align, min_addr=lo, max_addr=lo + size)
            except MemoryMapError as exc:
                problems.append(f"{d['name']}: {exc}")
                break
            if addr is not None:
                break
        if addr is None:
            problems.append(f"{d['name']}: no room for {d['size']:#x} bytes aligned {align:#x}"
                            + (" inside alloc-ranges" if d.get("alloc-ranges") else ""))
            continue
        view = carve(view, addr, d["size"], E820Type.RESERVED)
        placed.append(f"{d['name']} at {addr:#x}")
    return [check("dynamic-regions-allocatable", not problems,
                  ("allocated top-down: " + ", ".join(placed)) if not problems else "; ".join(problems))]


def verify_map(memory_map, *, reference_efi=None):
    """All checks that apply to *memory_map* (a list of Verdict).

    :param reference_efi: an EFI MemoryMap this E820 map should equal the
        Linux stub's conversion of (invariant 5).
    """
    m = memory_map
    checks = []
    if m.source == "fdt":
        checks += _fdt_checks(m)
    else:
        checks += _entry_checks(m.ranges)
        checks += _e820_checks(m) if m.family == "e820" else _efi_checks(m)
    sizes = m.facts.get("mb1_entry_sizes")
    if sizes is not None:
        checks.append(check("mb1-entry-size", sizes in ([], [MB1_MMAP_SIZE_FIELD]),
                            f"entry sizes {sizes} (GRUB and QEMU write 20)"))
    if "mb2_entry_size" in m.facts:
        es, ev = m.facts["mb2_entry_size"], m.facts["mb2_entry_version"]
        checks.append(check("mb2-entry-format", es == MB2_MMAP_ENTRY_SIZE and ev == 0,
                            f"entry_size {es}, entry_version {ev} (want 24, 0)"))
    if reference_efi is not None:
        if reference_efi.family != "efi" or m.family != "e820":
            raise MemoryMapError("--efi-reference compares an E820 map with an EFI map")
        derived = efi_to_e820(reference_efi).keys()
        same = derived == m.keys()
        first = next((i for i, (a, b) in enumerate(zip(derived, m.keys())) if a != b),
                     min(len(derived), len(m.keys())))
        checks.append(check("efi-stub-agrees", same,
                            f"equal to the Linux stub's conversion of the EFI map ({len(derived)} entries)"
                            if same else f"differs from the stub's conversion at entry {first} "
                                         f"({len(m.keys())} vs {len(derived)} entries)"))
    return checks
