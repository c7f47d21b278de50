"""An ISO 9660 writer (Rock Ridge names, El Torito BIOS + UEFI entries) and a reader.

Why our own writer rather than pycdlib: the whole tree is known before the
first byte is written, so one pass lays out descriptors, path tables,
directories, the boot catalog and the file extents; every date is
SOURCE_DATE_EPOCH (or 1980-01-01), nothing comes from the clock, the
umask or the inputs' mtimes; files are copied into their extents in
chunks (a 2 GiB module costs no memory) and the ESP's FAT is written
straight into its extent. pycdlib stamps time.time() into descriptors and
directory records and builds its tree in memory.

Names: the ISO 9660 identifier is the upper-cased name with every
character outside A-Z 0-9 _ replaced by _, at most 30 characters (level 2),
"NAME.EXT;1" for files; the real name (case and all) is the Rock Ridge NM
entry, which GRUB, Syslinux, Limine and Linux read. Two files whose ISO
identifiers collide in one directory are refused. No Joliet.
"""

import os
import re
import struct
from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError, RecipeError
from bootforge.formats import eltorito as et
from bootforge.formats import iso9660 as fmt
from bootforge.image.content import FileContent, OutputHash

BLOCK = fmt.LOGICAL_BLOCK


def _d_chars(text, limit):
    return re.sub(r"[^A-Z0-9_]", "_", text.upper())[:limit]


def iso_identifier(name, is_dir):
    """The level-2 ISO 9660 identifier bytes for a file or directory *name*."""
    if is_dir:
        return _d_chars(name, 31).encode() or b"_"
    base, dot, ext = name.rpartition(".")
    if not dot or not base:
        base, ext = name, ""
    ext = _d_chars(ext, 8)
    base = _d_chars(base, 30 - len(ext) - 1) or "_"
    return f"{base}.{ext};1".encode()


def _record_date(dt):
    return dict(year=dt.year - 1900, month=dt.month, day=dt.day, hour=dt.hour, minute=dt.minute,
                second=dt.second, gmt_offset=0)


def _volume_date(dt):
    return dt.strftime("%Y%m%d%H%M%S").encode() + b"00\x00"


NO_DATE = b"0000000000000000\x00"


def _susp(sig, body, version=1):
    return sig + bytes([4 + len(body), version]) + body


def _px(mode):
    return _susp(b"PX", fmt.RripPX.build(dict(mode=mode, links=1, uid=0, gid=0)))


@dataclass
class _Dir:
    name: str
    parent: "_Dir | None"
    children: dict = field(default_factory=dict)     # identifier bytes -> _Dir | _File
    lba: int = 0
    size: int = 0
    number: int = 0


@dataclass
class _File:
    name: str
    content: object                                  # FileContent or anything with size/copy_to
    lba: int = 0


@dataclass
class BootImage:
    """An El Torito entry: *content* (bytes for the BIOS image, which may be patched)."""
    platform: int
    content: object
    load_sectors: int = 4                  # 512-byte sectors the BIOS loads (no emulation)
    boot_info_table: bool = False          # isolinux, GRUB cdboot, Limine: bytes 8..63
    grub2_boot_info: bool = False          # GRUB eltorito image: LBA*4+5 at 2548
    path: str | None = None                # also visible under this name in the tree
    lba: int = 0

    @property
    def size(self):
        return self.content.size


class IsoWriter:
    def __init__(self, files, volume_id, epoch_dt, system_id="", application_id="BOOTFORGE"):
        self.root = _Dir("", None)
        self.volume_id = volume_id
        self.dt = epoch_dt
        self.system_id = system_id
        self.application_id = application_id
        self.boot = []
        self.catalog_lba = 0
        for path, content in sorted(files.items()):
            if content.size > 0xFFFFFFFF:
                # One extent holds 4 GiB - 1 bytes; bootforge writes no multi-extent files.
                raise RecipeError(f"{path}: {content.size} bytes; an ISO 9660 file holds at most 4 GiB - 1 bytes "
                                  "(multi-extent files are not written)")
            self._add(path, _File(path.rsplit("/", 1)[-1], content))

    def _add(self, path, node):
        parts = [p for p in path.split("/") if p]
        d = self.root
        for part in parts[:-1]:
            ident = iso_identifier(part, True)
            child = d.children.get(ident)
            if child is None:
                child = d.children[ident] = _Dir(part, d)
            elif not isinstance(child, _Dir) or child.name != part:
                raise RecipeError(f"two files map to one ISO 9660 name {ident.decode()}: {path!r} and "
                                  f"{child.name!r}")
            d = child
        ident = iso_identifier(parts[-1], False)
        if ident in d.children:
            raise RecipeError(f"two files map to one ISO 9660 name {ident.decode()}: {path!r} and "
                              f"{d.children[ident].name!r} (in {d.name or '/'})")
        d.children[ident] = node
        return node

    def add_boot(self, image):
        if image.path is not None:
            self._add(image.path, _File(image.path.rsplit("/", 1)[-1], image))
        self.boot.append(image)

    # ------------------------------------------------------------ records
    def _record(self, ident, lba, size, is_dir, su=b""):
        pad = 1 if len(ident) % 2 == 0 else 0
        length = fmt.DIRECTORY_RECORD_HEAD_SIZE + len(ident) + pad + len(su)
        if length > 255:
            raise RecipeError(f"directory record for {ident!r} is {length} bytes (ISO 9660 allows 255)")
        head = fmt.DirectoryRecordHead.build(dict(
            length=length, ext_attr_length=0, extent=lba, data_length=size, date=_record_date(self.dt),
            flags=fmt.FLAG_DIRECTORY if is_dir else 0, file_unit_size=0, interleave_gap=0,
            volume_sequence_number=1, name_length=len(ident)))
        return head + ident + b"\0" * pad + su

    def _records(self, d):
        """The records of directory *d* (each record whole inside one 2048-byte sector)."""
        dot_su = _px(0o40755)
        if d is self.root:
            er = fmt.SuspER.build(dict(len_id=len(fmt.RRIP_ID), len_des=len(fmt.RRIP_DESCRIPTION),
                                       len_src=len(fmt.RRIP_SOURCE), ext_ver=1))
            dot_su = _susp(b"SP", b"\xbe\xef\x00") + dot_su + \
                _susp(b"ER", er + fmt.RRIP_ID + fmt.RRIP_DESCRIPTION + fmt.RRIP_SOURCE)
        parent = d.parent or d
        recs = [self._record(b"\0", d.lba, d.size, True, dot_su),
                self._record(b"\1", parent.lba, parent.size, True, _px(0o40755))]
        for ident in sorted(d.children):
            c = d.children[ident]
            name = c.name.encode("utf-8")
            su = _px(0o40755 if isinstance(c, _Dir) else 0o100644) + _susp(b"NM", b"\0" + name)
            if isinstance(c, _Dir):
                recs.append(self._record(ident, c.lba, c.size, True, su))
            else:
                recs.append(self._record(ident, c.lba, c.content.size, False, su))
        out = bytearray()
        for r in recs:
            if len(out) // BLOCK != (len(out) + len(r) - 1) // BLOCK:
                out += b"\0" * (-len(out) % BLOCK)
            out += r
        return bytes(out) + b"\0" * (-len(out) % BLOCK)

    def _dirs_bfs(self):
        out, queue = [], [self.root]
        while queue:
            d = queue.pop(0)
            out.append(d)
            queue += [d.children[k] for k in sorted(d.children) if isinstance(d.children[k], _Dir)]
        return out

    def _path_table(self, big_endian):
        rec = fmt.PathTableRecordM if big_endian else fmt.PathTableRecordL
        out = bytearray()
        for d in self.dirs:
            ident = b"\0" if d is self.root else iso_identifier(d.name, True)
            out += rec.build(dict(name_length=len(ident), ext_attr_length=0, extent=d.lba,
                                  parent=(d.parent or d).number, name=ident))
            if len(ident) % 2:
                out += b"\0"
        return bytes(out)

    def layout(self, first_lba=fmt.FIRST_DESCRIPTOR_LBA):
        """Assign every extent; returns the ISO's size in 2048-byte sectors."""
        self.dirs = self._dirs_bfs()
        for i, d in enumerate(self.dirs, 1):
            d.number = i
        descriptors = 2 + (1 if self.boot else 0)
        lba = first_lba + descriptors
        pt_size = len(self._path_table(False))
        pt_sectors = -(-pt_size // BLOCK)
        self.path_table_size = pt_size
        self.l_table, self.m_table = lba, lba + pt_sectors
        lba += 2 * pt_sectors
        for _ in range(2):                   # sizes depend on sizes of children only through records
            for d in self.dirs:
                d.size = len(self._records(d))
        for d in self.dirs:
            d.lba = lba
            lba += d.size // BLOCK
        if self.boot:
            self.catalog_lba = lba
            lba += 1
        files = []
        for b in self.boot:
            b.lba = lba
            lba += max(1, -(-b.content.size // BLOCK))
        self._walk_files(self.root, files)
        for f in files:
            if isinstance(f.content, BootImage):
                f.lba = f.content.lba
                continue
            f.lba = lba if f.content.size else 0
            lba += -(-f.content.size // BLOCK)
        self.files = files
        self.sectors = lba
        return lba

    def _walk_files(self, d, out):
        for ident in sorted(d.children):
            c = d.children[ident]
            if isinstance(c, _Dir):
                self._walk_files(c, out)
            else:
                out.append(c)

    def extent_of(self, path):
        """(lba, size) of a file by its path in the tree."""
        d = self.root
        parts = [p for p in path.split("/") if p]
        for part in parts[:-1]:
            d = d.children[iso_identifier(part, True)]
        f = d.children[iso_identifier(parts[-1], False)]
        return f.lba, f.content.size

    def _catalog(self):
        entries = []
        first = self.boot[0]
        vid = bytearray(et.ValidationEntry.build(dict(header_id=1, platform_id=first.platform, reserved=0,
                                                      id_string=b"BOOTFORGE".ljust(24, b"\0"), checksum=0,
                                                      key=b"\x55\xaa")))
        words = struct.unpack("<16H", vid)
        struct.pack_into("<H", vid, 28, (-sum(words)) & 0xFFFF)
        entries.append(bytes(vid))

        def section_entry(b):
            count = b.load_sectors if b.platform == et.PLATFORM_X86 else \
                (-(-b.content.size // 512) if b.content.size // 512 <= 0xFFFF else 0)
            return et.SectionEntry.build(dict(boot_indicator=et.BOOTABLE, media_type=et.MEDIA_NO_EMULATION,
                                              load_segment=0, system_type=0, reserved=0, sector_count=count,
                                              load_rba=b.lba, selection_criteria=bytes(20)))
        entries.append(section_entry(first))
        rest = self.boot[1:]
        for i, b in enumerate(rest):
            entries.append(et.SectionHeader.build(dict(
                header_indicator=et.HEADER_FINAL if i == len(rest) - 1 else et.HEADER_MORE,
                platform_id=b.platform, num_entries=1, id_string=bytes(28))))
            entries.append(section_entry(b))
        return b"".join(entries).ljust(BLOCK, b"\0")

    def _descriptor(self, vtype):
        root_rec = self._record(b"\0", self.root.lba, self.root.size, True)
        pad = lambda s, n: s.encode().ljust(n, b" ")  # noqa: E731
        return fmt.VolumeDescriptor.build(dict(
            type=vtype, standard_id=fmt.STANDARD_ID, version=1, flags=0, system_id=pad(self.system_id, 32),
            volume_id=pad(self.volume_id, 32), unused2=bytes(8), volume_space_size=self.sectors,
            escape_sequences=bytes(32), volume_set_size=1, volume_sequence_number=1, logical_block_size=BLOCK,
            path_table_size=self.path_table_size, l_path_table=self.l_table, opt_l_path_table=0,
            m_path_table=self.m_table, opt_m_path_table=0, root_directory_record=root_rec,
            volume_set_id=pad("", 128), publisher_id=pad("", 128), preparer_id=pad("", 128),
            application_id=pad(self.application_id, 128), copyright_file_id=pad("", 37),
            abstract_file_id=pad("", 37), bibliographic_file_id=pad("", 37),
            creation_date=_volume_date(self.dt), modification_date=_volume_date(self.dt),
            expiration_date=NO_DATE, effective_date=NO_DATE, file_structure_version=1, unused4=0,
            application_use=bytes(512), reserved=bytes(653)))

    def _patched(self, b):
        data = bytearray(b.content.data)
        if b.boot_info_table:
            body = bytes(data[et.BOOT_INFO_CHECKSUM_START:])
            body += b"\0" * (-len(body) % 4)
            checksum = sum(struct.unpack(f"<{len(body) // 4}I", body)) & 0xFFFFFFFF
            data[et.BOOT_INFO_TABLE_OFFSET:et.BOOT_INFO_TABLE_OFFSET + 56] = et.BootInfoTable.build(dict(
                pvd_lba=fmt.FIRST_DESCRIPTOR_LBA, file_lba=b.lba, file_length=len(data), checksum=checksum,
                reserved=bytes(40)))
        if b.grub2_boot_info:
            struct.pack_into("<Q", data, et.GRUB2_BOOT_INFO_OFFSET, b.lba * 4 + 5)
        return bytes(data)

    def write(self, out, file_size=None):
        """Write sectors 16 .. end into *out* (pre-sized; the system area is the caller's).

        With *file_size*, return the sha256 (hex) of the whole file, *file_size* bytes: what the
        caller wrote before (system area, a GPT's tail) is read back, the rest is hashed as it
        is written, front to back (FileContent.copy_to's OutputHash)."""
        fd = out.fileno()
        hasher = OutputHash(fd) if file_size is not None else None

        def pwrite(data, offset):
            os.pwrite(fd, data, offset)
            if hasher is not None:
                hasher.feed(offset, data)

        def copy(content, offset):
            if isinstance(content, FileContent):
                content.copy_to(out, offset, hasher)
            else:                               # an ESP's FAT writer: its writes are in its own order
                content.copy_to(out, offset)
                if hasher is not None:
                    hasher.read_back(offset + content.size)

        lba = fmt.FIRST_DESCRIPTOR_LBA
        pwrite(self._descriptor(fmt.VD_PRIMARY), lba * BLOCK)
        lba += 1
        if self.boot:
            brvd = et.BootRecordVolumeDescriptor.build(dict(version=1,
                                                           boot_system_id=et.ELTORITO_SYSTEM_ID.ljust(32, b"\0"),
                                                           boot_id=bytes(32), catalog_lba=self.catalog_lba))
            pwrite(brvd.ljust(BLOCK, b"\0"), lba * BLOCK)
            lba += 1
        term = fmt.VolumeDescriptorHeader.build(dict(type=fmt.VD_TERMINATOR, standard_id=fmt.STANDARD_ID,
                                                     version=1))
        pwrite(term.ljust(BLOCK, b"\0"), lba * BLOCK)
        pwrite(self._path_table(False), self.l_table * BLOCK)
        pwrite(self._path_table(True), self.m_table * BLOCK)
        for d in self.dirs:
            pwrite(self._records(d), d.lba * BLOCK)
        if self.boot:
            pwrite(self._catalog(), self.catalog_lba * BLOCK)
        for b in self.boot:
            if getattr(b.content, "data", None) is not None:
                pwrite(self._patched(b), b.lba * BLOCK)
            else:
                copy(b.content, b.lba * BLOCK)
        for f in self.files:
            if not isinstance(f.content, BootImage) and f.content.size:
                copy(f.content, f.lba * BLOCK)
        if hasher is not None:
            return hasher.hexdigest(file_size)
        return None

    def boot_bytes(self, b):
        """The bytes of boot image *b* as written (patched)."""
        return self._patched(b)


# ---------------------------------------------------------------- reader

@dataclass
class IsoFile:
    path: str
    size: int
    is_dir: bool
    lba: int


def _parse_susp(area, read, depth=0):
    """{signature: [body, ...]} of a system use area, following CE continuations (bounded)."""
    out = {}
    i = 0
    while i + 4 <= len(area):
        sig, length = area[i:i + 2], area[i + 2]
        if length < 4 or i + length > len(area):
            break
        body = area[i + 4:i + length]
        if sig == b"CE" and depth < 8 and len(body) >= 24:
            ce = fmt.SuspCE.parse(body)
            if ce.length <= 65536:
                more = read(ce.block * BLOCK + ce.offset, ce.length)
                for k, v in _parse_susp(more, read, depth + 1).items():
                    out.setdefault(k, []).extend(v)
        elif sig == b"ST":
            break
        else:
            out.setdefault(sig, []).append(body)
        i += length
    return out


class IsoVolume:
    """An ISO 9660 volume read through *read(offset, length)*: descriptors, El Torito, files."""

    def __init__(self, read, size, where="ISO 9660"):
        self.read = read
        self.size = size
        self.where = where
        self.descriptors = []
        self.pvd = None
        self.joliet = None
        self.boot_record = None
        lba = fmt.FIRST_DESCRIPTOR_LBA
        for _ in range(fmt.MAX_DESCRIPTORS):
            raw = read(lba * BLOCK, BLOCK)
            if len(raw) < BLOCK:
                raise FormatError(f"{where}: volume descriptor at sector {lba} is past the end",
                                  offset=lba * BLOCK)
            head = fmt.VolumeDescriptorHeader.parse(raw)
            if head.standard_id != fmt.STANDARD_ID:
                raise FormatError(f"{where}: sector {lba} is not a volume descriptor (no CD001; the set "
                                  f"has no terminator)", offset=lba * BLOCK + 1)
            self.descriptors.append((lba, head.type, raw))
            if head.type == fmt.VD_PRIMARY and self.pvd is None:
                self.pvd = fmt.VolumeDescriptor.parse(raw)
            elif head.type == fmt.VD_SUPPLEMENTARY and self.joliet is None:
                svd = fmt.VolumeDescriptor.parse(raw)
                if svd.escape_sequences[:3] in fmt.JOLIET_ESCAPES:
                    self.joliet = svd
            elif head.type == fmt.VD_BOOT_RECORD and self.boot_record is None:
                br = et.BootRecordVolumeDescriptor.parse(raw)
                if br.boot_system_id.rstrip(b"\0") == et.ELTORITO_SYSTEM_ID:
                    self.boot_record = br
            if head.type == fmt.VD_TERMINATOR:
                break
            lba += 1
        else:
            raise LimitError(f"{where}: more than {fmt.MAX_DESCRIPTORS} volume descriptors", offset=lba * BLOCK)
        if self.pvd is None:
            raise FormatError(f"{where}: no primary volume descriptor", offset=16 * BLOCK)
        root = self._parse_record(self.pvd.root_directory_record, 0)
        self.root_lba, self.root_size = root[1], root[2]
        first = read(self.root_lba * BLOCK, min(self.root_size, BLOCK))
        su = self._system_use(first)
        self.rock_ridge = bool(su) and su[:2] == b"SP" and su[4:6] == b"\xbe\xef"
        self.names = "Rock Ridge" if self.rock_ridge else ("Joliet" if self.joliet is not None else "ISO 9660")
        if not self.rock_ridge and self.joliet is not None:
            jr = self._parse_record(self.joliet.root_directory_record, 0)
            self.root_lba, self.root_size = jr[1], jr[2]

    @staticmethod
    def _parse_record(raw, pos):
        h = fmt.DirectoryRecordHead.parse(raw[pos:pos + 33])
        ident = raw[pos + 33:pos + 33 + h.name_length]
        return h, h.extent, h.data_length, ident

    @staticmethod
    def _system_use(raw):
        if not raw:
            return b""
        length, nlen = raw[0], raw[32]
        start = 33 + nlen + (1 if nlen % 2 == 0 else 0)
        return raw[start:length]

    def listdir(self, lba, size):
        if size > 16 << 20:
            raise LimitError(f"{self.where}: directory at sector {lba} claims {size} bytes", offset=lba * BLOCK)
        if lba * BLOCK + size > self.size:
            raise FormatError(f"{self.where}: directory at sector {lba} runs past the end of the image",
                              offset=lba * BLOCK)
        raw = self.read(lba * BLOCK, size)
        out, pos = [], 0
        while pos < len(raw):
            length = raw[pos]
            if length == 0:
                pos = (pos // BLOCK + 1) * BLOCK
                continue
            if length < 34 or pos + length > len(raw):
                raise FormatError(f"{self.where}: bad directory record length {length}", offset=lba * BLOCK + pos)
            h, extent, dsize, ident = self._parse_record(raw, pos)
            rec = raw[pos:pos + length]
            pos += length
            if ident in (b"\0", b"\1"):
                continue
            name = None
            if self.rock_ridge:
                nm = _parse_susp(self._system_use(rec), self.read).get(b"NM")
                if nm:
                    name = b"".join(body[1:] for body in nm).decode("utf-8", "replace")
            if name is None:
                if self.names == "Joliet":
                    name = ident.decode("utf-16-be", "replace")
                else:
                    name = ident.decode("latin-1")
                name = name.split(";")[0]
                if name.endswith(".") and not h.flags & fmt.FLAG_DIRECTORY:
                    name = name[:-1]
            out.append(IsoFile(name, dsize, bool(h.flags & fmt.FLAG_DIRECTORY), extent))
        return out

    def walk(self, limit=20000):
        out, stack = [], [("", self.root_lba, self.root_size, 0)]
        while stack:
            prefix, lba, size, depth = stack.pop()
            for f in self.listdir(lba, size):
                path = f"{prefix}/{f.path}"
                out.append((path, f))
                if len(out) > limit:
                    raise LimitError(f"{self.where}: more than {limit} files")
                if f.is_dir and depth < 32:
                    stack.append((path, f.lba, f.size, depth + 1))
        # By path alone: a directory may name two records alike (the reader lists what is there).
        return sorted(out, key=lambda entry: entry[0])

    def lookup(self, path):
        lba, size, found = self.root_lba, self.root_size, None
        for part in [p for p in path.split("/") if p]:
            entries = self.listdir(lba, size)
            hits = [f for f in entries if f.path == part] or [f for f in entries if f.path.lower() == part.lower()]
            if not hits:
                return None
            found = hits[0]
            lba, size = found.lba, found.size
        return found

    def read_file(self, f, limit):
        if f.size > limit:
            raise LimitError(f"{self.where}: {f.path} is {f.size} bytes (limit {limit})")
        if f.lba * BLOCK + f.size > self.size:
            raise FormatError(f"{self.where}: {f.path} runs past the end of the image", offset=f.lba * BLOCK)
        return self.read(f.lba * BLOCK, f.size)

    def offset_of(self, f):
        return f.lba * BLOCK

    def catalog(self):
        """The El Torito catalog: [{section, platform, bootable, media, load_segment, sector_count,
        load_rba}] and the validation entry's facts; FormatError when it cannot be read."""
        if self.boot_record is None:
            return None
        lba = self.boot_record.catalog_lba
        if (lba + 1) * BLOCK > self.size:
            raise FormatError(f"{self.where}: El Torito catalog at sector {lba} is past the end of the image "
                              f"({self.size} bytes)", offset=17 * BLOCK + 0x47)
        raw = self.read(lba * BLOCK, BLOCK)
        v = et.ValidationEntry.parse(raw[:32])
        ok = v.header_id == 1 and v.key == b"\x55\xaa" and sum(struct.unpack("<16H", raw[:32])) & 0xFFFF == 0
        doc = {"lba": lba, "validation": {"platform_id": v.platform_id,
                                          "platform": et.PLATFORMS.get(v.platform_id, "unknown"),
                                          "id_string": v.id_string.rstrip(b"\0").decode("latin-1"),
                                          "valid": ok}, "entries": []}

        def entry(raw32, platform, section):
            e = et.SectionEntry.parse(raw32)
            return {"section": section, "platform_id": platform, "platform": et.PLATFORMS.get(platform, "unknown"),
                    "bootable": e.boot_indicator == et.BOOTABLE, "media_type": e.media_type,
                    "media": et.MEDIA_TYPES.get(e.media_type, "unknown"), "load_segment": e.load_segment,
                    "system_type": e.system_type, "sector_count": e.sector_count, "load_rba": e.load_rba}
        doc["entries"].append(entry(raw[32:64], v.platform_id, "initial"))
        pos = 64
        section = 0
        while pos + 32 <= BLOCK and raw[pos] in (et.HEADER_MORE, et.HEADER_FINAL):
            h = et.SectionHeader.parse(raw[pos:pos + 32])
            pos += 32
            section += 1
            for _ in range(h.num_entries):
                if pos + 32 > BLOCK:
                    break
                doc["entries"].append(entry(raw[pos:pos + 32], h.platform_id, f"section {section}"))
                pos += 32
            if h.header_indicator == et.HEADER_FINAL:
                break
        return doc
