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
import os
import struct
import threading

from bootforge.errors import BootforgeError, FormatError, RecipeError
from bootforge.fileio import read_input

# cryptography and asn1crypto (~50 ms of imports) are imported in the functions that use them:
# `bootforge sign` reads the image and starts its Authenticode hash first, so the imports run
# while hashlib (which releases the GIL) hashes 60 MiB on the other core. The PE modules
# (formats.pe: construct, ~11 ms) are imported in the functions that read headers, so
# `bootforge sign` starts the CheckSum word sum (word_sum_started) before it reads any.


class SignError(BootforgeError):
    """The key, the certificate or the image cannot give a valid Authenticode signature."""


def load_certificate(data, path):
    """An X.509 certificate, PEM or DER."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from cryptography import x509

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignError(f"not an X.509 certificate (PEM or DER): {exc}", path=path) from None


class SigningCertificate:
    """The signer's certificate as signing needs it: its DER parsed by asn1crypto (its issuer
    and serial name the signer; the DER goes into the signature) and its public key.

    Signing reads the certificate with asn1crypto, which the PKCS#7 needs anyway, instead of
    cryptography.x509: that import alone cost 25-50 ms of `bootforge sign`'s ~0.25 s (measured
    with -X importtime), which ran against sbsign's whole 0.16 s."""

    def __init__(self, der, asn1, public_key):
        self.der, self.asn1, self.public_key = der, asn1, public_key

    def subject(self):
        """The subject as RFC 4514 text (for messages: cryptography.x509 loads only then)."""
        # Function-level import: only a refusal names the subject.
        from cryptography import x509
        return x509.load_der_x509_certificate(self.der).subject.rfc4514_string()


def load_signing_certificate(data, path):
    """A SigningCertificate from an X.509 certificate, PEM (its first CERTIFICATE block) or DER."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from asn1crypto import pem, x509 as asn1_x509

    try:
        der = data
        if pem.detect(data):
            der = next((body for name, _headers, body in pem.unarmor(data, multiple=True)
                        if name in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE")), None)
            if der is None:
                raise ValueError("no CERTIFICATE block")
        cert = asn1_x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        tbs["issuer"].native, tbs["serial_number"].native    # parsed now: a bad one is reported here
        public_key = _rsa_public_key(tbs["subject_public_key_info"])
        if public_key is None:
            # Function-level import: another algorithm's key (refused later by check_pair).
            from cryptography.hazmat.primitives import serialization
            public_key = serialization.load_der_public_key(tbs["subject_public_key_info"].dump())
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SignError(f"not an X.509 certificate (PEM or DER): {why}", path=path) from None
    return SigningCertificate(bytes(der), cert, public_key)


# Keys and certificates are read by asn1crypto (which the PKCS#7 needs anyway) and handed to
# cryptography as RSA numbers when they are plain RSA: importing cryptography's serialization
# module (its ssh and cipher modules with it) cost 16 ms of `bootforge sign`'s ~0.25 s CPU
# against rsa's 5 ms (-X importtime, 60 MiB UKI). Anything else (an encrypted key, another
# algorithm, a multi-prime key, bytes asn1crypto cannot read) goes to serialization's loaders,
# which say what is wrong. The numbers are the key's own, so the signatures are the same bytes.
_ASN1_ERRORS = (ValueError, TypeError, KeyError, OverflowError)


def _rsa_public_key(spki):
    """cryptography's RSA public key from asn1crypto's PublicKeyInfo *spki*; None when it is not
    RSA or cannot be read as such."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from cryptography.hazmat.primitives.asymmetric import rsa
    try:
        if spki["algorithm"]["algorithm"].native != "rsa":
            return None
        numbers = spki["public_key"].parsed
        return rsa.RSAPublicNumbers(numbers["public_exponent"].native, numbers["modulus"].native).public_key()
    except _ASN1_ERRORS:
        return None


def _plain_rsa_private_key(data):
    """cryptography's RSA private key from an unencrypted PKCS#8 or PKCS#1 key, PEM or DER;
    None for anything else."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from asn1crypto import keys, pem
    from cryptography.hazmat.primitives.asymmetric import rsa
    try:
        if pem.detect(data):
            name, headers, der = pem.unarmor(data)
            if headers or name not in ("PRIVATE KEY", "RSA PRIVATE KEY"):   # headers: legacy encryption
                return None
            pkcs8 = name == "PRIVATE KEY"
        else:
            der, pkcs8 = data, True          # a DER PKCS#1 key is left to serialization
        if pkcs8:
            info = keys.PrivateKeyInfo.load(der, strict=True)
            if info["private_key_algorithm"]["algorithm"].native != "rsa":
                return None
            key = info["private_key"].parsed
        else:
            key = keys.RSAPrivateKey.load(der, strict=True)
        n = key.native
        if n["version"] != "two-prime":
            return None
        public = rsa.RSAPublicNumbers(n["public_exponent"], n["modulus"])
        # Unchecked, as load_private_key's loaders below: signed_data verifies each signature.
        return rsa.RSAPrivateNumbers(n["prime1"], n["prime2"], n["private_exponent"], n["exponent1"],
                                     n["exponent2"], n["coefficient"], public
                                     ).private_key(unsafe_skip_rsa_key_validation=True)
    except _ASN1_ERRORS:
        return None


def load_private_key(data, path, passphrase=None):
    """A private key, PEM or DER, decrypted with *passphrase* (bytes) when encrypted."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from cryptography.hazmat.primitives.asymmetric import rsa

    if passphrase is None:
        key = _plain_rsa_private_key(data)
        if key is not None:
            return key
    # Function-level import: only keys that are not plain RSA (see above).
    from cryptography.hazmat.primitives import serialization
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
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignError(f"a {type(key).__name__.removeprefix('_')} key: OVMF verifies RSA Authenticode "
                        "signatures only", path=path)
    return key


def check_pair(key, cert, key_path, cert_path):
    if key.public_key().public_numbers() != cert.public_key.public_numbers():
        raise SignError(f"the private key is not the key of certificate {cert_path} ({cert.subject()})",
                        path=key_path)


def signed_data(digest, key, cert):
    """The DER of the PKCS#7 ContentInfo (SignedData) signing Authenticode hash *digest* with
    *key* and its SigningCertificate *cert*."""
    # Function-level import: see the note at the top (imports overlap the hash).
    from asn1crypto import cms, core
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    # Function-level import: as above (asn1crypto's cms alone is ~20 ms).
    from cryptography.hazmat.primitives.asymmetric import padding

    from bootforge.pe.spc import SPC_INDIRECT_DATA_OBJID, SpcContentInfo, indirect_data

    content = indirect_data(digest)
    # messageDigest is over the SpcIndirectDataContent's contents without its SEQUENCE header
    # (Authenticode; EDK2 CryptoPkg AuthenticodeVerify strips the tag and length the same way).
    message_digest = hashlib.sha256(content.contents).digest()
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [SPC_INDIRECT_DATA_OBJID]},
        {"type": "message_digest", "values": [message_digest]},
    ])
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    try:
        cert.public_key.verify(signature, attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignError("the private key gives signatures its certificate's key does not verify "
                        "(a damaged key)") from None
    der_cert = cert.asn1
    sha256 = {"algorithm": "sha256", "parameters": core.Null()}
    signer = {
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": der_cert.issuer, "serial_number": der_cert.serial_number}),
        "digest_algorithm": sha256,
        "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()},
        "signature": signature,
    }
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [sha256],
        "encap_content_info": SpcContentInfo({"content_type": SPC_INDIRECT_DATA_OBJID, "content": content}),
        "certificates": [der_cert],
        "signer_infos": [signer],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


def unsigned_length(data, img, path=None):
    """The length of the image without its certificate table (the table must end the file)."""
    # Function-level import: see the note at the top (construct).
    from bootforge.formats import pe as fmt
    from bootforge.pe.authenticode import security_directory
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


WORD_SUM_CHUNK = 1 << 16      # 64 KiB: measured faster than 1 MiB or the whole file (cache-sized ints)
WORD_SUM_MODULUS = 0xFFFF


def _word_sum(buffer):
    """The sum of the little-endian 16-bit words of *buffer* (starting at an even offset; an odd
    last byte is the low byte of a word of its own), mod 0xFFFF.

    Since 2**16 == 1 (mod 0xFFFF) that is the buffer read as one little-endian integer, mod
    0xFFFF. In 64 KiB pieces (an even offset keeps 2**(8*offset) == 1 mod 0xFFFF, so the pieces'
    sum has the whole's remainder): each int.from_bytes holds the GIL only briefly, so the hash
    running beside it gets on. The pieces' ints are added and divided once: a division per piece
    cost more than the conversion (0.14 s -> 0.06 s CPU for 68 MiB, measured)."""
    view = memoryview(buffer)
    total = 0
    for i in range(0, len(view), WORD_SUM_CHUNK):
        total += int.from_bytes(view[i:i + WORD_SUM_CHUNK], "little")
    return total % WORD_SUM_MODULUS


def _word_sum_at(buffer, offset):
    """The word sum (mod 0xFFFF) that the bytes *buffer* contribute at file offset *offset*:
    at an odd offset each byte is the other half of its word, a factor 2**8 (mod 0xFFFF)."""
    return _word_sum(buffer) * (256 if offset % 2 else 1) % WORD_SUM_MODULUS


WORD_SUM_FORK_BYTES = 8 << 20   # below this the sum is done in the process (a fork costs ~2-5 ms)


class WordSum:
    """The word sum of a whole file's bytes (mod 0xFFFF), started by word_sum_started; value()
    waits for it, cancel() drops it (bad input: the child is not waited for to the end)."""

    def __init__(self, value=None, pid=None, read_end=None, data=None):
        self._value, self._pid, self._read_end, self._data = value, pid, read_end, data

    def value(self):
        if self._pid is not None:
            try:
                got = os.read(self._read_end, 2)
            finally:
                self._reap()
            # A short answer (the child died): the same sum, done here.
            self._value = int.from_bytes(got, "little") if len(got) == 2 else _word_sum(self._data)
        self._data = None
        return self._value

    def cancel(self):
        if self._pid is not None:
            # Function-level import: only a refused image stops its sum.
            import signal
            try:
                os.kill(self._pid, signal.SIGKILL)      # the child only sums: nothing to clean up
            except OSError:
                pass
            self._reap()
        self._data = None

    def _reap(self):
        pid, self._pid = self._pid, None
        os.close(self._read_end)
        os.waitpid(pid, 0)


def word_sum_started(data):
    """A WordSum of all of *data*, the image as read (mod 0xFFFF).

    The sum holds the GIL (int.from_bytes, ~55 ms for a 68 MiB UKI, measured), so in a thread
    it would only take turns with the imports and the key loading. For a large image it runs
    in a forked child instead, which reads the same (mapped) pages, so it runs beside them on
    the other core, as sbsign's C loop runs beside nothing. It is over the input as it is
    (prepare_image takes out what signing changes: the two header fields, an old table), so
    `bootforge sign` forks it before it reads the headers (construct's import and read_pe then
    run beside it). Anything going wrong with the child (no fork, a short answer) falls back to
    summing here: the result is the same. Fork before starting threads: the child is a copy of
    the calling thread alone."""
    if len(data) < WORD_SUM_FORK_BYTES or not hasattr(os, "fork"):
        return WordSum(_word_sum(data))
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return WordSum(_word_sum(data))
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return WordSum(_word_sum(data))
    if pid == 0:                                   # the child: sum, answer, leave at once
        try:
            os.close(read_end)
            os.write(write_end, _word_sum(data).to_bytes(2, "little"))
        finally:
            os._exit(0)
    os.close(write_end)
    return WordSum(pid=pid, read_end=read_end, data=data)


def sign_image_parts(data, key, cert, path=None):
    """The signed image as buffers to write in order (the headers rewritten, the rest of the
    input unchanged, zero padding, the certificate table) and facts {authenticode_sha256,
    appended, signature_size}: the input's bytes are not copied (60 MiB UKIs)."""
    return prepare_image(data, path).finish(key, cert)


def prepare_image(data, path=None, word_sum=None):
    """The checks and the layout of PE *data* to sign, its Authenticode hash started in a thread
    (SignError/FormatError now, before any key is read): a PreparedImage, whose finish(key,
    cert) gives what sign_image_parts gives. *word_sum*: word_sum_started(data), when the
    caller started it (otherwise it starts here, once *data* is known to be signable); it is
    cancelled when *data* is refused."""
    try:
        return _prepare_image(data, path, word_sum)
    except BaseException:
        if word_sum is not None:
            word_sum.cancel()
        raise


def _prepare_image(data, path, word_sum):
    # Function-level import: see the note at the top (construct).
    from bootforge.formats import pe as fmt
    from bootforge.pe.authenticode import CERT_ALIGNMENT, hash_layout, security_directory
    from bootforge.pe.image import read_pe
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
    sec, cks = img.directory_offset(fmt.DIR_SECURITY), img.checksum_offset
    if img.size_of_headers < img.section_table_end:
        # The Authenticode hash starts with the headers, CheckSum and the table entry left out: headers
        # that end before the section table do not hold them (the sign fuzz harness's input had 0).
        raise SignError(f"SizeOfHeaders {img.size_of_headers:#x} ends before the section table (which ends at "
                        f"{img.section_table_end:#x}): the headers a signature hashes are not all there",
                        path=path, offset=cks - 4)
    if length < img.section_table_end:
        raise SignError(f"the certificate table starts at {length:#x}, inside the headers (the section table ends "
                        f"at {img.section_table_end:#x})", path=path, offset=sec)
    view = memoryview(data)
    pad = bytes(-length % CERT_ALIGNMENT)
    # The headers as they will be written: CheckSum and the certificate table entry zero while
    # hashing (both are outside the hash) and summing.
    head_end = min(img.size_of_headers, length)
    head = bytearray(view[:head_end])
    struct.pack_into("<II", head, sec, 0, 0)
    struct.pack_into("<I", head, cks, 0)
    body = [head, view[head_end:length], pad]
    # The layout of the unsigned image (no table): from the headers' facts and the size alone.
    unsigned = dataclasses.replace(img, directories={**img.directories, "security": (0, 0)})
    layout = hash_layout(_Sized(length + len(pad)), unsigned, path)
    if layout.gaps:
        name, start, end = layout.gaps[0]
        raise SignError(f"bytes [{start:#x}, {end:#x}) between {name} lie outside the Authenticode hash (a gap in "
                        "the section table): a signature would not cover them", path=path, offset=start)
    if word_sum is None:
        word_sum = word_sum_started(data)
    # The body's word sum is the input's less what the body does not have: the two fields as
    # read (zero in the body) and an old table (the body's padding is zeros).
    taken = (_word_sum_at(view[cks:cks + 4], cks) + _word_sum_at(view[sec:sec + 8], sec)
             + _word_sum_at(view[length:], length))
    return PreparedImage(body, layout, bytes(view[length:]), sec, cks, appended, word_sum, taken)


class PreparedImage:
    """An image ready to sign: *body* (headers with CheckSum and the table entry zero, the
    unchanged rest, the padding), its hash layout, the existing table, the offsets of the two
    fields. The SHA-256 runs in a thread from here (hashlib releases the GIL on large buffers),
    so the key loading, the imports and the CheckSum word sum (which holds the GIL) overlap it."""

    def __init__(self, body, layout, table, sec, cks, appended, word_sum, taken):
        self.body, self.layout, self.table = body, layout, table
        self.sec, self.cks, self.appended = sec, cks, appended
        self._digest = self._error = None
        # The input's word sum (its child forked before the hash thread starts, so the child is
        # a copy of one thread) and the part of it that is not the body's.
        self._word_sum, self._taken = word_sum, taken
        self._hasher = threading.Thread(target=self._hash, name="authenticode-sha256", daemon=True)
        self._hasher.start()

    def _hash(self):
        try:
            self._digest = _digest(self.layout, self.body)
        except BaseException as exc:      # re-raised in finish, in the caller's thread
            self._error = exc

    def cancel(self):
        """Stops the CheckSum's sum (a refused key: finish is not called)."""
        self._word_sum.cancel()

    def digest(self):
        self._hasher.join()
        if self._error is not None:
            raise self._error
        return self._digest

    def finish(self, key, cert):
        """(parts, facts) of the image signed with *key* and its certificate *cert*; the head
        buffer (parts[0]) is rewritten with the table entry and the CheckSum."""
        # Function-level import: see the note at the top (construct).
        from bootforge.formats import pe as fmt
        from bootforge.pe.authenticode import CERT_ALIGNMENT
        body, head, sec, cks = self.body, self.body[0], self.sec, self.cks
        body_sum = self._word_sum.value() - self._taken
        digest = self.digest()
        unsigned_size = sum(len(b) for b in body)
        pkcs7 = signed_data(digest, key, cert)
        entry_length = fmt.WIN_CERTIFICATE_HEADER_SIZE + len(pkcs7)
        entry = fmt.WinCertificateHeader.build(dict(length=entry_length, revision=fmt.WIN_CERT_REVISION_2_0,
                                                    certificate_type=fmt.WinCertType.PKCS_SIGNED_DATA))
        table = self.table + entry + pkcs7 + bytes(-entry_length % CERT_ALIGNMENT)
        struct.pack_into("<II", head, sec, unsigned_size, len(table))
        total = (body_sum + _word_sum_at(head[sec:sec + 8], sec)
                 + _word_sum_at(table, unsigned_size)) % WORD_SUM_MODULUS
        if total == 0:
            total = 0xFFFF     # one's complement: a non-zero sum folds to 0xFFFF, never 0 (the file has 'MZ')
        struct.pack_into("<I", head, cks, (total + unsigned_size + len(table)) & 0xFFFFFFFF)
        return body + [table], {"authenticode_sha256": digest.hex(), "appended": self.appended,
                                "signature_size": len(pkcs7)}


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
    """(key, SigningCertificate) from files, checked to be a pair; SignError otherwise."""
    passphrase = None
    if passphrase_path is not None:
        # The first line of the file (a trailing newline is not part of the passphrase, as for
        # openssl's -passin file:).
        passphrase = read_input(passphrase_path).split(b"\n", 1)[0].rstrip(b"\r")
    cert = load_signing_certificate(read_input(cert_path), cert_path)
    key = load_private_key(read_input(key_path), key_path, passphrase)
    check_pair(key, cert, key_path, cert_path)
    return key, cert


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
