"""`bootforge secureboot`: Secure Boot key stores for OVMF.

`secureboot vars` writes an OVMF variable store (VARS flash image) with the user's PK, KEK
and db enrolled and Secure Boot on, from a template VARS file (default Debian's blank
OVMF_VARS_4M.fd); bootforge/secureboot/policy.py enrolled_varstore says what is written.
Exit status: 0 written, 2 bad input (nothing written)."""

import click

from bootforge.fileio import read_input, write_atomic

DEFAULT_TEMPLATE = "/usr/share/OVMF/OVMF_VARS_4M.fd"


@click.group("secureboot")
def secureboot_group():
    """Secure Boot key stores for OVMF."""


@secureboot_group.command("vars")
@click.option("--pk", required=True, type=click.Path(dir_okay=False), help="Platform Key certificate (PEM or DER).")
@click.option("--kek", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Key Exchange Key certificate (repeatable).")
@click.option("--db", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Certificate that signed images may chain to (repeatable).")
@click.option("--dbx", multiple=True, metavar="HASH|CERT",
              help="Forbidden SHA-256 image hash (64 hex digits) or certificate (repeatable).")
@click.option("--template", default=DEFAULT_TEMPLATE, show_default=True, type=click.Path(dir_okay=False),
              help="OVMF VARS file whose other variables are kept.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="VARS file to write.")
def vars_command(pk, kek, db, dbx, template, output):
    """Write an OVMF VARS file with PK, KEK, db (and dbx) enrolled and Secure Boot on."""
    # Function-level import: cryptography loads only when this command runs.
    from cryptography.hazmat.primitives.serialization import Encoding

    from bootforge.pe.sign import load_certificate
    from bootforge.secureboot.policy import enrolled_varstore

    def der(path):
        return load_certificate(read_input(path), path).public_bytes(Encoding.DER)

    hashes, certs = [], []
    for item in dbx:
        if len(item) == 64 and all(c in "0123456789abcdefABCDEF" for c in item):
            hashes.append(bytes.fromhex(item))
        else:
            certs.append(der(item))
    data = enrolled_varstore(read_input(template), der(pk), [der(k) for k in kek], [der(d) for d in db],
                             hashes, certs, path=template)
    write_atomic(output, data)
    click.echo(f"{output}: OVMF variable store from {template}: PK, {len(kek)} KEK, {len(db)} db"
               + (f", {len(dbx)} dbx" if dbx else "") + " enrolled; Secure Boot on")
