"""The Secure Boot part of `bootforge inspect` for any PE image: its Authenticode hash, the
bytes outside it, each signature (signer, issuer, digest algorithm, whether the digest and
the signature check), `.sbat`, and OVMF's verdict under the db/dbx asked for
(bootforge/secureboot/policy.py). Also the report of an EFI PE that is no UKI (GRUB,
systemd-boot, Limine, shim, EFI drivers).

Cost: hashing is hashlib; cryptography and asn1crypto are imported only for an image with a
certificate table or when a verdict is asked for.
"""

import dataclasses
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.formats import pe as fmt
from bootforge.pe.authenticode import hash_layout
from bootforge.pe.image import read_pe, section_overlaps
from bootforge.report import DocumentReport
from bootforge.secureboot import ACTIVE


def authenticode_section(data, img, path=None):
    """(doc, problems, verdict or None) of the image's signatures and Secure Boot verdict."""
    table_outside = None
    try:
        layout = hash_layout(data, img, path)
    except FormatError as exc:
        offset, size = img.directories.get("security", (0, 0))
        if not size or "certificate table" not in exc.message:
            raise
        # A table pointer outside the file: the image is readable, its signature absent for
        # every reader (OVMF's verification fails on it: reported, exit 1).
        table_outside = exc.message
        layout = hash_layout(data, dataclasses.replace(img, directories={**img.directories, "security": (0, 0)}),
                             path)
        layout.table_problem = table_outside
        layout.cert_table = (offset, size)
    digest = layout.digest(data)
    doc = {"authenticode_sha256": digest.hex(),
           "unhashed_gaps": [{"between": n, "start": a, "end": b} for n, a, b in layout.gaps],
           "certificate_table": {"offset": layout.cert_table[0], "size": layout.cert_table[1],
                                 "problem": layout.table_problem},
           "signatures": []}
    problems = []
    signatures = []
    if layout.entries:
        # Function-level import: cryptography and asn1crypto only for a signed image.
        from bootforge.pe.signature import read_signatures
        signatures = read_signatures(data, layout)
        doc["signatures"] = [s.to_json() for s in signatures]
        for s in signatures:
            if s.certificate_type != fmt.WinCertType.PKCS_SIGNED_DATA:
                continue
            # No image digest: the signature's own problem (an unknown algorithm, bad DER) says why.
            if s.signed_digest is not None and s.image_digest is not None and not s.digest_matches:
                problems.append(f"signature {s.index}: digest check failed: the image's {s.digest_algorithm} "
                                f"Authenticode hash {s.image_digest.hex()} is not the signed "
                                f"{s.signed_digest.hex()} (bytes changed after signing)")
            for p in s.problems:
                problems.append(f"signature {s.index}: {p}")
    if layout.table_problem:
        problems.append(f"certificate table: {layout.table_problem}")
    if layout.entries and layout.gaps:
        n, a, b = layout.gaps[0]
        problems.append(f"signed, but bytes [{a:#x}, {b:#x}) between {n} lie outside the Authenticode hash")
    sbat = img.section(".sbat")
    if sbat is not None:
        doc["sbat"] = sbat.data(data).rstrip(b"\0").decode("utf-8", "replace")
    verdict = None
    policy = ACTIVE.get()
    if policy is not None:
        # Function-level import: the verdict checks certificate chains (cryptography), only when asked.
        from bootforge.secureboot.policy import secureboot_verdict
        verdict = secureboot_verdict(policy, layout, signatures, digest)
        doc["secureboot"] = verdict.to_json()
        if verdict.fails:
            problems.append(f"{verdict.subject}: {verdict.reason}")
    return doc, problems, verdict


def render_authenticode(a):
    """Text lines of an authenticode_section document."""
    out = [f"  Authenticode SHA-256 {a['authenticode_sha256']}"]
    for g in a["unhashed_gaps"]:
        out.append(f"    bytes [{g['start']:#x}, {g['end']:#x}) between {g['between']}: outside the hash")
    t = a["certificate_table"]
    if not t["size"]:
        out.append("  signatures: none (no certificate table)")
    else:
        out.append(f"  certificate table at {t['offset']:#x}, {t['size']} bytes"
                   + (f": {t['problem']}" if t["problem"] else ""))
    for s in a["signatures"]:
        state = "OK" if s["digest_matches"] and s["signature_valid"] and not s["problems"] else "FAILED"
        out.append(f"    signature {s['index']} {state}: signer {s['signer']}, issuer {s['issuer']}, "
                   f"digest {s['digest_algorithm']} {'matches' if s['digest_matches'] else 'DOES NOT MATCH'}, "
                   f"signature {'valid' if s['signature_valid'] else 'INVALID'}")
        for p in s["problems"]:
            out.append(f"      {p}")
    if "sbat" in a:
        out.append("  .sbat:")
        out += [f"    | {line}" for line in a["sbat"].strip().splitlines()[:12]]
    v = a.get("secureboot")
    if v:
        words = f" [{v['words']}]" if v["words"] and not v["ok"] else ""
        out.append(f"  OVMF Secure Boot ({v['facts'].get('policy')}): {'runs' if v['ok'] else 'REFUSES'}: "
                   f"{v['reason']}{words}")
    return out




@dataclass
class EfiPeReport(DocumentReport):
    def render_text(self):
        d = self.doc
        p = d["pe"]
        out = [f"{self.path}: {d['kind']}",
               f"  PE: {p['format']} machine {p['machine']:#x} ({fmt.PeMachine.label_of(p['machine'])}) subsystem "
               f"{p['subsystem']} ({p['subsystem_name']}), entry RVA {p['entry_point']:#x}, SizeOfImage "
               f"{p['size_of_image']:#x}, {len(d['sections'])} sections"]
        out += render_authenticode(d["authenticode"])
        out += [f"  problem: {x}" for x in self.problems]
        return "\n".join(out)


def inspect_efi_pe(path, data):
    """Report on an EFI PE image that is not a UKI: headers, sections, signatures, Secure Boot."""
    try:
        img = read_pe(data)
    except FormatError as exc:
        raise exc.located(path=path) from None
    doc = {"kind": fmt.PeSubsystem.label_of(img.subsystem), "pe": img.to_json(),
           "sections": [s.to_json() for s in img.sections]}
    section, problems, _ = authenticode_section(data, img, path)
    doc["authenticode"] = section
    problems += [f"sections {a.name} and {b.name} overlap in {w}" for a, b, w in section_overlaps(img)]
    return EfiPeReport(path=str(path), format="efi-pe", problems=problems, doc=doc)
