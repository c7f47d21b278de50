"""A FAT12/16/32 writer for ESPs (whole tree known up front, files contiguous) and a reader.

Why our own writer rather than mtools: the image is laid out in one pass
with every date, the serial number and the allocation order fixed by the
content (mtools stamps the clock and a random serial unless told not to,
and needs one process per file); files are copied into place in chunks,
so a multi-GiB module costs no memory. The reader serves inspect and load
for any FAT volume (ESP images made by mformat too).

Names: every file keeps its name as a VFAT long name; the 8.3 alias is the
upper-cased name when that is a valid 8.3 name, else BASE~N.EXT. FAT
compares names without case, so two names equal but for case are refused.
"""

import os
import struct
from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError, RecipeError
from bootforge.formats import fat as fmt

SECTOR = 512
SHORT_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~")
MAX_DIRECTORY_ENTRIES = 65536       # a FAT directory holds at most 65536 entries
MAX_FAT_BYTES = 512 << 20           # the reader refuses FATs larger than this
BOOT_HEADS = 64                     # the boot sector's CHS geometry (what mformat takes for a hard disk)
BOOT_SECTORS_PER_TRACK = 32
PARTITION_ENTRY = 446               # the first partition entry's offset in a boot sector


def _chs(lba):
    """3 CHS bytes (head, sector | cylinder high bits, cylinder) of *lba* in the boot geometry."""
    cyl, rest = divmod(lba, BOOT_HEADS * BOOT_SECTORS_PER_TRACK)
    head, sector = divmod(rest, BOOT_SECTORS_PER_TRACK)
    cyl = min(cyl, 1023)
    return bytes([head, (sector + 1) | (cyl >> 8) << 6, cyl & 0xFF])


def _dos_datetime(dt):
    date = ((dt.year - 1980) << 9) | (dt.month << 5) | dt.day
    time = (dt.hour << 11) | (dt.minute << 5) | (dt.second // 2)
    return date, time


def _short_valid(name):
    """The 11-byte 8.3 form of *name* if it is a valid upper-case 8.3 name, else None."""
    raw = name.encode("ascii", "replace")
    if raw.count(b".") > 1 or raw.startswith(b"."):
        return None
    base, _, ext = raw.partition(b".")
    if not (1 <= len(base) <= 8 and len(ext) <= 3) or not set(base + ext) <= SHORT_CHARS:
        return None
    return base.ljust(8) + ext.ljust(3)


def _alias(name, taken):
    """BASE~N.EXT: the 8.3 alias Windows-style tools derive for a long name."""
    raw = name.upper().encode("ascii", "replace")
    base, dot, ext = raw.rpartition(b".")
    if not dot:
        base, ext = raw, b""
    clean = lambda s: bytes(c for c in s if c in SHORT_CHARS)  # noqa: E731
    base, ext = clean(base) or b"_", clean(ext)[:3]
    for n in range(1, 1000000):
        tail = b"~%d" % n
        short = (base[:8 - len(tail)] + tail).ljust(8) + ext.ljust(3)
        if short not in taken:
            return short
    raise RecipeError(f"no free 8.3 alias for {name!r}")


def lfn_checksum(short):
    s = 0
    for c in short:
        s = (((s & 1) << 7) + (s >> 1) + c) & 0xFF
    return s


def _lfn_entries(name, short):
    units = name.encode("utf-16-le")
    chars = [units[i:i + 2] for i in range(0, len(units), 2)]
    if len(chars) > 255:
        raise RecipeError(f"file name {name!r} is longer than FAT's 255 characters")
    chunks = [chars[i:i + fmt.LFN_CHARS] for i in range(0, len(chars), fmt.LFN_CHARS)]
    if len(chars) % fmt.LFN_CHARS:
        chunks[-1] = chunks[-1] + [b"\0\0"] + [b"\xff\xff"] * (fmt.LFN_CHARS - len(chunks[-1]) - 1)
    checksum = lfn_checksum(short)
    out = []
    for i, chunk in enumerate(chunks, 1):
        b = b"".join(chunk)
        seq = i | (fmt.LFN_LAST if i == len(chunks) else 0)
        out.append(fmt.LfnEntry.build(dict(sequence=seq, name1=b[:10], attributes=fmt.ATTR_LFN, type=0,
                                           checksum=checksum, name2=b[10:22], cluster=0, name3=b[22:26])))
    return list(reversed(out))


@dataclass
class _Node:
    name: str
    content: object = None                  # FileContent for files
    children: dict = field(default_factory=dict)
    cluster: int = 0
    clusters: int = 0
    entries: bytes = b""                    # a directory's packed entries (set in layout)

    @property
    def is_dir(self):
        return self.content is None


@dataclass
class FatLayout:
    fat_type: int
    sectors: int
    sectors_per_cluster: int
    reserved: int
    fat_sectors: int
    root_dir_sectors: int
    clusters: int

    @property
    def cluster_bytes(self):
        return self.sectors_per_cluster * SECTOR

    @property
    def data_start(self):
        return (self.reserved + 2 * self.fat_sectors + self.root_dir_sectors) * SECTOR


def _fat_sectors(fat_type, clusters):
    return -(-((clusters + 2) * fat_type // 8 + (1 if fat_type == 12 else 0)) // SECTOR)


def _geometry(fat_type, spc, sectors):
    """The layout of a *sectors*-sector volume of this type and cluster size (None if impossible)."""
    reserved = 32 if fat_type == 32 else 1
    root = 0 if fat_type == 32 else 32          # 512 root entries on FAT12/16
    fat = 1
    for _ in range(8):
        clusters = (sectors - reserved - root - 2 * fat) // spc
        if clusters <= 0:
            return None
        need = _fat_sectors(fat_type, clusters)
        if need == fat:
            break
        fat = need
    clusters = (sectors - reserved - root - 2 * fat) // spc
    return FatLayout(fat_type, sectors, spc, reserved, fat, root, clusters)


def _type_fits(fat_type, clusters):
    if fat_type == 12:
        return 1 <= clusters <= fmt.FAT12_MAX_CLUSTERS
    if fat_type == 16:
        return fmt.FAT12_MAX_CLUSTERS < clusters <= fmt.FAT16_MAX_CLUSTERS
    return clusters > fmt.FAT16_MAX_CLUSTERS


CANDIDATES = [(12, 1), (12, 2), (12, 4), (16, 1), (16, 2), (16, 4), (16, 8), (16, 16),
              (32, 8), (32, 1), (32, 16), (32, 32), (32, 64)]


class FatWriter:
    """Lay out a tree of files as a FAT volume and write it into an open file at an offset."""

    def __init__(self, files, epoch_dt, serial, label=b"NO NAME    ", self_partition=False):
        """*files*: {"/EFI/BOOT/BOOTX64.EFI": FileContent}; names keep their case.

        *self_partition*: write the partition entry mformat puts in the boot sector of a volume
        that is not inside a partition (see _self_partition_entry); off for a GPT partition.
        """
        self.self_partition = self_partition
        self.root = _Node("")
        self.date, self.time = _dos_datetime(epoch_dt)
        self.serial = serial & 0xFFFFFFFF
        self.label = label
        for path, content in sorted(files.items()):
            if content.size > 0xFFFFFFFF:
                raise RecipeError(f"{path}: {content.size} bytes; a FAT file holds at most 4 GiB - 1 bytes")
            parts = [p for p in path.split("/") if p]
            node = self.root
            for i, part in enumerate(parts):
                key = part.upper()
                last = i == len(parts) - 1
                child = node.children.get(key)
                if child is None:
                    child = node.children[key] = _Node(part, content if last else None)
                elif child.name != part or last or not child.is_dir:
                    raise RecipeError(f"two files map to one FAT name: {path!r} and an entry named "
                                      f"{child.name!r} (FAT names ignore case)")
                node = child

    def _dir_entries(self, node, is_root):
        """Packed entries of *node* (cluster numbers filled in by the second call)."""
        out = []
        taken = set()
        if not is_root:
            for dot in (b".          ", b"..         "):
                out.append(self._entry(dot, fmt.ATTR_DIRECTORY, 0, 0))
        for key in sorted(node.children):
            child = node.children[key]
            short = _short_valid(child.name.upper())
            long_name = short is None or child.name != child.name.upper()
            if short is None or short in taken:
                short = _alias(child.name, taken)
                long_name = True
            taken.add(short)
            if long_name:
                out.extend(_lfn_entries(child.name, short))
            attr = fmt.ATTR_DIRECTORY if child.is_dir else fmt.ATTR_ARCHIVE
            out.append(self._entry(short, attr, child.cluster, 0 if child.is_dir else child.content.size))
        if len(out) > MAX_DIRECTORY_ENTRIES:
            raise RecipeError(f"directory {node.name or '/'} needs {len(out)} FAT entries (limit 65536)")
        return out

    def _entry(self, short, attr, cluster, size):
        return fmt.DirEntry.build(dict(name=short, attributes=attr, nt_case=0, create_time_tenths=0,
                                       create_time=self.time, create_date=self.date, access_date=self.date,
                                       cluster_high=cluster >> 16, write_time=self.time, write_date=self.date,
                                       cluster_low=cluster & 0xFFFF, size=size))

    def _walk(self):
        """Directories and files in allocation order (depth first, names sorted)."""
        order = []

        def visit(node):
            order.append(node)
            for key in sorted(node.children):
                child = node.children[key]
                if child.is_dir:
                    visit(child)
            for key in sorted(node.children):
                if not node.children[key].is_dir:
                    order.append(node.children[key])
        visit(self.root)
        return order

    def layout(self, sectors=None):
        """Choose the FAT type and cluster size; *sectors* fixes the volume size, else the smallest."""
        order = self._walk()
        dir_slots = {id(n): len(self._dir_entries(n, n is self.root)) for n in order if n.is_dir}

        def need(layout):
            cb = layout.cluster_bytes
            total = 0
            for n in order:
                if n.is_dir:
                    if n is self.root and layout.fat_type != 32:
                        if dir_slots[id(n)] > 512:
                            return None
                        continue
                    total += max(1, -(-dir_slots[id(n)] * 32 // cb))
                else:
                    total += -(-n.content.size // cb)
            return total

        chosen = None
        if sectors is not None:
            for fat_type, spc in CANDIDATES:
                g = _geometry(fat_type, spc, sectors)
                if g and _type_fits(fat_type, g.clusters) and need(g) is not None and need(g) <= g.clusters:
                    chosen = g
                    break
            if chosen is None:
                raise RecipeError(f"the files need more than the {sectors * SECTOR}-byte FAT partition")
        else:
            for fat_type, spc in CANDIDATES:
                floor = {12: 1, 16: fmt.FAT12_MAX_CLUSTERS + 1, 32: fmt.FAT16_MAX_CLUSTERS + 1}[fat_type]
                probe = _geometry(fat_type, spc, 1 << 22)
                n = need(probe)
                if n is None:
                    continue
                clusters = max(n + 1, floor)
                if not _type_fits(fat_type, clusters):
                    continue
                reserved = 32 if fat_type == 32 else 1
                root = 0 if fat_type == 32 else 32
                total = reserved + root + 2 * _fat_sectors(fat_type, clusters) + clusters * spc
                total = -(-total // 8) * 8              # whole 4 KiB
                g = _geometry(fat_type, spc, total)
                if g and _type_fits(fat_type, g.clusters) and need(g) <= g.clusters:
                    chosen = g
                    break
        self.geometry = chosen
        # Allocate clusters contiguously in walk order.
        next_cluster = 2
        cb = chosen.cluster_bytes
        for n in order:
            if n.is_dir:
                if n is self.root and chosen.fat_type != 32:
                    continue
                n.clusters = max(1, -(-dir_slots[id(n)] * 32 // cb))
            else:
                n.clusters = -(-n.content.size // cb)
            n.cluster = next_cluster if n.clusters else 0
            next_cluster += n.clusters
        self.order = order
        return chosen

    @property
    def size(self):
        return self.geometry.sectors * SECTOR

    def _boot_sector(self):
        g = self.geometry
        common = dict(jump=b"\xeb\x58\x90" if g.fat_type == 32 else b"\xeb\x3c\x90", oem_name=b"BOOTFRGE",
                      bytes_per_sector=SECTOR, sectors_per_cluster=g.sectors_per_cluster,
                      reserved_sectors=g.reserved, num_fats=2, root_entries=0 if g.fat_type == 32 else 512,
                      total_sectors_16=g.sectors if g.sectors < 0x10000 else 0, media=0xF8,
                      fat_size_16=0 if g.fat_type == 32 else g.fat_sectors,
                      sectors_per_track=BOOT_SECTORS_PER_TRACK, num_heads=BOOT_HEADS, hidden_sectors=0,
                      total_sectors_32=g.sectors if g.sectors >= 0x10000 else 0)
        out = bytearray(SECTOR)
        out[0:fmt.BPB_COMMON_SIZE] = fmt.BpbCommon.build(common)
        name = {12: b"FAT12   ", 16: b"FAT16   ", 32: b"FAT32   "}[g.fat_type]
        if g.fat_type == 32:
            ext = fmt.Fat32Extension.build(dict(fat_size_32=g.fat_sectors, ext_flags=0, fs_version=0,
                                                root_cluster=self.root.cluster, fsinfo_sector=1,
                                                backup_boot_sector=6, reserved=bytes(12), drive_number=0x80,
                                                reserved1=0, boot_signature=0x29, volume_serial=self.serial,
                                                volume_label=self.label, fs_type=name))
        else:
            ext = fmt.Fat16Extension.build(dict(drive_number=0x80, reserved1=0, boot_signature=0x29,
                                                volume_serial=self.serial, volume_label=self.label,
                                                fs_type=name))
        out[fmt.BPB_COMMON_SIZE:fmt.BPB_COMMON_SIZE + len(ext)] = ext
        # Not bootable by itself: a BIOS that tries gets "int 18h" (boot failure) from two bytes.
        code = fmt.BPB_COMMON_SIZE + len(ext)
        out[code:code + 2] = b"\xcd\x18"
        if self.self_partition:
            out[PARTITION_ENTRY:PARTITION_ENTRY + 16] = self._self_partition_entry()
        out[510:512] = b"\x55\xaa"
        return bytes(out)

    def _self_partition_entry(self):
        """The first partition entry mformat (mtools 4.0.43, mformat.c, no partition given) writes:
        active, from sector 0 to the end of the volume rounded up to whole cylinders of the
        boot sector's geometry, type by FAT size (checked with `mformat -C` on this machine:
        -f 2880 gives 80 000100 01 01244f 0 5760; -T 1232 -h 64 -s 32 gives type 01, 2048
        sectors; -T 40000 type 04; -T 65536 type 06; -F type 0c). OVMF reads this sector as an
        MBR on an El Torito ESP, and its allocations before BDS differ with and without the
        entry (observed: grub-mkrescue's efi.img vs ours with only these 16 bytes swapped)."""
        g = self.geometry
        cylinder = BOOT_HEADS * BOOT_SECTORS_PER_TRACK
        sectors = -(-g.sectors // cylinder) * cylinder
        ptype = {12: 0x01, 16: 0x04 if sectors < 0x10000 else 0x06, 32: 0x0C}[g.fat_type]
        return bytes([0x80]) + _chs(0) + bytes([ptype]) + _chs(sectors - 1) + struct.pack("<II", 0, sectors)

    def _fat(self):
        g = self.geometry
        eoc = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}[g.fat_type]
        entries = [0] * (g.clusters + 2)
        entries[0] = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[g.fat_type]
        entries[1] = eoc
        for n in self.order:
            for i in range(n.clusters):
                c = n.cluster + i
                entries[c] = eoc if i == n.clusters - 1 else c + 1
        if g.fat_type == 12:
            out = bytearray()
            for i in range(0, len(entries), 2):
                a = entries[i]
                b = entries[i + 1] if i + 1 < len(entries) else 0
                v = a | (b << 12)
                out += v.to_bytes(3, "little")
        elif g.fat_type == 16:
            out = bytearray(struct.pack(f"<{len(entries)}H", *entries))
        else:
            out = bytearray(struct.pack(f"<{len(entries)}I", *entries))
        return bytes(out).ljust(g.fat_sectors * SECTOR, b"\0")

    def write(self, out, base):
        """Write the volume into the open file *out* at byte *base* (the file is pre-sized with zeros)."""
        g = self.geometry
        fd = out.fileno()
        boot = self._boot_sector()
        os.pwrite(fd, boot, base)
        if g.fat_type == 32:
            used = sum(n.clusters for n in self.order)
            info = fmt.FSInfo.build(dict(lead_signature=fmt.FSINFO_SIGNATURES[0], reserved1=bytes(480),
                                         struct_signature=fmt.FSINFO_SIGNATURES[1],
                                         free_count=g.clusters - used, next_free=2 + used,
                                         reserved2=bytes(12), trail_signature=fmt.FSINFO_SIGNATURES[2]))
            os.pwrite(fd, info, base + SECTOR)
            os.pwrite(fd, boot, base + 6 * SECTOR)
            os.pwrite(fd, info, base + 7 * SECTOR)
        fat = self._fat()
        for i in range(2):
            os.pwrite(fd, fat, base + (g.reserved + i * g.fat_sectors) * SECTOR)
        root_area = base + (g.reserved + 2 * g.fat_sectors) * SECTOR
        for n in self.order:
            if n.is_dir:
                entries = b"".join(self._dir_entries(n, n is self.root))
                if n is not self.root:
                    parent = self._parent_cluster(n)
                    entries = (self._entry(b".          ", fmt.ATTR_DIRECTORY, n.cluster, 0)
                               + self._entry(b"..         ", fmt.ATTR_DIRECTORY, parent, 0) + entries[64:])
                if n is self.root and g.fat_type != 32:
                    os.pwrite(fd, entries, root_area)
                else:
                    os.pwrite(fd, entries, base + g.data_start + (n.cluster - 2) * g.cluster_bytes)
            elif n.clusters:
                n.content.copy_to(out, base + g.data_start + (n.cluster - 2) * g.cluster_bytes)

    def _parent_cluster(self, node):
        def find(cur):
            for child in cur.children.values():
                if child is node:
                    return cur
                if child.is_dir:
                    hit = find(child)
                    if hit is not None:
                        return hit
            return None
        parent = find(self.root)
        # ".." of a directory in the root holds 0 (FAT specification), also on FAT32.
        return 0 if parent is self.root else parent.cluster


# ---------------------------------------------------------------- reader

@dataclass
class FatFile:
    path: str
    size: int
    is_dir: bool
    cluster: int


class FatVolume:
    """A FAT file system read through *read(offset, length)* (offsets relative to the volume)."""

    def __init__(self, read, size, where="FAT volume"):
        self.read = read
        self.where = where
        boot = read(0, SECTOR)
        if len(boot) < SECTOR:
            raise FormatError(f"{where}: truncated boot sector", offset=0)
        b = fmt.BpbCommon.parse(boot)
        if b.bytes_per_sector not in (512, 1024, 2048, 4096) or b.sectors_per_cluster not in \
                (1, 2, 4, 8, 16, 32, 64, 128) or b.num_fats == 0 or b.reserved_sectors == 0:
            raise FormatError(f"{where}: not a FAT boot sector (bytes per sector {b.bytes_per_sector}, "
                              f"sectors per cluster {b.sectors_per_cluster})", offset=11)
        self.bps = b.bytes_per_sector
        self.spc = b.sectors_per_cluster
        total = b.total_sectors_16 or b.total_sectors_32
        if b.fat_size_16:
            fat_sectors = b.fat_size_16
            ext = fmt.Fat16Extension.parse(boot[36:])
            root_cluster = 0
        else:
            ext = fmt.Fat32Extension.parse(boot[36:])
            fat_sectors = ext.fat_size_32
            root_cluster = ext.root_cluster
        root_sectors = -(-b.root_entries * 32 // self.bps)
        self.fat_start = b.reserved_sectors * self.bps
        self.root_start = self.fat_start + b.num_fats * fat_sectors * self.bps
        self.root_size = root_sectors * self.bps
        self.data_start = self.root_start + self.root_size
        data_sectors = total - (self.data_start // self.bps)
        if data_sectors <= 0 or total * self.bps > size + self.bps * 64:
            raise FormatError(f"{where}: {total} sectors of {self.bps} bytes do not fit in {size} bytes",
                              offset=19)
        self.clusters = data_sectors // self.spc
        self.fat_type = 12 if self.clusters <= fmt.FAT12_MAX_CLUSTERS else \
            16 if self.clusters <= fmt.FAT16_MAX_CLUSTERS else 32
        if fat_sectors * self.bps > MAX_FAT_BYTES:
            raise LimitError(f"{where}: FAT of {fat_sectors * self.bps} bytes", offset=22)
        self.fat = read(self.fat_start, fat_sectors * self.bps)
        self.root_cluster = root_cluster if self.fat_type == 32 else 0
        self.info = {"type": fmt.FAT_TYPES[self.fat_type], "serial": f"{ext.volume_serial:08X}",
                     "label": ext.volume_label.decode("latin-1").rstrip(), "sectors": total,
                     "bytes_per_sector": self.bps, "cluster_size": self.bps * self.spc,
                     "clusters": self.clusters, "oem_name": b.oem_name.decode("latin-1").rstrip()}

    def _next(self, c):
        if self.fat_type == 12:
            off = c + c // 2
            v = int.from_bytes(self.fat[off:off + 2].ljust(2, b"\0"), "little")
            return (v >> 4) if c & 1 else (v & 0xFFF)
        if self.fat_type == 16:
            return int.from_bytes(self.fat[2 * c:2 * c + 2].ljust(2, b"\0"), "little")
        return int.from_bytes(self.fat[4 * c:4 * c + 4].ljust(4, b"\0"), "little") & 0x0FFFFFFF

    def chain(self, cluster, limit=None):
        out = []
        seen = set()
        end = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.fat_type]
        while 2 <= cluster < self.clusters + 2:
            if cluster in seen:
                raise FormatError(f"{self.where}: cluster chain loops at {cluster}")
            seen.add(cluster)
            out.append(cluster)
            if limit is not None and len(out) >= limit:
                break
            cluster = self._next(cluster)
            if cluster >= end:
                break
        return out

    def _cluster_offset(self, c):
        return self.data_start + (c - 2) * self.spc * self.bps

    def _dir_bytes(self, cluster):
        if cluster == 0:
            return self.read(self.root_start, self.root_size)
        cb = self.spc * self.bps
        return b"".join(self.read(self._cluster_offset(c), cb) for c in self.chain(cluster, 1 << 16))

    def listdir(self, cluster=None):
        raw = self._dir_bytes(self.root_cluster if cluster is None else cluster)
        out, lfn = [], {}
        for i in range(0, len(raw) - 31, 32):
            e = raw[i:i + 32]
            if e[0] == 0:
                break
            if e[0] == 0xE5:
                lfn = {}
                continue
            if e[11] == fmt.ATTR_LFN:
                le = fmt.LfnEntry.parse(e)
                part = le.name1 + le.name2 + le.name3
                lfn[le.sequence & 0x1F] = part
                continue
            d = fmt.DirEntry.parse(e)
            if d.attributes & fmt.ATTR_VOLUME_ID:
                lfn = {}
                continue
            short = d.name
            if lfn:
                units = b"".join(lfn[k] for k in sorted(lfn))
                name = units.decode("utf-16-le", "replace").split("\0")[0]
            else:
                base = short[:8].rstrip().decode("latin-1")
                ext = short[8:].rstrip().decode("latin-1")
                if d.nt_case & 0x08:
                    base = base.lower()
                if d.nt_case & 0x10:
                    ext = ext.lower()
                name = base + ("." + ext if ext else "")
            lfn = {}
            if name in (".", ".."):
                continue
            out.append(FatFile(name, d.size, bool(d.attributes & fmt.ATTR_DIRECTORY),
                               (d.cluster_high << 16) | d.cluster_low))
        return out

    def walk(self, limit=10000):
        """[(path, FatFile)] of every file and directory, depth first."""
        out, stack = [], [("", None)]
        while stack:
            prefix, cluster = stack.pop()
            for f in sorted(self.listdir(cluster), key=lambda f: f.path.lower()):
                path = f"{prefix}/{f.path}"
                out.append((path, f))
                if len(out) > limit:
                    raise LimitError(f"{self.where}: more than {limit} files")
                if f.is_dir and f.cluster:
                    stack.append((path, f.cluster))
        return sorted(out, key=lambda x: x[0].lower())

    def lookup(self, path):
        cluster, found = None, None
        for part in [p for p in path.split("/") if p]:
            hits = [f for f in self.listdir(cluster) if f.path.lower() == part.lower()]
            if not hits:
                return None
            found = hits[0]
            cluster = found.cluster
        return found

    def read_file(self, f, limit):
        if f.size > limit:
            raise LimitError(f"{self.where}: {f.path} is {f.size} bytes (limit {limit})")
        cb = self.spc * self.bps
        out = bytearray()
        for c in self.chain(f.cluster, -(-f.size // cb) if f.size else 1):
            out += self.read(self._cluster_offset(c), cb)
        return bytes(out[:f.size])
