"""The JSON memory map: {"family", "entries": [{"start", "size", "type", ...}], ...}.

Types are written both as bootforge's name (the labels of E820Type and
EfiMemoryType) and as the number; a reader takes either.
"""

import json
import re

from bootforge.errors import FormatError
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.common import E820_END_LIMIT, check_fits
from bootforge.memmap.model import (
    E820_TYPES_BY_NAME, EFI_TYPES_BY_NAME, FDT_FLAGS, U64_LIMIT, MemoryMap, MemoryRange, reading_warnings,
    type_number,
)

# Type names only the EFI family has: a document without "family" that uses one is an EFI map.
_EFI_ONLY_NAMES = frozenset(EFI_TYPES_BY_NAME) - frozenset(E820_TYPES_BY_NAME)


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
    if isinstance(doc, list):
        raise FormatError('JSON memory map is a bare list: it must be an object {"family": "e820", "entries": '
                          '[{"start": N, "size": N, "type": "ram"}, ...]} (family optional; what '
                          '`bootforge memmap convert --to json` writes)', path=path)
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise FormatError('JSON memory map must be {"entries": [...]}', path=path)
    entries = doc["entries"]
    family = doc.get("family")
    if family is None:
        family = "efi" if any(isinstance(e, dict) and ("efi_type" in e or e.get("type") in _EFI_ONLY_NAMES)
                              for e in entries) else "e820"
    if family not in ("e820", "efi"):
        raise FormatError(f"family {family!r} (e820 or efi)", path=path)
    type_key = "efi_type" if family == "efi" else "e820_type"
    ranges = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise FormatError(f"entry {i} is not an object", path=path)
        start, size = _json_int(e, "start", i, path), _json_int(e, "size", i, path)
        if start + size > (U64_LIMIT if family == "efi" else E820_END_LIMIT):   # as efi-bin / e820-bin read
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
    # What read_json takes back: u64 fields, an end within the family's limit, E820 attributes of 32 bits.
    efi = memory_map.family == "efi"
    check_fits(memory_map, "json", end_limit=U64_LIMIT if efi else E820_END_LIMIT,
               attribute_bits=64 if efi else 32)
    doc = map_to_json(memory_map)
    if reading_warnings(memory_map):
        doc["warnings"] = reading_warnings(memory_map)
    return (json.dumps(doc, indent=2) + "\n").encode()


FORMATS = [
    MapFormat("json", "bootforge's JSON document (either family)", read_json, write_json,
              # A bare list of entries is sniffed too, so its reader can say what is expected
              # (not "give --from"); "[ {" and "[]" only: dmesg lines start with "[    0.0...".
              sniff=lambda head, path: head.lstrip()[:1] == b"{" or re.match(rb"\s*\[\s*[{\]]", head) is not None,
              load_output=True),
]
