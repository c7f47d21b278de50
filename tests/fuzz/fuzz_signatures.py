"""Authenticode signatures (pe/authenticode.py, pe/signature.py, pe/spc.py): the certificate
table's WIN_CERTIFICATE walk, the PKCS#7 SignedData, its SpcIndirectDataContent digest, the
signer's certificates and chain, and `inspect`'s Secure Boot section (text + JSON) of a PE
carrying the input as its certificate table.

The input is the certificate table alone: the harness appends it to one unsigned EFI binary
(systemd-boot) and points the security data directory at it, so every mutation lands in the
signature bytes instead of in a megabyte of code. Seeds: the tables of Debian's signed GRUB
(Debian's key), shim (Microsoft's two signatures), systemd-boot signed by sbsign and by
`bootforge sign` with OVMF's snakeoil key."""

import struct
import subprocess
import sys
from pathlib import Path

from common import WORK, attempt, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.pe.authenticode import hash_layout, security_directory
    from bootforge.pe.image import read_pe
    from bootforge.pe.signature import read_signatures

FAMILY = "signatures"
TEMPLATE = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
SIGNED = ["/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "/usr/lib/shim/shimx64.efi.signed"]
SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"      # passphrase "snakeoil"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"


def cert_table(data):
    off, size = security_directory(read_pe(data))
    return data[off:off + size]


def _signed_here():
    d = WORK / "signatures-seeds"
    d.mkdir(parents=True, exist_ok=True)
    out = []
    if not (Path(TEMPLATE).exists() and Path(SNAKEOIL_KEY).exists()):
        return out
    key, phrase = d / "snakeoil.key.pem", d / "passphrase"
    phrase.write_text("snakeoil\n")
    steps = [
        (key, ["openssl", "pkey", "-in", SNAKEOIL_KEY, "-passin", "pass:snakeoil", "-out", str(key)]),
        (d / "sbsign.efi", ["sbsign", "--key", str(key), "--cert", SNAKEOIL_CERT, "--output",
                            str(d / "sbsign.efi"), TEMPLATE]),
        (d / "bootforge.efi", [sys.executable, "-m", "bootforge", "sign", "--key", SNAKEOIL_KEY,
                               "--key-passphrase-file", str(phrase), "--cert", SNAKEOIL_CERT,
                               "-o", str(d / "bootforge.efi"), TEMPLATE]),
    ]
    for made, cmd in steps:
        if not made.exists():
            try:
                subprocess.run(cmd, check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"fuzz seeds: {cmd[0]}: {exc}", file=sys.stderr)
    return [str(d / "sbsign.efi"), str(d / "bootforge.efi")]


def seeds():
    out = []
    for path in SIGNED + _signed_here():
        if Path(path).exists():
            table = cert_table(Path(path).read_bytes())
            if table:
                out.append((path + ".certs", table))
    return out


_BASE = None


def _base():
    """The unsigned template padded to 8 bytes, and the file offset of its security directory."""
    global _BASE
    if _BASE is None:
        data = Path(TEMPLATE).read_bytes()
        off, size = security_directory(read_pe(data))
        if size:                        # a signed template: its table comes off
            data = data[:off]
        data += b"\0" * (-len(data) % 8)
        _BASE = (data, read_pe(data).directory_offset(4))
    return _BASE


def signed_with(table):
    base, entry = _base()
    image = bytearray(base + table)
    struct.pack_into("<II", image, entry, len(base), len(table))
    return bytes(image)


def target(data):
    image = signed_with(data)
    report = attempt(inspect_data, "fuzz.efi", image, "efi-pe")
    if report is not None:
        report.render_text()
        report.to_json()
    layout = attempt(hash_layout, image)
    if layout is not None and layout.entries:
        attempt(read_signatures, image, layout)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
