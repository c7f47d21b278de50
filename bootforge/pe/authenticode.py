"""The Authenticode image hash, the attribute certificate table and the PE CheckSum, read
the way OVMF reads them (EDK2 SecurityPkg/Library/DxeImageVerificationLib/
DxeImageVerificationLib.c: HashPeImage, and DxeImageVerificationHandler's walk of the
WIN_CERTIFICATE entries; UEFI 2.10 section 32.2; Microsoft's "Windows Authenticode
Portable Executable Signature Format"):

- hashed: the headers up to SizeOfHeaders less the CheckSum field and the certificate
  table's data directory entry (no entry to skip when NumberOfRvaAndSizes <= 4), then
  every section with raw data in PointerToRawData order (SizeOfRawData bytes each), then,
  when the file is longer than SizeOfHeaders + those sizes, the bytes from that sum to
  FileSize - the certificate table's size;
- so bytes between sections (a gap) are outside the hash and some other bytes are hashed
  twice: an image to be signed must have none (sbsigntool src/image.c warns "gap in section
  table"); bytes after the last section are hashed (sbsign's "endjunk");
- the certificate table is a run of WIN_CERTIFICATE entries, each 8-byte aligned, at the
  file offset the security directory gives; OVMF walks it to exactly its size, otherwise
  "the attribute certificate table is corrupted" and the image is not verified.

The CheckSum is the PE specification's (16-bit one's complement sum with carries folded, the
CheckSum field taken as zero, plus the file length): what sbsign writes; firmware ignores it.
"""

import hashlib
import struct
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.formats import pe as fmt
from bootforge.pe.image import read_pe

CERT_ALIGNMENT = 8


@dataclass(frozen=True)
class CertificateEntry:
    offset: int              # file offset of its WIN_CERTIFICATE header
    length: int              # dwLength (header included)
    revision: int
    certificate_type: int
    data: bytes              # bCertificate: dwLength - 8 bytes


@dataclass
class HashLayout:
    """What the Authenticode hash covers in one file, and the certificate table."""

    regions: list            # [(start, end)] in hashing order
    gaps: list               # [(name, start, end)]: file ranges between the headers/sections not hashed
    cert_table: tuple        # (offset, size); (0, 0) when absent
    entries: list            # [CertificateEntry]
    table_problem: str | None   # why OVMF's walk of the table fails, or None

    def digest(self, data, algorithm="sha256"):
        h = hashlib.new(algorithm)
        view = memoryview(data)
        for start, end in self.regions:
            h.update(view[start:end])
        return h.digest()


def security_directory(img):
    """(file offset, size) of the certificate table; (0, 0) when the image declares none
    (NumberOfRvaAndSizes <= 4 counts as none, as in HashPeImage)."""
    return img.directories.get("security", (0, 0))


def read_cert_table(data, offset, size, path=None):
    """The WIN_CERTIFICATE entries of the table at *offset* (*size* bytes), and the reason the
    firmware's walk fails (None when it ends exactly at the table's end)."""
    entries, at, end = [], offset, offset + size
    problem = None
    while at < end:
        if end - at < fmt.WIN_CERTIFICATE_HEADER_SIZE:
            problem = f"{end - at} bytes left at {at:#x}: too few for a WIN_CERTIFICATE header"
            break
        length, revision, ctype = struct.unpack_from("<IHH", data, at)
        if length < fmt.WIN_CERTIFICATE_HEADER_SIZE or length > end - at:
            problem = (f"WIN_CERTIFICATE at {at:#x}: dwLength {length:#x} outside the table's "
                       f"{end - at:#x} remaining bytes")
            break
        entries.append(CertificateEntry(at, length, revision, ctype,
                                        bytes(data[at + fmt.WIN_CERTIFICATE_HEADER_SIZE:at + length])))
        at += length + (-length % CERT_ALIGNMENT)
    if problem is None and at != end:
        problem = f"the last entry's 8-byte padding ends at {at:#x}, past the table's end {end:#x}"
    return entries, problem


def hash_layout(data, img=None, path=None):
    """The HashLayout of the PE *data* (its PeImage *img* when already read). FormatError when
    the certificate table lies outside the file (nothing a loader could verify)."""
    if img is None:
        img = read_pe(data)
    size = len(data)
    cert_off, cert_size = security_directory(img)
    if cert_size and (cert_off + cert_size > size or cert_off < img.size_of_headers):
        raise FormatError(f"certificate table [{cert_off:#x}, {cert_off + cert_size:#x}) lies outside the "
                          f"file ({size:#x} bytes) or inside its headers",
                          path=path, offset=img.directory_offset(fmt.DIR_SECURITY))
    if img.size_of_headers > size:
        raise FormatError(f"SizeOfHeaders {img.size_of_headers:#x} past the end of the file ({size:#x} bytes)",
                          path=path, offset=img.optional_header_offset + 0x3C)
    cks = img.checksum_offset
    regions = [(0, cks)]
    if len(img.directories) > fmt.DIR_SECURITY:
        sec = img.directory_offset(fmt.DIR_SECURITY)
        regions += [(cks + 4, sec), (sec + 8, img.size_of_headers)]
    else:
        regions.append((cks + 4, img.size_of_headers))
    sections = sorted((s for s in img.sections if s.raw_size), key=lambda s: s.raw_offset)
    total = img.size_of_headers
    gaps, prev_name, prev_end = [], "headers", img.size_of_headers
    for s in sections:
        if s.raw_offset + s.raw_size > size:
            raise FormatError(f"section {s.name} raw data ends past the end of the file", path=path,
                              offset=s.header_offset + 0x10)
        if s.raw_offset != prev_end:
            gaps.append((f"{prev_name} .. {s.name}", min(prev_end, s.raw_offset), max(prev_end, s.raw_offset)))
        regions.append((s.raw_offset, s.raw_offset + s.raw_size))
        total += s.raw_size
        prev_name, prev_end = s.name, s.raw_offset + s.raw_size
    if size > total + cert_size:
        regions.append((total, size - cert_size))
    elif size < total + cert_size:
        raise FormatError(f"the headers, sections and certificate table add up to {total + cert_size:#x} bytes, "
                          f"more than the file's {size:#x}: OVMF refuses to hash it", path=path)
    entries, problem = ([], None) if not cert_size else read_cert_table(data, cert_off, cert_size, path)
    return HashLayout(regions, gaps, (cert_off, cert_size), entries, problem)


def authenticode_digest(data, img=None, algorithm="sha256"):
    return hash_layout(data, img).digest(data, algorithm)


def pe_checksum(data, checksum_offset):
    """The PE CheckSum of *data* with the 4-byte field at *checksum_offset* taken as zero: the
    16-bit one's complement sum of the little-endian words (an odd last byte a word of its own),
    plus the file length.

    Since 2**16 == 1 (mod 0xFFFF), that sum is the file read as one little-endian integer, mod
    0xFFFF (0xFFFF instead of 0 when any word is non-zero): linear in C, where a Python loop
    over 30 million words is not."""
    low, high = struct.unpack_from("<HH", data, checksum_offset)
    modulus = 0xFFFF
    folded = (int.from_bytes(data, "little") - low * pow(2, 8 * checksum_offset, modulus)
              - high * pow(2, 8 * checksum_offset + 16, modulus)) % modulus
    if folded == 0 and (any(data[:checksum_offset]) or any(data[checksum_offset + 4:])):
        folded = modulus
    return (folded + len(data)) & 0xFFFFFFFF
