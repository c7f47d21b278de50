"""Partition tables written into images: MBR (hybrid or protective) and GPT with both copies.

Every id here (MBR disk signature, GPT disk and partition GUIDs) comes from
content_id(): a hash of the image's content, never a random number.
"""

import hashlib
import os
import struct
import uuid
import zlib
from dataclasses import dataclass

from bootforge.formats import gpt as gfmt
from bootforge.formats import mbr as mfmt

SECTOR = 512


def content_id(digest, label, size=16):
    """*size* bytes derived from the image's content digest and what the id is for."""
    return hashlib.sha256(digest + b"\0" + label.encode()).digest()[:size]


def content_guid(digest, label):
    """A GUID (RFC 4122 variant, version 4 bits) derived from content: text form."""
    raw = bytearray(content_id(digest, label))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw))).upper()


@dataclass
class GptPartition:
    type_guid: str
    first_lba: int
    last_lba: int
    name: str
    guid: str
    attributes: int = 0


def mbr_bytes(boot_code, disk_signature, partitions):
    """512 bytes: *boot_code* (up to 440 bytes, zero padded) and up to four (status, type, lba, sectors)."""
    parts = []
    for status, ptype, lba, count in list(partitions) + [(0, 0, 0, 0)] * (4 - len(partitions)):
        chs = b"\xfe\xff\xff" if ptype else b"\0\0\0"     # beyond CHS: LBA only (what fdisk writes)
        first = b"\0\x02\0" if ptype == mfmt.MBR_TYPE_GPT_PROTECTIVE and lba == 1 else chs
        parts.append(dict(status=status, chs_first=first, type=ptype, chs_last=chs, lba_first=lba,
                          sectors=count))
    return mfmt.Mbr.build(dict(boot_code=bytes(boot_code[:mfmt.BOOT_CODE_SIZE]).ljust(mfmt.BOOT_CODE_SIZE, b"\0"),
                               disk_signature=disk_signature, reserved=0, partitions=parts))


def gpt_tables(disk_sectors, partitions, disk_guid, first_usable=34, last_usable=None):
    """(primary: LBA 1..33 bytes, backup: the last 33 sectors' bytes) for a disk of *disk_sectors*."""
    entries = bytearray(gfmt.GPT_ENTRY_COUNT * gfmt.GPT_ENTRY_SIZE)
    for i, p in enumerate(partitions):
        entries[i * 128:(i + 1) * 128] = gfmt.GptEntry.build(dict(
            type_guid=gfmt.guid_bytes(p.type_guid), unique_guid=gfmt.guid_bytes(p.guid), first_lba=p.first_lba,
            last_lba=p.last_lba, attributes=p.attributes, name=p.name.encode("utf-16-le").ljust(72, b"\0")))
    entries = bytes(entries)
    entries_crc = zlib.crc32(entries)
    last = disk_sectors - 1
    if last_usable is None:
        last_usable = last - 1 - gfmt.GPT_ENTRIES_SECTORS

    def header(my, alt, entries_lba):
        h = dict(revision=gfmt.GPT_REVISION, header_size=gfmt.GPT_HEADER_SIZE, header_crc32=0, reserved=0,
                 my_lba=my, alternate_lba=alt, first_usable_lba=first_usable, last_usable_lba=last_usable,
                 disk_guid=gfmt.guid_bytes(disk_guid), entries_lba=entries_lba, num_entries=gfmt.GPT_ENTRY_COUNT,
                 entry_size=gfmt.GPT_ENTRY_SIZE, entries_crc32=entries_crc)
        raw = bytearray(gfmt.GptHeader.build(h))
        struct.pack_into("<I", raw, gfmt.GPT_HEADER_CRC_OFFSET, zlib.crc32(raw))
        return bytes(raw).ljust(SECTOR, b"\0")
    primary = header(1, last, 2) + entries
    backup = entries + header(last, 1, last - gfmt.GPT_ENTRIES_SECTORS)
    return primary, backup


def write_gpt(out, disk_sectors, partitions, disk_guid, **kw):
    primary, backup = gpt_tables(disk_sectors, partitions, disk_guid, **kw)
    os.pwrite(out.fileno(), primary, SECTOR)
    os.pwrite(out.fileno(), backup, (disk_sectors - 1 - gfmt.GPT_ENTRIES_SECTORS) * SECTOR)
