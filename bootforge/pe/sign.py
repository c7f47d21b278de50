"""Authenticode signing of a PE image (what `bootforge sign` and the recipes' secureboot keys
do): PKCS#7 SignedData over SpcIndirectDataContent with SHA-256 and RSA PKCS#1 v1.5,
appended to the attribute certificate table, CheckSum recomputed.

The same choices as sbsigntool 0.9.4 (src/sbsign.c, src/image.c), so sbverify and OVMF read
the result the same way:
- the image is padded with zeros to a multiple of 8 bytes before the table (the padding is
  hashed, as "endjunk" in sbsign), the table's entry is WIN_CERT_REVISION_2_0 /
  WIN_CERT_TYPE_PKCS_SIGNED_DATA, padded to 8 bytes;
- an image that is already signed gets one more entry after the ones it has (sbsign:
  "Image was already signed; adding additional signature"); OVMF walks them all;
- signed attributes: contentType and messageDigest only. sbsign's OpenSSL adds signingTime
  and S/MIME capabilities; without a clock in the signature the same inputs give the same
  bytes (RSA PKCS#1 v1.5 is deterministic).

Refused before anything is written (SignError, exit 2): a key that is not the certificate's,
an encrypted key without its passphrase, a key that is not RSA (OVMF verifies RSA only), an
image whose headers or sections leave bytes outside the hash (a gap), a certificate table
past the end of the file or not at its end.
"""

import dataclasses
import hashlib
import struct
import threading

from bootforge.errors import BootforgeError, FormatError, RecipeError
from bootforge.fileio import read_input
from bootforge.formats import pe as fmt
from bootforge.pe import der, rsa
from bootforge.pe.authenticode import CERT_ALIGNMENT, hash_layout, security_directory
from bootforge.pe.image import read_pe

# `cryptography` is imported only for the keys and certificates bootforge.pe.rsa does not read
# (encrypted or non-RSA keys, and to word an error): its imports cost 0.1 s.

SPC_INDIRECT_DATA_OBJID = "1.3.6.1.4.1.311.2.1.4"       # as in pe/spc.py, which reads signatures
SPC_PE_IMAGE_DATAOBJ = "1.3.6.1.4.1.311.2.1.15"
OBSOLETE = "<<<Obsolete>>>"
SIGNED_DATA = "1.2.840.113549.1.7.2"
CONTENT_TYPE, MESSAGE_DIGEST = "1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4"
SHA256 = "2.16.840.1.101.3.4.2.1"


class SignError(BootforgeError):
    """The key, the certificate or the image cannot give a valid Authenticode signature."""


def load_certificate(data, path):
    """An X.509 certificate, PEM or DER (a `cryptography` object)."""
    # Function-level import: cryptography (0.1 s with its x509 module) only where it is used.
    from cryptography import x509
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignError(f"not an X.509 certificate (PEM or DER): {exc}", path=path) from None


def load_private_key(data, path, passphrase=None):
    """A private key, PEM or DER, decrypted with *passphrase* (bytes) when encrypted."""
    # Function-level import: cryptography only for the keys bootforge.pe.rsa does not read.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
    pem = data.lstrip().startswith(b"-----BEGIN")
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        # The expensive RSA consistency check (~0.1 s) is skipped: signed_data verifies each
        # signature it makes with the certificate's key instead.
        key = loader(data, password=passphrase, unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        text = str(exc)
        if "encrypted" in text and passphrase is None:
            raise SignError("the private key is encrypted: give its passphrase with --key-passphrase-file",
                            path=path) from None
        raise SignError(f"private key: {text}", path=path) from None
    except ValueError as exc:
        if passphrase is not None and ("password" in str(exc).lower() or "decrypt" in str(exc).lower()):
            raise SignError("the passphrase does not decrypt the private key", path=path) from None
        raise SignError(f"not a private key (PEM or DER): {str(exc).splitlines()[0]}", path=path) from None
    if not isinstance(key, crypto_rsa.RSAPrivateKey):
        raise SignError(f"a {type(key).__name__.removeprefix('_')} key: OVMF verifies RSA Authenticode "
                        "signatures only", path=path)
    return key


def check_pair(key, cert, key_path, cert_path):
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        raise SignError(f"the private key is not the key of certificate {cert_path} "
                        f"({cert.subject.rfc4514_string()})", path=key_path)


class _CryptographyKey:
    """A `cryptography` RSA private key with bootforge.pe.rsa.RsaPrivateKey's sign()."""

    def __init__(self, key):
        self.key = key

    def sign(self, message):
        # Function-level import: as in load_private_key, which made self.key.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        return self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _seq(*parts):
    return der.tlv(der.SEQUENCE, *parts)


def _algorithm(dotted):
    """AlgorithmIdentifier { algorithm, NULL parameters }."""
    return _seq(der.oid(dotted), der.tlv(der.NULL))


def indirect_data(digest):
    """The DER of the SpcIndirectDataContent of a PE image whose SHA-256 Authenticode hash is
    *digest* (pe/spc.py declares it for reading): SpcPeImageData with no flags and the file link
    every signer writes ("<<<Obsolete>>>" as a BMPString, signtool and sbsign)."""
    link = der.tlv(0xA0, der.tlv(0xA2, der.tlv(0x80, OBSOLETE.encode("utf-16-be"))))
    pe_image_data = _seq(der.tlv(der.BIT_STRING, b"\0"), link)
    return _seq(_seq(der.oid(SPC_PE_IMAGE_DATAOBJ), pe_image_data),
                _seq(_algorithm(SHA256), der.tlv(der.OCTET_STRING, digest)))


def signed_data(digest, key, cert):
    """The DER of the PKCS#7 ContentInfo (SignedData) signing Authenticode hash *digest* with
    *key* (sign(message) -> RSA PKCS#1 v1.5 SHA-256 signature) and *cert* (a
    bootforge.pe.rsa.Certificate). PKCS#7 v1 form: the content is the SpcIndirectDataContent
    itself, not an OCTET STRING as in CMS."""
    content = indirect_data(digest)
    # messageDigest is over the SpcIndirectDataContent's contents without its SEQUENCE header
    # (Authenticode; EDK2 CryptoPkg AuthenticodeVerify strips the tag and length the same way).
    _, start, _ = der.element(content, 0)
    message_digest = hashlib.sha256(content[start:]).digest()
    attrs = der.set_of(_seq(der.oid(CONTENT_TYPE), der.set_of(der.oid(SPC_INDIRECT_DATA_OBJID))),
                       _seq(der.oid(MESSAGE_DIGEST), der.set_of(der.tlv(der.OCTET_STRING, message_digest))))
    signature = key.sign(attrs)
    if not cert.verifies_sha256(signature, hashlib.sha256(attrs).digest()):
        raise SignError("the private key gives signatures its certificate's key does not verify "
                        "(a damaged key)")
    signer = _seq(der.integer(1),
                  _seq(cert.issuer, der.integer(cert.serial_number)),          # IssuerAndSerialNumber
                  _algorithm(SHA256),
                  b"\xa0" + attrs[1:],                # signedAttrs: [0] IMPLICIT, signed as a SET
                  _algorithm(rsa.RSA_ENCRYPTION),
                  der.tlv(der.OCTET_STRING, signature))
    sd = _seq(der.integer(1),
              der.set_of(_algorithm(SHA256)),
              _seq(der.oid(SPC_INDIRECT_DATA_OBJID), der.tlv(0xA0, content)),
              der.tlv(0xA0, cert.der),                 # certificates [0] IMPLICIT
              der.set_of(signer))
    return _seq(der.oid(SIGNED_DATA), der.tlv(0xA0, sd))


def unsigned_length(data, img, path=None):
    """The length of the image without its certificate table (the table must end the file)."""
    offset, size = security_directory(img)
    if not size:
        return len(data)
    if offset + size > len(data):
        raise SignError(f"certificate table [{offset:#x}, {offset + size:#x}) runs past the end of the file "
                        f"({len(data):#x} bytes)", path=path, offset=img.directory_offset(fmt.DIR_SECURITY))
    if offset + size != len(data):
        raise SignError(f"{len(data) - offset - size:#x} bytes follow the certificate table: OVMF hashes the "
                        "file up to its size less the table's, so they would not be signed", path=path,
                        offset=offset + size)
    return offset


WORD_SUM_CHUNK = 1 << 18      # 256 KiB: the int of a piece stays small enough to build in cache


def _word_sum(buffer):
    """The sum of the little-endian 16-bit words of *buffer* (even length), mod 0xFFFF.

    The pieces are read as little-endian ints and added, with one division at the end: an even
    offset keeps 2**(8*offset) == 1 mod 0xFFFF, so the pieces' sum has the whole's remainder.
    A division per piece cost more than the conversion itself (0.14 s for 68 MiB against
    0.06 s)."""
    view = memoryview(buffer)
    total = 0
    for i in range(0, len(view), WORD_SUM_CHUNK):
        total += int.from_bytes(view[i:i + WORD_SUM_CHUNK], "little")
    return total % 0xFFFF


def sign_image_parts(data, key, cert, path=None, copy_bulk=None, whole_sum=None, early_hash=None):
    """The signed image as buffers to write in order (the headers rewritten, the rest of the
    input unchanged, zero padding, the certificate table) and facts {authenticode_sha256,
    appended, signature_size}: the input's bytes are not copied (60 MiB UKIs).

    *copy_bulk(offset, count)*, when given, is called once the image is validated, in a thread
    beside the hash and the CheckSum sum: it writes the unchanged second part (the input's bytes
    [offset, offset + count)) to the output, so the copy overlaps the two passes.
    *whole_sum()*, when given, returns the whole input read as one little-endian integer, mod
    0xFFFF (computed elsewhere, e.g. by another process while this one imports and parses):
    the CheckSum's word sum then comes from it, less the bytes that change.
    *early_hash()*, when given, returns (ranges, hashlib object) or None: a SHA-256 of the input's
    *ranges* started before the headers were read here; it is the digest's start only when the
    layout read here hashes exactly those ranges (then the padding follows), else the image is
    hashed again."""
    try:
        img = read_pe(data)
    except FormatError as exc:
        raise exc.located(path=path) from None
    if len(img.directories) <= fmt.DIR_SECURITY:
        raise SignError(f"NumberOfRvaAndSizes {len(img.directories)}: the optional header has no certificate "
                        "table entry to point at a signature", path=path)
    length = unsigned_length(data, img, path)
    appended = length != len(data)
    if appended:
        old = hash_layout(data, img, path)
        if old.table_problem:
            raise SignError(f"the existing certificate table is corrupt: {old.table_problem}", path=path,
                            offset=security_directory(img)[0])
    view = memoryview(data)
    pad = bytes(-length % CERT_ALIGNMENT)
    # The headers as they will be written: CheckSum and the certificate table entry zero while
    # hashing (both are outside the hash) and summing.
    head_end = min(img.size_of_headers, length)
    head = bytearray(view[:head_end])
    sec, cks = img.directory_offset(fmt.DIR_SECURITY), img.checksum_offset
    struct.pack_into("<II", head, sec, 0, 0)
    struct.pack_into("<I", head, cks, 0)
    body = [head, view[head_end:length], pad]
    unsigned_size = length + len(pad)
    # The layout of the unsigned image (no table): from the headers' facts and the size alone.
    unsigned = dataclasses.replace(img, directories={**img.directories, "security": (0, 0)})
    layout = hash_layout(_Sized(unsigned_size), unsigned, path)
    if layout.gaps:
        name, start, end = layout.gaps[0]
        raise SignError(f"bytes [{start:#x}, {end:#x}) between {name} lie outside the Authenticode hash (a gap in "
                        "the section table): a signature would not cover them", path=path, offset=start)
    # hashlib and the copy release the GIL on large buffers; the word sum (int.from_bytes) holds
    # it: the three passes over the image run side by side.
    copied = _Background(copy_bulk, head_end, length - head_end) if copy_bulk else None
    early = early_hash() if early_hash is not None else None
    if early is not None and length == len(data) and \
            _coalesced(layout.regions) == [(0, cks), (cks + 4, sec), (sec + 8, unsigned_size)] == \
            early[0][:2] + [(sec + 8, unsigned_size)] and early[0][2] == (sec + 8, length):
        early[1].update(pad)
        hashed = _Done(early[1].digest())
    else:
        hashed = _Background(_digest, layout, body)
    whole = whole_sum() if whole_sum is not None else None
    if whole is None:
        body_sum = sum(_word_sum(b) for b in _even_split(body)) % 0xFFFF
    else:
        # The body is the input up to *length* with the CheckSum and the table's entry zeroed.
        body_sum = (whole - _weighted(view[length:], length) - _weighted(view[cks:cks + 4], cks)
                    - _weighted(view[sec:sec + 8], sec)) % 0xFFFF
    digest = hashed.result()
    if copied is not None:
        copied.result()
    table = bytes(view[length:])
    pkcs7 = signed_data(digest, key, cert)
    entry_length = fmt.WIN_CERTIFICATE_HEADER_SIZE + len(pkcs7)
    entry = fmt.WinCertificateHeader.build(dict(length=entry_length, revision=fmt.WIN_CERT_REVISION_2_0,
                                                certificate_type=fmt.WinCertType.PKCS_SIGNED_DATA))
    table += entry + pkcs7 + bytes(-entry_length % CERT_ALIGNMENT)
    struct.pack_into("<II", head, sec, unsigned_size, len(table))
    total = (body_sum + _word_sum(struct.pack("<II", unsigned_size, len(table))) + _word_sum(table)) % 0xFFFF
    if total == 0:
        total = 0xFFFF     # one's complement: a non-zero sum folds to 0xFFFF, never 0 (the file has 'MZ')
    struct.pack_into("<I", head, cks, (total + unsigned_size + len(table)) & 0xFFFFFFFF)
    return body + [table], {"authenticode_sha256": digest.hex(), "appended": appended,
                            "signature_size": len(pkcs7)}


def _weighted(buffer, offset):
    """What the bytes *buffer* at file offset *offset* add to the file's integer, mod 0xFFFF."""
    return _word_sum(bytes(buffer) + bytes(len(buffer) % 2)) * pow(2, 8 * offset, 0xFFFF) % 0xFFFF


def _even_split(parts):
    """*parts* as buffers that each start at an even file offset (for 16-bit word sums)."""
    out, carry = [], b""
    for p in parts:
        p = memoryview(p)
        if carry:
            if not len(p):
                continue
            out.append(carry + bytes(p[:1]))
            p = p[1:]
            carry = b""
        if len(p) % 2:
            carry = bytes(p[-1:])
            p = p[:-1]
        out.append(p)
    if carry:
        out.append(carry + b"\0")
    return out


class _Background:
    """fn(*args) in a thread of its own; result() waits and returns or raises what it did
    (threading rather than concurrent.futures, whose imports cost 10-20 ms)."""

    def __init__(self, fn, *args):
        self._outcome = None

        def run():
            try:
                self._outcome = (True, fn(*args))
            except BaseException as exc:        # handed to result(), in the caller's thread
                self._outcome = (False, exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        ok, value = self._outcome
        if not ok:
            raise value
        return value


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _coalesced(regions):
    """*regions* with each range that starts where the previous one ends joined to it."""
    out = []
    for start, end in regions:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        elif start < end:
            out.append((start, end))
    return out


class _Sized:
    """Stands for the unsigned image in hash_layout, which reads only its length."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


def _digest(layout, parts, algorithm="sha256"):
    """layout.digest over the image given as consecutive *parts*."""
    h = hashlib.new(algorithm)
    bounds, at = [], 0
    for p in parts:
        bounds.append((at, at + len(p), memoryview(p)))
        at += len(p)
    for start, end in layout.regions:
        for lo, hi, mv in bounds:
            a, b = max(start, lo), min(end, hi)
            if a < b:
                h.update(mv[a - lo:b - lo])
    return h.digest()


def sign_image(data, key, cert, path=None):
    """The signed image bytes and facts {digest, signatures, appended} for PE *data*."""
    parts, facts = sign_image_parts(data, key, cert, path)
    return b"".join(parts), facts


def load_signer(key_path, cert_path, passphrase_path=None):
    """(key, certificate) from files, checked to be a pair; SignError otherwise. The key has
    sign(message); the certificate is a bootforge.pe.rsa.Certificate."""
    passphrase = None
    if passphrase_path is not None:
        # The first line of the file (a trailing newline is not part of the passphrase, as for
        # openssl's -passin file:).
        passphrase = read_input(passphrase_path).split(b"\n", 1)[0].rstrip(b"\r")
    cert_data = read_input(cert_path)
    key_data = read_input(key_path)
    if passphrase is None:
        # An unencrypted RSA key and its RSA certificate (what sbsign takes): read here.
        try:
            key, cert = rsa.read_private_key(key_data), rsa.read_certificate(cert_data)
        except der.DerError:
            pass
        else:
            if (key.n, key.e) == (cert.n, cert.e):
                return key, cert
    # Anything else, and every error message: `cryptography`.
    # Function-level import: cryptography only on this path (0.1 s of imports).
    from cryptography.hazmat.primitives import serialization
    cert = load_certificate(cert_data, cert_path)
    key = load_private_key(key_data, key_path, passphrase)
    check_pair(key, cert, key_path, cert_path)
    try:
        facts = rsa.read_certificate(cert.public_bytes(serialization.Encoding.DER))
    except der.DerError as exc:
        raise SignError(f"certificate: {exc}", path=cert_path) from None
    return _CryptographyKey(key), facts


# The recipe keys that sign EFI binaries ([uki] and, for every EFI binary put on an image, [image]).
SIGNING_KEYS = ("secureboot_private_key", "secureboot_certificate", "secureboot_key_passphrase_file")


def recipe_signer(table, resolve, where):
    """A function bytes -> signed bytes for the secureboot_* keys of recipe table *table*
    (*resolve* turns a key's value into a path), or None when the table names no key pair.
    RecipeError when only one of the pair is given; SignError when the pair does not match."""

    given = [k for k in SIGNING_KEYS[:2] if table.get(k)]
    if not given:
        return None
    if len(given) == 1:
        missing = (set(SIGNING_KEYS[:2]) - set(given)).pop()
        raise RecipeError(f"[{where}] {given[0]} needs {missing} too")
    phrase = table.get(SIGNING_KEYS[2])
    key, cert = load_signer(resolve(table[SIGNING_KEYS[0]], SIGNING_KEYS[0]),
                            resolve(table[SIGNING_KEYS[1]], SIGNING_KEYS[1]),
                            resolve(phrase, SIGNING_KEYS[2]) if phrase else None)
    return lambda data, path=None: sign_image(data, key, cert, path)[0]
