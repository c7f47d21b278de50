"""The text tables `memmap show` and `inspect` print: dmesg's layout for E820 maps,
the UEFI shell's `memmap` layout (ShellPkg) for EFI maps. Output only."""

from bootforge.formats.efi_memmap import EFI_PAGE_SIZE, EfiMemoryType
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.e820 import dmesg_type_string
from bootforge.formats.e820 import E820Type
from bootforge.memmap.model import FLAG_MEMRESERVE, span_text, type_name
from bootforge.text import human_size


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
        lines.append(f"{name:<10} {span_text(r.start, r.size, '016X')} {pages:016X} {r.attributes or 0:016X}")
        totals[name] = totals.get(name, 0) + pages
    lines.append("")
    for name, pages in totals.items():
        lines.append(f"  {name:<10}: {pages:>14,} Pages ({pages * EFI_PAGE_SIZE:,} Bytes)")
    return "\n".join(lines) + "\n"


def e820_table(memory_map):
    """dmesg's BIOS-e820 lines plus each range's size and unified type name."""
    lines = []
    for r in memory_map.ranges:
        line = (f"[mem {span_text(r.start, r.size, '#018x')}] {dmesg_type_string(r.type):<22}"
                f" {human_size(r.size):>10}  {type_name('e820', r.type)}")
        if r.label or r.flags:
            line += "  " + " ".join(filter(None, [r.label, *sorted(r.flags)]))
        lines.append(line)
    return "\n".join(lines) + "\n"


def fdt_table(memory_map):
    """A device tree's map in the same columns, each range named by where the tree holds it
    (/memory, /reserved-memory, the reservation block), not by an E820 type it never had."""
    lines = []
    for r in memory_map.ranges:
        kind = (FLAG_MEMRESERVE if FLAG_MEMRESERVE in r.flags else
                "memory" if r.type == E820Type.RAM else "reserved-memory")
        line = f"[mem {span_text(r.start, r.size, '#018x')}] {kind:<22} {human_size(r.size):>10}"
        extra = [r.label, *sorted(f for f in r.flags if f != FLAG_MEMRESERVE)]
        if any(extra):
            line += "  " + " ".join(filter(None, extra))
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_table(memory_map, options):
    if memory_map.family == "efi":
        return efi_shell_table(memory_map).encode()
    return (fdt_table(memory_map) if memory_map.source == "fdt" else e820_table(memory_map)).encode()


FORMATS = [
    MapFormat("table", "a text table (dmesg's layout for E820, the UEFI shell's for EFI)", write=write_table,
              load_output=True),
]
