"""Authenticode signing (`bootforge sign`, bootforge/pe/sign.py) checked against sbsigntool:
sbverify accepts every signature bootforge writes, bootforge reads sbsign's; the image
hash and CheckSum equal sbsign's; bad input is one line, exit 2, nothing written."""

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require
from test_uki_build import STUB, bootforge_uki

SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"      # ovmf (Debian 12): encrypted, passphrase "snakeoil"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
SNAKEOIL_PASSPHRASE = "snakeoil"


def plain_snakeoil_key(directory):
    """The snakeoil key decrypted with openssl (what sbsign needs: it cannot be given a passphrase)."""
    require("openssl", SNAKEOIL_KEY)
    out = Path(directory) / "snakeoil.key.pem"
    if not out.exists():
        subprocess.run(["openssl", "pkey", "-in", SNAKEOIL_KEY, "-passin", f"pass:{SNAKEOIL_PASSPHRASE}",
                        "-out", str(out)], check=True, capture_output=True)
    return out


def sbsign(key, cert, src, out):
    require("sbsign")
    return subprocess.run(["sbsign", "--key", str(key), "--cert", str(cert), "--output", str(out), str(src)],
                          capture_output=True, text=True)


def sbverify(cert, path):
    require("sbverify")
    return subprocess.run(["sbverify", "--cert", str(cert), str(path)], capture_output=True, text=True)


def test_bootforge_uki_has_no_gap_for_sbsign(tmp_path):
    """sbsign warns "gap in section table" when a section's raw data does not start where the
    previous one's ends (sbsigntool src/image.c image_find_regions); bootforge's UKI has none."""
    uki = bootforge_uki(tmp_path)
    key = plain_snakeoil_key(tmp_path)
    r = sbsign(key, SNAKEOIL_CERT, uki, tmp_path / "signed.efi")
    assert r.returncode == 0, r.stderr
    assert "gap" not in r.stderr and "data remaining" not in r.stderr, r.stderr
    assert sbverify(SNAKEOIL_CERT, tmp_path / "signed.efi").returncode == 0
    # The stub's COFF symbol table (after its last section) is not carried into the UKI.
    stub = Path(STUB).read_bytes()
    data = uki.read_bytes()
    from bootforge.pe.authenticode import hash_layout
    from bootforge.pe.image import read_pe
    img = read_pe(data)
    assert hash_layout(data, img).gaps == []
    assert img.pointer_to_symbol_table == 0
    assert read_pe(stub).pointer_to_symbol_table != 0      # Debian's 252 stub has one
    last = max(img.sections, key=lambda s: s.raw_offset)
    assert last.raw_offset + last.raw_size == len(data)
