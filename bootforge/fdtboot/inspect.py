"""`bootforge inspect` of the images device-tree loaders take: the arm64 Image, the
RISC-V Image and the ARM zImage (decoded header; an EFI-stub kernel, "MZ" + Image
header, also shows its PE view), the legacy uImage (both CRC32s recomputed; the
parts of a multi-file image) and FIT (every image, hash recomputed, signature
listed, configuration, and each embedded DTB by its model and compatible), with
the verdicts of QEMU -kernel, U-Boot booti/bootz/bootm and the Linux EFI stub on
AAVMF (bootforge/fdtboot/verdicts.py), and U-Boot's own u-boot.bin. Defects (a CRC or hash that does not
match the data) are problems: exit 1.
"""

import re
import struct
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.fdtboot import kernels, verdicts
from bootforge.report import DocumentReport
from bootforge.text import human_size


def _dtb_identity(data, path=None):
    """{model, compatible} of an embedded DTB, or {error} when it does not parse."""
    # Function-level import: the DTB parser only for FIT/uImage payloads that are DTBs.
    from bootforge.fdt.parse import parse_dtb
    try:
        tree = parse_dtb(data, path)
    except FormatError as exc:
        return {"error": exc.message}
    compatible = tree.root.prop("compatible") or b""
    return {"model": tree.root.string("model"),
            "compatible": [c.decode("latin-1") for c in compatible.rstrip(b"\0").split(b"\0") if c]}


def _pe_view(data):
    # Function-level import: the PE reader only for EFI-stub kernels.
    from bootforge.pe.image import read_pe
    try:
        img = read_pe(data)
    except FormatError as exc:
        return {"error": exc.message}
    return {**img.to_json(), "sections": [s.to_json() for s in img.sections]}


@dataclass
class DtKernelReport(DocumentReport):
    def render_text(self):
        d = self.doc
        h = d["header"]
        out = [f"{self.path}: {d['title']}" + (f" ({d['compressed']}-compressed, {human_size(d['file_size'])})"
                                               if d.get("compressed") else "")]
        if h["kind"] in ("arm64-image", "riscv-image"):
            out.append(f"  {'arm64' if h['kind'] == 'arm64-image' else 'RISC-V'} Image header: "
                       f"text_offset {h['text_offset']:#x}, image_size {h['image_size']:#x} "
                       f"({human_size(h['image_size'])}), flags {h['flags']:#x}")
            if h["kind"] == "arm64-image":
                out.append(f"    {'big' if h['big_endian'] else 'little'}-endian, page size {h['page_size']}, "
                           + ("2 MiB aligned base anywhere in RAM" if h["phys_anywhere"]
                              else "base as low in RAM as possible"))
            else:
                out.append(f"    header version {h['version']}, magic {h['magic']!r} "
                           f"{'ok' if h['magic_ok'] else 'absent'}, magic2 {h['magic2']!r} "
                           f"{'ok' if h['magic2_ok'] else 'absent'}")
            out.append(f"    code0 {h['code0']:#010x}, code1 {h['code1']:#010x}"
                       + (f", PE header at {h['pe_offset']:#x} (EFI stub)" if h["pe_offset"] else ""))
        elif h["kind"] == "arm-zimage":
            out.append(f"  zImage header: start {h['start']:#x}, end {h['end']:#x} ({h['size']:#x} bytes), "
                       f"{'little' if h['little_endian'] else 'big'}-endian"
                       + (f", data table at {h['table']:#x}" if h["table"] is not None else ""))
        pe = d.get("pe")
        if pe and "error" not in pe:
            out.append(f"  PE view: {pe['format']} machine {pe['machine']:#x} subsystem {pe['subsystem']} "
                       f"({pe['subsystem_name']}), entry RVA {pe['entry_point']:#x}, SizeOfImage "
                       f"{pe['size_of_image']:#x}")
            for s in pe["sections"]:
                out.append(f"    {s['name']:<8} RVA {s['virtual_address']:#10x} size {s['virtual_size']:#10x} "
                           f"file {s['raw_offset']:#10x}  {','.join(s['flags'])}")
        elif pe:
            out.append(f"  PE view: {pe['error']}")
        out += _render_verdicts(d["verdicts"])
        return "\n".join(out) + "\n"


def _render_verdicts(items):
    out = ["  loaders:"]
    for v in items:
        status = v["ok"] and "takes" or "REFUSES"
        if v["severity"] == "warning" and v["ok"]:
            status = "warns"
        words = f"  [{v['words']}]" if v["words"] else ""
        out.append(f"    {status:<8} {v['subject']}: {v['reason']}{words}")
    return out


TITLES = {"arm64-image": "arm64 Linux Image", "riscv-image": "RISC-V Linux Image", "arm-zimage": "ARM zImage"}


def dt_kernel_report(path, data, compressed=None, original=None):
    """The report of an Image/zImage in *data* (decompressed from *original* when *compressed*)."""
    header = kernels.read_dt_kernel(data, path)
    if header["kind"] == "uimage":      # `--format dt-kernel` of a uImage: its own report
        return inspect_uimage(path, data)
    given = original if original is not None else data
    pe = _pe_view(data) if header.get("pe_offset") else None
    title = TITLES[header["kind"]] + (" with an EFI stub (MZ + PE)" if pe else "")
    doc = {"title": title, "header": header, "compressed": compressed, "file_size": len(given),
           "pe": pe, "verdicts": [v.to_json() for v in verdicts.kernel_verdicts(given, header)]}
    return DtKernelReport(path=str(path), format=header["kind"], doc=doc)


def inspect_dt_kernel(path, data):
    return dt_kernel_report(path, data)


@dataclass
class UImageReport(DocumentReport):
    def render_text(self):
        d = self.doc
        h = d["header"]
        out = [f"{self.path}: U-Boot legacy image (uImage)",
               f"  Image Name:   {h['name']}",
               f"  Image Type:   {h['arch_name']} {h['os_name']} {h['type_name']} ({h['comp_name']})",
               f"  Data Size:    {h['size']} bytes ({human_size(h['size'])})",
               f"  Load Address: {h['load']:08x}",
               f"  Entry Point:  {h['ep']:08x}",
               f"  Created:      {h['time']} (seconds since the epoch)",
               f"  header CRC32  {h['hcrc']:#010x} {'ok' if h['hcrc'] == h['hcrc_computed'] else 'BAD'}"
               + ("" if h["hcrc"] == h["hcrc_computed"] else f" (computed {h['hcrc_computed']:#010x})"),
               "  data CRC32    " + (f"{h['dcrc']:#010x} " + ("ok" if h["dcrc"] == h["dcrc_computed"]
                                                             else f"BAD (computed {h['dcrc_computed']:#010x})")
                                     if h["dcrc_computed"] is not None else "data truncated")]
        for i, f in enumerate(h["files"]):
            out.append(f"  Image {i}: {f['size']} bytes at file offset {f['offset']:#x}")
        if d.get("payload"):
            p = d["payload"]
            out.append(f"  payload: {p.get('kind')}" + (f", model {p['model']!r}, compatible "
                                                        f"{', '.join(p['compatible'])}" if 'model' in p else ""))
        for p in self.problems:
            out.append(f"Problem: {p}")
        out += _render_verdicts(d["verdicts"])
        return "\n".join(out) + "\n"


def inspect_uimage(path, data):
    h = kernels.read_uimage(data, path)
    problems = []
    if h["hcrc"] != h["hcrc_computed"]:
        problems.append(f"header CRC32 {h['hcrc']:#010x} does not match the header ({h['hcrc_computed']:#010x})")
    if h["truncated"]:
        problems.append(f"data size {h['size']:#x} runs past the end of the file")
    elif h["dcrc"] != h["dcrc_computed"]:
        problems.append(f"data CRC32 {h['dcrc']:#010x} does not match the data ({h['dcrc_computed']:#010x})")
    body = data[h["data_offset"]:h["data_offset"] + h["size"]]
    payload = None
    if body[:4] == b"\xd0\x0d\xfe\xed":
        payload = {"kind": "dtb", **_dtb_identity(body, path)}
    elif kernels.is_dt_kernel(body):
        payload = {"kind": kernels.read_dt_kernel(body, path)["kind"]}
    doc = {"header": h, "payload": payload,
           "verdicts": [v.to_json() for v in verdicts.kernel_verdicts(data, h)]}
    return UImageReport(path=str(path), format="uimage", problems=problems, doc=doc)


@dataclass
class FitReport(DocumentReport):
    def render_text(self):
        d = self.doc
        out = [f"{self.path}: FIT image" + (f" ({d['description']})" if d["description"] else ""),
               f"  timestamp {d['timestamp']}, {len(d['images'])} images, data "
               f"{'after the DTB (mkimage -E) from ' + hex(d['external_base']) if d['external'] else 'in the DTB'}"]
        for img in d["images"]:
            p = img["props"]
            out.append(f"  image {img['name']}: {p.get('type', '?')} {p.get('arch', '')} {p.get('os', '')} "
                       f"{p.get('compression', '')}, {img['data_size']} bytes"
                       + (f" at file offset {img['data_offset']:#x}" if img["data_offset"] is not None else "")
                       + (f", load {img['load']:#x}" if img["load"] is not None else "")
                       + (f", entry {img['entry']:#x}" if img["entry"] is not None else ""))
            if p.get("description"):
                out.append(f"    description: {p['description']}")
            for h in img["hashes"]:
                out.append(f"    {h['name']}: {h['algo']} {h['value']} {'ok' if h['ok'] else 'BAD'}")
            for s in img["signatures"]:
                out.append(f"    {s['name']}: {s['algo']} key {s['key_name_hint']!r} "
                           f"({'signed' if s['signed'] else 'unsigned'}; checking needs U-Boot's key)")
            if "dtb" in img:
                t = img["dtb"]
                out.append(f"    device tree: {t['error']}" if "error" in t else
                           f"    device tree: model {t['model']!r}, compatible {', '.join(t['compatible'])}")
            if "kernel" in img:
                out.append(f"    kernel: {img['kernel']}")
        out.append(f"  configurations (default {d['default']}):")
        for c in d["configurations"]:
            out.append(f"    {c['name']}: kernel {c['kernel']}, fdt {', '.join(c['fdt']) or '-'}, ramdisk "
                       f"{c['ramdisk'] or '-'}" + (f", loadables {', '.join(c['loadables'])}" if c["loadables"]
                                                   else "") + (f" ({c['description']})" if c["description"] else ""))
            for s in c["signatures"]:
                out.append(f"      {s['name']}: {s['algo']} key {s['key_name_hint']!r} signs "
                           f"{', '.join(s['sign_images']) or '?'} ({'signed' if s['signed'] else 'unsigned'})")
        for p in self.problems:
            out.append(f"Problem: {p}")
        out += _render_verdicts(d["verdicts"])
        return "\n".join(out) + "\n"


def inspect_fit(path, data):
    # Function-level import: FIT reading only for DTBs with an /images node.
    from bootforge.fdtboot.fit import read_fit
    fit = read_fit(data, path)
    images = []
    for img in fit.images:
        entry = {"name": img.name, "props": img.props, "load": img.load, "entry": img.entry,
                 "storage": img.storage, "data_offset": img.data_offset, "data_size": img.data_size,
                 "hashes": img.hashes, "signatures": img.signatures}
        if img.props.get("type") == "flat_dt" and img.props.get("compression", "none") == "none":
            entry["dtb"] = _dtb_identity(bytes(img.data), path)
        elif img.props.get("type") in ("kernel", "kernel_noload") and kernels.is_dt_kernel(img.data):
            head = bytes(img.data[:kernels.HEADER_PEEK])     # the kind needs the header only
            entry["kernel"] = TITLES.get(kernels.read_dt_kernel(head, path)["kind"], "uImage")
        images.append(entry)
    doc = {"description": fit.description, "timestamp": fit.timestamp, "default": fit.default,
           "external": any(i.storage in ("external", "position") for i in fit.images),
           "external_base": fit.external_base, "images": images,
           "configurations": [{"name": c.name, "description": c.description, "kernel": c.kernel, "fdt": c.fdt,
                               "ramdisk": c.ramdisk, "loadables": c.loadables, "compatible": c.compatible,
                               "signatures": c.signatures} for c in fit.configurations],
           "verdicts": [v.to_json() for v in verdicts.kernel_verdicts(data, None, fit=fit)]}
    return FitReport(path=str(path), format="fit", problems=list(fit.problems), doc=doc)


UBOOT_VERSION = re.compile(rb"U-Boot (20\d\d\.\d\d[^\s(]*) \(([^)]*)\)")
ARM64_BRANCH_MASK, ARM64_BRANCH = 0xFC000000, 0x14000000
RISCV_CSRR_MHARTID = 0xF1402573        # csrr a0, mhartid: M-mode entry (qemu-riscv64)


def looks_like_uboot(data):
    return UBOOT_VERSION.search(data[:8 << 20]) is not None


@dataclass
class UBootReport(DocumentReport):
    def render_text(self):
        d = self.doc
        out = [f"{self.path}: U-Boot {d['version']} ({d['built']}), {d['arch']} {d['mode']}, "
               f"{human_size(d['size'])}"]
        if d.get("text_base") is not None:
            out.append(f"  start.S header: TEXT_BASE {d['text_base']:#x}, image end {d['end_ofs']:#x}, bss "
                       f"[{d['bss_start_ofs']:#x}, {d['bss_end_ofs']:#x})"
                       + (f", appended DTB: {d['appended_dtb']}" if d.get("appended_dtb") else ", no appended DTB"))
        out += _render_verdicts(d["verdicts"])
        return "\n".join(out) + "\n"


def inspect_uboot(path, data):
    """U-Boot's own u-boot.bin: its version string, the architecture its first instruction is
    for, arm64's start.S words (arch/arm/cpu/armv8/start.S: b reset, _TEXT_BASE, _end_ofs,
    _bss_start_ofs, _bss_end_ofs) and how QEMU's virt machines start it."""
    m = UBOOT_VERSION.search(data[:8 << 20])
    if m is None:       # `inspect --format u-boot` of another file: the detection's test, failed
        raise FormatError("no U-Boot version string (\"U-Boot 20yy.mm (date)\") in the first 8 MiB",
                          path=path, offset=0)
    first = int.from_bytes(data[:4], "little")
    doc = {"version": m.group(1).decode("latin-1"), "built": m.group(2).decode("latin-1"), "size": len(data)}
    if first & ARM64_BRANCH_MASK == ARM64_BRANCH and len(data) >= 40:
        doc.update(arch="aarch64", mode="EL2/EL1 (-bios: QEMU's flash at 0)")
        doc.update(dict(zip(("text_base", "end_ofs", "bss_start_ofs", "bss_end_ofs"),
                            struct.unpack_from("<QQQQ", data, 8))))
        end = doc["end_ofs"]
        if data[end:end + 4] == b"\xd0\x0d\xfe\xed":
            doc["appended_dtb"] = _dtb_identity(data[end:], path)
        verdicts_ = [verdicts._v("qemu-bios", True, "qemu-system-aarch64 -M virt -bios: runs from flash at 0 and "
                                 "takes QEMU's DTB at the start of RAM"),
                     verdicts.uboot_bootm_other()]
    elif first >> 24 == 0xEA:
        doc.update(arch="arm", mode="SVC (-bios: QEMU's flash at 0)")
        verdicts_ = [verdicts._v("qemu-bios", True, "qemu-system-arm -M virt -bios: runs from flash at 0"),
                     verdicts.uboot_bootm_other()]
    elif first == RISCV_CSRR_MHARTID:
        doc.update(arch="riscv64", mode="M-mode (in place of OpenSBI)")
        verdicts_ = [verdicts._v("qemu-bios", True, "qemu-system-riscv64 -M virt -bios: runs at 0x80000000 in "
                                 "M-mode instead of OpenSBI"), verdicts.uboot_bootm_other()]
    else:
        doc.update(arch="riscv64", mode="S-mode (after OpenSBI)")
        verdicts_ = [verdicts._v("qemu-riscv-kernel", True, "qemu-system-riscv64 -M virt -kernel: OpenSBI "
                                 "fw_dynamic starts it in S-mode at 0x80200000"), verdicts.uboot_bootm_other()]
    doc["verdicts"] = [v.to_json() for v in verdicts_]
    return UBootReport(path=str(path), format="u-boot", doc=doc)
