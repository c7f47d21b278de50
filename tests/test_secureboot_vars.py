"""`bootforge secureboot vars`: an OVMF VARS file with the user's PK, KEK and db. Read back
with bootforge's reader (the certificates' DER in EFI_SIGNATURE_LISTs, the template's other
variables byte for byte), and enforced by real OVMF: a UKI signed with the enrolled key
boots with Secure Boot on, one signed with Debian's snakeoil key is refused."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require, run_bootforge
from test_sign import SNAKEOIL_CERT, _sign
from test_uki_build import bootforge_uki
from test_uki_qemu import esp_image

SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
BLANK_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
SNAKEOIL_VARS = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"


def user_keys(directory):
    """A self-signed RSA-2048 certificate and key (openssl), the user's PK = KEK = db."""
    require("openssl")
    key, cert = Path(directory) / "user.key", Path(directory) / "user.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-subj", "/CN=bootforge test user db", "-days", "3650"], check=True,
                   capture_output=True)
    return key, cert


def make_vars(directory, cert, template=BLANK_VARS, extra=()):
    out = Path(directory) / "user_vars.fd"
    run_bootforge("secureboot", "vars", "--pk", cert, "--kek", cert, "--db", cert, "--template", template,
                  "-o", out, *extra, check=0)
    return out


def test_enrolled_keys_read_back(tmp_path):
    require(BLANK_VARS, SNAKEOIL_VARS)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from bootforge.formats import efivars as fmt
    from bootforge.secureboot.policy import policy_from_varstore
    from bootforge.secureboot.siglist import read_signature_lists
    from bootforge.secureboot.varstore import read_varstore
    _, cert = user_keys(tmp_path)
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
    out = make_vars(tmp_path, cert, extra=("--dbx", "ab" * 32))
    data = out.read_bytes()
    assert len(data) == Path(BLANK_VARS).stat().st_size
    store = read_varstore(data)
    for name, guid in (("PK", fmt.EFI_GLOBAL_VARIABLE), ("KEK", fmt.EFI_GLOBAL_VARIABLE),
                       ("db", fmt.EFI_IMAGE_SECURITY_DATABASE)):
        var = store.get(name, guid)
        assert var.attributes == 0x27
        assert [(e.type_name, e.data) for e in read_signature_lists(var.data)] == [("x509", der)]
    pol = policy_from_varstore(data, out)
    assert pol.enabled and pol.dbx_hashes == {bytes.fromhex("ab" * 32)}
    # Same inputs, same bytes.
    again = tmp_path / "again"
    again.mkdir()
    assert make_vars(again, cert, extra=("--dbx", "ab" * 32)).read_bytes() == data
    # From the snakeoil template: its other variables are kept byte for byte; its keys replaced.
    snake = make_vars(tmp_path, cert, template=SNAKEOIL_VARS).read_bytes()
    tmpl = Path(SNAKEOIL_VARS).read_bytes()
    old, new = read_varstore(tmpl), read_varstore(snake)
    # (no --dbx: the template's dbx is kept too)
    kept = [v for v in old.variables if v.name not in ("PK", "KEK", "db", "SecureBootEnable", "CustomMode")]
    assert [(v.name, v.data) for v in new.variables[:len(kept)]] == [(v.name, v.data) for v in kept]
    assert new.get("db", fmt.EFI_IMAGE_SECURITY_DATABASE).data != old.get("db", fmt.EFI_IMAGE_SECURITY_DATABASE).data


def test_bad_input(tmp_path):
    _, cert = user_keys(tmp_path)
    out = tmp_path / "v.fd"
    r = run_bootforge("secureboot", "vars", "--pk", tmp_path / "user.key", "--kek", cert, "--db", cert, "-o", out)
    assert_one_line_error(r, "not an X.509 certificate")
    r = run_bootforge("secureboot", "vars", "--pk", cert, "--kek", cert, "--db", cert, "--template", cert, "-o", out)
    assert_one_line_error(r, "no OVMF variable store")
    assert not out.exists()


@pytest.mark.qemu
def test_ovmf_enforces_the_enrolled_db(tmp_path):
    from test_secureboot_qemu import secureboot_boot
    require(SECBOOT_CODE)
    key, cert = user_keys(tmp_path)
    variables = make_vars(tmp_path, cert)
    uki = bootforge_uki(tmp_path)
    mine, snakeoil = tmp_path / "mine.efi", tmp_path / "snakeoil.efi"
    run_bootforge("sign", uki, "--key", key, "--cert", cert, "-o", mine, check=0)
    assert _sign(uki, snakeoil).returncode == 0
    verdicts = {}
    for name in ("mine", "snakeoil"):
        r = run_bootforge("inspect", "--json", tmp_path / f"{name}.efi", "--secureboot-vars", variables)
        verdicts[name] = json.loads(r.stdout)["authenticode"]["secureboot"]
    assert verdicts["mine"]["ok"] and not verdicts["snakeoil"]["ok"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = secureboot_boot(tmp_path / "a", esp_image(tmp_path / "a", mine), ("secureboot: Secure boot enabled",
                           "Access Denied"), code=SECBOOT_CODE, variables=variables)
    assert "secureboot: Secure boot enabled" in text, text[-2000:]
    text = secureboot_boot(tmp_path / "b", esp_image(tmp_path / "b", snakeoil), ("No bootable option",
                           "Linux version"), code=SECBOOT_CODE, variables=variables)
    refusal = [line for line in text.splitlines() if "failed to load Boot" in line and "HARDDISK" in line]
    assert refusal and refusal[0].rstrip().endswith(": " + verdicts["snakeoil"]["words"]), text[-2000:]


def test_a_variable_name_with_a_lone_surrogate_reads(tmp_path):
    """A name EDK2 stores as CHAR16s that are no UTF-16 (a fuzzer's UnicodeDecodeError before):
    the store reads, the variable keeps its bytes through the rewrite, and inspect answers."""
    import uuid

    from bootforge.formats import efivars as fmt
    from bootforge.secureboot.varstore import read_varstore, write_varstore
    require(BLANK_VARS)
    guid = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
    data = bytearray(write_varstore(Path(BLANK_VARS).read_bytes(), [("Zq", guid, 0x7, b"x")]))
    at = data.index("Zq\0".encode("utf-16-le"))
    data[at:at + 2] = b"\x00\xd8"                 # 'Z' -> a lone high surrogate
    store = read_varstore(bytes(data))
    var = next(v for v in store.variables if v.guid == guid and v.name.endswith("q"))
    assert var.data == b"x" and "\\x" in var.name
    again = write_varstore(bytes(data), [("db", fmt.EFI_IMAGE_SECURITY_DATABASE, 0x27, b"")])
    assert bytes(data[var.offset:var.offset + 0x3c + 6 + 1]) in again
    (tmp_path / "odd.fd").write_bytes(data)
    proc = run_bootforge("inspect", str(tmp_path / "odd.fd"))
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
