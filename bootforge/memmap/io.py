"""Readers and writers for every memory-map format name the CLI accepts.

Binary layouts come from bootforge/formats/; the walks use struct.iter_unpack
over validated lengths, so a map of a million entries reads in about two seconds and
no count field sizes an allocation. Every reader returns a MemoryMap in the
source's own family and order; every writer takes one.
"""

import json
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path

from bootforge.errors import BootforgeError, FormatError, LimitError
from bootforge.fileio import read_head, read_input, write_atomic
from bootforge.formats.e820 import E820_ENTRY_EXTENDED_STRUCT, E820_ENTRY_STRUCT, E820Attribute, E820Type
from bootforge.formats.efi_memmap import (
    EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_MIN_SIZE, EFI_DESCRIPTOR_VERSION, EFI_PAGE_SIZE,
    MB2_EFI_MMAP_HEADER_STRUCT, EfiMemoryType, descriptor_struct,
)
from bootforge.formats.multiboot import (
    MB1_MMAP_ENTRY_SIZE, MB1_MMAP_ENTRY_STRUCT, MB2_MMAP_ENTRY_SIZE, MB2_MMAP_ENTRY_STRUCT,
    MB2_MMAP_ENTRY_VERSION, MB2_MMAP_HEADER_STRUCT,
)
from bootforge.memmap.model import (
    FDT_FLAGS, U64_LIMIT, MemoryMap, MemoryRange, type_name, type_number,
)

# A /sys/firmware/memmap directory with more entries than this is not one.
MAX_SYSFS_ENTRIES = 65536

# ---- E820 text forms -------------------------------------------------------

# Linux e820_type_to_string() (sysfs) and e820_print_type() (dmesg).
SYSFS_TYPE_STRINGS = {
    E820Type.RAM: "System RAM", E820Type.RESERVED_KERN: "System RAM", E820Type.ACPI: "ACPI Tables",
    E820Type.NVS: "ACPI Non-volatile Storage", E820Type.UNUSABLE: "Unusable memory",
    E820Type.PRAM: "Persistent Memory (legacy)", E820Type.PMEM: "Persistent Memory",
    E820Type.RESERVED: "Reserved", E820Type.SOFT_RESERVED: "Soft Reserved",
}
_SYSFS_TYPES_BY_STRING = {s: t for t, s in SYSFS_TYPE_STRINGS.items() if t != E820Type.RESERVED_KERN}


def dmesg_type_string(typ):
    """How Linux's e820_print_type() names an E820 type."""
    if typ in (E820Type.RAM, E820Type.RESERVED_KERN):
        return "usable"
    if typ in (E820Type.PMEM, E820Type.PRAM):
        return f"persistent (type {typ})"
    return {E820Type.RESERVED: "reserved", E820Type.SOFT_RESERVED: "soft reserved", E820Type.ACPI: "ACPI data",
            E820Type.NVS: "ACPI NVS", E820Type.UNUSABLE: "unusable"}.get(typ, f"type {typ}")


def _dmesg_type(text):
    text = text.strip()
    fixed = {"usable": E820Type.RAM, "reserved": E820Type.RESERVED, "soft reserved": E820Type.SOFT_RESERVED,
             "ACPI data": E820Type.ACPI, "ACPI NVS": E820Type.NVS, "unusable": E820Type.UNUSABLE}
    if text in fixed:
        return fixed[text]
    m = re.fullmatch(r"(?:persistent \(type (\d+)\)|type (\d+))", text)
    if m:
        return int(m.group(1) or m.group(2))
    return None


_DMESG_LINE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\] (.+?)\s*$")
# Kernels before 3.x: "BIOS-e820: 0000000000000000 - 000000000009f800 (usable)", end exclusive.
_DMESG_LINE_OLD = re.compile(r"BIOS-e820: ([0-9a-fA-F]{16}) - ([0-9a-fA-F]{16}) \((.+)\)\s*$")


def _check_e820(ranges, path, stride, base=0):
    for i, r in enumerate(ranges):
        if r.start + r.size > U64_LIMIT - 1:
            raise FormatError(f"entry {i} [{r.start:#x} + {r.size:#x}] wraps around 2^64",
                              path=path, offset=base + i * stride)


def read_e820_dmesg(path, data, options):
    text = data.decode("utf-8", errors="replace")
    ranges = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _DMESG_LINE.search(line)
        if m:
            first, last = int(m.group(1), 16), int(m.group(2), 16)
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
    lines = [f"BIOS-e820: [mem 0x{r.start:016x}-0x{r.start + r.size - 1:016x}] {dmesg_type_string(r.type)}"
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
        # "Unknown E820 type" loses the number; reserved is what Linux treats it as.
        typ = _SYSFS_TYPES_BY_STRING.get(fields["type"], E820Type.RESERVED)
        ranges.append(MemoryRange(start, last - start + 1, typ))
    return MemoryMap("e820", ranges, source="e820-sysfs")


def write_e820_sysfs(memory_map, out):
    """Write a /sys/firmware/memmap-like directory at *out* (must not exist or be empty)."""
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BootforgeError("exists and is not an empty directory", path=out)
    parent = target.parent if str(target.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        for i, r in enumerate(memory_map.ranges):
            (tmp / str(i)).mkdir()
            (tmp / str(i) / "start").write_text(f"{r.start:#x}\n")
            (tmp / str(i) / "end").write_text(f"{r.start + r.size - 1:#x}\n")
            (tmp / str(i) / "type").write_text(SYSFS_TYPE_STRINGS.get(r.type, "Unknown E820 type") + "\n")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- E820 and Multiboot binary forms ---------------------------------------

def _whole(data, stride, path, what, base=0):
    if len(data) % stride:
        raise FormatError(f"{len(data)} bytes of {what} is not a whole number of {stride}-byte entries",
                          path=path, offset=base + len(data) - len(data) % stride)


def read_e820_bin(path, data, options):
    size = options.get("entry_size") or 20
    if size not in (20, 24):
        raise FormatError(f"E820 entry size {size} (20 or 24)", path=path)
    _whole(data, size, path, "E820 table")
    if size == 20:
        ranges = [MemoryRange(a, s, t) for a, s, t in struct.iter_unpack(E820_ENTRY_STRUCT, data)]
    else:
        ranges = [MemoryRange(a, s, t, x) for a, s, t, x in struct.iter_unpack(E820_ENTRY_EXTENDED_STRUCT, data)]
    _check_e820(ranges, path, size)
    m = MemoryMap("e820", ranges, source="e820-bin")
    m.facts["entry_size"] = size
    return m


def write_e820_bin(memory_map, options):
    size = options.get("entry_size") or 20
    if size == 24:
        pack = struct.Struct(E820_ENTRY_EXTENDED_STRUCT).pack
        return b"".join(pack(r.start, r.size, r.type,
                             E820Attribute.ENABLED if r.attributes is None else r.attributes)
                        for r in memory_map.ranges)
    pack = struct.Struct(E820_ENTRY_STRUCT).pack
    return b"".join(pack(r.start, r.size, r.type) for r in memory_map.ranges)


def read_mb1_mmap(path, data, options):
    """Multiboot 1 mmap: entries {u32 size; u64 addr; u64 len; u32 type}, next at +size+4."""
    ranges, sizes = [], set()
    offset, n = 0, len(data)
    unpack = struct.Struct(MB1_MMAP_ENTRY_STRUCT).unpack_from
    while offset < n:
        if offset + 24 > n:
            raise FormatError("truncated Multiboot1 mmap entry", path=path, offset=offset)
        entry_size, addr, length, typ = unpack(data, offset)
        if entry_size < MB1_MMAP_ENTRY_SIZE:
            raise FormatError(f"mmap entry size {entry_size} is under 20", path=path, offset=offset)
        if offset + 4 + entry_size > n:
            raise FormatError(f"mmap entry size {entry_size} runs past the end", path=path, offset=offset)
        if addr + length > U64_LIMIT - 1:
            raise FormatError(f"entry [{addr:#x} + {length:#x}] wraps around 2^64", path=path, offset=offset + 4)
        sizes.add(entry_size)
        ranges.append(MemoryRange(addr, length, typ))
        offset += 4 + entry_size
    m = MemoryMap("e820", ranges, source="mb1-mmap")
    m.facts["mb1_entry_sizes"] = sorted(sizes)
    return m


def write_mb1_mmap(memory_map, options):
    pack = struct.Struct(MB1_MMAP_ENTRY_STRUCT).pack
    return b"".join(pack(MB1_MMAP_ENTRY_SIZE, r.start, r.size, r.type) for r in memory_map.ranges)


def read_mb2_mmap(path, data, options):
    """Multiboot 2 tag 6 body: u32 entry_size, u32 entry_version, entries."""
    if len(data) < 8:
        raise FormatError("too short for a Multiboot2 mmap tag body (8-byte header)", path=path, offset=0)
    entry_size, version = struct.unpack_from(MB2_MMAP_HEADER_STRUCT, data)
    if entry_size < MB2_MMAP_ENTRY_SIZE or entry_size % 8:
        raise FormatError(f"entry_size {entry_size} (must be >= 24 and a multiple of 8)", path=path, offset=0)
    if entry_size > 4096:
        raise LimitError(f"entry_size {entry_size} is over 4096", path=path, offset=0)
    body = data[8:]
    _whole(body, entry_size, path, "mmap entries", base=8)
    fmt = MB2_MMAP_ENTRY_STRUCT + f"{entry_size - MB2_MMAP_ENTRY_SIZE}x"
    ranges = [MemoryRange(a, s, t) for a, s, t, _ in struct.iter_unpack(fmt, body)]
    _check_e820(ranges, path, entry_size, base=8)
    m = MemoryMap("e820", ranges, source="mb2-mmap")
    m.facts["mb2_entry_size"], m.facts["mb2_entry_version"] = entry_size, version
    return m


def write_mb2_mmap(memory_map, options):
    pack = struct.Struct(MB2_MMAP_ENTRY_STRUCT).pack
    return (struct.pack(MB2_MMAP_HEADER_STRUCT, MB2_MMAP_ENTRY_SIZE, MB2_MMAP_ENTRY_VERSION)
            + b"".join(pack(r.start, r.size, r.type, 0) for r in memory_map.ranges))


# ---- EFI -----------------------------------------------------------------

def _check_descriptor_size(size, path, offset=None):
    if size < EFI_DESCRIPTOR_MIN_SIZE or size % 8:
        raise FormatError(f"EFI descriptor size {size} (must be >= 40 and a multiple of 8)",
                          path=path, offset=offset)
    if size > 4096:
        raise LimitError(f"EFI descriptor size {size} is over 4096", path=path, offset=offset)


def _read_efi_descriptors(data, descriptor_size, path, base):
    _check_descriptor_size(descriptor_size, path, 0 if base else None)
    _whole(data, descriptor_size, path, "EFI memory map", base)
    ranges = []
    for i, (typ, phys, virt, pages, attr) in enumerate(descriptor_struct(descriptor_size).iter_unpack(data)):
        if pages == 0:
            raise FormatError(f"descriptor {i} has NumberOfPages 0", path=path,
                              offset=base + i * descriptor_size + 24)
        size = pages * EFI_PAGE_SIZE
        if phys + size > U64_LIMIT:
            raise FormatError(f"descriptor {i} [{phys:#x} + {pages:#x} pages] ends past 2^64",
                              path=path, offset=base + i * descriptor_size + 8)
        ranges.append(MemoryRange(phys, size, typ, attr, virtual_start=virt))
    m = MemoryMap("efi", ranges, descriptor_size=descriptor_size)
    return m


def read_efi_bin(path, data, options):
    m = _read_efi_descriptors(data, options.get("descriptor_size") or EFI_DESCRIPTOR_DEFAULT_SIZE, path, 0)
    m.source = "efi-bin"
    return m


def _efi_descriptors(memory_map, descriptor_size):
    _check_descriptor_size(descriptor_size, None)
    pack = descriptor_struct(descriptor_size).pack
    out = []
    for r in memory_map.ranges:
        if r.size % EFI_PAGE_SIZE:
            raise BootforgeError(f"range at {r.start:#x} of {r.size:#x} bytes is not whole EFI pages")
        out.append(pack(r.type, r.start, r.virtual_start, r.size // EFI_PAGE_SIZE, r.attributes or 0))
    return b"".join(out)


def write_efi_bin(memory_map, options):
    return _efi_descriptors(memory_map, options.get("descriptor_size") or memory_map.descriptor_size)


def read_mb2_efi_mmap(path, data, options):
    """Multiboot 2 tag 17 body: u32 descr_size, u32 descr_vers, descriptors."""
    if len(data) < 8:
        raise FormatError("too short for a Multiboot2 EFI mmap tag body (8-byte header)", path=path, offset=0)
    descr_size, descr_vers = struct.unpack_from(MB2_EFI_MMAP_HEADER_STRUCT, data)
    m = _read_efi_descriptors(data[8:], descr_size, path, 8)
    m.descriptor_version = descr_vers
    m.source = "mb2-efi-mmap"
    return m


def write_mb2_efi_mmap(memory_map, options):
    size = options.get("descriptor_size") or memory_map.descriptor_size
    return struct.pack(MB2_EFI_MMAP_HEADER_STRUCT, size, EFI_DESCRIPTOR_VERSION) + _efi_descriptors(memory_map, size)


# ---- FDT -------------------------------------------------------------------

def read_fdt(path, data, options):
    from bootforge.fdt.parse import parse_dtb
    from bootforge.memmap.convert import fdt_to_map
    try:
        return fdt_to_map(parse_dtb(data, path))
    except FormatError as exc:
        raise exc.located(path=path) from None


def write_fdt(memory_map, options):
    from bootforge.fdt.build import build_dtb
    from bootforge.memmap.convert import map_to_fdt
    return build_dtb(map_to_fdt(memory_map))


# ---- JSON ------------------------------------------------------------------

def map_to_json(memory_map):
    """The JSON document: {"family", "entries": [{"start", "size", "type", ...}], ...}."""
    type_key = "efi_type" if memory_map.family == "efi" else "e820_type"
    entries = []
    for r in memory_map.ranges:
        entry = {"start": r.start, "size": r.size, "type": memory_map.type_name(r), type_key: r.type}
        if r.attributes is not None:
            entry["attributes"] = r.attributes
        if r.virtual_start:
            entry["virtual_start"] = r.virtual_start
        if r.label is not None:
            entry["label"] = r.label
        if r.flags:
            entry["flags"] = sorted(r.flags)
        entries.append(entry)
    doc = {"family": memory_map.family, "entries": entries}
    if memory_map.family == "efi":
        doc["descriptor_size"] = memory_map.descriptor_size
        doc["descriptor_version"] = memory_map.descriptor_version
    return doc


def _json_int(entry, key, i, path, default=None):
    value = entry.get(key, default)
    if value is None and default is None:
        raise FormatError(f"entry {i}: missing {key!r}", path=path)
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise FormatError(f"entry {i}: {key} {value!r} is not a number", path=path) from None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < U64_LIMIT:
        raise FormatError(f"entry {i}: {key} {value!r} is not an integer in [0, 2^64)", path=path)
    return value


def read_json(path, data, options):
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"not JSON: {exc}", path=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FormatError('JSON memory map must be {"entries": [...]}', path=path)
    entries = doc["entries"]
    family = doc.get("family")
    if family is None:
        efi_only = {"conventional", "loader-code", "loader-data", "boot-services-code",
                    "boot-services-data", "runtime-services-code", "runtime-services-data",
                    "acpi-reclaim", "acpi-nvs", "mmio", "mmio-port-space", "pal-code",
                    "persistent", "unaccepted"}
        family = "efi" if any(isinstance(e, dict) and ("efi_type" in e or e.get("type") in efi_only)
                              for e in entries) else "e820"
    if family not in ("e820", "efi"):
        raise FormatError(f"family {family!r} (e820 or efi)", path=path)
    type_key = "efi_type" if family == "efi" else "e820_type"
    ranges = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise FormatError(f"entry {i} is not an object", path=path)
        start, size = _json_int(e, "start", i, path), _json_int(e, "size", i, path)
        if start + size > U64_LIMIT - 1:
            raise FormatError(f"entry {i} [{start:#x} + {size:#x}] wraps around 2^64", path=path)
        if type_key in e:
            typ = _json_int(e, type_key, i, path)
            if typ >= 1 << 32:
                raise FormatError(f"entry {i}: {type_key} {typ:#x} does not fit 32 bits", path=path)
        else:
            try:
                typ = type_number(family, str(e.get("type")))
            except (KeyError, ValueError):
                raise FormatError(f"entry {i}: unknown {family} type {e.get('type')!r}", path=path) from None
        attributes = _json_int(e, "attributes", i, path) if e.get("attributes") is not None else None
        if family == "e820" and attributes is not None and attributes >= 1 << 32:
            raise FormatError(f"entry {i}: E820 attributes {attributes:#x} do not fit 32 bits", path=path)
        flags = e.get("flags", [])
        if not isinstance(flags, list) or any(f not in FDT_FLAGS for f in flags):
            raise FormatError(f"entry {i}: flags must be a list of {', '.join(FDT_FLAGS)}", path=path)
        label = e.get("label")
        ranges.append(MemoryRange(start, size, typ, attributes, str(label) if label is not None else None,
                                  frozenset(flags), _json_int(e, "virtual_start", i, path, 0)))
    m = MemoryMap(family, ranges, source="json")
    if family == "efi":
        m.descriptor_size = _json_int(doc, "descriptor_size", 0, path, EFI_DESCRIPTOR_DEFAULT_SIZE)
        m.descriptor_version = _json_int(doc, "descriptor_version", 0, path, EFI_DESCRIPTOR_VERSION)
    return m


def write_json(memory_map, options):
    return (json.dumps(map_to_json(memory_map), indent=2) + "\n").encode()


# ---- text tables -----------------------------------------------------------

def human_size(size):
    """"639 KiB", "3 GiB", "23.9 GiB": the largest unit, exact when it divides."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            if size % (1 << shift) == 0:
                return f"{size >> shift} {unit}"
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def _shell_name(number):
    try:
        return EfiMemoryType(number).shell_name
    except ValueError:
        return f"{number:08X}"


def efi_shell_table(memory_map):
    """The UEFI shell's `memmap` listing (ShellPkg layout) and its per-type summary."""
    lines = ["Type       Start            End              # Pages          Attributes"]
    totals = {}
    for r in memory_map.ranges:
        name = _shell_name(r.type)
        pages = r.size // EFI_PAGE_SIZE
        lines.append(f"{name:<10} {r.start:016X}-{r.start + r.size - 1:016X} {pages:016X} {r.attributes or 0:016X}")
        totals[name] = totals.get(name, 0) + pages
    lines.append("")
    for name, pages in totals.items():
        lines.append(f"  {name:<10}: {pages:>14,} Pages ({pages * EFI_PAGE_SIZE:,} Bytes)")
    return "\n".join(lines) + "\n"


def e820_table(memory_map):
    """dmesg's BIOS-e820 lines plus each range's size and unified type name."""
    lines = []
    for r in memory_map.ranges:
        line = (f"[mem 0x{r.start:016x}-0x{r.start + r.size - 1:016x}] {dmesg_type_string(r.type):<22}"
                f" {human_size(r.size):>10}  {type_name('e820', r.type)}")
        if r.label or r.flags:
            line += "  " + " ".join(filter(None, [r.label, *sorted(r.flags)]))
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_table(memory_map, options):
    return (efi_shell_table(memory_map) if memory_map.family == "efi" else e820_table(memory_map)).encode()


# ---- the registry ------------------------------------------------------------

# name -> (reader, writer, family the writer needs: "e820", "efi" or None for any)
FORMATS = {
    "e820-sysfs": (read_e820_sysfs, write_e820_sysfs, "e820"),
    "e820-dmesg": (read_e820_dmesg, write_e820_dmesg, "e820"),
    "e820-bin": (read_e820_bin, write_e820_bin, "e820"),
    "efi-bin": (read_efi_bin, write_efi_bin, "efi"),
    "mb1-mmap": (read_mb1_mmap, write_mb1_mmap, "e820"),
    "mb2-mmap": (read_mb2_mmap, write_mb2_mmap, "e820"),
    "mb2-efi-mmap": (read_mb2_efi_mmap, write_mb2_efi_mmap, "efi"),
    "fdt": (read_fdt, write_fdt, "e820"),
    "json": (read_json, write_json, None),
    "table": (None, write_table, None),
}


def read_map(path, format_name, options=None):
    """Read *path* as *format_name* into a MemoryMap (e820-sysfs takes a directory)."""
    options = options or {}
    reader = FORMATS.get(format_name, (None,))[0]
    if reader is None:
        raise BootforgeError(f"cannot read format {format_name!r}")
    data = None if format_name == "e820-sysfs" else read_input(path)
    try:
        return reader(path, data, options)
    except BootforgeError as exc:
        raise exc.located(path=path) from None


def guess_format(path):
    """The input format of *path* from its content, or None."""
    p = Path(path)
    if p.is_dir():
        return "e820-sysfs"
    head = read_head(path, 4096)  # a pipe or `-` is read once; the reader gets the same bytes
    if head is None:
        return None
    if head[:4] == b"\xd0\x0d\xfe\xed":
        return "fdt"
    if head[:9] == b"BFMBDUMP ":
        return "mbdump"
    if b"BIOS-e820:" in head:
        return "e820-dmesg"
    if head.lstrip()[:1] == b"{":
        return "json"
    return None


def prepare_for(memory_map, format_name, *, efi_convention="linux", sanitize=False):
    """The map a writer of *format_name* needs: EFI maps become E820 for E820 forms
    (the Linux stub's table, or Xen's with efi_convention="xen"), then optionally
    Linux's sanitize. E820 maps cannot become EFI maps: that loses information
    no converter invents."""
    from bootforge.memmap.convert import efi_to_e820
    from bootforge.memmap.ops import sanitize as sanitize_map
    if format_name not in FORMATS or FORMATS[format_name][1] is None:
        raise BootforgeError(f"cannot write format {format_name!r}")
    family = FORMATS[format_name][2]
    if family == "e820" and memory_map.family == "efi":
        memory_map = efi_to_e820(memory_map, efi_convention)
    elif family == "efi" and memory_map.family != "efi":
        raise BootforgeError(f"cannot write an E820 map as {format_name}: EFI maps carry types "
                             "and attributes E820 does not have")
    if sanitize:
        if memory_map.family == "efi" and family is None:
            memory_map = efi_to_e820(memory_map, efi_convention)
        elif memory_map.family == "efi":
            raise BootforgeError("--sanitize applies to E820 maps; EFI maps are written as they are")
        memory_map = sanitize_map(memory_map)
    return memory_map


def write_map(memory_map, format_name, out, options=None):
    """Write *memory_map* (already prepared) as *format_name* to *out*; None writes nothing
    and returns the bytes (e820-sysfs needs *out*: it is a directory)."""
    options = options or {}
    writer = FORMATS[format_name][1]
    if format_name == "e820-sysfs":
        if out is None:
            raise BootforgeError("e820-sysfs output is a directory: give -o DIR")
        writer(memory_map, out)
        return None
    data = writer(memory_map, options)
    if out is not None:
        write_atomic(out, data)
    return data


# ---- Multiboot dumps (the dump kernel's captures, decoded by bootforge.multiboot.dump) ----

def mbdump_bodies(path, data):
    """(e820-like body and its format name, EFI tag 17 body or None) from a BFMBDUMP capture."""
    try:
        from bootforge.multiboot.dump import Memory, decode_dump, parse_dump
    except ImportError:
        raise BootforgeError("reading Multiboot dumps needs bootforge.multiboot.dump", path=path) from None
    doc, _problems = decode_dump(data)
    _eax, _ebx, regions, _complete = parse_dump(data)
    if doc.get("protocol") == "multiboot2":
        mbi = next(r for r in regions if r.name == "mbi")
        bodies = {t["type"]: mbi.data[t["position"] + 8:t["position"] + t["size"]]
                  for t in doc["multiboot2"]["tags"] if t["type"] in (6, 17)}
        return (bodies.get(6), "mb2-mmap"), bodies.get(17)
    if doc.get("protocol") == "multiboot1":
        info = doc["multiboot1"]
        if "mmap_addr" not in info:
            return (None, None), None
        return (Memory(regions).read(info["mmap_addr"], info["mmap_length"]), "mb1-mmap"), None
    return (None, None), None


def read_mbdump(path, data, options):
    """The memory map a Multiboot loader passed: MB2 tag 6 or the MB1 mmap."""
    (body, fmt), _efi = mbdump_bodies(path, data)
    if body is None:
        raise FormatError("the dump has no memory map (no MB2 tag 6, no MB1 mmap)", path=path)
    m = FORMATS[fmt][0](path, body, options)
    m.source = "mbdump"
    return m


def read_mbdump_efi(path, data, options):
    """The EFI memory map a Multiboot2 loader passed in tag 17."""
    _e820, body = mbdump_bodies(path, data)
    if body is None:
        raise FormatError("the dump has no MB2 EFI memory map (tag 17)", path=path)
    m = read_mb2_efi_mmap(path, body, options)
    m.source = "mbdump-efi"
    return m


def _read_smbios(path, data, options):
    from bootforge.memmap.smbios import read_smbios_table
    return read_smbios_table(path, data, options)


def _write_smbios(memory_map, options):
    from bootforge.memmap.smbios import write_smbios_table
    return write_smbios_table(memory_map, options)


FORMATS["smbios"] = (_read_smbios, _write_smbios, "e820")
FORMATS["mbdump"] = (read_mbdump, None, "e820")
FORMATS["mbdump-efi"] = (read_mbdump_efi, None, "efi")
