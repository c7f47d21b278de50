import click

from bootforge.fileio import read_input, write_atomic


def _int(ctx, param, value):
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an integer (use 0x... for hex)") from None


@click.command("patch")
@click.argument("rom", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the patched ROM here.")
@click.option("--in-place", is_flag=True, help="Replace ROM itself (atomically).")
@click.option("--image", "image_index", type=int, help="Patch only image N (0-based); default: ids go to "
              "every image, --last/--not-last to the final one.")
@click.option("--vendor-id", callback=_int, help="New PCIR vendor id.")
@click.option("--device-id", callback=_int, help="New PCIR device id.")
@click.option("--class-code", callback=_int, help="New PCIR class code (24 bits).")
@click.option("--last/--not-last", default=None, help="Set or clear the last-image bit.")
@click.option("--fix-checksums", is_flag=True, help="Also re-balance $PnP, UNDI, iPXE and image checksums "
              "that are already wrong.")
@click.option("--checksum-offset", callback=_int, help="The byte (from the image start) that carries the "
              "image checksum, when bootforge cannot tell which byte holds no code or data.")
def patch_command(rom, output, in_place, image_index, vendor_id, device_id, class_code, last,
                  fix_checksums, checksum_offset):
    """Change ids, indicator bits and checksums of an option ROM."""
    from bootforge.rom.patch import patch_rom

    if bool(output) == bool(in_place):
        raise click.UsageError("give exactly one of -o OUT and --in-place")
    for name, value, bits in (("--vendor-id", vendor_id, 16), ("--device-id", device_id, 16),
                              ("--class-code", class_code, 24)):
        if value is not None and not 0 <= value < 1 << bits:
            raise click.UsageError(f"{name} {value:#x} does not fit {bits} bits")
    data = read_input(rom)
    patched, changes = patch_rom(data, rom, image_index=image_index, vendor_id=vendor_id,
                                 device_id=device_id, class_code=class_code, last=last,
                                 fix_checksums=fix_checksums, checksum_offset=checksum_offset)
    target = rom if in_place else output
    write_atomic(target, patched)
    for change in changes:
        click.echo(change)
    if not changes:
        click.echo("nothing to change")
