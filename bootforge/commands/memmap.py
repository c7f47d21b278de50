"""`bootforge memmap`: convert, verify and show memory maps.

Exit status: 0 fine, 1 the map breaks an invariant (verify), 2 unusable input.
"""

import json
import sys

import click

from bootforge.memmap.formats import input_names, output_names, registry

# Both lists come from the format registry (bootforge/memmap/formats/).
FORMAT_NAMES = output_names()
INPUT_FORMATS = input_names()
# The formats guess_format() recognises (a sniffer in the registry).
GUESSED_FORMATS = [n for n in INPUT_FORMATS if registry()[n].sniff is not None]
# The readers whose maps are of the EFI family (what --efi-reference compares with).
EFI_REFERENCE_FORMATS = [n for n in INPUT_FORMATS if registry()[n].family == "efi"] + ["json"]


def _input_options(writes):
    """--entry-size / --descriptor-size, with help for a command that only reads (show,
    verify) or that also writes (convert: the same sizes on both sides unless --to-... says)."""
    def add(f):
        if writes:
            entry = "E820 entry size of IN and OUT when they are e820-bin (--to-entry-size for OUT alone); default 20."
            descr = ("EFI descriptor stride of IN (efi-bin; default 48) and of OUT "
                     "(--to-descriptor-size for OUT alone; default the map's own).")
        else:
            entry = "E820 entry size of IN when it is e820-bin (20, or 24 for ACPI 3.0 entries); default 20."
            descr = "EFI descriptor stride of IN when it is efi-bin; default 48."
        f = click.option("--entry-size", type=click.Choice(["20", "24"]), default=None, help=entry)(f)
        return click.option("--descriptor-size", type=int, default=None, metavar="N", help=descr)(f)
    return add


def _from_option(what):
    return click.option("--from", "from_format", type=click.Choice(INPUT_FORMATS), metavar="FMT",
                        help=f"Format of {what}: " + ", ".join(INPUT_FORMATS) + ". Guessed from the content "
                             "for " + ", ".join(GUESSED_FORMATS) + "; the others have no magic and need it.")


def _options(entry_size, descriptor_size):
    return {"entry_size": int(entry_size) if entry_size else None, "descriptor_size": descriptor_size}


def _read(path, from_format, options):
    from bootforge.errors import BootforgeError
    from bootforge.memmap.io import guess_format, read_map
    from bootforge.memmap.model import reading_warnings
    fmt = from_format or guess_format(path)
    if fmt is None:
        raise BootforgeError("cannot tell the format: give --from (binary maps have no magic)", path=path)
    memory_map = read_map(path, fmt, options)
    # What the reader went past (a DTB's /reserved-memory Linux ignores): said by every command.
    for warning in reading_warnings(memory_map):
        click.echo(f"bootforge: warning: {path}: {warning}", err=True)
    return memory_map


@click.group("memmap")
def memmap_group():
    """Convert, verify and draw memory maps (E820, EFI, Multiboot, FDT)."""


# The help lists every format of the registry (\b keeps click from rewrapping the list).
memmap_group.help += "\n\n\b\nFormats (--from, --to):\n" + "\n".join(
    f"  {f.name:<13} {f.help}" for f in registry().values())


@memmap_group.command("convert", short_help="Convert a map between formats (EFI -> E820 as the stub does).")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=True))
@_from_option("IN")
@click.option("--to", "to_format", type=click.Choice(FORMAT_NAMES), required=True, metavar="FMT",
              help="Output format: " + ", ".join(FORMAT_NAMES) + ".")
@click.option("--sanitize", is_flag=True, help="Apply Linux's e820__update_table() before writing.")
@click.option("--efi-convention", type=click.Choice(["linux", "xen", "add-efi-memmap"]), default=None,
              help="How an EFI map becomes E820 (an EFI IN and an E820 OUT): the Linux EFI stub's table "
                   "(default), Xen's (RAM needs the WB attribute, empty descriptors dropped), or the kernel's "
                   "add_efi_memmap pass (WB required for RAM, then sanitized). Refused when nothing converts.")
@click.option("-o", "--output", type=click.Path(dir_okay=True), help="Output file (directory for e820-sysfs).")
@click.option("--to-entry-size", type=click.Choice(["20", "24"]), default=None,
              help="E820 entry size of the output when it differs from --entry-size.")
@click.option("--to-descriptor-size", type=int, default=None, metavar="N",
              help="EFI descriptor stride of the output when it differs from --descriptor-size.")
@_input_options(writes=True)
def convert_command(input_path, from_format, to_format, sanitize, efi_convention, output,
                    to_entry_size, to_descriptor_size, entry_size, descriptor_size):
    """Read IN in one format and write it in another, converting as the real converters do.

    --entry-size and --descriptor-size describe both sides unless the --to-
    variants say otherwise (e820-bin 20 -> 24: --to-entry-size 24).
    """
    from bootforge.memmap.io import prepare_for, write_map
    options = _options(entry_size, descriptor_size)
    out_options = _options(to_entry_size or entry_size, to_descriptor_size or descriptor_size)
    memory_map = _read(input_path, from_format, options)
    out_family = registry()[to_format].family
    converts = memory_map.family == "efi" and (out_family == "e820" or (sanitize and out_family is None))
    if efi_convention is not None and not converts:
        # An option that changes nothing is refused rather than silently ignored.
        raise click.UsageError(f"--efi-convention chooses how an EFI map becomes E820, but {input_path} is "
                               f"{'an E820-family' if memory_map.family != 'efi' else 'an EFI'} map and --to "
                               f"{to_format} writes it as it is: nothing is converted")
    memory_map = prepare_for(memory_map, to_format, efi_convention=efi_convention or "linux", sanitize=sanitize)
    data = write_map(memory_map, to_format, output, out_options)
    if output is None and data is not None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@memmap_group.command("verify", short_help="Check the invariants of a verified map; exit 1 on a failure.")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=True))
@_from_option("IN")
@click.option("--efi-reference", type=click.Path(), metavar="FILE",
              help="An EFI map (efi-bin, mb2-efi-mmap or json) that IN should be the Linux stub's conversion of.")
@click.option("--efi-reference-from", type=click.Choice(EFI_REFERENCE_FORMATS), default="efi-bin",
              show_default=True, metavar="FMT",
              help="Format of the --efi-reference file: " + ", ".join(EFI_REFERENCE_FORMATS)
                   + " (an EFI map has no magic to guess it by; --descriptor-size applies to it too).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@_input_options(writes=False)
def verify_command(input_path, from_format, efi_reference, efi_reference_from, as_json,
                   entry_size, descriptor_size):
    """Check every invariant of a verified memory map; exit 1 if one fails."""
    from bootforge.memmap.io import read_map
    from bootforge.memmap.verify import verify_map
    options = _options(entry_size, descriptor_size)
    memory_map = _read(input_path, from_format, options)
    reference = read_map(efi_reference, efi_reference_from, options) if efi_reference else None
    checks = verify_map(memory_map, reference_efi=reference)
    failed = [c for c in checks if c.fails]
    if as_json:
        from bootforge.memmap.model import reading_warnings
        json.dump({"file": str(input_path), "ok": not failed, "checks": [c.to_json() for c in checks],
                   "warnings": reading_warnings(memory_map)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for c in checks:
            click.echo(c.line())
        click.echo(f"{len(checks) - len(failed)} of {len(checks)} checks hold"
                   + (f"; {len(failed)} failed" if failed else ""))
    sys.exit(1 if failed else 0)


@memmap_group.command("show", short_help="Print a map as a table; --svg draws it.")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=True))
@_from_option("IN")
@click.option("--sanitize", is_flag=True, help="Show the map after Linux's sanitize (EFI maps: after the stub).")
@click.option("--svg", "svg_path", type=click.Path(), metavar="OUT", help="Also draw the map to OUT as SVG.")
@_input_options(writes=False)
def show_command(input_path, from_format, sanitize, svg_path, entry_size, descriptor_size):
    """Print IN as a table (dmesg's layout for E820, the UEFI shell's for EFI)."""
    from bootforge.fileio import write_atomic
    from bootforge.formats.e820 import E820Type
    from bootforge.formats.efi_memmap import EfiMemoryType
    from bootforge.memmap.formats.table import write_table
    from bootforge.memmap.io import prepare_for
    from bootforge.text import human_size
    from bootforge.memmap.svg import render_svg
    options = _options(entry_size, descriptor_size)
    memory_map = _read(input_path, from_format, options)
    if sanitize:
        memory_map = prepare_for(memory_map, "table", sanitize=True)
    click.echo(write_table(memory_map, options).decode(), nl=False)
    usable_type = EfiMemoryType.CONVENTIONAL if memory_map.family == "efi" else E820Type.RAM
    usable = sum(r.size for r in memory_map.ranges if r.type == usable_type)
    if memory_map.source == "fdt":      # a device tree's map is E820-family inside, not an E820 table
        kind, usable_name = "device tree", "memory"
    else:
        kind, usable_name = memory_map.family, "conventional" if memory_map.family == "efi" else "usable RAM"
    if memory_map.facts.get("entry_size_sniffed"):
        kind += f", {memory_map.facts['entry_size']}-byte entries by their length and types"
    if memory_map.facts.get("descriptor_size_sniffed"):
        kind += f", {memory_map.descriptor_size}-byte descriptors by their length and fields"
    click.echo(f"{len(memory_map)} ranges ({kind}), {human_size(usable)} {usable_name}")
    if svg_path:
        write_atomic(svg_path, render_svg(memory_map, title=str(input_path)).encode())
