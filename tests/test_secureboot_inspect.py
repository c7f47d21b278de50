"""`bootforge inspect` of signed and unsigned PE images: the Authenticode hash, each signature,
.sbat, and OVMF's Secure Boot verdict under Debian's snakeoil and Microsoft VARS templates or
--db/--dbx; a tampered byte exits 1 naming the failed check. The verdicts' words were seen
in real boots (tests/test_secureboot_qemu.py)."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, require, run_bootforge
from test_sign import GRUB_SIGNED, SHIM_SIGNED, SNAKEOIL_CERT, _sign, plain_snakeoil_key, sbsign
from test_uki_build import bootforge_uki

SNAKEOIL_VARS = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
BLANK_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def inspect_json(*args, check=None):
    r = run_bootforge("inspect", "--json", *args, check=check)
    return r.returncode, json.loads(r.stdout)


def _authenticode(doc):
    return doc["authenticode"]


def test_unsigned_and_signed_uki_under_snakeoil(tmp_path):
    require(SNAKEOIL_VARS)
    uki = bootforge_uki(tmp_path)
    status, doc = inspect_json(uki, "--secureboot-vars", SNAKEOIL_VARS)
    a = _authenticode(doc)
    assert status == 1 and a["signatures"] == [] and a["unhashed_gaps"] == []
    v = a["secureboot"]
    assert not v["ok"] and v["words"] == "Access Denied" and "not signed" in v["reason"]
    assert "systemd,1,The systemd Developers,systemd,252" in a["sbat"]       # Debian's stub's .sbat
    assert _sign(uki, tmp_path / "signed.efi").returncode == 0
    status, doc = inspect_json(tmp_path / "signed.efi", "--secureboot-vars", SNAKEOIL_VARS)
    a = _authenticode(doc)
    assert status == 0 and a["secureboot"]["ok"], a
    (s,) = a["signatures"]
    assert s["signer"] == s["issuer"] == "O=SnakeOil,L=Fort Collins,ST=Colorado,C=US"
    assert s["digest_algorithm"] == "sha256" and s["digest_matches"] and s["signature_valid"]
    assert s["signed_digest"] == a["authenticode_sha256"]
    # The same image and table read without a policy: no verdict, exit 0.
    status, doc = inspect_json(tmp_path / "signed.efi")
    assert status == 0 and "secureboot" not in _authenticode(doc)


def test_bootforge_accepts_sbsigns_signature(tmp_path):
    uki = bootforge_uki(tmp_path)
    assert sbsign(plain_snakeoil_key(tmp_path), SNAKEOIL_CERT, uki, tmp_path / "sb.efi").returncode == 0
    status, doc = inspect_json(tmp_path / "sb.efi", "--db", SNAKEOIL_CERT)
    a = _authenticode(doc)
    assert status == 0 and a["secureboot"]["ok"] and a["signatures"][0]["digest_matches"]


def test_tampered_byte_names_the_failed_check(tmp_path):
    uki = bootforge_uki(tmp_path)
    assert _sign(uki, tmp_path / "signed.efi").returncode == 0
    data = bytearray((tmp_path / "signed.efi").read_bytes())
    # One byte of the kernel (.linux, inside the hash).
    data[len(data) // 2] ^= 0x01
    (tmp_path / "kernel-byte.efi").write_bytes(data)
    status, doc = inspect_json(tmp_path / "kernel-byte.efi", "--db", SNAKEOIL_CERT)
    assert status == 1
    assert any(p.startswith("signature 0: digest check failed") for p in doc["problems"]), doc["problems"]
    assert not doc["authenticode"]["secureboot"]["ok"]
    # One byte of the RSA signature itself (the table's last bytes, before the 8-byte padding).
    data = bytearray((tmp_path / "signed.efi").read_bytes())
    table = json.loads(run_bootforge("inspect", "--json", tmp_path / "signed.efi").stdout)[
        "authenticode"]["certificate_table"]
    length = int.from_bytes(data[table["offset"]:table["offset"] + 4], "little")
    data[table["offset"] + length - 1] ^= 0x01
    (tmp_path / "sig-byte.efi").write_bytes(data)
    status, doc = inspect_json(tmp_path / "sig-byte.efi")
    assert status == 1
    assert "signature 0: the signer's signature does not verify with its certificate's key" in doc["problems"]
    # Text: the failed check is named on its own line.
    text = run_bootforge("inspect", tmp_path / "kernel-byte.efi").stdout
    assert "digest sha256 DOES NOT MATCH" in text


def test_dbx_by_hash_and_by_certificate(tmp_path):
    uki = bootforge_uki(tmp_path)
    assert _sign(uki, tmp_path / "signed.efi").returncode == 0
    _, doc = inspect_json(tmp_path / "signed.efi")
    digest = _authenticode(doc)["authenticode_sha256"]
    status, doc = inspect_json(tmp_path / "signed.efi", "--db", SNAKEOIL_CERT, "--dbx", digest)
    assert status == 1 and "hash is in dbx" in _authenticode(doc)["secureboot"]["reason"]
    status, doc = inspect_json(tmp_path / "signed.efi", "--db", SNAKEOIL_CERT, "--dbx", SNAKEOIL_CERT)
    assert status == 1 and "forbidden by DBX" in _authenticode(doc)["secureboot"]["reason"]


def test_microsoft_vars_run_shim_not_debians_grub():
    """Stock-PC keys: Microsoft's UEFI CA signed shim, so OVMF's ms VARS run it; Debian's GRUB is
    signed by Debian's CA, which only shim trusts."""
    require(MS_VARS, SHIM_SIGNED, GRUB_SIGNED)
    status, doc = inspect_json(SHIM_SIGNED, "--secureboot-vars", MS_VARS)
    assert status == 0 and doc["format"] == "efi-pe" and _authenticode(doc)["secureboot"]["ok"]
    status, doc = inspect_json(GRUB_SIGNED, "--secureboot-vars", MS_VARS)
    v = _authenticode(doc)["secureboot"]
    assert status == 1 and not v["ok"] and "Debian Secure Boot CA" in v["reason"]


def test_setup_mode_runs_anything(tmp_path):
    """OVMF_VARS_4M.fd has no PK: setup mode, Secure Boot off."""
    require(BLANK_VARS)
    uki = bootforge_uki(tmp_path)
    status, doc = inspect_json(uki, "--secureboot-vars", BLANK_VARS)
    assert status == 0 and "setup mode" in _authenticode(doc)["secureboot"]["reason"]


def test_snakeoil_vars_db_is_debians_certificate():
    """The db of Debian's snakeoil VARS holds exactly PkKek-1-snakeoil.pem (its DER)."""
    require(SNAKEOIL_VARS, SNAKEOIL_CERT)
    from cryptography import x509
    from bootforge.secureboot.policy import policy_from_varstore
    pol = policy_from_varstore(Path(SNAKEOIL_VARS).read_bytes(), SNAKEOIL_VARS)
    cert = x509.load_pem_x509_certificate(Path(SNAKEOIL_CERT).read_bytes())
    assert pol.db_certs == [cert] and pol.enabled
    assert len(pol.dbx_hashes) == 1         # OVMF's placeholder dbx entry


def test_inspect_of_an_unsigned_pe_does_not_import_cryptography(tmp_path):
    uki = bootforge_uki(tmp_path)
    code = ("import sys; from bootforge.inspect import inspect_data; "
            f"inspect_data('u', open({str(uki)!r}, 'rb').read()); "
            "print('cryptography' in sys.modules, 'asn1crypto' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_certificate_table_past_the_end_is_a_defect(tmp_path):
    """inspect reads such an image (exit 1, the table named, OVMF's verdict a refusal); `sign`
    refuses it (tests/test_sign.py, exit 2)."""
    import struct
    from bootforge.pe.image import read_pe
    uki = bootforge_uki(tmp_path)
    assert _sign(uki, tmp_path / "signed.efi").returncode == 0
    data = bytearray((tmp_path / "signed.efi").read_bytes())
    sec = read_pe(data).directory_offset(4)
    struct.pack_into("<II", data, sec, len(data) - 64, 4096)
    (tmp_path / "bad.efi").write_bytes(data)
    status, doc = inspect_json(tmp_path / "bad.efi", "--db", SNAKEOIL_CERT)
    assert status == 1
    assert any(p.startswith("certificate table: certificate table [") for p in doc["problems"]), doc["problems"]
    assert not doc["authenticode"]["secureboot"]["ok"]


def test_signed_digest_of_an_algorithm_ovmf_does_not_hash(tmp_path):
    """SpcIndirectData's digest algorithm SHA-224 (same OID length as SHA-256; OVMF hashes
    SHA-1/256/384/512): the signature's problem says so, no digest is compared (a fuzzer's
    AttributeError on the missing image digest before)."""
    src = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    require(str(src))
    assert _sign(src, tmp_path / "s.efi").returncode == 0
    data = bytearray((tmp_path / "s.efi").read_bytes())
    sha256_oid = bytes.fromhex("0609608648016503040201")
    first = data.index(sha256_oid)                       # SignedData.digestAlgorithms
    second = data.index(sha256_oid, first + 1)           # SpcIndirectDataContent's DigestInfo
    data[second + 10] = 0x04                             # 2.16.840.1.101.3.4.2.4: SHA-224
    (tmp_path / "odd.efi").write_bytes(data)
    status, doc = inspect_json(tmp_path / "odd.efi")
    sig = _authenticode(doc)["signatures"][0]
    assert status == 1 and sig["digest_algorithm"] == "sha224"
    assert any("OVMF hashes with SHA-1/256/384/512 only" in p for p in sig["problems"])


def _snakeoil_signed_systemd_boot(tmp_path):
    src = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    require(str(src))
    assert _sign(src, tmp_path / "s.efi").returncode == 0
    return bytearray((tmp_path / "s.efi").read_bytes())


def test_a_certificate_that_does_not_parse_is_the_signatures_problem(tmp_path):
    """Two certificates in the signature that asn1crypto or cryptography refuse only when read
    (both found by the signatures fuzzer, which escaped as IndexError / InvalidVersion): the
    signer's X.509 version set to 11, and its subjectPublicKey BIT STRING given length 0. The
    image is read (exit 1) and the signature's problem says it does not parse."""
    signed = _snakeoil_signed_systemd_boot(tmp_path)
    version = signed.index(bytes.fromhex("a003020102"))          # TBSCertificate version [0] v3
    bad_version = signed[:version + 4] + b"\x0b" + signed[version + 5:]
    rsa_spki = bytes.fromhex("300d06092a864886f70d0101010500038201")  # rsaEncryption, NULL, BIT STRING
    key = signed.index(rsa_spki) + len(rsa_spki) - 3               # at the BIT STRING's 03 82 01 0f
    empty_key = signed[:key + 1] + b"\x00" + signed[key + 2:]
    for name, data in (("version.efi", bad_version), ("key.efi", empty_key)):
        (tmp_path / name).write_bytes(data)
        status, doc = inspect_json(tmp_path / name)
        sig = _authenticode(doc)["signatures"][0]
        assert status == 1, (name, doc)
        assert any(p.startswith("PKCS#7 signature does not parse") for p in sig["problems"]), (name, sig)
