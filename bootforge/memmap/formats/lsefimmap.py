"""GRUB's `lsefimmap` table: the firmware's EFI map as GRUB prints it just before loading.

Source: grub-core/commands/efi/lsefimmap.c (type names, attribute
abbreviations, one line per descriptor: type, start-end, pages, size,
attributes). The names are the grub_name column of EfiMemoryType and the
labels of EfiMemoryAttribute. The built-in qemu-q35-ovmf platform is derived
from captures in this format (recipes/platforms/*.lsefimmap).
"""

import re

from bootforge.errors import FormatError
from bootforge.formats.efi_memmap import EFI_PAGE_SIZE, EfiMemoryAttribute, EfiMemoryType
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.model import MemoryMap, MemoryRange

_TYPES_BY_GRUB_NAME = {t.grub_name.lower(): int(t) for t in EfiMemoryType if t.grub_name}
_ATTRIBUTES_BY_LABEL = {a.label: int(a) for a in EfiMemoryAttribute}
LSEFIMMAP_LINE = re.compile(r"^(\S+)\s+([0-9a-fA-F]{16})-([0-9a-fA-F]{16})\s+([0-9a-fA-F]{8,})\s+\S+\s*(.*)$")


def parse_lsefimmap(text, where="lsefimmap", error=FormatError):
    """An EFI MemoryMap from GRUB's `lsefimmap` table; *error* is the exception class raised."""
    ranges = []
    for line in text.splitlines():
        m = LSEFIMMAP_LINE.match(line.strip())
        if not m:
            continue
        name = m.group(1).lower()
        typ = _TYPES_BY_GRUB_NAME.get(name)
        if typ is None:
            if name.startswith("type-"):
                typ = int(name[5:], 16)
            else:
                raise error(f"{where}: unknown lsefimmap type {m.group(1)!r}")
        start, last, pages = int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)
        attrs = 0
        for word in m.group(5).split():
            attrs |= _ATTRIBUTES_BY_LABEL.get(word, 0)
        ranges.append(MemoryRange(start, pages * EFI_PAGE_SIZE, typ, attrs))
        if last + 1 != start + pages * EFI_PAGE_SIZE:
            raise error(f"{where}: {line.strip()!r}: end and page count disagree")
    if not ranges:
        raise error(f"{where}: no lsefimmap lines found")
    return MemoryMap("efi", ranges, source="lsefimmap")


def looks_like_lsefimmap(head, path=None):
    """GRUB's header line, or a first table line (after # comments) naming a GRUB type."""
    if b"Physical start" in head and b"conv-mem" in head:
        return True
    for raw in head.splitlines()[:8]:
        line = raw.decode("latin-1").strip()
        if not line or line.startswith("#"):
            continue
        m = LSEFIMMAP_LINE.match(line)
        return bool(m) and m.group(1).lower() in _TYPES_BY_GRUB_NAME
    return False


def read_lsefimmap(path, data, options):
    return parse_lsefimmap(data.decode("latin-1"), str(path))


FORMATS = [
    MapFormat("lsefimmap", "GRUB's lsefimmap output", read_lsefimmap,
              sniff=looks_like_lsefimmap),
]
