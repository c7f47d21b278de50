"""`bootforge inspect` of a UKI or an EFI-stub Linux kernel (any "HdrS" bzImage): the PE
facts, each section (text sections shown: .osrel parsed as os-release(5), .cmdline,
.uname, .sbat), the kernel's setup header, and the verdicts of OVMF, systemd-stub,
GRUB's `linux` and QEMU's -kernel (bootforge/uki/verdicts.py). JSON keeps sections by
name, like ukify's `inspect --json`.
"""

import hashlib
import shlex
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.report import DocumentReport
from bootforge.secureboot import ACTIVE
from bootforge.secureboot.report import authenticode_section, render_authenticode
from bootforge.uki import measure, verdicts
from bootforge.uki.kernel import is_bzimage, read_bzimage
from bootforge.pe.image import read_pe, section_overlaps

TEXT_SECTIONS = (".osrel", ".cmdline", ".uname", ".sbat", ".sdmagic")
UKI_SECTIONS = (".linux", ".initrd", ".osrel", ".cmdline", ".uname", ".splash", ".dtb", ".pcrsig", ".pcrpkey")


def parse_os_release(text):
    """os-release(5): KEY=value lines, shell-like quoting; comments and blank lines skipped."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            words = shlex.split(value)
            out[key.strip()] = words[0] if len(words) == 1 else " ".join(words)
        except ValueError:
            out[key.strip()] = value
    return out


def _hex(value):
    """A setup header field for text: hex, or n/a when the kernel's protocol has no such field."""
    return "n/a" if value is None else f"{value:#x}"


def _text(data):
    return data.rstrip(b"\0").decode("utf-8", "replace")


@dataclass
class EfiLinuxReport(DocumentReport):
    def render_text(self):
        d = self.doc
        out = [f"{self.path}: {d['kind']}"]
        p = d.get("pe")
        if p:
            out.append(f"  PE: {p['format']} machine {p['machine']:#x} subsystem {p['subsystem']} "
                       f"({p['subsystem_name']}), entry RVA {p['entry_point']:#x}, SizeOfImage {p['size_of_image']:#x}, "
                       f"SectionAlignment {p['section_alignment']:#x}, FileAlignment {p['file_alignment']:#x}")
            out.append("  sections:  name         RVA      size      file offset")
            for name, s in d["sections"].items():
                out.append(f"    {name:<10} {s['virtual_address']:#10x} {s['virtual_size']:#10x} {s['raw_offset']:#10x}"
                           f"  {','.join(s['flags'])}")
                if "text" in s and name != ".osrel":
                    for line in s["text"].strip().splitlines()[:8]:
                        out.append(f"        | {line}")
                if name == ".osrel" and "os_release" in s:
                    out.append("        | " + ", ".join(f"{k}={v}" for k, v in s["os_release"].items()))
        k = d.get("linux")
        if k:
            out.append(f"  kernel{' (.linux)' if d['kind'] == 'UKI' else ''}: {k['kernel_version'] or '?'}")
            out.append(f"    boot protocol {k['protocol_version']}, init_size {_hex(k['init_size'])}, pref_address "
                       f"{_hex(k['pref_address'])}, kernel_alignment {_hex(k['kernel_alignment'])}, relocatable "
                       f"{'n/a' if k['relocatable'] is None else 'yes' if k['relocatable'] else 'no'}")
            out.append(f"    xloadflags {_hex(k['xloadflags'])} ({' '.join(k['xloadflags_names']) or 'none'}), "
                       f"handover_offset {_hex(k['handover_offset'])}, initrd_addr_max {_hex(k['initrd_addr_max'])}")
        elif d.get("linux_error"):
            out.append(f"  kernel: {d['linux_error']}")
        elif d.get("arm64_image"):
            # Function-level import: the arm64 views only for an arm64 UKI.
            from bootforge.uki.arm64 import render
            out += render(d["arm64_image"], d["kind"] == "UKI")
        if "authenticode" in d:
            out += render_authenticode(d["authenticode"])
        if "pcrs" in d:
            out.append(f"  predicted PCRs ({d['pcrs']['source']}):")
            for pcr in ("4", "7", "11"):
                if pcr in d["pcrs"]:
                    out.append(f"    PCR {pcr:>2} sha256 {d['pcrs'][pcr]['sha256']}")
            if "7" in d["pcrs"]:
                out.append(f"    PCR  7 events: {', '.join(d['pcrs']['pcr7_events'])}")
            else:
                out.append("    PCR  7: give --secureboot-vars VARS.fd (the firmware's variable store decides it)")
            out.append(f"    PCR 11 events: {', '.join(d['pcrs']['pcr11_events'])}")
        out.append("  verdicts:")
        for v in d["verdicts"]:
            words = f" [{v['words']}]" if v["words"] and not v["ok"] else ""
            status = "takes" if v["ok"] and v["severity"] == "error" or v["ok"] else "REFUSES"
            if v["severity"] == "warning":
                status = "warn"
            out.append(f"    {v['subject']:<16} {status:<7} {v['reason']}{words}")
        return "\n".join(out)


def inspect_efi_linux(path, data):
    """Report on a UKI (a PE with .linux) or a Linux bzImage (with or without the EFI stub)."""
    img = None
    if data[:2] == b"MZ":
        img = read_pe(data)
    bz, bz_error, kernel = None, None, data
    uki = img is not None and img.section(".linux") is not None
    if uki:
        kernel = img.section(".linux").data(data)
    if is_bzimage(kernel) or not uki:
        try:
            bz = read_bzimage(kernel)
        except FormatError as exc:
            if not uki:
                raise
            bz_error = exc.message
    else:
        bz_error = "no 'HdrS' setup header at 0x202"
    doc = {"kind": "UKI" if uki else ("Linux EFI-stub bzImage" if img else "Linux bzImage (no EFI stub)")}
    problems = []
    vs = []
    if img is not None:
        doc["pe"] = img.to_json()
        sections = {}
        for s in img.sections:
            entry = s.to_json()
            body = s.data(data)
            entry["sha256"] = hashlib.sha256(body).hexdigest()
            if s.name in TEXT_SECTIONS:
                entry["text"] = _text(body)
                if s.name == ".osrel":
                    entry["os_release"] = parse_os_release(entry["text"])
            sections.setdefault(s.name, entry)
        doc["sections"] = sections
        for a, b, where in section_overlaps(img):
            problems.append(f"sections {a.name} and {b.name} overlap in {where}")
        doc["authenticode"], signature_problems, _ = authenticode_section(data, img, path)
        problems += signature_problems
        if uki and measure.WANTED.get():
            doc["pcrs"] = measure.predictions(data, img, policy=ACTIVE.get())
        vs.append(verdicts.uefi_verdict(img, len(data)))
        if uki:
            vs.append(verdicts.stub_verdict(img, data, bz, bz_error))
    else:
        vs.append(verdicts._v("uefi", False, "no PE header (no 'MZ'): a bzImage without the EFI stub; "
                              "OVMF cannot start it from an ESP", words="Unsupported"))
    if bz is not None:
        doc["linux"] = bz.to_json()
        if uki:
            doc["linux"]["uname"] = bz.uname
    else:
        doc["linux_error"] = bz_error
    grub = verdicts.grub_verdict(bz, bz_error)
    # GRUB's `linux` is given the kernel: for a UKI the one in .linux (the UKI itself has no setup header).
    vs.append(grub.with_reason("the kernel in .linux: " + grub.reason) if uki else grub)
    vs += verdicts.qemu_verdicts(data, None if uki else bz, img)
    if uki and kernel[0x38:0x3C] == b"ARM\x64":
        # An arm64 UKI (linuxaa64.efi.stub): AAVMF's, systemd-stub's and QEMU's verdicts instead of the
        # x86 ones, and the embedded Image's two views. Function-level import: bootforge/uki/arm64.py
        # only for an arm64 UKI.
        from bootforge.uki.arm64 import arm64_uki
        vs = arm64_uki(doc, img, data, kernel)
    doc["verdicts"] = [v.to_json() for v in vs]
    # A PE that OVMF or systemd-stub refuses is a defect (exit 1); a bzImage without the EFI stub
    # is normal for its kind (GRUB and QEMU start it): its uefi verdict is reported, not a defect.
    # So is a consistent 32-bit image (PE32, IA32: memtest86+ia32.efi) for 32-bit UEFI.
    ia32 = img is not None and img.magic == 0x10B and img.machine == 0x14C
    judged = ("uefi", "systemd-stub") if img is not None and not ia32 else ()
    problems += [f"{v.subject}: {v.reason}" for v in vs if v.fails and v.subject in judged]
    return EfiLinuxReport(path=str(path), format="uki" if uki else "linux-kernel", problems=problems, doc=doc)

