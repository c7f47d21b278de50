"""`bootforge inspect IMAGE`: MBR, GPT (both copies), El Torito, ISO 9660, the ESP, the loader and its entries."""

from dataclasses import dataclass

from bootforge.errors import BootforgeError, FormatError
from bootforge.formats import iso9660 as ifmt
from bootforge.formats.eltorito import BOOT_IMAGE_MARKERS
from bootforge.formats import mbr as mfmt
from bootforge.image.read import MAX_KERNEL, fs_file, open_image
from bootforge.image.recipe import verdict_for
from bootforge.compress.streams import unpack
from bootforge.multiboot.inspect import kernel_document
from bootforge.report import DocumentReport

MAX_LISTED = 200


def _kernel_facts(view, e):
    """Facts of an entry's kernel and modules, with the verdict of the image's own loader."""
    doc = {"title": e.title, "protocol": e.protocol, "kernel": e.kernel, "cmdline": e.cmdline,
           "modules": [], "note": e.note or None}
    for path, args in e.modules:
        f = fs_file(view, path)
        doc["modules"].append({"path": path, "cmdline": args, "size": f.size if f else None, "present": f is not None})
    if e.kernel is None:
        return doc
    f = fs_file(view, e.kernel)
    doc["kernel_present"] = f is not None
    if f is None:
        return doc
    doc["kernel_size"] = f.size
    if e.protocol is None or f.size > MAX_KERNEL:
        return doc
    data = view.file_system().read_file(f, MAX_KERNEL)
    try:
        compressed, raw = unpack(data)
        kernel = kernel_document(e.kernel, raw, compressed, data)
    except BootforgeError as exc:
        doc["kernel_kind"] = compressed or "unreadable"
        doc["verdict"] = {"subject": view.loader, "ok": False, "reason": f"cannot read the kernel: {exc.message}"}
        return doc
    doc["kernel_kind"] = kernel["kind"] + (f", {compressed}-compressed" if compressed else "")
    doc["kernel_entry"] = kernel["entry"]
    for proto in ("multiboot1", "multiboot2"):
        hdr = kernel.get(proto)
        doc[f"{proto}_header_offset"] = hdr["offset"] if hdr else None
    name = verdict_for(view.loader, e.protocol)
    if name is not None:
        doc["verdict"] = kernel["loaders"][name]
    return doc


@dataclass
class ImageReport(DocumentReport):
    def render_text(self):
        d = self.doc
        out = [f"{self.path}: {d['kind']}, {d['size']} bytes"]
        if "mbr" in d:
            m = d["mbr"]
            out.append(f"  MBR: boot code {m['boot_code'] or 'none'}, disk signature {m['disk_signature']}")
            for p in m["partitions"]:
                out.append(f"    partition {p['number']}: type {p['type']:#04x} ({p['type_name']})"
                           f"{' active' if p['active'] else ''}, LBA {p['lba_first']}, {p['sectors']} sectors")
        if "gpt" in d:
            g = d["gpt"]
            h = g["header"]
            out.append(f"  GPT: disk {h['disk_guid']}, header CRC {'ok' if h['header_crc_ok'] else 'BAD'}, "
                       f"entries CRC {'ok' if h['entries_crc_ok'] else 'BAD'}, usable LBA "
                       f"{h['first_usable_lba']}..{h['last_usable_lba']}, {h['num_entries']} entries at LBA "
                       f"{h['entries_lba']}")
            b = g["backup"]
            if b.get("present"):
                out.append(f"    backup at LBA {b['lba']}: header CRC {'ok' if b['header_crc_ok'] else 'BAD'}, "
                           f"entries CRC {'ok' if b['entries_crc_ok'] else 'BAD'}, "
                           f"{'mirrors the primary' if b['matches_primary'] else 'DIFFERS from the primary'}")
            else:
                out.append(f"    backup at LBA {b['lba']}: missing")
            for p in g["partitions"]:
                out.append(f"    partition {p['number']}: {p['type']} ({p['type_guid']}) LBA "
                           f"{p['first_lba']}..{p['last_lba']} {p['name']!r}")
        if "iso9660" in d:
            i = d["iso9660"]
            out.append(f"  ISO 9660: volume {i['volume_id']!r}, {i['volume_space_size']} sectors, names from "
                       f"{i['names']}, created {i['creation_date'] or 'unset'}")
            out.append("    descriptors: " + ", ".join(f"{x['type_name']}@{x['lba']}" for x in i["descriptors"]))
            for f in i["top"]:
                out.append(f"    {'/' + f['name'] + ('/' if f['directory'] else ''):<32} "
                           f"{'' if f['directory'] else str(f['size']) + ' bytes'}")
        if d.get("el_torito"):
            c = d["el_torito"]
            out.append(f"  El Torito catalog at sector {c['lba']}: validation {c['validation']['platform']} "
                       f"{'ok' if c['validation']['valid'] else 'BAD'}")
            for e in c["entries"]:
                out.append(f"    {e['section']}: {e['platform']}, {'bootable' if e['bootable'] else 'not bootable'}, "
                           f"{e['media']}, load segment {e['load_segment']:#x}, {e['sector_count']} sectors, "
                           f"image at sector {e['load_rba']}" + (f" ({e['image']})" if e.get("image") else "")
                           + (f" [{e['identity']}]" if e.get("identity") else ""))
        if "esp" in d:
            s = d["esp"]
            out.append(f"  ESP ({s['where']}): {s['type']}, serial {s['serial']}, {s['sectors']} sectors")
            for f in s["files"]:
                out.append(f"    {f['path']:<40} {f['size']} bytes")
        if d.get("loader"):
            out.append(f"  loader: {d['loader']} ({d['config_path']})")
            out += ["    | " + line for line in d["config"].splitlines()]
            for i, e in enumerate(d["entries"]):
                out.append(f"  entry {i} {e['title']!r}: {e['protocol'] or 'not Multiboot'}"
                           + (f", kernel {e['kernel']}" if e['kernel'] else "")
                           + (f" ({e['kernel_size']} bytes, {e.get('kernel_kind', '?')}"
                              + (f", entry {e['kernel_entry']:#x}" if e.get("kernel_entry") is not None else "")
                              + "".join(f", Multiboot{p[-1]} header at {e[p + '_header_offset']:#x}"
                                        for p in ("multiboot1", "multiboot2") if e.get(p + "_header_offset") is not None)
                              + ")" if e.get("kernel_size") is not None else
                              (" (MISSING)" if e.get("kernel_present") is False else ""))
                           + (f" {e['cmdline']!r}" if e["cmdline"] else ""))
                for m in e["modules"]:
                    out.append(f"    module {m['path']} {m['cmdline']!r}: "
                               + (f"{m['size']} bytes" if m["present"] else "MISSING"))
                if e.get("verdict"):
                    v = e["verdict"]
                    out.append(f"    {v['subject']}: {'loads' if v['ok'] else 'REFUSES'}: {v.get('words') or v['reason']}")
                if e.get("note"):
                    out.append(f"    note: {e['note']}")
        else:
            out.append("  loader: none found (no grub.cfg, isolinux.cfg/syslinux.cfg or limine.conf)")
        for p in self.problems:
            out.append(f"  PROBLEM: {p}")
        return "\n".join(out)


def _date17(raw):
    text = bytes(raw[:16]).decode("latin-1")
    if not text.strip("0 \0"):
        return None
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}"


def inspect_image(path, data=None):
    """The ImageReport of the image at *path* (read by offset; *data* is not needed)."""
    view = open_image(path)
    try:
        return _report(path, view)
    finally:
        view.image.close()


def _report(path, view):
    img = view.image
    problems = list(view.problems)
    kind = "ISO 9660 image" if view.iso else "disk image"
    if view.iso and view.mbr is not None and any(p.type for p in view.mbr.partitions):
        kind = "hybrid ISO 9660 image (" + ("GPT" if view.gpt else "MBR") + " partitioned)"
    elif view.gpt:
        kind = "GPT disk image"
    doc = {"kind": kind, "size": img.size}
    if view.mbr is not None:
        doc["mbr"] = {"boot_code": view.mbr_code, "disk_signature": f"{view.mbr.disk_signature:08x}",
                      "partitions": [{"number": i + 1, "active": p.status == 0x80, "type": p.type,
                                      "type_name": mfmt.MBR_PARTITION_TYPES.get(p.type, "unknown"),
                                      "lba_first": p.lba_first, "sectors": p.sectors}
                                     for i, p in enumerate(view.mbr.partitions) if p.type]}
    if view.gpt:
        doc["gpt"] = view.gpt
    extents = {}
    if view.iso:
        iso = view.iso
        pvd = iso.pvd
        top = iso.listdir(iso.root_lba, iso.root_size)
        doc["iso9660"] = {
            "volume_id": pvd.volume_id.decode("latin-1").rstrip(), "system_id": pvd.system_id.decode("latin-1").rstrip(),
            "application_id": pvd.application_id.decode("latin-1").rstrip(),
            "volume_space_size": pvd.volume_space_size, "logical_block_size": pvd.logical_block_size,
            "creation_date": _date17(pvd.creation_date), "modification_date": _date17(pvd.modification_date),
            "names": iso.names,
            "descriptors": [{"lba": lba, "type": t, "type_name": ifmt.VOLUME_DESCRIPTOR_TYPES.get(t, "unknown")}
                            for lba, t, _ in iso.descriptors],
            "top": [{"name": f.path, "directory": f.is_dir, "size": f.size, "lba": f.lba} for f in top[:MAX_LISTED]]}
        if pvd.volume_space_size * 2048 > img.size:
            problems.append(f"ISO volume space of {pvd.volume_space_size} sectors is larger than the image")
        try:
            for p, f in iso.walk():
                if not f.is_dir:
                    extents.setdefault(f.lba, p)
        except BootforgeError:
            pass
    if view.catalog:
        c = view.catalog
        for e in c["entries"]:
            e["image"] = extents.get(e["load_rba"])
            head = img.read(e["load_rba"] * 2048, 64 << 10)
            e["identity"] = _boot_image_identity(head, e["platform_id"])
        if not c["validation"]["valid"]:
            problems.append("El Torito validation entry: bad header id, key or checksum")
        doc["el_torito"] = c
    if view.esp:
        files = [{"path": p, "size": f.size} for p, f in view.esp.walk() if not f.is_dir][:MAX_LISTED]
        doc["esp"] = {"where": view.esp_where, **view.esp.info, "files": files}
    doc["loader"] = view.loader
    if view.loader:
        doc["config_path"] = view.config_path
        doc["config"] = view.config_text
        doc["entries"] = [_kernel_facts(view, e) for e in view.entries[:64]]
        for e in doc["entries"]:
            if e.get("kernel_present") is False:
                problems.append(f"entry {e['title']!r}: kernel {e['kernel']} is not in the image")
            for m in e["modules"]:
                if not m["present"]:
                    problems.append(f"entry {e['title']!r}: module {m['path']} is not in the image")
    return ImageReport(str(path), "image", problems, doc)


def _boot_image_identity(head, platform):
    for marker, name in BOOT_IMAGE_MARKERS:
        if marker in head:
            return name
    if head[:3] in (b"\xeb\x3c\x90", b"\xeb\x58\x90") and platform == 0xEF:
        return "FAT image"
    return None


def inspect_image_file(path, data):
    try:
        return inspect_image(path)
    except FormatError as exc:
        raise exc.located(path=path)


