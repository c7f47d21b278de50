"""`bootforge compress` and `bootforge decompress`: the UEFI compression format."""

import re

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import read_input, write_atomic

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["efi", "tiano"]), default="efi",
                             show_default=True,
                             help="efi: 8 KiB window (option ROMs); tiano: 512 KiB window.")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _parse_size(ctx, param, value):
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(?:i?b)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 1048576, 64K, 256M)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@click.command("compress")
@FORMAT_OPTION
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
def compress_command(fmt, input_path, output):
    """Compress IN with the UEFI compression format (as EDK2's EfiRom -ec does, but smaller)."""
    from bootforge.compress import compress

    data = read_input(input_path)
    try:
        packed = compress(data, fmt)
    except BootforgeError as exc:
        raise exc.located(path=input_path)
    write_atomic(output, packed)


@click.command("decompress")
@FORMAT_OPTION
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--max-size", default="256M", show_default=True, callback=_parse_size,
              help="Refuse streams that declare a larger original size.")
def decompress_command(fmt, input_path, output, max_size):
    """Decompress IN (UEFI compression format); bad input is one error line and exit status 2."""
    from bootforge.compress import decompress

    data = read_input(input_path)
    try:
        original = decompress(data, fmt, max_size=max_size)
    except BootforgeError as exc:
        raise exc.located(path=input_path)
    write_atomic(output, original)
