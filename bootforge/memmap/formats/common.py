"""Checks every binary memory-map reader and writer shares."""

from bootforge.errors import FormatError, MemoryMapError
from bootforge.memmap.model import U64_LIMIT

# The last address an E820-style (u64 start, u64 size) entry may cover: Linux's
# e820__update_table() refuses an entry whose start + size wraps (is below start),
# so start + size must stay at or below 2^64 - 1 (arch/x86/kernel/e820.c).
E820_END_LIMIT = U64_LIMIT - 1


def check_whole(data, stride, path, what, base=0):
    """*data* must be a whole number of *stride*-byte entries."""
    if len(data) % stride:
        raise FormatError(f"{len(data)} bytes of {what} is not a whole number of {stride}-byte entries",
                          path=path, offset=base + len(data) - len(data) % stride)


def check_range_no_wrap(what, start, size, path, offset):
    """One range [start, start + size) must end at or below 2^64 - 1 (the E820 readers' rule)."""
    if start + size > E820_END_LIMIT:
        raise FormatError(f"{what} [{start:#x} + {size:#x}] wraps around 2^64", path=path, offset=offset)


def check_no_wrap(ranges, path, stride, base=0):
    """No range may wrap past 2^64 (the offset names the entry)."""
    for i, r in enumerate(ranges):
        check_range_no_wrap(f"entry {i}", r.start, r.size, path, base + i * stride)


def check_fits(memory_map, format_name, *, end_limit=E820_END_LIMIT, field_bits=64, type_bits=32,
               attribute_bits=None):
    """Every range of *memory_map* must be one the writer of *format_name* can hold.

    end_limit: the highest start + size the format (and its readers) accept;
    field_bits: the width of its start and size fields; type_bits and
    attribute_bits: the widths of its type and attribute fields (None: not written).
    A map read from a DTB with 3 or 4 address cells, or an SMBIOS range,
    can hold what these cannot: refused in one line naming the range.
    """
    field_limit = 1 << field_bits
    for i, r in enumerate(memory_map.ranges):
        where = f"{format_name} cannot hold range {i} [{r.start:#x} + {r.size:#x}]"
        if r.start >= field_limit or r.size >= field_limit:
            raise MemoryMapError(f"{where}: its start or size does not fit {field_bits} bits")
        if r.start + r.size > end_limit:
            raise MemoryMapError(f"{where}: it ends past {end_limit:#x}")
        if type_bits is not None and r.type >= 1 << type_bits:
            raise MemoryMapError(f"{where}: type {r.type:#x} does not fit {type_bits} bits")
        if attribute_bits is not None and (r.attributes or 0) >= 1 << attribute_bits:
            raise MemoryMapError(f"{where}: attributes {r.attributes:#x} do not fit {attribute_bits} bits")


def sniffed_stride(data, strides, implausible, path, noun, option):
    """The entry size of a table given without one: of *strides* (the default first), the one
    that divides the length; when several do, the one whose every entry is plausible
    (*implausible(data, stride)*: None, or (index, why) of the first entry no firmware writes);
    when none or several read plausibly, refuse to guess, naming *option*. None when no stride
    divides the length (the caller's whole-number check then names the default).
    *noun*: (singular, plural) of what an entry is called."""
    fits = [n for n in strides if len(data) % n == 0]
    if not fits:
        return None
    if len(fits) == 1 or not data:
        return fits[0]
    why = {n: implausible(data, n) for n in fits}
    plausible = [n for n in fits if why[n] is None]
    if len(plausible) == 1:
        return plausible[0]
    one, many = noun
    reason = ("each reads as a plausible table" if plausible else
              "; ".join(f"as {n}-byte {many}, {one} {why[n][0]} has {why[n][1]}" for n in fits))
    raise FormatError(f"{len(data)} bytes divide into " + " and ".join(f"{n}-" for n in fits) + f"byte {many} "
                      f"and {reason}: give {option} " + " or ".join(str(n) for n in fits), path=path)
