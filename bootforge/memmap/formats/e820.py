"""E820 maps: Linux's /sys/firmware/memmap directory, dmesg's BIOS-e820 lines, and the
binary table (20-byte entries, or ACPI 3.0's 24-byte ones).

Sources: Linux arch/x86/kernel/e820.c (e820_type_to_string() for sysfs,
e820_print_type() for dmesg); layouts in bootforge/formats/e820.py.
"""

import os
import re
import shutil
import struct
import tempfile
from pathlib import Path

from bootforge.errors import BootforgeError, FormatError, LimitError
from bootforge.formats.e820 import E820_ENTRY_EXTENDED_STRUCT, E820_ENTRY_STRUCT, E820Attribute, E820Type
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.common import (check_fits, check_no_wrap, check_range_no_wrap, check_whole,
                                             sniffed_stride)
from bootforge.memmap.model import U64_LIMIT, MemoryMap, MemoryRange

# A /sys/firmware/memmap directory with more entries than this is not one.
MAX_SYSFS_ENTRIES = 65536
E820_ENTRY_SIZE = struct.calcsize(E820_ENTRY_STRUCT)                     # 20
E820_ENTRY_EXTENDED_SIZE = struct.calcsize(E820_ENTRY_EXTENDED_STRUCT)   # 24

# ---- text forms -------------------------------------------------------------

# Linux e820_type_to_string() (sysfs).
SYSFS_TYPE_STRINGS = {
    E820Type.RAM: "System RAM", E820Type.RESERVED_KERN: "System RAM", E820Type.ACPI: "ACPI Tables",
    E820Type.NVS: "ACPI Non-volatile Storage", E820Type.UNUSABLE: "Unusable memory",
    E820Type.PRAM: "Persistent Memory (legacy)", E820Type.PMEM: "Persistent Memory",
    E820Type.RESERVED: "Reserved", E820Type.SOFT_RESERVED: "Soft Reserved",
}
_SYSFS_TYPES_BY_STRING = {s: t for t, s in SYSFS_TYPE_STRINGS.items() if t != E820Type.RESERVED_KERN}

# Linux e820_print_type() (dmesg), for the types it names without a number.
_DMESG_TYPE_STRINGS = {
    E820Type.RAM: "usable", E820Type.RESERVED_KERN: "usable", E820Type.RESERVED: "reserved",
    E820Type.SOFT_RESERVED: "soft reserved", E820Type.ACPI: "ACPI data", E820Type.NVS: "ACPI NVS",
    E820Type.UNUSABLE: "unusable",
}
_DMESG_TYPES_BY_STRING = {s: int(t) for t, s in _DMESG_TYPE_STRINGS.items() if t != E820Type.RESERVED_KERN}


_DMESG_STRINGS_BY_NUMBER = {int(t): s for t, s in _DMESG_TYPE_STRINGS.items()}
# Plain ints on the per-entry paths (see memmap/ops.py NOMERGE_TYPES).
_PERSISTENT = frozenset(map(int, (E820Type.PMEM, E820Type.PRAM)))


def dmesg_type_string(typ):
    """How Linux's e820_print_type() names an E820 type."""
    if typ in _PERSISTENT:
        return f"persistent (type {typ})"
    return _DMESG_STRINGS_BY_NUMBER.get(typ, f"type {typ}")


def _dmesg_type(text):
    text = text.strip()
    if text in _DMESG_TYPES_BY_STRING:
        return _DMESG_TYPES_BY_STRING[text]
    m = re.fullmatch(r"(?:persistent \(type (\d+)\)|type (\d+))", text)
    if m:
        return int(m.group(1) or m.group(2))
    return None


_DMESG_LINE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\] (.+?)\s*$")
# Kernels before 3.x: "BIOS-e820: 0000000000000000 - 000000000009f800 (usable)", end exclusive.
_DMESG_LINE_OLD = re.compile(r"BIOS-e820: ([0-9a-fA-F]{16}) - ([0-9a-fA-F]{16}) \((.+)\)\s*$")


def read_e820_dmesg(path, data, options):
    text = data.decode("utf-8", errors="replace")
    ranges = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _DMESG_LINE.search(line)
        if m:
            first, last = int(m.group(1), 16), int(m.group(2), 16)
            # An empty entry at A > 0 prints A - 1 (addr + size - 1); one at 0 prints
            # 0xffffffffffffffff, which reads as [0, 2^64 - 1] and is refused as wrapping.
            size = last - first + 1
        else:
            m = _DMESG_LINE_OLD.search(line)
            if not m:
                continue
            first, end = int(m.group(1), 16), int(m.group(2), 16)
            size = end - first
        typ = _dmesg_type(m.group(3))
        if typ is None:
            raise FormatError(f"line {lineno}: unknown E820 type {m.group(3)!r}", path=path)
        if size < 0 or first + size > U64_LIMIT - 1:
            raise FormatError(f"line {lineno}: range {first:#x}-{first + size - 1:#x} is empty or wraps",
                              path=path)
        ranges.append(MemoryRange(first, size, typ))
    if not ranges:
        raise FormatError("no \"BIOS-e820:\" lines (give the output of dmesg)", path=path)
    return MemoryMap("e820", ranges, source="e820-dmesg")


def write_e820_dmesg(memory_map, options):
    check_fits(memory_map, "e820-dmesg", type_bits=None)
    # e820__print_table(): addr + size - 1 in u64 arithmetic (an empty entry prints its start - 1).
    lines = [f"BIOS-e820: [mem 0x{r.start:016x}-0x{(r.start + r.size - 1) % U64_LIMIT:016x}] "
             f"{dmesg_type_string(r.type)}"
             for r in memory_map.ranges]
    return ("\n".join(lines) + "\n").encode()


def read_e820_sysfs(path, data, options):
    base = Path(path)
    if not base.is_dir():
        raise FormatError("e820-sysfs wants a directory like /sys/firmware/memmap", path=path)
    try:
        names = os.listdir(base)
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None
    numbered = sorted((int(n), n) for n in names if n.isdigit())
    if len(numbered) > MAX_SYSFS_ENTRIES:
        raise LimitError(f"{len(numbered)} entries is over the limit of {MAX_SYSFS_ENTRIES}", path=path)
    if not numbered:
        raise FormatError("no numbered entries (expected 0/, 1/, ... with start, end, type)", path=path)
    ranges = []
    for _, name in numbered:
        fields = {}
        for key in ("start", "end", "type"):
            entry = base / name / key
            # sysfs reports 4096 for every attribute's size: read a bounded prefix instead.
            try:
                with open(entry, "rb") as f:
                    fields[key] = f.read(256).decode("ascii", errors="replace").strip()
            except OSError as exc:
                raise BootforgeError(exc.strerror or str(exc), path=entry) from None
        try:
            start, last = int(fields["start"], 16), int(fields["end"], 16)
        except ValueError:
            raise FormatError(f"start/end {fields['start']!r}/{fields['end']!r} are not hex",
                              path=base / name) from None
        if last < start - 1 or last >= U64_LIMIT:
            raise FormatError(f"end {last:#x} before start {start:#x} or past 2^64", path=base / name)
        size = last - start + 1
        check_range_no_wrap("range", start, size, base / name, None)
        # "Unknown E820 type" loses the number; reserved is what Linux treats it as.
        typ = _SYSFS_TYPES_BY_STRING.get(fields["type"], E820Type.RESERVED)
        ranges.append(MemoryRange(start, size, int(typ)))
    return MemoryMap("e820", ranges, source="e820-sysfs")


def write_e820_sysfs(memory_map, out):
    """Write a /sys/firmware/memmap-like directory at *out* (must not exist or be empty)."""
    check_fits(memory_map, "e820-sysfs", type_bits=None)
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BootforgeError("exists and is not an empty directory", path=out)
    parent = target.parent if str(target.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        for i, r in enumerate(memory_map.ranges):
            (tmp / str(i)).mkdir()
            (tmp / str(i) / "start").write_text(f"{r.start:#x}\n")
            (tmp / str(i) / "end").write_text(f"{(r.start + r.size - 1) % U64_LIMIT:#x}\n")  # u64, as Linux
            (tmp / str(i) / "type").write_text(SYSFS_TYPE_STRINGS.get(r.type, "Unknown E820 type") + "\n")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- the binary table ----------------------------------------------------------

# What a firmware's E820 entry holds when it is one: a type Linux names or a small number
# (ACPI 6.5 table 15.4 numbers 1-7, 12 is legacy PRAM), and in a 24-byte entry ACPI 3.0
# extended attributes with no reserved bit set (bits 0-3 defined: enabled, non-volatile,
# slow access, error log). Read at the wrong stride, these fields hold addresses and sizes.
MAX_PLAUSIBLE_TYPE = 0xFF
MAX_PLAUSIBLE_ATTRIBUTES = 0xF
_KNOWN_TYPES = frozenset(E820Type.labels())


def _entries(data, size):
    if size == E820_ENTRY_SIZE:
        return [MemoryRange(a, s, t) for a, s, t in struct.iter_unpack(E820_ENTRY_STRUCT, data)]
    return [MemoryRange(a, s, t, x) for a, s, t, x in struct.iter_unpack(E820_ENTRY_EXTENDED_STRUCT, data)]


def _implausible(data, size):
    """The index and why of the first entry no firmware writes at stride *size*, or None."""
    for i, r in enumerate(_entries(data, size)):
        if r.type not in _KNOWN_TYPES and not 1 <= r.type <= MAX_PLAUSIBLE_TYPE:
            return i, f"type {r.type:#x}"
        if r.attributes is not None and r.attributes > MAX_PLAUSIBLE_ATTRIBUTES:
            return i, f"attributes {r.attributes:#x}"
        if r.start + r.size > U64_LIMIT - 1:
            return i, "a range wrapping past 2^64"
    return None


def entry_stride(data, path):
    """The entry size of an e820-bin table given without --entry-size: the one of 20 and 24
    that divides the length; when both do (a multiple of 120 bytes), the one whose every entry
    is plausible (see _implausible); when neither or both read plausibly, refuse to guess."""
    stride = sniffed_stride(data, (E820_ENTRY_SIZE, E820_ENTRY_EXTENDED_SIZE), _implausible, path,
                            ("entry", "entries"), "--entry-size")
    if stride is None:
        raise FormatError(f"{len(data)} bytes of E820 table is not a whole number of 20- or 24-byte entries",
                          path=path, offset=len(data) - len(data) % E820_ENTRY_SIZE)
    return stride


def read_e820_bin(path, data, options):
    size = options.get("entry_size") or entry_stride(data, path)
    if size not in (E820_ENTRY_SIZE, E820_ENTRY_EXTENDED_SIZE):
        raise FormatError(f"E820 entry size {size} (20 or 24)", path=path)
    check_whole(data, size, path, "E820 table")
    ranges = _entries(data, size)
    check_no_wrap(ranges, path, size)
    m = MemoryMap("e820", ranges, source="e820-bin")
    m.facts["entry_size"] = size
    if not options.get("entry_size"):
        m.facts["entry_size_sniffed"] = True
    return m


def write_e820_bin(memory_map, options):
    size = options.get("entry_size") or E820_ENTRY_SIZE
    check_fits(memory_map, "e820-bin", attribute_bits=32 if size == E820_ENTRY_EXTENDED_SIZE else None)
    if size == E820_ENTRY_EXTENDED_SIZE:
        pack = struct.Struct(E820_ENTRY_EXTENDED_STRUCT).pack
        enabled = int(E820Attribute.ENABLED)
        return b"".join(pack(r.start, r.size, r.type, enabled if r.attributes is None else r.attributes)
                        for r in memory_map.ranges)
    pack = struct.Struct(E820_ENTRY_STRUCT).pack
    return b"".join(pack(r.start, r.size, r.type) for r in memory_map.ranges)


FORMATS = [
    MapFormat("e820-sysfs", "a /sys/firmware/memmap directory", read_e820_sysfs, write_e820_sysfs,
              sniff=lambda head, path: Path(path).is_dir(), family="e820", directory=True),
    MapFormat("e820-dmesg", "dmesg's BIOS-e820 lines", read_e820_dmesg, write_e820_dmesg,
              sniff=lambda head, path: b"BIOS-e820:" in head, family="e820", load_output=True),
    MapFormat("e820-bin", "the binary E820 table (20- or 24-byte entries: --entry-size, else sniffed)", read_e820_bin,
              write_e820_bin, family="e820", load_output=True),
]
