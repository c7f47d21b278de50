"""Checks every binary memory-map reader shares."""

from bootforge.errors import FormatError
from bootforge.memmap.model import U64_LIMIT


def check_whole(data, stride, path, what, base=0):
    """*data* must be a whole number of *stride*-byte entries."""
    if len(data) % stride:
        raise FormatError(f"{len(data)} bytes of {what} is not a whole number of {stride}-byte entries",
                          path=path, offset=base + len(data) - len(data) % stride)


def check_no_wrap(ranges, path, stride, base=0):
    """No range may wrap past 2^64 (the offset names the entry)."""
    for i, r in enumerate(ranges):
        if r.start + r.size > U64_LIMIT - 1:
            raise FormatError(f"entry {i} [{r.start:#x} + {r.size:#x}] wraps around 2^64",
                              path=path, offset=base + i * stride)
