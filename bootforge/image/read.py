"""Reading any bootable image (ours or not): partition tables, file systems, the loader and its entries.

Used by `bootforge inspect IMAGE` and `bootforge load IMAGE`. Files are read
with pread at offsets, never the whole image: a several-GiB image costs
what its metadata costs.
"""

import os
import struct
import zlib
from dataclasses import dataclass, field

from bootforge.bootloaders import BOOTLOADERS, ConfigEntry
from bootforge.errors import FormatError, LimitError, RecipeError
from bootforge.formats import eltorito as et
from bootforge.formats import gpt as gfmt
from bootforge.formats import mbr as mfmt
from bootforge.formats import iso9660 as ifmt
from bootforge.image.fat import FatVolume
from bootforge.image.iso import IsoVolume

MAX_CONFIG = 1 << 20
MAX_KERNEL = 256 << 20

class ImageFile:
    """An image on disk read by offset."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
            self.size = os.fstat(self.fd).st_size
        except OSError as exc:
            raise FormatError(exc.strerror or str(exc), path=path) from None

    def read(self, offset, length):
        if offset < 0 or length < 0:
            raise FormatError("negative offset or length", offset=offset)
        if offset >= self.size:     # as pread past the end, for offsets pread cannot take (2^63 and up)
            return b""
        # pread allocates its whole length first: a length from a field is cut to what the file holds.
        return os.pread(self.fd, min(length, self.size - offset), offset)

    def close(self):
        os.close(self.fd)

    def window(self, base, size):
        return lambda off, n: self.read(base + off, max(0, min(n, size - off)))


Entry = ConfigEntry          # an entry of the image's loader configuration


@dataclass
class ImageView:
    image: ImageFile
    mbr: object = None
    mbr_code: str | None = None
    gpt: dict | None = None
    iso: IsoVolume | None = None
    catalog: dict | None = None
    esp: FatVolume | None = None
    esp_where: str | None = None
    esp_offset: int | None = None     # the ESP's first byte in the image
    esp_partition: int | None = None  # its 0-based partition number (GPT or MBR); None: an El Torito image
    problems: list = field(default_factory=list)
    loader: str | None = None
    config_path: str | None = None
    config_fs: object = None
    config_text: str | None = None
    entries: list = field(default_factory=list)

    def file_system(self):
        """The file system holding the loader's configuration (and the kernels)."""
        return self.config_fs or self.iso or self.esp


def boot_code_identity(code):
    for marker, name in mfmt.MBR_BOOT_CODE_MARKERS:
        if marker in code:
            return name
    return None if not code.strip(b"\0") else "unknown"


def _entry_array_problem(h, image_size, lba_size):
    """What is wrong with where header *h* says its entry array is, and the offset in the header of
    the field that says so; None when the array is whole inside the image."""
    if h.entry_size < 128 or h.entry_size % 8 or h.num_entries > gfmt.GPT_MAX_ENTRIES:
        return (f"entry array of {h.num_entries} entries of {h.entry_size} bytes (bootforge reads entries of "
                f"128 bytes or a larger multiple of 8, at most {gfmt.GPT_MAX_ENTRIES} of them)"), 80
    if h.entries_lba * lba_size + h.num_entries * h.entry_size > image_size:
        return (f"entry array at LBA {h.entries_lba} ({h.num_entries} entries of {h.entry_size} bytes) runs "
                f"past the end of the image"), 72
    return None


def _gpt(img, lba_size=512):
    """Primary and backup GPT: header facts, entries, CRC problems."""
    problems = []
    raw = img.read(lba_size, lba_size)
    if raw[:8] != gfmt.GPT_SIGNATURE:
        return None, []
    if len(raw) < 92:       # the smallest header UEFI allows; the file ends inside it
        raise FormatError(f"GPT header cut short by the end of the file ({len(raw)} of 92 bytes)",
                          offset=lba_size + len(raw))
    h = gfmt.GptHeader.parse(raw)
    if not 92 <= h.header_size <= lba_size:
        raise FormatError(f"GPT header size {h.header_size} (must be 92..{lba_size})", offset=lba_size + 12)
    check = bytearray(raw[:h.header_size])
    struct.pack_into("<I", check, 16, 0)
    header_ok = zlib.crc32(check) == h.header_crc32
    if not header_ok:
        problems.append(f"GPT header CRC32 {h.header_crc32:#010x} does not match its contents "
                        f"({zlib.crc32(check):#010x})")
    bad_array = _entry_array_problem(h, img.size, lba_size)
    if bad_array:
        raise FormatError(f"GPT {bad_array[0]}", offset=lba_size + bad_array[1])
    array_bytes = h.num_entries * h.entry_size
    arr = img.read(h.entries_lba * lba_size, array_bytes)
    entries_ok = zlib.crc32(arr) == h.entries_crc32
    if not entries_ok:
        problems.append(f"GPT entry array CRC32 {h.entries_crc32:#010x} does not match its contents "
                        f"({zlib.crc32(arr):#010x})")
    parts = []
    for i in range(h.num_entries):
        e = gfmt.GptEntry.parse(arr[i * h.entry_size:i * h.entry_size + 128])
        if e.type_guid == bytes(16):
            continue
        t = gfmt.guid_text(e.type_guid)
        parts.append({"number": i + 1, "type_guid": t, "type": gfmt.GPT_PARTITION_TYPES.get(t, "unknown"),
                      "guid": gfmt.guid_text(e.unique_guid), "first_lba": e.first_lba, "last_lba": e.last_lba,
                      "attributes": e.attributes,
                      "name": e.name.decode("utf-16-le", "replace").split("\0")[0]})
        if e.last_lba < e.first_lba or (e.last_lba + 1) * lba_size > img.size:
            problems.append(f"GPT partition {i + 1} (LBA {e.first_lba}..{e.last_lba}) is outside the image")
    doc = {"header": {"revision": f"{h.revision >> 16}.{h.revision & 0xFFFF}", "header_size": h.header_size,
                      "header_crc32": h.header_crc32, "header_crc_ok": header_ok, "my_lba": h.my_lba,
                      "alternate_lba": h.alternate_lba, "first_usable_lba": h.first_usable_lba,
                      "last_usable_lba": h.last_usable_lba, "disk_guid": gfmt.guid_text(h.disk_guid),
                      "entries_lba": h.entries_lba, "num_entries": h.num_entries, "entry_size": h.entry_size,
                      "entries_crc32": h.entries_crc32, "entries_crc_ok": entries_ok},
           "partitions": parts}
    # The backup header: at alternate_lba (the last LBA), the same disk, its own entry array.
    backup = {"lba": h.alternate_lba}
    last = img.size // lba_size - 1
    if h.alternate_lba != last:
        problems.append(f"GPT backup header LBA {h.alternate_lba} is not the image's last LBA {last}")
    if (h.alternate_lba + 1) * lba_size > img.size:
        backup["present"] = False
        problems.append(f"GPT backup header at LBA {h.alternate_lba} is past the end of the image")
    else:
        braw = img.read(h.alternate_lba * lba_size, lba_size)
        if braw[:8] != gfmt.GPT_SIGNATURE:
            backup["present"] = False
            problems.append(f"no GPT backup header at LBA {h.alternate_lba}")
        else:
            b = gfmt.GptHeader.parse(braw)
            bcheck = bytearray(braw[:b.header_size if 92 <= b.header_size <= lba_size else 92])
            struct.pack_into("<I", bcheck, 16, 0)
            backup.update(present=True, header_crc_ok=zlib.crc32(bcheck) == b.header_crc32, entries_lba=b.entries_lba)
            bad_array = _entry_array_problem(b, img.size, lba_size)
            if bad_array:
                # The backup's own fields are what a firmware restoring from it would follow (EDK2's
                # PartitionValidGptTable refuses such a header): a defect of this disk, not unreadable.
                backup["entries_crc_ok"] = False
                problems.append(f"GPT backup header's {bad_array[0]}")
            else:
                barr = img.read(b.entries_lba * lba_size, b.num_entries * b.entry_size)
                backup["entries_crc_ok"] = zlib.crc32(barr) == b.entries_crc32
            same = (b.my_lba == h.alternate_lba and b.alternate_lba == h.my_lba and b.disk_guid == h.disk_guid
                    and b.entries_crc32 == h.entries_crc32 and b.first_usable_lba == h.first_usable_lba
                    and b.last_usable_lba == h.last_usable_lba and b.num_entries == h.num_entries)
            backup["matches_primary"] = same
            if not backup["header_crc_ok"]:
                problems.append("GPT backup header CRC32 does not match its contents")
            if not backup["entries_crc_ok"] and not bad_array:
                problems.append("GPT backup entry array CRC32 does not match its contents")
            if not same:
                problems.append("GPT backup header does not mirror the primary (LBAs, disk GUID or entries differ)")
    doc["backup"] = backup
    return doc, problems


def open_image(path):
    """An ImageView of the image at *path*: tables, file systems, loader, configuration, entries.
    The caller closes view.image; when reading the image fails, it is closed here (one
    descriptor per rejected image would run out in a process that reads many)."""
    img = ImageFile(path)
    try:
        return _view(img)
    except BaseException:
        img.close()
        raise


def _view(img):
    view = ImageView(img)
    head = img.read(0, 512)
    if len(head) == 512 and head[510:512] == b"\x55\xaa":
        view.mbr = mfmt.Mbr.parse(head)
        view.mbr_code = boot_code_identity(head[:440])
        view.gpt, problems = _gpt(img)
        view.problems += problems
    if img.size >= 17 * 2048 and img.read(0x8001, 5) == ifmt.STANDARD_ID:
        view.iso = IsoVolume(img.read, img.size, "ISO 9660")
        view.catalog = view.iso.catalog()
        for e in (view.catalog or {}).get("entries", []):
            if (e["load_rba"] + 1) * 2048 > img.size:
                raise FormatError(f"El Torito {e['platform']} entry points at sector {e['load_rba']}, past the "
                                  f"end of the image ({img.size} bytes)", offset=view.catalog["lba"] * 2048)
    _find_esp(view)
    _find_loader(view)
    return view


def _find_esp(view):
    img = view.image
    cands = []
    if view.catalog:
        for e in view.catalog["entries"]:
            if e["platform_id"] == et.PLATFORM_EFI:
                cands.append((e["load_rba"] * 2048, f"El Torito UEFI image at sector {e['load_rba']}", None))
    if view.gpt:
        for p in view.gpt["partitions"]:
            if p["type_guid"] == gfmt.GPT_TYPE_ESP:
                cands.append((p["first_lba"] * 512, f"GPT partition {p['number']}", p["number"] - 1))
    if view.mbr is not None:
        for i, p in enumerate(view.mbr.partitions):
            if p.type == mfmt.MBR_TYPE_EFI_SYSTEM:
                cands.append((p.lba_first * 512, f"MBR partition {i + 1}", i))
    for offset, where, partition in cands:
        if offset + 512 > img.size:
            continue
        try:
            view.esp = FatVolume(img.window(offset, img.size - offset), img.size - offset, f"ESP ({where})")
            view.esp_where = where
            view.esp_offset = offset
            view.esp_partition = partition
            return
        except FormatError:
            continue


def _first(fs, paths):
    for p in paths:
        try:
            f = fs.lookup(p)
        except (FormatError, LimitError):
            f = None
        if f is not None and not f.is_dir:
            return p, f
    return None, None


def _find_loader(view):
    """The first bootloader configuration on the ISO 9660 volume, else on the ESP: each
    bootloader's config_paths in order (bootforge.bootloaders), read by its own parser."""
    for fs in [x for x in (view.iso, view.esp) if x is not None]:
        for loader in BOOTLOADERS.values():
            path, f = _first(fs, loader.config_paths)
            if f is None:
                continue
            text = fs.read_file(f, MAX_CONFIG).decode("utf-8", "replace")
            view.loader, view.config_path, view.config_fs, view.config_text = loader.name, path, fs, text
            view.entries = loader.parse(text)
            return


def pick_entry(view, entry):
    """The Entry named by *entry* (index or title; default the first Multiboot one)."""
    if not view.entries:
        raise RecipeError("no boot entries found"
                          + (f" in {view.config_path}" if view.config_path else " (no loader configuration found)"),
                          path=view.image.path)
    if entry is None:
        for e in view.entries:
            if e.protocol:
                return view.entries.index(e), e
        return 0, view.entries[0]
    if entry.isdigit() and int(entry) < len(view.entries):
        return int(entry), view.entries[int(entry)]
    for i, e in enumerate(view.entries):
        if entry in (e.title, e.label):
            return i, e
    raise RecipeError(f"no entry {entry!r} (entries: "
                      f"{', '.join(f'{i} {e.title!r}' for i, e in enumerate(view.entries))})", path=view.image.path)


def read_fs_file(view, path, limit):
    """(bytes, file) of *path* on the configuration's file system; RecipeError when absent."""
    fs = view.file_system()
    f = fs.lookup(path) if fs is not None else None
    if f is None or f.is_dir:
        raise RecipeError(f"{path} (named in {view.config_path}) is not in the image", path=view.image.path)
    return fs.read_file(f, limit), f


def fs_file(view, path):
    fs = view.file_system()
    f = fs.lookup(path) if fs is not None else None
    return f if f is not None and not f.is_dir else None
