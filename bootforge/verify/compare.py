"""What a loader handed over (observed) and what `bootforge load` predicted, as the same
named fields, so one comparison serves `bootforge verify` and the test suite's matrix."""

import hashlib
from dataclasses import replace

from bootforge.formats.multiboot import FramebufferType, Mb2Tag, MbiFlag, Multiboot1Info, Multiboot2InfoTagBody
from bootforge.loader.policies import COMPARE_ALL, comparison
from bootforge.loader.policies.grub_efi import grub_efi_mmap
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.multiboot.dump import Memory, Region, decode_mb1_info, decode_mb2_info


def observed_fields(doc):
    """The compared fields of captured boot information ({"ebx", "multiboot1"|"multiboot2"})."""
    out = {"mbi_address": doc["ebx"]}
    if "multiboot1" in doc:
        m = doc["multiboot1"]
        out.update(mem_lower=m.get("mem_lower"), mem_upper=m.get("mem_upper"), cmdline=m.get("cmdline"),
                   modules=[(x["mod_start"], x["mod_end"]) for x in m.get("modules", [])],
                   module_strings=[x.get("string") for x in m.get("modules", [])],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for e in m.get("mmap", [])])
    else:
        tags = doc["multiboot2"]["tags"]
        mi = next((t for t in tags if t["type"] == 4), {})
        out.update(mem_lower=mi.get("mem_lower"), mem_upper=mi.get("mem_upper"),
                   cmdline=next((t["string"] for t in tags if t["type"] == 1), None),
                   modules=[(t["mod_start"], t["mod_end"]) for t in tags if t["type"] == 3],
                   module_strings=[t["string"] for t in tags if t["type"] == 3],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for t in tags if t["type"] == 6
                         for e in t["entries"]],
                   mbi_size=doc["multiboot2"]["total_size"])
        t17 = next((t for t in tags if t["type"] == 17), None)
        if t17 is not None:
            # Tag 17 as the platform input: GRUB's conversion of it must give tag 6.
            efi = MemoryMap("efi", [MemoryRange(d["physical_start"], d["number_of_pages"] * 4096, d["type"],
                                                d["attribute"]) for d in t17["descriptors"]])
            out["mmap_from_tag17"] = grub_efi_mmap(efi)
    out["framebuffer"] = _geometry(doc)
    return out


FRAMEBUFFER_GEOMETRY = ("framebuffer_width", "framebuffer_height", "framebuffer_bpp", "framebuffer_pitch",
                        "framebuffer_type")


def _geometry(doc):
    """(width, height, bpp, pitch, type) of the framebuffer handed over (MB2 tag 8, MB1 flag 12), or None."""
    if "multiboot2" in doc:
        fb = next((t for t in doc["multiboot2"]["tags"] if t["type"] == Mb2Tag.FRAMEBUFFER), None)
    else:
        fb = doc["multiboot1"].get("framebuffer")
    return tuple(fb[k] for k in FRAMEBUFFER_GEOMETRY) if fb else None


# verify's framebuffer rows: the geometry, type and pitch always; the direct-colour channel
# positions and sizes of an RGB framebuffer; the address only where the policy predicts one (a
# nonzero framebuffer_addr in its prediction; the rest leave it 0: the display's PCI BAR is the
# firmware's, LFB_REASON).
FRAMEBUFFER_ROWS = ("width", "height", "bpp", "pitch", "type")
RGB_FIELDS = ("red_field_position", "red_mask_size", "green_field_position", "green_mask_size",
              "blue_field_position", "blue_mask_size")


def framebuffer_details(doc):
    """{"address", "rgb"} of the framebuffer handed over (MB2 tag 8 / MB1 flag 12), or None."""
    if "multiboot2" in doc:
        fb = next((t for t in doc["multiboot2"]["tags"] if t["type"] == Mb2Tag.FRAMEBUFFER), None)
    else:
        fb = doc["multiboot1"].get("framebuffer")
    if not fb:
        return None
    rgb = tuple(fb.get(k) for k in RGB_FIELDS) if fb.get("framebuffer_type") == FramebufferType.RGB else None
    return {"address": fb.get("framebuffer_addr"), "rgb": rgb if rgb and None not in rgb else None}


def framebuffer_rows(res, cap):
    """[(name, predicted, observed, key)] of verify's framebuffer rows."""
    pdoc = ({"multiboot2": decode_mb2_info(res.mbi_bytes)} if res.protocol == "multiboot2"
            else {"multiboot1": _mb1_framebuffer_doc(res.mbi_bytes)})
    want, seen = _geometry(pdoc), _geometry(cap.doc)
    if want is None and seen is None:
        return []
    rows = [("framebuffer", "yes" if want else "none", "yes" if seen else "none", "framebuffer")]
    for i, name in enumerate(FRAMEBUFFER_ROWS):
        rows.append((f"framebuffer {name}", want and want[i], seen and seen[i], "framebuffer"))
    pd, sd = framebuffer_details(pdoc) or {}, framebuffer_details(cap.doc) or {}
    if res.protocol == "multiboot2" and (pd.get("rgb") or sd.get("rgb")):
        rows.append(("framebuffer rgb (pos/size r, g, b)", pd.get("rgb"), sd.get("rgb"), "framebuffer"))
    if pd.get("address"):
        rows.append(("framebuffer address", pd["address"], sd.get("address"), "framebuffer"))
    return rows


def _mb1_framebuffer_doc(data):
    info = Multiboot1Info.parse(data)
    if not info.flags & MbiFlag.FRAMEBUFFER:
        return {}
    fb = {k: getattr(info, k) for k in (*FRAMEBUFFER_GEOMETRY, "framebuffer_addr")}
    return {"framebuffer": fb}


def predicted_fields(res):
    """The same fields from a LoadResult."""
    out = {"mbi_address": res.mbi_address, "mem_lower": res.mem_lower, "mem_upper": res.mem_upper,
           "cmdline": res.cmdline, "modules": [(m["start"], m["end"]) for m in res.modules],
           "module_strings": [m["cmdline"] for m in res.modules], "mmap": list(res.mmap)}
    declared = comparison(res.loader)
    if res.protocol == "multiboot2" and declared.mbi_size:
        out["mbi_size"] = len(res.mbi_bytes)
    if declared.mmap_from_tag17:
        # No map at all when the kernel keeps boot services (no tags 6 and 17): nothing to derive.
        out["mmap_from_tag17"] = list(res.mmap) if res.mmap else None
    if res.mbi_bytes and res.protocol in ("multiboot1", "multiboot2"):
        if res.protocol == "multiboot2":
            out["framebuffer"] = _geometry({"multiboot2": decode_mb2_info(res.mbi_bytes)})
        else:
            info = Multiboot1Info.parse(res.mbi_bytes)
            out["framebuffer"] = (tuple(getattr(info, k) for k in FRAMEBUFFER_GEOMETRY)
                                  if info.flags & MbiFlag.FRAMEBUFFER else None)
    return out


def tag_names(doc):
    """MB2: the information tags by name in order; MB1: the names of the flags set."""
    if "multiboot2" in doc:
        return [t["name"] for t in doc["multiboot2"]["tags"]]
    return list(doc["multiboot1"]["flags_set"])


def predicted_tag_names(res):
    """tag_names of the predicted boot information (decoded by the same decoder as the capture)."""
    if res.protocol == "multiboot2":
        return tag_names({"multiboot2": decode_mb2_info(res.mbi_bytes)})
    info, _problems = decode_mb1_info(Memory([Region("mbi", res.mbi_address, res.mbi_bytes, 0)]), res.mbi_address)
    return tag_names({"multiboot1": info})


# ------------------------------------------------------------------ the boot information, byte for byte

# Bytes only the firmware decides, per tag (MB2) or field / structure (MB1), each with why it
# cannot be predicted. verify shows them and does not count them; every other byte counts.
# MB2: tag type -> (first byte, end or None for the tag's end, relative to the tag with its
# 8-byte header; what; why).
MB2_FIRMWARE_DATA = {
    Mb2Tag.APM: [(8, None, "APM table", "the APM BIOS interface the firmware reports (INT 15h AX=5303h)")],
    Mb2Tag.ACPI_OLD: [(8, None, "RSDP copy", "the firmware's RSDP: its RSDT address and checksum are ACPI "
                                              "tables the firmware built at boot")],
    Mb2Tag.ACPI_NEW: [(8, None, "XSDP copy", "the firmware's XSDP: its XSDT address and checksums are the "
                                              "firmware's")],
    Mb2Tag.SMBIOS: [(8, None, "SMBIOS entry point copy", "the firmware's SMBIOS entry point and table address")],
    Mb2Tag.EFI32: [(8, None, "EFI system table pointer", "where the firmware allocated its system table")],
    Mb2Tag.EFI64: [(8, None, "EFI system table pointer", "where the firmware allocated its system table")],
    Mb2Tag.EFI32_IH: [(8, None, "EFI image handle", "the handle the firmware gave the loader's image")],
    Mb2Tag.EFI64_IH: [(8, None, "EFI image handle", "the handle the firmware gave the loader's image")],
    Mb2Tag.VBE: [(10, None, "VBE interface and info blocks", "the video BIOS's protected-mode interface and "
                                                              "its controller/mode info blocks (SeaVGABIOS)")],
    Mb2Tag.NETWORK: [(8, None, "DHCP ACK", "the packet the network's DHCP server sent")],
}
# ... and per policy and firmware, what its Comparison declares (firmware_data_on,
# total_size_firmware_on: Limine on UEFI).
# MB1: Multiboot1Info fields, and the structures it points to, that the firmware decides.
MB1_FIRMWARE_FIELDS = {
    "vbe_interface_seg": "the video BIOS's protected-mode interface (VBE function 0Ah)",
    "vbe_interface_off": "the video BIOS's protected-mode interface (VBE function 0Ah)",
    "vbe_interface_len": "the video BIOS's protected-mode interface (VBE function 0Ah)",
}
MB1_FIRMWARE_STRUCTURES = {
    "apm": "the APM BIOS interface the firmware reports (INT 15h AX=5303h)",
    "vbe_control_info": "the video BIOS's controller info block (VBE function 00h)",
    "vbe_mode_info": "the video BIOS's mode info block (VBE function 01h)",
    "drives": "the BIOS's drive geometry (INT 13h)",
}
LFB_REASON = "the linear framebuffer address: the PCI BAR the firmware assigned to the display"
# Bytes a loader never writes (they hold whatever its buffer held before) are declared by its
# policy's Comparison (unwritten_tag_padding, unwritten_module_reserved).


def _layout(struct):
    """[(name, offset, size)] of the fixed-size leading fields of a Construct Struct."""
    out, at = [], 0
    for sub in getattr(struct, "subcons", []):
        try:
            size = sub.sizeof()
        except Exception:  # noqa: BLE001 - a variable-size field ends the fixed prefix
            out.append((sub.name, at, None))
            break
        out.append((sub.name, at, size))
        at += size
    return out


def _field_at(layout, off):
    for name, at, size in layout:
        if off >= at and (size is None or off < at + size):
            return name, off - at
    return None, off


def _mb2_tags(data):
    """[(offset, type, size)] of an MB2 information blob's tags (stops at the end tag or the data)."""
    out = []
    if len(data) < 8:
        return out
    total = min(int.from_bytes(data[:4], "little"), len(data))
    pos = 8
    while pos + 8 <= total:
        t, s = int.from_bytes(data[pos:pos + 4], "little"), int.from_bytes(data[pos + 4:pos + 8], "little")
        out.append((pos, t, s))
        if t == Mb2Tag.END or s < 8:
            break
        pos += s + (-s % 8)
    return out


def _mb2_name(tags, off):
    """The tag and field holding byte *off* of an MB2 blob, in words."""
    if off < 8:
        return "fixed part " + ("total_size" if off < 4 else "reserved")
    for at, t, s in tags:
        if at <= off < at + s + (-s % 8):
            label = f"tag {t} ({Mb2Tag.label_of(t, 'unknown')})"
            rel = off - at
            if rel < 8:
                return f"{label} {'type' if rel < 4 else 'size'}"
            if rel >= s:
                return f"{label} padding"
            try:
                body = Multiboot2InfoTagBody.cases.get(t)
            except AttributeError:
                body = None
            name, inner = _field_at(_layout(body), rel - 8) if body is not None else (None, rel - 8)
            return f"{label} {name} +{inner:#x}" if name else f"{label} +{rel:#x}"
    return "past the tags"


def _ranges(a, b, skip):
    """[(start, end)] where *a* and *b* differ (a missing byte differs), outside *skip* offsets."""
    out = []
    for i in range(max(len(a), len(b))):
        if i in skip:
            continue
        if i >= len(a) or i >= len(b) or a[i] != b[i]:
            if out and out[-1][1] == i:
                out[-1][1] = i + 1
            else:
                out.append([i, i + 1])
    return [tuple(r) for r in out]


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _mb2_firmware(tags, data, declared=COMPARE_ALL, firmware=None):
    """[(start, end, what, why)] of the firmware bytes in an MB2 blob, by its own tags: every
    policy's MB2_FIRMWARE_DATA and what the policy's Comparison (*declared*) adds on *firmware*."""
    out = [(0, 4, "fixed part total_size", why) for fw, why in declared.total_size_firmware_on if fw == firmware]
    extra = {}
    for fw, tag, lo, hi, what, why in declared.firmware_data_on:
        if fw == firmware:
            extra.setdefault(tag, []).append((lo, hi, what, why))
    for at, t, s in tags:
        for lo, hi, what, why in [*MB2_FIRMWARE_DATA.get(t, ()), *extra.get(t, ())]:
            out.append((at + lo, at + (s if hi is None else hi), f"tag {t} ({Mb2Tag.label_of(t)}) {what}", why))
        if t == Mb2Tag.FRAMEBUFFER and s >= 16 and len(data) >= at + 30 \
                and data[at + 29] != FramebufferType.EGA_TEXT:
            out.append((at + 8, at + 16, f"tag {t} (framebuffer) framebuffer_addr", LFB_REASON))
    return out


def _mb2_compare(loader, pred, seen, firmware_kind=None, this_boot=()):
    """(firmware ranges, differing ranges) of two MB2 blobs. With the same tag types in the
    same order the tags are compared pair by pair (a tag of another size differs as a whole
    past the shorter one, and the tags after it still line up); else byte by byte. *this_boot*:
    the prediction's own firmware-data declarations (LoadResult.firmware_data)."""
    ptags, stags = _mb2_tags(pred), _mb2_tags(seen)
    declared = comparison(loader)
    if this_boot:
        declared = replace(declared, firmware_data_on=declared.firmware_data_on
                           + tuple((firmware_kind, *d) for d in this_boot))
    firmware = _mb2_firmware(stags, seen, declared, firmware_kind)
    if declared.unwritten_tag_padding:
        firmware += [(at + s, at + s + (-s % 8), f"tag {t} ({Mb2Tag.label_of(t)}) padding",
                      declared.unwritten_tag_padding) for at, t, s in stags if -s % 8]
    skip = {i for lo, hi, _w, _r in firmware for i in range(lo, hi)}
    if [t for _a, t, _s in ptags] != [t for _a, t, _s in stags]:
        fixed = _ranges(pred[:8], seen[:8], set())
        tags = [{"start": 8, "end": max(len(pred), len(seen)),
                 "name": "tag list: predicted " + ",".join(str(t) for _a, t, _s in ptags)
                         + "; given " + ",".join(str(t) for _a, t, _s in stags)}]
        return firmware, [{"start": a, "end": b, "name": _mb2_name(stags, a)} for a, b in fixed] + tags
    differing = [{"start": a, "end": b, "name": _mb2_name(stags, a)}
                 for a, b in _ranges(pred[:8], seen[:8], {i for i in skip if i < 8})]
    for (pa, _t, ps), (sa, t, ss) in zip(ptags, stags):
        pbytes, sbytes = pred[pa:pa + ps + (-ps % 8)], seen[sa:sa + ss + (-ss % 8)]
        local = {i - sa for i in skip if sa <= i < sa + len(sbytes)}
        if ps != ss and not {4, 5, 6, 7} <= local:
            local -= set(range(8, max(len(pbytes), len(sbytes))))     # a resized tag counts whole
        elif ps != ss:
            local |= set(range(len(sbytes), len(pbytes)))          # a declared resize: the rest too
        for a, b in _ranges(pbytes, sbytes, local):
            differing.append({"start": sa + a, "end": sa + b, "name": _mb2_name(stags, sa + a)
                              + (f" (tag size {ps} predicted, {ss} given)" if ps != ss and a >= 4 else "")})
    return firmware, differing


def mbi_bytes_comparison(res, cap):
    """The whole boot information, byte for byte: {"predicted_sha256", "observed_sha256",
    "match", "differing": [{"start", "end", "name"}], "firmware_data": [{"start", "end",
    "name", "reason"}], "structures": [...]}; MB1 also compares every structure the info
    points to (its name, predicted and observed address, the same fields)."""
    pred, seen = bytes(res.mbi_bytes), bytes(cap.mbi_raw)
    if res.protocol == "multiboot2":
        firmware, differing = _mb2_compare(res.loader, pred, seen, getattr(res.platform, "firmware", None),
                                           getattr(res, "firmware_data", ()))
        structures = []
    else:
        layout = _layout(Multiboot1Info)
        # The info reaches as far as its flags say: 88 bytes without the framebuffer flag, 116
        # with it (the capture reads that much). Predicted bytes past it (Limine writes the whole
        # 116-byte struct, QEMU's bootinfo is 88) are no part of what the kernel is handed, so
        # both hashes and sizes are of the compared bytes; a prediction that is shorter differs.
        n = len(seen)
        pred = pred[:n]
        firmware = [(at, at + size, f"info {name}", MB1_FIRMWARE_FIELDS[name]) for name, at, size in layout
                    if name in MB1_FIRMWARE_FIELDS]
        if len(seen) >= 110 and seen[109] != FramebufferType.EGA_TEXT \
                and int.from_bytes(seen[:4], "little") & MbiFlag.FRAMEBUFFER:
            firmware.append((88, 96, "info framebuffer_addr", LFB_REASON))
        skip = {i for lo, hi, _w, _r in firmware for i in range(lo, hi)}
        differing = []
        for a, b in _ranges(pred, seen, skip):
            name, inner = _field_at(layout, a)
            differing.append({"start": a, "end": b, "name": f"info {name}" + (f" +{inner:#x}" if inner else "")})
        structures = _mb1_structures(res, cap)
    match = not differing and all(s["match"] for s in structures)
    return {"predicted_sha256": _sha(pred), "observed_sha256": _sha(seen),
            "predicted_size": len(pred), "observed_size": len(seen), "match": match,
            "predicted_bytes_past_the_flags": len(res.mbi_bytes) - len(pred),
            "differing": differing,
            "firmware_data": [{"start": lo, "end": hi, "name": what, "reason": why} for lo, hi, what, why in firmware],
            "structures": structures}


def _mb1_structures(res, cap):
    out = []
    names = list(dict.fromkeys([*cap.structures, *res.structures]))
    for name in names:
        if name in MB1_FIRMWARE_STRUCTURES:
            addr, data = cap.structures.get(name, (None, b""))
            out.append({"name": name, "predicted_address": (res.structures.get(name) or (None,))[0],
                        "observed_address": addr, "match": True, "firmware_data": MB1_FIRMWARE_STRUCTURES[name],
                        "observed_sha256": _sha(data)})
            continue
        p_addr, p_data = res.structures.get(name, (None, None))
        o_addr, o_data = cap.structures.get(name, (None, None))
        row = {"name": name, "predicted_address": p_addr, "observed_address": o_addr,
               "predicted_sha256": _sha(p_data) if p_data is not None else None,
               "observed_sha256": _sha(o_data) if o_data is not None else None}
        skip = set()
        unwritten = comparison(res.loader).unwritten_module_reserved
        if name == "mods" and unwritten:
            skip = {i for e in range(0, len(o_data or b""), 16) for i in range(e + 12, e + 16)}
            row["unwritten"] = unwritten
        row["differing"] = ([] if p_data is None or o_data is None else
                            [{"start": a, "end": b} for a, b in _ranges(p_data, o_data, skip)])
        row["match"] = p_addr == o_addr and p_data is not None and o_data is not None and not row["differing"]
        if p_data is None:
            row["why"] = "not predicted"
        elif o_data is None:
            row["why"] = "not given by the loader"
        out.append(row)
    return out


def mbi_bytes_problems(comparison):
    """The differing ranges of an mbi_bytes_comparison in words (for tables and messages)."""
    out = [f"[{d['start']:#x}, {d['end']:#x}) {d['name']}" for d in comparison["differing"]]
    for s in comparison["structures"]:
        if not s["match"]:
            where = s.get("why") or ", ".join(f"+{d['start']:#x}..+{d['end']:#x}" for d in s["differing"][:4])
            if s["predicted_address"] != s["observed_address"] and s["predicted_address"] is not None \
                    and s["observed_address"] is not None:
                where = f"at {s['observed_address']:#x}, predicted {s['predicted_address']:#x}" + (
                    f"; {where}" if where else "")
            out.append(f"{s['name']}: {where}")
    return "; ".join(out)


def mbi_bytes_row(comparison, row):
    """verify's "mbi bytes" row (*row*: its Row class): the two sha256 prefixes and sizes."""
    c = comparison
    return row("mbi bytes", f"sha256 {c['predicted_sha256'][:16]} ({c['predicted_size']} bytes)",
               f"sha256 {c['observed_sha256'][:16]} ({c['observed_size']} bytes)", c["match"])


def mbi_bytes_lines(comparison):
    """Text lines under verify's table: what differs, by tag or field, and the firmware data
    shown but not counted (with why)."""
    out = []
    problems = mbi_bytes_problems(comparison)
    if problems:
        out.append(f"  mbi bytes differ: {problems}")
    fw = comparison["firmware_data"] + [
        {"start": None, "name": s["name"], "reason": s.get("firmware_data") or s.get("unwritten")}
        for s in comparison["structures"] if s.get("firmware_data") or s.get("unwritten")]
    if fw:
        out.append(f"  not counted ({len(fw)}): bytes the firmware decides or the loader never writes")
        for f in fw:
            where = f"[{f['start']:#x}, {f['end']:#x}) " if f.get("start") is not None else ""
            out.append(f"    {where}{f['name']}: {f['reason']}")
    return out
