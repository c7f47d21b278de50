"""`bootforge patch`: change ids, the device list, indicator bits and checksums of a ROM.

PCI ids (vendor, device, device list, class code) are read as hexadecimal with
or without 0x, as lspci, setpci and EDK2's EfiRom -f/-i print and take them:
`--vendor-id 8086` is 0x8086 (issue 15 item 4).

Exit status: 0 written, 1 an image to change had a bad checksum already (no
--fix-checksums; nothing written), 2 unusable input or an impossible patch.
"""

import sys

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import is_stdin, read_input, write_atomic

HEX_HELP = "hex, 0x optional, as lspci prints it"


def parse_pci_id(text, bits, name):
    """A PCI id as the user types it: hexadecimal digits, with or without 0x."""
    digits = text.strip()
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise click.BadParameter(f"{text!r} is not a hexadecimal PCI id (e.g. 8086 or 0x8086)",
                                 param_hint=name)
    value = int(digits, 16)
    if value >> bits:
        raise click.BadParameter(f"{text} (= {value:#x}) does not fit {bits} bits", param_hint=name)
    return value


def _hex_id(bits):
    def callback(ctx, param, value):
        if value is None:
            return None
        return parse_pci_id(value, bits, param.opts[0])
    return callback


def parse_class_code(text):
    """--class-code as lspci shows it: 4 hex digits are class + subclass (`lspci -n` prints
    `0200`; prog-if 00), 6 are the whole code (`020000`, as in the PCIR and `lspci -nn`'s
    prog-if form); any other count is ambiguous and refused."""
    digits = text.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    value = parse_pci_id(text, 24, "--class-code")
    if len(digits) == 4:
        return value << 8
    if len(digits) == 6:
        return value
    raise click.BadParameter(f"{text!r} is ambiguous: give 4 hex digits (class and subclass, as `lspci -n` "
                             "prints them: 0200) or 6 (with the programming interface: 020000)",
                             param_hint="--class-code")


def _class_code(ctx, param, value):
    return None if value is None else parse_class_code(value)


def _hex_id_list(ctx, param, value):
    if value is None:
        return None
    ids = [parse_pci_id(part, 16, "--device-list") for part in value.split(",") if part.strip()]
    if not ids:
        raise click.BadParameter("give at least one id", param_hint="--device-list")
    if 0 in ids:
        raise click.BadParameter("0 ends a device list; it cannot be an id in it", param_hint="--device-list")
    return ids


def _offset(ctx, param, value):
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an offset (decimal, or 0x... for hex)") from None


@click.command("patch")
@click.argument("rom", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the patched ROM here ('-': standard output, the report then goes to stderr).")
@click.option("--in-place", is_flag=True, help="Replace ROM itself (atomically).")
@click.option("--image", "image_index", type=int, metavar="N", help="Patch only image N (0-based, as in `inspect --json`); "
              "default: ids go to every image, --last/--not-last to the final one.")
@click.option("--vendor-id", callback=_hex_id(16), metavar="HEX", help=f"New PCIR vendor id ({HEX_HELP}).")
@click.option("--device-id", callback=_hex_id(16), metavar="HEX",
              help=f"New PCIR device id ({HEX_HELP}). A PCI 3.0 device list is kept as it is.")
@click.option("--device-list", callback=_hex_id_list, metavar="HEX,HEX,...",
              help=f"Replace the PCI 3.0 device list with these ids ({HEX_HELP}); it must fit in the "
                   "list's present room, and the list must be one bootforge can validate.")
@click.option("--class-code", callback=_class_code, metavar="HEX",
              help="New PCIR class code, hex (0x optional) as lspci shows it: 4 digits are class and "
                   "subclass (`lspci -n`: 0200, prog-if 00), 6 the whole code (020000); both are an "
                   "Ethernet controller. The decoded class of the result is printed.")
@click.option("--last/--not-last", default=None, help="Set or clear the last-image bit.")
@click.option("--fix-checksums", is_flag=True, help="Also re-balance $PnP, UNDI, iPXE and image checksums "
              "that are already wrong (without it, patching an image whose checksum was bad is refused).")
@click.option("--checksum-offset", callback=_offset, metavar="OFFSET", help="The byte (from the image start; decimal or 0x...) "
              "that carries the image checksum, when bootforge cannot tell which byte holds no code or data.")
def patch_command(rom, output, in_place, image_index, vendor_id, device_id, device_list, class_code, last,
                  fix_checksums, checksum_offset):
    """Change ids, the device list, indicator bits and checksums of an option ROM.

    PCI ids are hexadecimal, with or without 0x (--vendor-id 8086 = 0x8086).
    Every changed byte range is printed. ROM may be '-' (standard input) with -o.

    Exit status: 0 written, 1 an image to change already had a bad checksum
    (give --fix-checksums; nothing written), 2 unusable input.
    """
    from bootforge.rom.patch import ChecksumAlreadyBad, patch_rom

    if bool(output) == bool(in_place):
        raise click.UsageError("give exactly one of -o OUT and --in-place")
    if in_place and is_stdin(rom):
        raise click.UsageError("--in-place needs a file, not standard input")
    data = read_input(rom)
    try:
        patched, changes = patch_rom(data, rom, image_index=image_index, vendor_id=vendor_id,
                                     device_id=device_id, device_list=device_list, class_code=class_code,
                                     last=last, fix_checksums=fix_checksums, checksum_offset=checksum_offset)
    except ChecksumAlreadyBad as exc:
        click.echo(f"bootforge: error: {exc.located(path=rom)}", err=True)
        sys.exit(1)
    except BootforgeError as exc:
        raise exc.located(path=rom) from None
    to_stdout = not in_place and is_stdin(output)
    if to_stdout:
        sys.stdout.buffer.write(patched)
        sys.stdout.flush()
    else:
        write_atomic(rom if in_place else output, patched)
    for change in changes or ["nothing to change"]:
        click.echo(change, err=to_stdout)  # the report never mixes with ROM bytes on stdout
