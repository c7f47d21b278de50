"""Would OVMF with Secure Boot on start this PE image? EDK2 SecurityPkg/Library/
DxeImageVerificationLib/DxeImageVerificationLib.c DxeImageVerificationHandler (OVMF 2022.11):

- no PK (setup mode) or SecureBootEnable off: Secure Boot is off, every image runs;
- an image without a certificate table runs only when its SHA-256 Authenticode hash is in
  db and not in dbx ("Image is not signed and SHA256 hash of image is not found in DB/DBX");
- otherwise each WIN_CERTIFICATE in order: a PKCS#7 one whose chain meets an X.509
  certificate (or a certificate's TBS SHA-256) of dbx forbids the image ("Image is signed but
  signature is forbidden by DBX"); one that verifies (image digest, messageDigest, signature)
  with a chain meeting a db certificate allows it (IsAllowedByDb); the image hash in dbx
  forbids it whatever the signatures; in db it allows it;
- a certificate table that the walk does not end exactly at its end: not verified.

A refused image fails LoadImage: what the boot manager then prints was observed in the
boots of tests/test_secureboot_qemu.py (OVMF_WORDS).
"""

import hashlib
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from bootforge.errors import FormatError
from bootforge.formats import efivars as fmt
from bootforge.formats.pe import WinCertType
from bootforge.pe.sign import load_certificate
from bootforge.pe.signature import issued_by
from bootforge.secureboot.siglist import certificate_list, read_signature_lists, sha256_list
from bootforge.secureboot.varstore import read_varstore, write_varstore
from bootforge.verdict import Verdict

SUBJECT = "uefi-secureboot"
# What OVMF 2022.11 prints when LoadImage refuses an image it booted from QEMU -kernel or an
# ESP: BdsDxe's "failed to load Boot0001 ...: Access Denied" (observed; EFI_ACCESS_DENIED, the
# DENY_EXECUTE_ON_SECURITY_VIOLATION policy OVMF builds with).
OVMF_WORDS = "Access Denied"


@dataclass
class SecureBootPolicy:
    """The databases OVMF checks, from a VARS file or given certificates and hashes."""

    source: str
    db_certs: list = field(default_factory=list)       # cryptography x509.Certificate
    db_hashes: set = field(default_factory=set)        # SHA-256 image hashes (bytes)
    dbx_certs: list = field(default_factory=list)
    dbx_hashes: set = field(default_factory=set)       # SHA-256 image hashes
    dbx_cert_hashes: set = field(default_factory=set)  # SHA-256 of TBS certificates (EFI_CERT_X509_SHA256)
    enabled: bool = True
    why_disabled: str | None = None
    store: object = None                               # the VarStore of a VARS file (PCR 7 measures it)

    def to_json(self):
        return {"source": self.source, "enabled": self.enabled, "why_disabled": self.why_disabled,
                "db": [c.subject.rfc4514_string() for c in self.db_certs] + sorted(h.hex() for h in self.db_hashes),
                "dbx_certificates": [c.fingerprint(hashes.SHA256()).hex() for c in self.dbx_certs],
                "dbx_hashes": sorted(h.hex() for h in self.dbx_hashes)}


def _load_cert(der, what):
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise FormatError(f"{what}: an X.509 entry that does not parse: {exc}") from None


def policy_from_varstore(data, path):
    """The policy of an OVMF VARS file (its PK, db, dbx, SecureBootEnable)."""
    store = read_varstore(data, path)
    pol = SecureBootPolicy(source=str(path), store=store)
    for name in ("db", "dbx"):
        var = store.get(name, fmt.EFI_IMAGE_SECURITY_DATABASE)
        if var is None:
            continue
        for e in read_signature_lists(var.data, f"{path}: {name}", var.offset):
            if e.type == fmt.EFI_CERT_X509_GUID:
                (pol.db_certs if name == "db" else pol.dbx_certs).append(_load_cert(e.data, f"{path}: {name}"))
            elif e.type == fmt.EFI_CERT_SHA256_GUID:
                (pol.db_hashes if name == "db" else pol.dbx_hashes).add(e.data)
            elif e.type == fmt.EFI_CERT_X509_SHA256_GUID and name == "dbx":
                pol.dbx_cert_hashes.add(e.data[:32])
    if store.get("PK", fmt.EFI_GLOBAL_VARIABLE) is None:
        pol.enabled, pol.why_disabled = False, "no PK: setup mode, Secure Boot off"
    else:
        sbe = store.get("SecureBootEnable", fmt.EFI_SECURE_BOOT_ENABLE_DISABLE)
        if sbe is not None and sbe.data[:1] == b"\0":
            pol.enabled, pol.why_disabled = False, "SecureBootEnable is 0"
    return pol


def policy_from_files(db=(), dbx=(), read=None):
    """A policy of db certificates (files) and dbx entries (a 64-hex-digit SHA-256 or a certificate file)."""
    pol = SecureBootPolicy(source="--db/--dbx")
    for p in db:
        pol.db_certs.append(load_certificate(read(p), p))
    for item in dbx:
        text = str(item)
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            pol.dbx_hashes.add(bytes.fromhex(text))
        else:
            pol.dbx_certs.append(load_certificate(read(item), item))
    return pol


def _meets(chain, certs, issued_by):
    """Whether the chain (signer first) reaches one of *certs*: equal to one, or issued by one."""
    for anchor in certs:
        for c in chain:
            if c == anchor or issued_by(c, anchor):
                return True
    return False


def _tbs_hash_forbidden(chain, hashes_):
    return any(hashlib.sha256(c.tbs_certificate_bytes).digest() in hashes_ for c in chain)


def secureboot_verdict(policy, layout, signatures, image_digest):
    """The Verdict of OVMF's image verification; *signatures* from pe.signature.read_signatures
    (empty for an unsigned image), *image_digest* its SHA-256 Authenticode hash."""
    facts = {"policy": policy.source}
    if not policy.enabled:
        return Verdict(SUBJECT, True, f"Secure Boot is off ({policy.why_disabled}): OVMF runs any image",
                       "error", None, facts)
    if not layout.cert_table[1]:
        if image_digest in policy.dbx_hashes:
            return Verdict(SUBJECT, False, "unsigned, and its SHA-256 hash is in dbx", "error", OVMF_WORDS, facts)
        if image_digest in policy.db_hashes:
            return Verdict(SUBJECT, True, "unsigned, its SHA-256 hash is in db", "error", None, facts)
        return Verdict(SUBJECT, False, "unsigned and its SHA-256 hash is not in db: OVMF refuses it (\"Image is not "
                       "signed and SHA256 hash of image is not found in DB/DBX\")", "error", OVMF_WORDS, facts)
    verified, reasons = False, []
    for s in signatures:
        if s.certificate_type != WinCertType.PKCS_SIGNED_DATA:
            continue
        if s.signed_digest is None:
            reasons.append(f"signature {s.index}: " + "; ".join(s.problems))
            continue
        chain = s.certificates
        valid = s.ok
        if valid and (_meets(chain, policy.dbx_certs, issued_by) or _tbs_hash_forbidden(chain, policy.dbx_cert_hashes)):
            return Verdict(SUBJECT, False, f"signature {s.index} ({s.signer}) chains to a certificate in dbx (\"Image is "
                           "signed but signature is forbidden by DBX\")", "error", OVMF_WORDS, facts)
        if not verified and valid and _meets(chain, policy.db_certs, issued_by):
            verified = True
            facts["allowed_by"] = s.signer
        elif not valid:
            reasons.append(f"signature {s.index} ({s.signer}) does not verify: " + "; ".join(
                s.problems or (["the image's digest is not the signed one"] if not s.digest_matches else [])))
        elif not verified:
            reasons.append(f"signature {s.index} ({s.signer}, issuer {s.issuer}) chains to no certificate of db")
        if image_digest in policy.dbx_hashes:
            return Verdict(SUBJECT, False, "signed, but its SHA-256 hash is in dbx", "error", OVMF_WORDS, facts)
        if not verified and image_digest in policy.db_hashes:
            verified = True
            facts["allowed_by"] = "image hash in db"
    if layout.table_problem:
        return Verdict(SUBJECT, False, f"the certificate table is corrupt ({layout.table_problem}): OVMF does not "
                       "verify the image", "error", OVMF_WORDS, facts)
    if verified:
        return Verdict(SUBJECT, True, f"allowed by db ({facts['allowed_by']})", "error", None, facts)
    return Verdict(SUBJECT, False, "; ".join(reasons) or "no PKCS#7 signature OVMF reads", "error", OVMF_WORDS, facts)



# The owner GUID of the EFI_SIGNATURE_DATA bootforge enrolls (a name-based UUID: the same every run).
BOOTFORGE_OWNER = uuid.uuid5(uuid.NAMESPACE_URL, "bootforge:secureboot")
AUTH_ATTRIBUTES = (fmt.EFI_VARIABLE_NON_VOLATILE | fmt.EFI_VARIABLE_BOOTSERVICE_ACCESS | fmt.EFI_VARIABLE_RUNTIME_ACCESS
                   | fmt.EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS)
NV_BS = fmt.EFI_VARIABLE_NON_VOLATILE | fmt.EFI_VARIABLE_BOOTSERVICE_ACCESS


def enrolled_varstore(template, pk, kek, db, dbx_hashes=(), dbx_certs=(), owner=BOOTFORGE_OWNER, path=None):
    """An OVMF VARS image: *template* with PK, KEK, db (DER certificates: one, lists, lists) and dbx
    enrolled, SecureBootEnable 1 and CustomMode 0 (OvmfPkg EnrollDefaultKeys does the same in a
    guest)."""
    def certs(ders):
        return b"".join(certificate_list(owner, d) for d in ders)
    variables = [("PK", fmt.EFI_GLOBAL_VARIABLE, AUTH_ATTRIBUTES, certs([pk])),
                 ("KEK", fmt.EFI_GLOBAL_VARIABLE, AUTH_ATTRIBUTES, certs(kek)),
                 ("db", fmt.EFI_IMAGE_SECURITY_DATABASE, AUTH_ATTRIBUTES, certs(db))]
    dbx = certs(dbx_certs) + (sha256_list(owner, sorted(dbx_hashes)) if dbx_hashes else b"")
    if dbx:
        variables.append(("dbx", fmt.EFI_IMAGE_SECURITY_DATABASE, AUTH_ATTRIBUTES, dbx))
    variables += [("SecureBootEnable", fmt.EFI_SECURE_BOOT_ENABLE_DISABLE, NV_BS, b"\x01"),
                  ("CustomMode", fmt.EFI_CUSTOM_MODE_ENABLE, NV_BS, b"\x00")]
    return write_varstore(template, variables, path)
