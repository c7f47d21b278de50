"""Reading and checking the Authenticode signatures of a PE image, as OVMF checks them
(EDK2 CryptoPkg/Library/BaseCryptLib/Pk/CryptAuthenticode.c AuthenticodeVerify and
CryptPkcs7VerifyCommon.c Pkcs7Verify; SecurityPkg DxeImageVerificationLib.c
HashPeImageByType):

- each WIN_CERT_TYPE_PKCS_SIGNED_DATA entry holds a DER PKCS#7 ContentInfo (SignedData)
  whose content type is SpcIndirectDataContent (1.3.6.1.4.1.311.2.1.4); the image is hashed
  with the digest algorithm named inside it (SHA-1, SHA-256, SHA-384, SHA-512) and must equal
  its digest;
- the signer's messageDigest attribute is the hash of the SpcIndirectDataContent's contents
  (its SEQUENCE tag and length stripped), and its signature is over the DER SET OF the
  signed attributes; without signed attributes, over those contents directly;
- trust (done in bootforge/secureboot/): the signer's certificate chains, through the
  certificates in the signature, to a certificate of db (partial chains allowed, validity
  dates not checked: Pkcs7Verify sets X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME).

This module imports asn1crypto and cryptography: inspect imports it only for an image that
has a certificate table.
"""

import hashlib
from dataclasses import dataclass, field

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bootforge.formats import pe as fmt
from bootforge.pe.spc import SPC_INDIRECT_DATA_OBJID, SpcContentInfo

# Digest algorithms HashPeImageByType recognises (by OID in the SpcIndirectDataContent).
HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass
class SignatureReport:
    index: int
    offset: int
    certificate_type: int
    revision: int
    signer: str | None = None
    issuer: str | None = None
    serial: int | None = None
    digest_algorithm: str | None = None
    signed_digest: bytes | None = None       # the digest inside SpcIndirectDataContent
    image_digest: bytes | None = None        # the image hashed with that algorithm
    signature_valid: bool = False            # messageDigest and the signer's signature check
    problems: list = field(default_factory=list)
    certificates: list = field(default_factory=list)   # cryptography x509.Certificate, signer first
    signer_certificate: object = None

    @property
    def digest_matches(self):
        return self.signed_digest is not None and self.signed_digest == self.image_digest

    @property
    def ok(self):
        return self.digest_matches and self.signature_valid and not self.problems

    def to_json(self):
        return {"index": self.index, "offset": self.offset,
                "certificate_type": fmt.WinCertType.label_of(self.certificate_type),
                "signer": self.signer, "issuer": self.issuer, "serial": self.serial,
                "digest_algorithm": self.digest_algorithm,
                "signed_digest": self.signed_digest.hex() if self.signed_digest else None,
                "image_digest": self.image_digest.hex() if self.image_digest else None,
                "digest_matches": self.digest_matches, "signature_valid": self.signature_valid,
                "problems": list(self.problems),
                "certificates": [{"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
                                  "sha256": c.fingerprint(hashes.SHA256()).hex()} for c in self.certificates]}


def _verify(public_key, signature, data, hash_name):
    algorithm = HASHES[hash_name]()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def issued_by(cert, issuer):
    """Whether *issuer*'s key signed *cert* (and the names agree)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def read_signature(entry, index, layout, data):
    """A SignatureReport for one CertificateEntry of the image *data* (its HashLayout *layout*)."""
    rep = SignatureReport(index, entry.offset, entry.certificate_type, entry.revision)
    if entry.certificate_type != fmt.WinCertType.PKCS_SIGNED_DATA:
        rep.problems.append(f"certificate type {fmt.WinCertType.label_of(entry.certificate_type)}: not PKCS#7 "
                            "signed data, OVMF skips it")
        return rep
    try:
        info = cms.ContentInfo.load(entry.data)
        if info["content_type"].native != "signed_data":
            rep.problems.append(f"PKCS#7 content type {info['content_type'].dotted}, not signedData")
            return rep
        sd = info["content"]
        encap = sd["encap_content_info"]
        if encap["content_type"].dotted != SPC_INDIRECT_DATA_OBJID:
            rep.problems.append(f"signed content type {encap['content_type'].dotted}, not SpcIndirectDataContent")
            return rep
        indirect = SpcContentInfo.load(encap.dump())["content"]
        digest_info = indirect["message_digest"]
        rep.digest_algorithm = digest_info["digest_algorithm"]["algorithm"].native
        rep.signed_digest = digest_info["digest"].native
        if rep.digest_algorithm not in HASHES:
            rep.problems.append(f"digest algorithm {rep.digest_algorithm}: OVMF hashes with SHA-1/256/384/512 only")
            return rep
        rep.image_digest = layout.digest(data, rep.digest_algorithm)
        certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in sd["certificates"]
                 if c.name == "certificate"] if sd["certificates"].native is not None else []
        signers = list(sd["signer_infos"])
        if len(signers) != 1:
            rep.problems.append(f"{len(signers)} signer infos: Authenticode has exactly one")
            if not signers:
                return rep
        si = signers[0]
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            rep.problems.append("signer identified by key identifier, not issuer and serial number")
            return rep
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        signer = next((c for c in certs if c.serial_number == serial
                       and c.issuer.public_bytes() == issuer_der), None)
        rep.serial = serial
        if signer is None:
            rep.problems.append("the signer's certificate is not in the signature")
            return rep
        rep.signer_certificate = signer
        rep.signer, rep.issuer = signer.subject.rfc4514_string(), signer.issuer.rfc4514_string()
        rep.certificates = chain_of(signer, certs)
        hash_name = si["digest_algorithm"]["algorithm"].native
        if hash_name not in HASHES:
            rep.problems.append(f"signer digest algorithm {hash_name} not supported")
            return rep
        attrs = si["signed_attrs"]
        if attrs.contents:
            wanted = hashlib.new(hash_name, indirect.contents).digest()
            md = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
            if md != [wanted]:
                rep.problems.append("messageDigest attribute is not the hash of the SpcIndirectDataContent")
                return rep
            # The signature is over the attributes as encoded, with the SET OF tag in place of
            # [0] IMPLICIT (RFC 2315 9.3): the received bytes, never a re-encoding.
            signed_bytes = b"\x31" + attrs.dump()[1:]
        else:
            signed_bytes = indirect.contents
        rep.signature_valid = _verify(signer.public_key(), si["signature"].native, signed_bytes, hash_name)
        if not rep.signature_valid:
            rep.problems.append("the signer's signature does not verify with its certificate's key")
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, x509.InvalidVersion) as exc:
        # asn1crypto parses lazily: a malformed inner value surfaces as any of these when read
        # (an implicitly tagged field holding garbage: AttributeError on 'InstanceOf'; a BIT
        # STRING of length 0: IndexError on its unused-bits byte). cryptography refuses a
        # certificate whose version is not v1-v3 with its own InvalidVersion (both found by the
        # signatures fuzzer).
        rep.problems.append(f"PKCS#7 signature does not parse: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
    return rep


def chain_of(signer, certs):
    """The signer's certificate, then each issuer found among *certs* (stops at a loop or the top)."""
    chain = [signer]
    while True:
        top = chain[-1]
        nxt = next((c for c in certs if c not in chain and issued_by(top, c)), None)
        if nxt is None:
            return chain
        chain.append(nxt)


def read_signatures(data, layout):
    """[SignatureReport] for every entry of the image's certificate table."""
    return [read_signature(e, i, layout, data) for i, e in enumerate(layout.entries)]
