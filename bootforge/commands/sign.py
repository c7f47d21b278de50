"""`bootforge sign`: an Authenticode signature for any PE image (a UKI, GRUB's, Limine's or
systemd-boot's EFI binary, an EFI driver), appended to its certificate table
(bootforge/pe/sign.py says what is written and what is refused).

An image that is already signed gets one more signature after the ones it has, as sbsign
does. Exit status: 0 written, 2 bad input (nothing written)."""

import click

from bootforge.fileio import read_input, write_atomic


@click.command("sign")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="RSA private key, PEM or DER (encrypted: give --key-passphrase-file).")
@click.option("--cert", "cert_path", required=True, type=click.Path(dir_okay=False),
              help="X.509 certificate of the key, PEM or DER; put in the signature.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Signed image to write (default FILE.signed, as sbsign).")
@click.option("--in-place", is_flag=True, help="Replace FILE with the signed image.")
@click.option("--key-passphrase-file", type=click.Path(dir_okay=False),
              help="File whose first line is the passphrase of an encrypted key.")
def sign_command(file, key_path, cert_path, output, in_place, key_passphrase_file):
    """Sign the PE image FILE for UEFI Secure Boot (Authenticode, SHA-256, PKCS#7)."""
    # Function-level import: cryptography and asn1crypto load only when a file is signed.
    from bootforge.errors import BootforgeError
    from bootforge.pe.sign import sign_file_bytes

    if output and in_place:
        raise BootforgeError("give -o OUT or --in-place, not both", path=file)
    target = file if in_place else (output or f"{file}.signed")
    data = read_input(file)
    signed, facts = sign_file_bytes(data, key_path, cert_path, key_passphrase_file, path=file)
    write_atomic(target, signed)
    what = "added a signature to an already signed image" if facts["appended"] else "signed"
    click.echo(f"{target}: {what}; Authenticode SHA-256 {facts['authenticode_sha256']}")
