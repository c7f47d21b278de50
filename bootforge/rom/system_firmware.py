"""System firmware images: what a machine runs from its flash before any option ROM or
loader, as QEMU loads them (`-bios bios.bin`, `-drive if=pflash,file=OVMF_CODE.fd`).

- A legacy BIOS image (SeaBIOS's bios.bin, bios-256k.bin): a whole number of 64 KiB
  blocks whose last 16 bytes are the x86 reset vector at F000:FFF0, a far jump
  (opcode 0xEA; SeaBIOS src/romlayout.S reset_vector: `ljmpw $SEG_BIOS, $entry_post`),
  then the BIOS date "mm/dd/yy" at F000:FFF5 and the model byte at F000:FFFE
  (src/romlayout.S). The version is SeaBIOS's VERSION string; the tables it carries
  are found by their signatures ($PIR, _MP_, $PMM, _32_, _SM_, $PnP: src/fw/*.c).
- A UEFI flash image (OVMF/AAVMF .fd): firmware volumes (bootforge/formats/firmware_volume.py)
  laid end to end at block boundaries; each is named by its FileSystemGuid and, when it has
  an extended header, its FvNameGuid.

Recognition is by what the firmware itself relies on (the reset vector, the _FVH
signature with a header that sums to 0), never by the file name.
"""

import re

from bootforge.errors import FormatError
from bootforge.formats import firmware_volume as fv, parse
from bootforge.report import DocumentReport
from bootforge.text import human_size

BLOCK = 0x10000                     # legacy BIOS images are whole 64 KiB blocks (QEMU maps them below 4 GiB)
MAX_BIOS_SIZE = 16 << 20            # QEMU's -bios takes at most 16 MiB (hw/i386/x86.c)
RESET_VECTOR = 16                   # the last 16 bytes: F000:FFF0 onwards
FAR_JUMP = 0xEA
_DATE = re.compile(rb"\d\d/\d\d/\d\d")
FV_STEP = 0x1000                    # volumes start at block (4 KiB) boundaries
FV_SNIFF_SPAN = 0x10000             # the first volume lies within the first 64 KiB (AAVMF: at 0x1000)
MAX_VOLUMES = 64
# The structures a BIOS publishes for the OS and option ROMs, by their signatures (SeaBIOS
# src/fw/pirtable.c, mptable.c, src/pmm.c, src/fw/biostables.c, src/pnpbios.c).
BIOS_TABLES = {b"$PIR": "PCI IRQ routing table", b"_MP_": "MP floating pointer", b"$PMM": "POST memory manager",
               b"_32_": "BIOS32 service directory", b"_SM_": "SMBIOS entry point", b"$PnP": "PnP BIOS header"}
_SEABIOS_VERSION = re.compile(rb"\d+\.\d+\.\d+[0-9A-Za-z.~+\-]*")


def is_legacy_bios(data):
    """A 64 KiB-multiple image ending in the reset vector's far jump and a BIOS date."""
    size = len(data)
    if not size or size % BLOCK or size > MAX_BIOS_SIZE:
        return False
    tail = data[-RESET_VECTOR:]
    return tail[0] == FAR_JUMP and _DATE.fullmatch(tail[5:13]) is not None


def _volume_at(data, at):
    """The header fields of a firmware volume at *at*, or None when no valid one starts there."""
    if data[at + fv.FV_SIGNATURE_OFFSET:at + fv.FV_SIGNATURE_OFFSET + 4] != fv.FV_SIGNATURE:
        return None
    if at + fv.FV_HEADER_SIZE > len(data):
        return None
    header = parse(fv.FirmwareVolumeHeader, data, at, "firmware volume header")
    length = header.header_length
    if length < fv.FV_HEADER_SIZE or length & 1 or at + length > len(data):
        return None
    words = data[at:at + length]
    if sum(int.from_bytes(words[i:i + 2], "little") for i in range(0, length, 2)) & 0xFFFF:
        return None     # PI spec: the 16-bit sum of the header is 0 (EDK2 FvHeader checks)
    return header


def is_uefi_flash(data):
    """A firmware volume (_FVH with a header that sums to 0) in the first 64 KiB, at a 4 KiB boundary."""
    return any(_volume_at(data, at) is not None for at in range(0, min(len(data), FV_SNIFF_SPAN), FV_STEP))


def _volumes(data, problems):
    """Every volume, from the first one on: a volume's length leads to the next; a gap is
    searched forward at 4 KiB steps (OVMF_CODE.fd: FVMAIN_COMPACT, then SECFV at its end)."""
    out, at = [], 0
    while at < len(data) and len(out) < MAX_VOLUMES:
        header = _volume_at(data, at)
        if header is None:
            at += FV_STEP
            continue
        doc = {"offset": at, "length": header.fv_length,
               "file_system_guid": fv.guid_text(header.file_system_guid),
               "file_system": fv.FvFileSystem.label_of(fv.guid_value(header.file_system_guid), None),
               "attributes": header.attributes, "revision": header.revision, "name_guid": None, "name": None}
        ext = header.ext_header_offset
        if ext and at + ext + fv.FirmwareVolumeExtHeader.sizeof() <= min(len(data), at + header.fv_length):
            name = parse(fv.FirmwareVolumeExtHeader, data, at + ext, "firmware volume extended header")
            doc["name_guid"] = fv.guid_text(name.fv_name)
            doc["name"] = fv.FvName.label_of(fv.guid_value(name.fv_name), None)
        out.append(doc)
        if header.fv_length < header.header_length or at + header.fv_length > len(data):
            problems.append(f"firmware volume at {at:#x}: FvLength {header.fv_length:#x} runs past the end of "
                            f"the file ({len(data):#x} bytes)")
            break
        at += max(FV_STEP, -(-header.fv_length // FV_STEP) * FV_STEP)
    return out


def _reset_vector(data):
    """The last 16 bytes, where x86 starts (physical 0xFFFFFFF0: the flash's top)."""
    tail = data[-RESET_VECTOR:]
    doc = {"offset": len(data) - RESET_VECTOR, "bytes": tail.hex(" ")}
    if tail[0] == FAR_JUMP:
        doc["jump"] = f"ljmp {int.from_bytes(tail[3:5], 'little'):04x}:{int.from_bytes(tail[1:3], 'little'):04x}"
    return doc


def _seabios_version(data):
    """SeaBIOS's VERSION string ("SeaBIOS (version %s)"): scripts/buildversion.py writes it and
    BUILDINFO ("gcc: (...) ... binutils: ...") as two C strings, side by side in the image."""
    info = data.find(b"gcc: (")
    if info < 0:
        return None
    end = data.find(b"\0", info)
    after = data[end + 1:data.find(b"\0", end + 1)] if end >= 0 else b""
    before = data[data.rfind(b"\0", 0, info - 1) + 1:info - 1] if info and data[info - 1] == 0 else b""
    for candidate in (after, before):
        if _SEABIOS_VERSION.fullmatch(candidate):
            return candidate.decode("ascii")
    return None


def inspect_legacy_bios(path, data):
    if not is_legacy_bios(data):
        # inspect.py's detection only counts the date's slashes, and `--format legacy-bios` takes
        # any file: the date must be digits (it is printed as ASCII) and the tail must be there.
        raise FormatError(f"not a legacy BIOS image ({len(data)} bytes; the last 16 bytes "
                          f"{data[-RESET_VECTOR:].hex(' ') or 'absent'}: a whole number of 64 KiB blocks up to "
                          "16 MiB ending in a far jump (0xea) and a mm/dd/yy BIOS date is one)",
                          path=path, offset=max(0, len(data) - RESET_VECTOR))
    version = _seabios_version(data) if b"SeaBIOS" in data else None
    tail = data[-RESET_VECTOR:]
    tables = [{"signature": sig.decode(), "what": what, "offset": data.find(sig)}
              for sig, what in BIOS_TABLES.items() if data.find(sig) >= 0]
    doc = {"kind": "legacy-bios", "firmware": "SeaBIOS" if b"SeaBIOS" in data else None, "version": version,
           "size": len(data), "mapped_at": (1 << 32) - len(data),
           "reset_vector": _reset_vector(data), "bios_date": tail[5:13].decode("ascii"),
           "model_byte": tail[14], "tables": tables}
    return SystemFirmwareReport(path=str(path), format="legacy-bios", doc=doc)


def inspect_uefi_flash(path, data):
    problems = []
    volumes = _volumes(data, problems)
    if not volumes:
        raise FormatError("no firmware volume with a valid header", path=path, offset=0)
    doc = {"kind": "uefi-flash", "size": len(data), "volumes": volumes,
           "variable_store": any(v["file_system"] and "variable store" in v["file_system"] for v in volumes),
           "reset_vector": _reset_vector(data)}
    return SystemFirmwareReport(path=str(path), format="uefi-flash", problems=problems, doc=doc)


class SystemFirmwareReport(DocumentReport):
    def render_text(self):
        d = self.doc
        if d["kind"] == "legacy-bios":
            name = d["firmware"] + (f" {d['version']}" if d["version"] else "") if d["firmware"] else "legacy BIOS"
            out = [f"{self.path}: legacy BIOS image ({name}), {d['size']} bytes ({human_size(d['size'])})",
                   f"  mapped at          {d['mapped_at']:#x}-0xffffffff (QEMU -bios; its last 128 KiB also at "
                   "0xe0000-0xfffff)",
                   f"  reset vector       file offset {d['reset_vector']['offset']:#x} (F000:FFF0): "
                   f"{d['reset_vector'].get('jump', d['reset_vector']['bytes'])}",
                   f"  BIOS date          {d['bios_date']}, model byte {d['model_byte']:#04x}"]
            for t in d["tables"]:
                out.append(f"  {t['signature']:<18} {t['what']} at file offset {t['offset']:#x}")
        else:
            kind = "variable store" if d["variable_store"] and len(d["volumes"]) == 1 else "UEFI flash image"
            out = [f"{self.path}: {kind} (EDK2 firmware volumes), {d['size']} bytes ({human_size(d['size'])})"]
            for v in d["volumes"]:
                name = v["name"] or (f"FvName {v['name_guid']}" if v["name_guid"] else "no FvName")
                out.append(f"  firmware volume at file offset {v['offset']:#x}, {v['length']:#x} bytes "
                           f"({human_size(v['length'])}): {name}")
                out.append(f"    file system      {v['file_system'] or v['file_system_guid']}")
                if v["name"] and v["name_guid"]:
                    out.append(f"    FvName           {v['name_guid']}")
            rv = d["reset_vector"]
            if len(set(rv["bytes"].split())) > 1:       # all 0x00 or 0xff: erased, no x86 code there
                out.append(f"  last 16 bytes      {rv['bytes']} (x86: the reset vector, at 0xfffffff0 when "
                           "mapped at the top of 4 GiB)")
        out += [f"  problem: {p}" for p in self.problems]
        return "\n".join(out)
