"""`bootforge inspect` readers for kernels (ELF, PE, Linux bzImage, flat Multiboot images),
gzip/xz wrappers (transparent) and boot-information dumps."""

from dataclasses import dataclass

from bootforge.compress.streams import MAX_DECOMPRESSED, decompress  # noqa: F401  (the one path)
from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.formats.pe import PeMachine, PeSubsystem
from bootforge.multiboot import entry, headers, verdicts
from bootforge.pe import read_pe_facts
from bootforge.report import DocumentReport
from bootforge.verdict import Verdict
from bootforge.text import field_text, named



def _tag_field(tag, key, value):
    """One field of a header tag as text; requested info tags are named beside their numbers."""
    if key == "requests":
        return "requests [" + ", ".join(named(n, fmt.Mb2Tag.label_of(n)) for n in value) + "]"
    return f"{key} {field_text(key, value)}"


@dataclass
class KernelReport(DocumentReport):
    @property
    def exit_status(self):
        """1 for a defect, and when the kernel has a header of a protocol (or its magic) but no
        modelled loader of that protocol loads it (grub-file answers by exit status too)."""
        return 1 if self.problems or self.doc.get("refused_protocols") else 0

    def render_text(self):
        d = self.doc
        out = [f"{self.path}: {d['kind']}" + (f" ({d['compression']}-compressed, "
                                               f"{d['decompressed_size']} bytes inside)"
                                               if d.get("compression") else "")]
        if d.get("elf"):
            e = d["elf"]
            out.append(f"  ELF: {e['class']} machine {named(e['machine'], fmt.ElfMachine.label_of(e['machine']))} "
                       f"type {e['type']} "
                       f"entry {e['entry']:#x}, {e['phnum']} program headers at {e['phoff']:#x}")
        if d.get("pe"):
            p = d["pe"]
            out.append(f"  PE: {p['format']} machine {named(p['machine'], PeMachine.label_of(p['machine']), '#x')} "
                       f"subsystem {named(p['subsystem'], PeSubsystem.label_of(p['subsystem']))} "
                       f"entry RVA {p['entry_point']:#x} image base {p['image_base']:#x}")
        if d.get("segments"):
            out.append("  segments:   type             offset          vaddr          paddr"
                       "     filesz      memsz")
            for s in d["segments"]:
                out.append(f"    {s['index']:3d} {s['type_name']:<12} {s['offset']:#10x} {s['vaddr']:#14x} "
                           f"{s['paddr']:#14x} {s['filesz']:#10x} {s['memsz']:#10x}")
        m1 = d.get("multiboot1")
        if m1:
            out.append(f"  Multiboot1 header at {m1['offset']:#x}: flags {m1['flags']:#x}, checksum "
                       f"{m1['checksum']:#x} ({'ok' if m1['checksum_ok'] else 'BAD'})")
            for name in ("addresses", "video"):
                if m1.get(name):
                    out.append(f"    {name}: " + ", ".join(f"{k} {field_text(k, v)}" for k, v in m1[name].items()))
        elif d.get("multiboot1_rejected"):
            out.append("  Multiboot1 header: none that loaders take; " + _rejections(d["multiboot1_rejected"]))
        else:
            out.append("  Multiboot1 header: none in the first 8 KiB")
        m2 = d.get("multiboot2")
        if m2:
            out.append(f"  Multiboot2 header at {m2['offset']:#x}: architecture {m2['architecture']} "
                       f"({m2['architecture_name']}), header_length {m2['header_length']}")
            for t in m2["tags"]:
                extra = ", ".join(_tag_field(t, k, v) for k, v in t.items()
                                  if k not in ("type", "name", "optional", "flags", "size", "position",
                                               "request_names"))
                out.append(f"    tag {t['type']:2d} {t['name']:<22} size {t['size']:3d}"
                           f"{' optional' if t['optional'] else ''}{': ' + extra if extra else ''}")
        elif d.get("multiboot2_rejected"):
            out.append("  Multiboot2 header: none that loaders take; " + _rejections(d["multiboot2_rejected"]))
        else:
            out.append("  Multiboot2 header: none in the first 32 KiB")
        if d.get("entry") is not None:
            out.append(f"  entry {d['entry']:#x}" + (f" ({d['entry_how']})" if d.get("entry_how") else ""))
        out.append("  loaders:")
        for name, v in d["loaders"].items():     # Verdict JSON (bootforge.verdict)
            out.append(f"    {name:<12} {Verdict(**v).status_word(verdicts.WORDS):<7} {v['reason']}")
        for protocol in d.get("refused_protocols", []):
            out.append(f"  no modelled {protocol} loader loads this kernel")
        if self.problems:
            out.append("Problems:")
            out += [f"  {p}" for p in self.problems]
        return "\n".join(out)


def _rejections(rejected):
    return "; ".join(f"magic at {r['offset']:#x}: " + ", ".join(r["problems"]) for r in rejected)


def kernel_document(path, data, compression=None, given=None):
    """The JSON document for a kernel; *given* is the file as given when *data* was decompressed."""
    given = data if given is None else given
    doc = {"kind": "unknown", "compression": compression}
    if compression:
        doc["decompressed_size"] = len(data)
    elf = None
    if data[:4] == fmt.ELF_MAGIC:
        elf = headers.read_elf(data)
        doc["kind"] = f"ELF{elf.bits}"
        doc["elf"] = elf.to_json()
        doc["segments"] = [s.to_json() for s in elf.segments]
        # Where GRUB and Limine jump (e_entry translated through the segment holding it,
        # bootforge.multiboot.entry); the ELF header's own value is doc["elf"]["entry"].
        found = entry.translate(elf, "grub")
        doc["entry"] = found.address if found is not None else elf.entry
        if found is not None and found.address != elf.entry:
            doc["entry_how"] = found.detail()
    elif data[:2] == b"MZ":
        pe = read_pe_facts(data)
        doc["kind"] = "PE32+" if pe.magic == 0x20B else "PE32"
        doc["pe"] = pe.to_json()
        doc["segments"] = []
        doc["entry"] = pe.image_base + pe.entry_point
    else:
        doc["segments"] = []
        doc["entry"] = None
    if verdicts.is_linux_bzimage(data):
        doc["kind"] += " Linux bzImage" if doc["kind"] != "unknown" else ""
        if doc["kind"] == "unknown":
            doc["kind"] = "Linux bzImage"
    mb1 = headers.find_mb1(data)
    try:
        mb2 = headers.find_mb2(data)
    except FormatError:
        # A header_length below 24 or past the file end is reported with every loader's verdict
        # (rejected_mb2 names it); a tag that lies inside a sound header stays unusable input.
        if not headers.rejected_mb2(data):
            raise
        mb2 = None
    doc["multiboot1_rejected"] = [] if mb1 else headers.rejected_mb1(data)
    doc["multiboot2_rejected"] = [] if mb2 else headers.rejected_mb2(data)
    if doc["kind"] == "unknown" and (mb1 or mb2):
        doc["kind"] = "flat Multiboot image"
    if mb1 and mb1["aout_kludge"] and mb1["addresses"]:
        doc["entry"] = mb1["addresses"]["entry_addr"]
        doc["entry_how"] = "MB1 a.out kludge entry_addr"
    doc["multiboot1"] = mb1
    doc["multiboot2"] = mb2
    judged = verdicts.verdicts(given, data, compression)
    doc["loaders"] = {name: v.to_json() for name, v in judged.items()}
    # The protocols the kernel speaks (a header, or its magic) that no modelled loader loads.
    spoken = [p for p, h, r in (("multiboot1", mb1, doc["multiboot1_rejected"]),
                                ("multiboot2", mb2, doc["multiboot2_rejected"])) if h or r]
    doc["refused_protocols"] = [p for p in spoken
                                if not any(v.ok for name, v in judged.items()
                                           if verdicts.KERNEL_LOADERS.get(name).protocol == p)]
    return doc


def _kernel_report(path, data, compression=None, given=None):
    doc = kernel_document(path, data, compression, given)
    problems = [f"Multiboot{n} magic at {r['offset']:#x} is no header loaders take: " + ", ".join(r["problems"])
                for n in (1, 2) for r in doc[f"multiboot{n}_rejected"]]
    if data[:4] == fmt.ELF_MAGIC:
        problems += headers.elf_file_defects(headers.read_elf(data), data)
    return KernelReport(path=str(path), format="multiboot-kernel", problems=problems, doc=doc)


def inspect_elf(path, data):
    return _kernel_report(path, data)


def inspect_pe(path, data):
    return _kernel_report(path, data)


def inspect_kernel(path, data):
    return _kernel_report(path, data)


def is_kernel(data):
    """Would the kernel report describe *data* (ELF, PE, bzImage, or a Multiboot header)?"""
    return (data[:4] == fmt.ELF_MAGIC or data[:2] == b"MZ" or verdicts.is_linux_bzimage(data)
            or b"\x02\xb0\xad\x1b" in data[:fmt.MB1_SEARCH] or b"\xd6\x50\x52\xe8" in data[:fmt.MB2_SEARCH])


def compressed_kernel_report(path, inner, kind, given):
    """The kernel report of *inner*, decompressed from *given* (the gzip/xz file as given)."""
    return _kernel_report(path, inner, kind, given)
