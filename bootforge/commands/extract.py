"""`bootforge extract`: one image of an option ROM as a file of its own.

Images are numbered from 0, as in `inspect --json`, recipes and `patch --image`.
An EFI image gives the bytes firmware hands to LoadImage: from the EFI image
offset to the end of the initialization size, or the decompressed payload when
the image is compressed (EDK2 PciBusDxe, PciOptionRomSupport.c: ImageLength =
InitializationSize x 512 - EfiImageHeaderOffset; compression type 1 goes
through the UEFI decompressor first). A legacy image gives its bytes as they
sit in the ROM (PCIR image length). --raw gives any image's ROM bytes.

Exit status: 0 written, 1 the image is readable but its payload does not
decode (nothing written), 2 unusable input.
"""

import sys

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import is_stdin, read_input, write_atomic


def extract_image(data: bytes, path, image_index=None, raw=False):
    """Return (bytes, description) of image *image_index* (0-based) of the ROM in *data*.

    Raises BootforgeError for unusable input and ExtractDefect when the image's
    payload cannot be produced (an EFI-compressed stream that does not decode)."""
    from bootforge.rom.model import parse_rom

    rom = parse_rom(data, path)
    count = len(rom.images) + (rom.unreadable is not None)   # an unreadable image is still one of them
    if image_index is None:
        if count > 1:
            raise BootforgeError(f"the ROM has {count} images (0-{count - 1}): choose one with --image N",
                                 path=path)
        image_index = 0
    if not 0 <= image_index < count:
        raise BootforgeError(f"--image {image_index}: the ROM has {count} image(s) (0-{count - 1})", path=path)
    image = rom.image(image_index)
    where = f"image {image_index} at {image.offset:#x}"
    if raw or not image.is_efi:
        kind = "EFI" if image.is_efi else "legacy"
        return bytes(image.data), f"{where}: {kind} image, {len(image.data)} bytes as stored in the ROM"
    at = image.header.efi_image_offset
    if image.header.compression == 0:
        payload = bytes(image.data[at:image.size])
        return payload, (f"{where}: EFI image, {len(payload)} bytes from offset {image.offset + at:#x} "
                         f"to the end of its initialization size")
    if image.header.compression != 1:
        raise ExtractDefect(f"{where}: compression type {image.header.compression} is not one UEFI defines "
                            "(0 none, 1 EFI compression); --raw writes the image as stored", path=path)
    decompressed = image.decompressed
    if decompressed is None or not decompressed.ok:
        error = decompressed.error if decompressed is not None else "not decoded"
        raise ExtractDefect(f"{where}: EFI-compressed payload does not decode: {error}; "
                            "--raw writes the image as stored", path=path)
    return decompressed.data, (f"{where}: EFI image, decompressed {decompressed.compressed_size} -> "
                               f"{len(decompressed.data)} bytes")


class ExtractDefect(BootforgeError):
    """The ROM reads, but the image's payload cannot be produced (exit 1)."""


@click.command("extract")
@click.argument("rom", type=click.Path(dir_okay=False))
@click.option("--image", "image_index", type=click.IntRange(min=0), metavar="N",
              help="Image number, counted from 0 as in `inspect --json` and `patch --image` "
                   "(needed when the ROM has more than one).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="Write here (atomically); '-' writes to standard output.")
@click.option("--raw", is_flag=True, help="Write the image's bytes as stored in the ROM, even for an "
                                          "EFI image (default: its PE driver, decompressed).")
def extract_command(rom, image_index, output, raw):
    """Write image N of ROM to a file: an EFI image's driver (decompressed when the
    image is compressed), or a legacy image's bytes.

    ROM may be '-' (standard input). Exit status: 0 written, 1 the payload does
    not decode (nothing written), 2 unusable input.
    """
    try:
        payload, description = extract_image(read_input(rom), rom, image_index, raw)
    except ExtractDefect as exc:
        click.echo(f"bootforge: error: {exc}", err=True)
        sys.exit(1)
    if is_stdin(output):
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
        click.echo(description, err=True)
    else:
        write_atomic(output, payload)
        click.echo(f"{description}; wrote {output}")
