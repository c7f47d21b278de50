"""EFI_SIGNATURE_LISTs (UEFI 2.10 section 32.4.1), the contents of PK, KEK, db and dbx:
read into (type, owner, data) entries and written from them."""

import uuid
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.formats import efivars as fmt

TYPE_NAMES = {fmt.EFI_CERT_X509_GUID: "x509", fmt.EFI_CERT_SHA256_GUID: "sha256",
              fmt.EFI_CERT_X509_SHA256_GUID: "x509-sha256"}


@dataclass(frozen=True)
class SignatureEntry:
    type: uuid.UUID
    owner: uuid.UUID
    data: bytes

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, str(self.type))


def read_signature_lists(data, what="signature database", base=0):
    """Every EFI_SIGNATURE_DATA of the EFI_SIGNATURE_LISTs in *data*; FormatError when a list's
    sizes do not fit (DxeImageVerificationLib stops at such a list, as does this)."""
    out, at = [], 0
    while at < len(data):
        if len(data) - at < fmt.SIGNATURE_LIST_HEADER_SIZE:
            raise FormatError(f"{what}: {len(data) - at} bytes left, too few for an EFI_SIGNATURE_LIST",
                              offset=base + at)
        h = fmt.SignatureListHeader.parse(data[at:at + fmt.SIGNATURE_LIST_HEADER_SIZE])
        size, hsize, ssize = h.signature_list_size, h.signature_header_size, h.signature_size
        body = size - fmt.SIGNATURE_LIST_HEADER_SIZE - hsize
        if size > len(data) - at or ssize <= fmt.SIGNATURE_OWNER_SIZE or body < 0 or body % ssize:
            raise FormatError(f"{what}: EFI_SIGNATURE_LIST sizes (list {size:#x}, header {hsize:#x}, "
                              f"signature {ssize:#x}) do not fit", offset=base + at)
        kind = uuid.UUID(bytes_le=h.signature_type)
        first = at + fmt.SIGNATURE_LIST_HEADER_SIZE + hsize
        for s in range(first, at + size, ssize):
            out.append(SignatureEntry(kind, uuid.UUID(bytes_le=data[s:s + 16]), bytes(data[s + 16:s + ssize])))
        at += size
    return out


def build_signature_list(kind, owner, items):
    """One EFI_SIGNATURE_LIST of *items* (bytes, all the same size) of type *kind*."""
    ssize = fmt.SIGNATURE_OWNER_SIZE + len(items[0])
    body = b"".join(owner.bytes_le + item for item in items)
    return fmt.SignatureListHeader.build(dict(
        signature_type=kind.bytes_le, signature_list_size=fmt.SIGNATURE_LIST_HEADER_SIZE + len(body),
        signature_header_size=0, signature_size=ssize)) + body


def certificate_list(owner, der):
    return build_signature_list(fmt.EFI_CERT_X509_GUID, owner, [der])


def sha256_list(owner, digests):
    return build_signature_list(fmt.EFI_CERT_SHA256_GUID, owner, list(digests))


