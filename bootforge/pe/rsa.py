"""RSA PKCS#1 v1.5 signing with SHA-256 (RFC 8017 8.2.1, EMSA-PKCS1-v1_5) and the X.509
facts an Authenticode signature carries (issuer, serial number, the certificate's DER and
public key), read with bootforge.pe.der: the unencrypted RSA keys and RSA certificates
sbsign users have, signed without importing `cryptography` (0.1 s of imports for a signature
that takes 5 ms). pe/sign.py gives every other key or certificate to `cryptography`.

The private operation uses the CRT parameters and is blinded (a random r: the signature is
s' * r^-1 where s' = (m * r^e)^d), so its timing does not follow the message; the result is
the same deterministic signature. Each signature is verified with the certificate's public
key before it is used (pe/sign.py), which also catches inconsistent CRT parameters."""

import hashlib
import os

from bootforge.pe import der

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
# DigestInfo { AlgorithmIdentifier { sha256, NULL }, OCTET STRING (32 bytes) } up to the digest.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_ENCRYPTION_DER = der.oid(RSA_ENCRYPTION)


def emsa_pkcs1_v15(digest, size):
    """EM for a SHA-256 *digest* and a modulus of *size* bytes."""
    t = SHA256_DIGEST_INFO + digest
    return b"\0\1" + b"\xff" * (size - len(t) - 3) + b"\0" + t


class RsaPrivateKey:
    """The two-prime RSA key of an RSAPrivateKey structure."""

    def __init__(self, n, e, d, p, q, dp, dq, qinv):
        self.n, self.e, self.d, self.p, self.q, self.dp, self.dq, self.qinv = n, e, d, p, q, dp, dq, qinv
        self.size = (n.bit_length() + 7) // 8

    def sign(self, message):
        """The RSA PKCS#1 v1.5 SHA-256 signature of *message*."""
        return self.sign_sha256(hashlib.sha256(message).digest())

    def sign_sha256(self, digest):
        m = int.from_bytes(emsa_pkcs1_v15(digest, self.size), "big")
        while True:
            r = int.from_bytes(os.urandom(self.size), "big") % self.n
            if r > 1:
                try:
                    r_inverse = pow(r, -1, self.n)
                    break
                except ValueError:       # r shares a factor with n (never for a real key)
                    continue
        blinded = m * pow(r, self.e, self.n) % self.n
        m1, m2 = pow(blinded, self.dp, self.p), pow(blinded, self.dq, self.q)
        s = (m2 + (self.qinv * (m1 - m2) % self.p) * self.q) * r_inverse % self.n
        return s.to_bytes(self.size, "big")


def read_private_key(data):
    """The RsaPrivateKey of an unencrypted PKCS#1 or PKCS#8 RSA key, PEM or DER; DerError for
    anything else."""
    if data.lstrip().startswith(b"-----BEGIN"):
        if b"-----BEGIN RSA PRIVATE KEY-----" in data:
            return _rsa_private_key(der.pem_block(data, b"RSA PRIVATE KEY"))
        return _pkcs8(der.pem_block(data, b"PRIVATE KEY"))
    try:
        return _pkcs8(data)
    except der.DerError:
        return _rsa_private_key(data)


def _pkcs8(blob):
    tag, a, b = der.element(blob, 0)
    if tag != der.SEQUENCE or b != len(blob):
        raise der.DerError("not a PrivateKeyInfo")
    version, algorithm, key = der.expect(blob, a, b, der.INTEGER, der.SEQUENCE, der.OCTET_STRING)[:3]
    alg = der.children(blob, algorithm[1], algorithm[2])
    if der.integer_value(blob, version) != 0 or not alg or \
            blob[alg[0][3]:alg[0][2]] != _RSA_ENCRYPTION_DER:
        raise der.DerError("not an RSA PrivateKeyInfo")
    return _rsa_private_key(blob[key[1]:key[2]])


def _rsa_private_key(blob):
    tag, a, b = der.element(blob, 0)
    if tag != der.SEQUENCE or b != len(blob):
        raise der.DerError("not an RSAPrivateKey")
    kids = der.children(blob, a, b)
    if len(kids) != 9:
        raise der.DerError("not a two-prime RSAPrivateKey")
    version, n, e, d, p, q, dp, dq, qinv = (der.integer_value(blob, k) for k in kids)
    if version != 0 or min(n, e, d, p, q, dp, dq, qinv) <= 0 or p * q != n:
        raise der.DerError("not a consistent two-prime RSAPrivateKey")
    return RsaPrivateKey(n, e, d, p, q, dp, dq, qinv)


class Certificate:
    """What an Authenticode SignerInfo takes from an X.509 certificate with an RSA key."""

    def __init__(self, der_bytes, issuer, serial_number, n, e):
        self.der, self.issuer, self.serial_number, self.n, self.e = der_bytes, issuer, serial_number, n, e

    def verifies_sha256(self, signature, digest):
        size = (self.n.bit_length() + 7) // 8
        if len(signature) != size:
            return False
        em = pow(int.from_bytes(signature, "big"), self.e, self.n)
        return em.to_bytes(size, "big") == emsa_pkcs1_v15(digest, size)


def read_certificate(data):
    """The Certificate of an X.509 certificate (PEM or DER) whose key is RSA; DerError for
    anything else."""
    blob = der.pem_block(data, b"CERTIFICATE") if data.lstrip().startswith(b"-----BEGIN") else bytes(data)
    tag, a, b = der.element(blob, 0)
    if tag != der.SEQUENCE or b != len(blob):
        raise der.DerError("not a Certificate")
    tbs, _, _ = der.expect(blob, a, b, der.SEQUENCE, der.SEQUENCE, der.BIT_STRING)
    fields = der.children(blob, tbs[1], tbs[2])
    if fields and fields[0][0] == 0xA0:          # [0] EXPLICIT version
        fields = fields[1:]
    if len(fields) < 6 or [f[0] for f in fields[:6]] != [der.INTEGER] + [der.SEQUENCE] * 5:
        raise der.DerError("not a TBSCertificate")
    serial = der.integer_value(blob, fields[0])
    issuer = blob[fields[2][3]:fields[2][2]]
    spki = fields[5]
    algorithm, key = der.expect(blob, spki[1], spki[2], der.SEQUENCE, der.BIT_STRING)
    alg = der.children(blob, algorithm[1], algorithm[2])
    if not alg or blob[alg[0][3]:alg[0][2]] != _RSA_ENCRYPTION_DER or key[1] == key[2] or blob[key[1]] != 0:
        raise der.DerError("not an RSA public key")
    tag, ka, kb = der.element(blob, key[1] + 1, key[2])
    if tag != der.SEQUENCE or kb != key[2]:
        raise der.DerError("not an RSAPublicKey")
    kids = der.children(blob, ka, kb)
    if len(kids) != 2:
        raise der.DerError("not an RSAPublicKey")
    n, e = (der.integer_value(blob, k) for k in kids)
    if n <= 0 or e <= 0:
        raise der.DerError("not an RSAPublicKey")
    return Certificate(blob, issuer, serial, n, e)
