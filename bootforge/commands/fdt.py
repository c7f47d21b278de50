"""Device-tree commands: dtc's options for `bootforge build BOARD.dts`, and `bootforge fdt apply`
(fdtoverlay).

dtc's own short options are kept (-@ -p -S -a -b -R -H -i -W -E -s -f -q) so a dtc command
line carries over: `dtc -@ -H both -o b.dtb b.dts` is `bootforge build -@ -H both -o b.dtb b.dts`.
"""

import sys
from pathlib import Path

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import is_stdin, read_input, write_atomic

DTS_SUFFIXES = (".dts", ".dtsi", ".dtso")


def _int(text):
    """dtc reads numeric options with strtol(optarg, NULL, 0): 0x.. hex, 0.. octal."""
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 8) if text.startswith("0") else int(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a number") from None


def _num(ctx, param, value):
    return None if value is None else _int(value)


_DTS_OPTIONS = [
    click.option("-@", "--symbols", is_flag=True, help="DTS: add __symbols__ (labels), as dtc -@."),
    click.option("-H", "--phandle", "phandle_format", type=click.Choice(["epapr", "legacy", "linux", "both"]),
                 default="epapr", help="DTS: phandle properties to add: phandle (epapr, default), "
                                       "linux,phandle (legacy; linux is a synonym) or both, as dtc -H."),
    click.option("-b", "--boot-cpu", "boot_cpuid", callback=_num, metavar="N",
                 help="DTS: boot_cpuid_phys in the header (default: reg of the first /cpus child), as dtc -b."),
    click.option("-R", "--reserve", callback=_num, metavar="N", help="DTS: N extra empty reservation entries."),
    click.option("-p", "--pad", callback=_num, metavar="BYTES", help="DTS: pad the blob with BYTES zeros."),
    click.option("-S", "--space", callback=_num, metavar="BYTES", help="DTS: make the blob at least BYTES long."),
    click.option("-a", "--align", callback=_num, metavar="BYTES", help="DTS: pad the blob to a multiple of BYTES."),
    click.option("-i", "--include", "search_path", multiple=True, metavar="DIR",
                 help="DTS: directory searched by /include/ and /incbin/ (repeatable)."),
    click.option("-W", "warn_options", multiple=True, metavar="[no-]CHECK", help="DTS: enable/disable a "
                 "check's warning, as dtc -W."),
    click.option("-E", "error_options", multiple=True, metavar="[no-]CHECK", help="DTS: enable/disable a "
                 "check's error, as dtc -E."),
    click.option("-s", "--sort", is_flag=True, help="DTS: sort nodes and properties, as dtc -s."),
    click.option("-f", "--force", is_flag=True, help="DTS: write the blob even when a check fails, as dtc -f."),
    click.option("-q", "--quiet", count=True, help="DTS: fewer messages (-q: no warnings, -qq: no errors)."),
]


def dts_options(fn):
    """The dtc options of `bootforge build` (used only when RECIPE is DTS source)."""
    for option in reversed(_DTS_OPTIONS):
        fn = option(fn)
    return fn


def is_dts_source(path):
    """A .dts/.dtsi/.dtso file, or standard input holding /dts-v1/ (a recipe is TOML)."""
    if str(path).endswith(DTS_SUFFIXES):
        return True
    if is_stdin(path):
        return b"/dts-v1/" in read_input(path)
    return False


def read_source(path):
    """A DTS file's bytes; a huge one memory-mapped (its literals are refused by their length)."""
    from bootforge.fdt.dts_lexer import read_source_file
    try:
        return read_source_file(path)
    except IsADirectoryError:
        raise BootforgeError("is a directory", path=path) from None
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None


def dtc_options(values, outname):
    from bootforge.fdt.dts_compile import DtcOptions
    return DtcOptions(
        symbols=values.get("symbols", False), phandle_format=values.get("phandle_format") or "epapr",
        boot_cpuid=values.get("boot_cpuid"), reserve=values.get("reserve") or 0, pad=values.get("pad") or 0,
        space=values.get("space") or 0, align=values.get("align") or 0, sort=values.get("sort", False),
        force=values.get("force", False), quiet=values.get("quiet", 0),
        search_path=list(values.get("search_path", ())),
        checks=[("W", w) for w in values.get("warn_options", ())] + [("E", e) for e in values.get("error_options", ())],
        outname=outname)


def build_dts(path, output, as_json, values):
    """`bootforge build BOARD.dts [-o BOARD.dtb]`: dtc's messages on stderr, the blob written
    atomically (or to standard output with -o -); nothing is written when dtc would refuse."""
    from bootforge.fdt.dts_compile import compile_dts
    if output is None:
        output = "-" if is_stdin(path) else Path(path).stem + ".dtb"
    name = "<stdin>" if is_stdin(path) else str(path)
    data = read_input(path) if is_stdin(path) else read_source(path)
    result = compile_dts(data, name, dtc_options(values, str(output)))
    for line in result.messages:
        click.echo(line, err=True)
    if str(output) == "-":
        sys.stdout.buffer.write(result.dtb)
    else:
        write_atomic(output, result.dtb)
    if as_json:
        import json
        json.dump({"source": str(path), "output": str(output), "format": "dtb", "size": len(result.dtb),
                   "warnings": result.messages}, sys.stdout, indent=2)
        sys.stdout.write("\n")


@click.group("fdt")
def fdt_group():
    """Device-tree blobs: apply overlays."""


@fdt_group.command("apply")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("overlays", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The merged DTB.")
def fdt_apply_command(base, overlays, output):
    """Apply OVERLAYS (.dtbo) to BASE (.dtb) in order, as fdtoverlay does, and write OUTPUT."""
    from bootforge.fdt.overlay import apply_overlays
    # fdtoverlay's failures name the overlay themselves ("Failed to apply 'x.dtbo': FDT_ERR_NOTFOUND").
    blob = apply_overlays(read_input(base), [(str(p), read_input(p)) for p in overlays], base_name=str(base))
    write_atomic(output, blob)


def print_dts(files):
    """`bootforge inspect -O dts FILE.dtb...`: only the DTS text dtc prints, the names' bytes as
    they are (so `| bootforge build -` gives the blob back). Returns the exit status."""
    from bootforge.fdt.dts import dtb_to_dts
    status = 0
    for path in files:
        try:
            text = dtb_to_dts(read_input(path), path)
        except BootforgeError as exc:
            click.echo(f"bootforge: error: {exc.located(path=path)}", err=True)
            status = 2
            continue
        sys.stdout.buffer.write(text.encode("latin-1"))
    return status
