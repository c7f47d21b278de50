"""The memory-map model and its type vocabulary.

A MemoryMap belongs to one family, "e820" or "efi", and each range keeps
the numeric type of that family (so E820 type 6 or an OEM EFI type survive
a round trip). Multiboot maps use E820 numbers (the specs share 1-5); FDT
maps are E820-family too (memory = ram, reserved-memory and the reservation
block = reserved) with the FDT detail kept in `label` and `flags`.
"""

from dataclasses import dataclass, field

from bootforge.errors import MemoryMapError  # noqa: F401  (defined in errors.py; imported from here too)
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import (
    EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION, EFI_OEM_TYPES, EFI_OS_LOADER_TYPES,
    EfiMemoryType,
)

U64_LIMIT = 1 << 64

# Views of the name tables in bootforge/formats/ (label <-> number), for the hot paths.
E820_TYPE_NAMES = E820Type.labels()
E820_TYPES_BY_NAME = {name: number for number, name in E820_TYPE_NAMES.items()}
EFI_TYPE_NAMES = EfiMemoryType.labels()
EFI_TYPES_BY_NAME = {name: number for number, name in EFI_TYPE_NAMES.items()}

# FDT detail a range may carry (in MemoryRange.flags).
FLAG_NO_MAP = "no-map"
FLAG_REUSABLE = "reusable"
FLAG_MEMRESERVE = "memreserve"      # from the DTB's memory reservation block
FDT_FLAGS = (FLAG_NO_MAP, FLAG_REUSABLE, FLAG_MEMRESERVE)


def span_text(start, size, fmt):
    """"first-last" of [start, start + size), both ends inclusive as dmesg and the UEFI shell
    print them, each end formatted with *fmt*; an empty range has no last byte, so it
    prints its start and "(empty)" in the same width (not start - 1, which reads as a
    range ending before it starts, or a negative number at 0)."""
    first = format(start, fmt)
    if size <= 0:
        return f"{first} (empty)".ljust(2 * len(first) + 1)
    return f"{first}-{format(start + size - 1, fmt)}"


def type_name(family, number):
    """The unified name of *number* in *family* ("e820" or "efi")."""
    if family == "efi":
        if number in EFI_TYPE_NAMES:
            return EFI_TYPE_NAMES[number]
        if number in EFI_OEM_TYPES:
            return f"oem-{number:#x}"
        if number in EFI_OS_LOADER_TYPES:
            return f"os-loader-{number:#x}"
        return f"efi-type-{number}"
    return E820_TYPE_NAMES.get(number, f"e820-type-{number}")


def type_number(family, name):
    """Inverse of type_name; raises KeyError for a name the family does not know."""
    table = EFI_TYPES_BY_NAME if family == "efi" else E820_TYPES_BY_NAME
    if name in table:
        return table[name]
    for prefix in (("oem-", "os-loader-", "efi-type-") if family == "efi" else ("e820-type-",)):
        if name.startswith(prefix):
            return int(name[len(prefix):], 0)
    raise KeyError(name)


@dataclass(slots=True)
class MemoryRange:
    """[start, start + size) of one type; mutable so Linux's in-place edits can be mirrored."""

    start: int
    size: int
    type: int
    attributes: int | None = None   # EFI attribute bits, or E820 ACPI 3.0 extended attributes
    label: str | None = None        # FDT node name of a /reserved-memory child
    flags: frozenset = frozenset()  # FDT: no-map, reusable, memreserve
    virtual_start: int = 0          # EFI VirtualStart (0 until SetVirtualAddressMap)

    @property
    def end(self):
        """First address after the range (may be >= 2**64 for a wrapping entry)."""
        return self.start + self.size

    def key(self):
        return (self.start, self.size, self.type)


@dataclass
class MemoryMap:
    """An ordered list of ranges of one family, as the source listed them.

    Nothing is sorted or merged behind the caller's back: readers keep the
    source's order and overlaps so that `verify` can see them and `sanitize`
    can do exactly what Linux does.
    """

    family: str = "e820"
    ranges: list = field(default_factory=list)
    descriptor_size: int = EFI_DESCRIPTOR_DEFAULT_SIZE      # EFI: stride of the descriptors
    descriptor_version: int = EFI_DESCRIPTOR_VERSION
    source: str | None = None       # format name the map was read from
    facts: dict = field(default_factory=dict)   # what the reader saw (entry sizes, versions...)

    def type_name(self, rng):
        """The unified type name of *rng* in this map's family."""
        return type_name(self.family, rng.type)

    def replace(self, ranges, **changes):
        """A map like this one with other ranges (facts are copied, not shared)."""
        return MemoryMap(family=changes.get("family", self.family), ranges=list(ranges),
                         descriptor_size=self.descriptor_size,
                         descriptor_version=self.descriptor_version,
                         source=changes.get("source", self.source), facts=dict(self.facts))

    def keys(self):
        """(start, size, type) of every range, in order: what tests and checks compare."""
        return [r.key() for r in self.ranges]

    def __len__(self):
        return len(self.ranges)


def reading_warnings(memory_map):
    """What a reader found and kept going past (a DTB property Linux reads around, a
    /reserved-memory node Linux ignores): one sentence each, for stderr and JSON "warnings"."""
    found = list(memory_map.facts.get("warnings", []))
    if memory_map.facts.get("reserved_memory_ignored"):
        found.append(memory_map.facts["reserved_memory_ignored"])
    return found
