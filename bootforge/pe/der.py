"""The little DER (ITU-T X.690) that signing needs, without asn1crypto or cryptography: their
imports (0.1 s together) cost more than a third of sbsign's whole run on a 60 MiB UKI.

Reading: a strict walk of tag-length-value elements (definite, minimal lengths; one-byte tags),
enough to take an RSA private key (PKCS#1 RSAPrivateKey, alone or in PKCS#8 PrivateKeyInfo)
and an X.509 certificate apart. Anything it does not read (encrypted or non-RSA keys, other
certificates) is a DerError, and the callers hand the bytes to `cryptography` instead, whose
messages the user then sees.
Writing: elements from their tag and contents (X.690 8.1: definite-length form, minimal)."""

import binascii

from bootforge.errors import BootforgeError

SEQUENCE, SET = 0x30, 0x31
INTEGER, BIT_STRING, OCTET_STRING, NULL, OID, BMP_STRING = 0x02, 0x03, 0x04, 0x05, 0x06, 0x1E


class DerError(BootforgeError):
    """Bytes this reader does not take (not necessarily bad: `cryptography` may read them)."""


def element(data, at, end=None):
    """(tag, contents start, contents end) of the element at *at* (inside [at, end))."""
    end = len(data) if end is None else end
    if at + 2 > end:
        raise DerError(f"element at {at:#x} truncated")
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tag at {at:#x}")
    at += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4 or at + n > end or data[at] == 0:
            raise DerError(f"length of the element at {at - 2:#x} not in DER form")
        length = int.from_bytes(data[at:at + n], "big")
        if length < 0x80:
            raise DerError(f"length of the element at {at - 2:#x} not minimal")
        at += n
    if at + length > end:
        raise DerError(f"element at {at:#x} runs past its parent")
    return tag, at, at + length


def children(data, start, end):
    """[(tag, contents start, contents end, element start)] of the elements filling [start, end)."""
    out = []
    while start < end:
        tag, a, b = element(data, start, end)
        out.append((tag, a, b, start))
        start = b
    return out


def expect(data, start, end, *tags):
    """The children of [start, end), checked to have *tags* as their first tags."""
    kids = children(data, start, end)
    if len(kids) < len(tags) or any(k[0] != t for k, t in zip(kids, tags)):
        raise DerError(f"unexpected structure at {start:#x}")
    return kids


def integer_value(data, kid):
    tag, a, b, _ = kid
    if tag != INTEGER or a == b or (b - a > 1 and (data[a] == 0 and data[a + 1] < 0x80 or
                                                  data[a] == 0xFF and data[a + 1] >= 0x80)):
        raise DerError(f"not a DER INTEGER at {a:#x}")
    return int.from_bytes(data[a:b], "big", signed=True)


def pem_block(data, label):
    """The DER inside the first PEM block '-----BEGIN *label*-----' of *data* (no headers)."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    i = data.find(begin)
    j = data.find(end, i)
    if i < 0 or j < 0:
        raise DerError(f"no {label.decode()} PEM block")
    body = data[i + len(begin):j]
    if b":" in body:                     # RFC 1421 headers (Proc-Type: 4,ENCRYPTED ...)
        raise DerError("PEM headers")
    try:
        return binascii.a2b_base64(body, strict_mode=False)
    except binascii.Error as exc:
        raise DerError(f"PEM base64: {exc}") from None


# Writing.

def tlv(tag, *contents):
    body = b"".join(contents)
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def integer(value):
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def set_of(*elements):
    """A DER SET OF: its elements sorted by their encodings (X.690 11.6)."""
    return tlv(SET, *sorted(elements))
