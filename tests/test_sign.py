"""Authenticode signing (`bootforge sign`, bootforge/pe/sign.py) checked against sbsigntool:
sbverify accepts every signature bootforge writes, bootforge reads sbsign's; the image
hash and CheckSum equal sbsign's; bad input is one line, exit 2, nothing written."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, require, run_bootforge
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


GRUB_EFI = "/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi"            # grub-efi-amd64-bin
GRUB_SIGNED = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"       # Debian's signature
SHIM_SIGNED = "/usr/lib/shim/shimx64.efi.signed"                         # Microsoft's two signatures
SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
IPXE_ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom"                            # image 1: an EFI driver
LIMINE_EFI = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "limine-11.4.1" / "BOOTX64.EFI"


def _sign(src, out, key=SNAKEOIL_KEY, cert=SNAKEOIL_CERT, passphrase="snakeoil", extra=()):
    args = ["sign", src, "--key", key, "--cert", cert, "-o", out, *extra]
    if passphrase is not None:
        pp = Path(out).parent / "passphrase"
        pp.write_text(passphrase + "\n")
        args += ["--key-passphrase-file", pp]
    return run_bootforge(*args)


def _efi_driver(tmp_path):
    require(IPXE_ROM)
    out = tmp_path / "e1000.efi"
    run_bootforge("extract", IPXE_ROM, "--image", "1", "-o", out, check=0)
    return out


def _signatures(path):
    from bootforge.pe.authenticode import hash_layout
    from bootforge.pe.signature import read_signatures
    data = Path(path).read_bytes()
    return read_signatures(data, hash_layout(data))


def test_sbverify_accepts_what_bootforge_signs(tmp_path):
    """A UKI, GRUB's and systemd-boot's EFI binaries, Limine's, and an EFI driver (iPXE's e1000,
    subsystem 11): signed by `bootforge sign`, verified by sbverify against the certificate."""
    require(GRUB_EFI, SYSTEMD_BOOT, str(LIMINE_EFI))
    inputs = {"uki": bootforge_uki(tmp_path), "grub": GRUB_EFI, "systemd-boot": SYSTEMD_BOOT,
              "limine": LIMINE_EFI, "driver": _efi_driver(tmp_path)}
    for name, src in inputs.items():
        out = tmp_path / f"{name}.signed.efi"
        r = _sign(src, out)
        assert r.returncode == 0, (name, r.stderr)
        v = sbverify(SNAKEOIL_CERT, out)
        assert v.returncode == 0 and "Signature verification OK" in v.stdout, (name, v.stdout, v.stderr)
        sigs = _signatures(out)
        assert len(sigs) == 1 and sigs[0].ok, name
        # The CheckSum written is the PE checksum of the output (the function that gives
        # sbsign's value for sbsign's file, test_same_hash_and_checksum_as_sbsign).
        from bootforge.pe.authenticode import pe_checksum
        from bootforge.pe.image import read_pe
        data = out.read_bytes()
        assert read_pe(data).checksum == pe_checksum(data, read_pe(data).checksum_offset), name


def test_same_hash_and_checksum_as_sbsign(tmp_path):
    """sbsign and bootforge sign the same UKI: the Authenticode digest inside both signatures is
    the same (sbsign computed its own), the SpcIndirectDataContent bytes are the same, and the
    CheckSum bootforge computes for sbsign's file is the one sbsign wrote."""
    from bootforge.pe.authenticode import pe_checksum
    from bootforge.pe.image import read_pe
    uki = bootforge_uki(tmp_path)
    key = plain_snakeoil_key(tmp_path)
    assert sbsign(key, SNAKEOIL_CERT, uki, tmp_path / "sb.efi").returncode == 0
    assert _sign(uki, tmp_path / "bf.efi").returncode == 0
    sb, bf = _signatures(tmp_path / "sb.efi")[0], _signatures(tmp_path / "bf.efi")[0]
    assert sb.ok and bf.ok
    assert sb.signed_digest == bf.signed_digest == bf.image_digest
    sb_data, bf_data = (tmp_path / "sb.efi").read_bytes(), (tmp_path / "bf.efi").read_bytes()
    marker = bytes.fromhex("060a2b060104018237020104")        # the SpcIndirectDataContent OID
    sb_at, bf_at = sb_data.find(marker, len(uki.read_bytes())), bf_data.find(marker, len(uki.read_bytes()))
    assert sb_data[sb_at:sb_at + 120] == bf_data[bf_at:bf_at + 120]
    img = read_pe(sb_data)
    assert img.checksum == pe_checksum(sb_data, img.checksum_offset) != 0
    # Before the certificate table the two files differ only in the CheckSum and the table's size
    # (the signatures differ: sbsign's has a signing time): the table starts at the same offset.
    table = img.directories["security"][0]
    assert read_pe(bf_data).directories["security"][0] == table
    differ = {i for i in range(table) if sb_data[i] != bf_data[i]}
    allowed = set(range(img.checksum_offset, img.checksum_offset + 4)) | \
        set(range(img.directory_offset(4) + 4, img.directory_offset(4) + 8))
    assert differ and differ <= allowed


def test_written_checksum_is_the_files_own(tmp_path):
    """The CheckSum bootforge writes is the PE CheckSum of the file it writes (pe_checksum, which
    gives sbsign's value for sbsign's file above): for the UKI (more than 8 MiB: its sum runs in
    a child process over the input as read, the changed fields taken out), for systemd's stub of
    odd length (zero padding before the table) and for both signed again (the old table taken
    out of the input's sum)."""
    from bootforge.pe.authenticode import pe_checksum
    from bootforge.pe.image import read_pe
    uki = bootforge_uki(tmp_path)
    assert uki.stat().st_size > 8 << 20 and Path(STUB).stat().st_size % 2
    for name, src in (("uki", uki), ("stub", STUB)):
        once, twice = tmp_path / f"{name}.1.efi", tmp_path / f"{name}.2.efi"
        assert _sign(src, once).returncode == 0 and _sign(once, twice).returncode == 0
        for path in (once, twice):
            data = path.read_bytes()
            img = read_pe(data)
            assert img.checksum == pe_checksum(data, img.checksum_offset), path.name


def test_signing_is_deterministic_and_in_place(tmp_path):
    uki = bootforge_uki(tmp_path)
    assert _sign(uki, tmp_path / "a.efi").returncode == 0
    assert _sign(uki, tmp_path / "b.efi").returncode == 0
    assert (tmp_path / "a.efi").read_bytes() == (tmp_path / "b.efi").read_bytes()
    copy = tmp_path / "c.efi"
    shutil.copy(uki, copy)
    pp = tmp_path / "pp"
    pp.write_text("snakeoil\n")
    run_bootforge("sign", copy, "--key", SNAKEOIL_KEY, "--cert", SNAKEOIL_CERT, "--in-place",
                  "--key-passphrase-file", pp, check=0)
    assert copy.read_bytes() == (tmp_path / "a.efi").read_bytes()


def test_every_key_form_and_input_path_gives_the_same_bytes(tmp_path):
    """Every key form (an unencrypted PKCS#8 PEM, PKCS#1 PEM, PKCS#8 DER key, read by asn1crypto as
    RSA numbers; a PKCS#1 DER key and the encrypted key, read by cryptography's loaders) and a DER certificate,
    a regular file (its bulk copied by the kernel) and a pipe (read in process) give the bytes
    of the encrypted key, for an unsigned and for an already signed input; sbverify accepts them."""
    require("openssl")
    uki = bootforge_uki(tmp_path)
    pkcs8 = plain_snakeoil_key(tmp_path)
    forms = {"pkcs8": pkcs8, "pkcs1": tmp_path / "pkcs1.pem", "der": tmp_path / "key.der",
             "pkcs1-der": tmp_path / "pkcs1.der"}
    subprocess.run(["openssl", "rsa", "-in", str(pkcs8), "-traditional", "-out", str(forms["pkcs1"])],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(pkcs8), "-traditional", "-outform", "DER", "-out",
                    str(forms["pkcs1-der"])], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(pkcs8), "-outform", "DER", "-out", str(forms["der"])],
                   check=True, capture_output=True)
    head = subprocess.run(["openssl", "rsa", "-in", str(forms["pkcs1"]), "-noout", "-text"], capture_output=True)
    assert head.returncode == 0 and forms["pkcs1"].read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    cert_der = tmp_path / "cert.der"
    subprocess.run(["openssl", "x509", "-in", SNAKEOIL_CERT, "-outform", "DER", "-out", str(cert_der)],
                   check=True, capture_output=True)
    assert _sign(uki, tmp_path / "signed.efi").returncode == 0
    for src in (uki, tmp_path / "signed.efi"):
        expected_out = tmp_path / f"expected-{src.name}"
        assert _sign(src, expected_out).returncode == 0
        expected = expected_out.read_bytes()
        for name, key in forms.items():
            out = tmp_path / f"{name}-{src.name}"
            r = _sign(src, out, key=key, cert=cert_der if name == "der" else SNAKEOIL_CERT, passphrase=None)
            assert r.returncode == 0, (name, r.stderr)
            assert out.read_bytes() == expected, (name, src.name)
        piped = tmp_path / f"piped-{src.name}"
        with open(src, "rb") as stdin:
            r = subprocess.run([sys.executable, "-m", "bootforge", "sign", "-", "--key", str(pkcs8), "--cert",
                                SNAKEOIL_CERT, "-o", str(piped)], stdin=stdin, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert piped.read_bytes() == expected, src.name
        assert sbverify(SNAKEOIL_CERT, tmp_path / f"pkcs8-{src.name}").returncode == 0


def test_already_signed_gets_a_second_signature_like_sbsign(tmp_path):
    """sbsign adds a signature to a signed image ("Image was already signed; adding additional
    signature"); bootforge does the same, and both signatures verify afterwards."""
    uki = bootforge_uki(tmp_path)
    key = plain_snakeoil_key(tmp_path)
    assert sbsign(key, SNAKEOIL_CERT, uki, tmp_path / "sb.efi").returncode == 0
    r = _sign(tmp_path / "sb.efi", tmp_path / "both.efi")
    assert r.returncode == 0 and "already signed" in r.stdout
    sigs = _signatures(tmp_path / "both.efi")
    assert [s.ok for s in sigs] == [True, True]
    listing = subprocess.run(["sbverify", "--list", str(tmp_path / "both.efi")], capture_output=True, text=True)
    assert re.findall(r"^signature (\d+)$", listing.stdout, re.M) == ["1", "2"]
    assert sbverify(SNAKEOIL_CERT, tmp_path / "both.efi").returncode == 0


def test_bootforge_reads_third_party_signatures():
    """Debian's signature on GRUB and Microsoft's two on shim (PKCS#7 with SpcSpOpusInfo,
    certificate chains of two) read and verify."""
    require(GRUB_SIGNED, SHIM_SIGNED)
    grub = _signatures(GRUB_SIGNED)
    assert [(s.ok, s.digest_algorithm, s.signer) for s in grub] == [
        (True, "sha256", "CN=Debian Secure Boot Signer 2022 - grub2")]
    shim = _signatures(SHIM_SIGNED)
    assert [s.ok for s in shim] == [True, True]
    assert "Microsoft Corporation UEFI CA 2011" in shim[0].issuer and len(shim[0].certificates) == 2


def test_bad_input_one_line_nothing_written(tmp_path):
    uki = bootforge_uki(tmp_path)
    out = tmp_path / "out.efi"
    # A certificate whose key is not the signing key.
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "o.key"),
                    "-out", str(other), "-subj", "/CN=other", "-days", "1"], check=True, capture_output=True)
    assert_one_line_error(_sign(uki, out, cert=other), "is not the key of certificate", "CN=other")
    assert_one_line_error(_sign(uki, out, passphrase=None), "encrypted", "--key-passphrase-file")
    assert_one_line_error(_sign(uki, out, passphrase="wrong"), "passphrase does not decrypt")
    # A key that is not RSA (PKCS#8 like the RSA keys read as numbers).
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(tmp_path / "ec.pem")], check=True, capture_output=True)
    assert_one_line_error(_sign(uki, out, key=tmp_path / "ec.pem", passphrase=None), "ECPrivateKey",
                          "OVMF verifies RSA")
    # Not a certificate: a PEM with only a key block, and a DER certificate cut short.
    assert_one_line_error(_sign(uki, out, cert=SNAKEOIL_KEY), "not an X.509 certificate", "no CERTIFICATE block")
    der = subprocess.run(["openssl", "x509", "-in", str(SNAKEOIL_CERT), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    (tmp_path / "cut.der").write_bytes(der[:-40])
    assert_one_line_error(_sign(uki, out, cert=tmp_path / "cut.der"), "not an X.509 certificate")
    # A certificate table that runs past the end of the file, and bytes after the table.
    signed = tmp_path / "signed.efi"
    assert _sign(uki, signed).returncode == 0
    data = signed.read_bytes()
    (tmp_path / "cut.efi").write_bytes(data[:-16])
    assert_one_line_error(_sign(tmp_path / "cut.efi", out), "runs past the end of the file")
    (tmp_path / "tail.efi").write_bytes(data + bytes(8))
    assert_one_line_error(_sign(tmp_path / "tail.efi", out), "follow the certificate table")
    assert_one_line_error(_sign(tmp_path / "os-release", out), "no PE image")
    assert not out.exists()


def test_uki_recipe_signs_with_its_secureboot_keys(tmp_path):
    """[uki] secureboot_private_key / secureboot_certificate: the built UKI is the unsigned build
    signed by `bootforge sign` (same bytes), and sbverify accepts it."""
    pp = tmp_path / "pp"
    pp.write_text("snakeoil\n")
    unsigned_dir, signed_dir = tmp_path / "u", tmp_path / "s"
    unsigned_dir.mkdir()
    signed_dir.mkdir()
    unsigned = bootforge_uki(unsigned_dir)
    signed = bootforge_uki(signed_dir, secureboot_private_key=SNAKEOIL_KEY,
                           secureboot_certificate=SNAKEOIL_CERT, secureboot_key_passphrase_file=str(pp))
    assert _sign(unsigned, tmp_path / "by-command.efi").returncode == 0
    assert signed.read_bytes() == (tmp_path / "by-command.efi").read_bytes()
    assert sbverify(SNAKEOIL_CERT, signed).returncode == 0


def test_uki_recipe_with_half_a_key_pair(tmp_path):
    from test_uki_build import write_recipe
    recipe = write_recipe(tmp_path, kernel="/boot/vmlinuz-6.1.0-57-amd64", output="u.efi",
                          secureboot_certificate=SNAKEOIL_CERT)
    assert_one_line_error(run_bootforge("build", recipe), "secureboot_certificate needs secureboot_private_key")
    assert not (tmp_path / "u.efi").exists()


def test_image_recipe_signs_its_efi_binary(tmp_path):
    """[image] secureboot_* keys: the image's BOOTX64.EFI is GRUB's image signed (the unsigned
    build's BOOTX64.EFI signed by `bootforge sign` is byte-equal), the rest of the ESP unchanged."""
    from test_secureboot_qemu import esp_file, image_recipe
    (tmp_path / "s").mkdir()
    (tmp_path / "u").mkdir()
    signed = esp_file(image_recipe(tmp_path / "s"), "/EFI/BOOT/BOOTX64.EFI", tmp_path / "s.efi")
    unsigned = esp_file(image_recipe(tmp_path / "u", signed=False), "/EFI/BOOT/BOOTX64.EFI", tmp_path / "u.efi")
    assert _sign(unsigned, tmp_path / "by-command.efi").returncode == 0
    assert signed.read_bytes() == (tmp_path / "by-command.efi").read_bytes()


def test_headers_that_end_before_the_section_table_are_one_line(tmp_path):
    """systemd's stub with SizeOfHeaders 0 (the sign fuzz harness's input had it): struct.error
    escaped from writing the zeroed CheckSum into headers that hold nothing; now one line naming
    the field, nothing written."""
    require(STUB)
    data = bytearray(Path(STUB).read_bytes())
    at = int.from_bytes(data[0x3C:0x40], "little") + 24 + 60       # optional header's SizeOfHeaders
    data[at:at + 4] = bytes(4)
    bad = tmp_path / "no-headers.efi"
    bad.write_bytes(data)
    out = tmp_path / "out.efi"
    assert_one_line_error(_sign(bad, out), "no-headers.efi", f"offset {at:#x}", "SizeOfHeaders 0x0 ends before")
    assert not out.exists()
