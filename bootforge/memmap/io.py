"""Reading, converting for, and writing memory maps by format name.

Every format is declared once, in its family's module under
bootforge/memmap/formats/ (reader, writer, sniffer, name); this module only
dispatches through that registry. Binary walks use struct.iter_unpack over
validated lengths, so a map of a million entries reads in about two seconds
and no count field sizes an allocation.
"""

from bootforge.errors import BootforgeError
from bootforge.fileio import read_head, read_input, require_exists, write_atomic
from bootforge.memmap.convert import efi_to_e820
from bootforge.memmap.formats import registry
from bootforge.memmap.formats.json import map_to_json  # noqa: F401  (the JSON document, for reports)
from bootforge.memmap.ops import sanitize as sanitize_map


def read_map(path, format_name, options=None):
    """Read *path* as *format_name* into a MemoryMap (directory formats take a directory)."""
    options = options or {}
    fmt = registry().get(format_name)
    if fmt is None or fmt.read is None:
        raise BootforgeError(f"cannot read format {format_name!r}")
    data = None if fmt.directory else read_input(path)
    try:
        return fmt.read(path, data, options)
    except BootforgeError as exc:
        raise exc.located(path=path) from None


def guess_format(path):
    """The input format of *path* from its content (the formats' sniffers, in registry order), or None.
    A path that cannot be opened is an error saying so, not an unknown format."""
    require_exists(path)
    formats = [f for f in registry().values() if f.sniff is not None and f.read is not None]
    for f in formats:
        if f.directory and f.sniff(b"", path):
            return f.name
    head = read_head(path, 4096)  # a pipe or `-` is read once; the reader gets the same bytes
    if head is None:
        return None
    for f in formats:
        if not f.directory and f.sniff(head, path):
            return f.name
    return None


def prepare_for(memory_map, format_name, *, efi_convention="linux", sanitize=False):
    """The map a writer of *format_name* needs: EFI maps become E820 for E820 forms
    (the Linux stub's table, or Xen's with efi_convention="xen"), then optionally
    Linux's sanitize. E820 maps cannot become EFI maps: that loses information
    no converter invents."""
    fmt = registry().get(format_name)
    if fmt is None or fmt.write is None:
        raise BootforgeError(f"cannot write format {format_name!r}")
    family = fmt.family
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
    and returns the bytes (directory formats need *out*)."""
    options = options or {}
    fmt = registry()[format_name]
    if fmt.directory:
        if out is None:
            raise BootforgeError(f"{format_name} output is a directory: give -o DIR")
        fmt.write(memory_map, out)
        return None
    data = fmt.write(memory_map, options)
    if out is not None:
        write_atomic(out, data)
    return data
