"""The memory-map format registry: every format `memmap`, `load --map-format` and
`inspect` know, each declared once in the module of its family.

A family module (e820.py, efi.py, ...) defines FORMATS, a list of MapFormat:
the name, the reader and writer, a sniffer for guessing the format from the
first bytes, and the family a writer needs. Adding a format is one module
(or one MapFormat in an existing family) plus one line in FAMILIES.

Family modules import only light modules at the top: what is heavy (the DTB
parser, the Multiboot dump decoder) is imported inside the reader that
needs it, so listing the formats stays cheap for `inspect`.
"""

import importlib
from dataclasses import dataclass
from typing import Callable

# One line per family module, in the order guess_format() tries their sniffers
# (binary magic first, then text forms; formats without magic never match).
FAMILIES = (
    "fdt",          # fdt
    "mbdump",       # mbdump, mbdump-efi (captures of stubs/mbdump.S)
    "e820",         # e820-sysfs, e820-dmesg, e820-bin
    "lsefimmap",    # GRUB's lsefimmap table
    "json",         # json
    "efi",          # efi-bin
    "multiboot",    # mb1-mmap, mb2-mmap, mb2-efi-mmap
    "smbios",       # smbios (type 19 structures)
    "table",        # table (output only)
)


@dataclass(frozen=True)
class MapFormat:
    """One memory-map format.

    read(path, data, options) -> MemoryMap; data is None for directory formats.
    write(memory_map, options) -> bytes; for directory formats write(memory_map, out).
    sniff(head, path) -> bool: does a file starting with *head* look like this format?
    family: what the writer needs ("e820", "efi", or None for either).
    """

    name: str
    help: str
    read: Callable | None = None
    write: Callable | None = None
    sniff: Callable | None = None
    family: str | None = None
    directory: bool = False         # read from / written to a directory (e820-sysfs)
    load_output: bool = False       # offered by `bootforge load --map-format`


_registry = None


def registry():
    """{name: MapFormat} of every format, in FAMILIES order."""
    global _registry
    if _registry is None:
        formats = {}
        for family in FAMILIES:
            for f in importlib.import_module(f"{__name__}.{family}").FORMATS:
                if f.name in formats:
                    raise RuntimeError(f"memory-map format {f.name!r} registered twice")
                formats[f.name] = f
        _registry = formats
    return _registry


def get(name):
    return registry().get(name)


def input_names():
    return [n for n, f in registry().items() if f.read is not None]


def output_names():
    return [n for n, f in registry().items() if f.write is not None]


def load_output_names():
    return [n for n, f in registry().items() if f.load_output]


def inspect_names():
    """What `bootforge inspect --format` reads as a memory map: every file format with a reader."""
    return [n for n, f in registry().items() if f.read is not None and not f.directory]
