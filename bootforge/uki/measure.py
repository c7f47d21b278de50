"""Measured boot of a UKI: the PCR values OVMF and systemd-stub 252 extend, predicted from the
file (TCG PC Client Platform Firmware Profile 1.05; systemd docs/TPM2_PCR_MEASUREMENTS.md;
systemd 252 src/boot/efi/stub.c, src/fundamental/tpm-pcr.h):

- PCR 11 (systemd-stub): for each section of its list, in the list's order -- .linux, .osrel,
  .cmdline, .initrd, .splash, .dtb, .pcrpkey (252's unified_sections; .pcrsig is never
  measured, .uname and .sbat are not in 252's list) -- that the UKI has, one extend with the
  section's name and its terminating NUL, then one with its contents as loaded (VirtualSize
  bytes at its RVA: the raw data, zeros past SizeOfRawData). Each extend is
  PCR = H(PCR || H(bytes)) in every bank, from all zeros.
- PCR 4 (OVMF's Tcg2Dxe and DxeTpm2MeasureBootLib): at the first ReadyToBoot the EV_EFI_ACTION
  "Calling EFI Application from Boot Option" and the EV_SEPARATOR (four zero bytes); at each
  later boot attempt "Returning from EFI Application from Boot Option" and "Calling ..." again;
  then, for each image LoadImage starts, EV_EFI_BOOT_SERVICES_APPLICATION with its Authenticode
  hash in that bank's algorithm: the UKI, then the kernel in .linux, which systemd-stub 252
  LoadImage()s from memory (src/boot/efi/linux.c linux_exec; seen in the event log of a real
  boot: a vendor media device path, the digest the .linux bzImage's Authenticode hash).
"""

import hashlib
from contextvars import ContextVar

from bootforge.errors import FormatError, LimitError
from bootforge.pe.authenticode import hash_layout

# systemd 252 src/fundamental/tpm-pcr.h TPM_PCR_INDEX_KERNEL_IMAGE and unified_sections[] (order kept).
PCR_KERNEL_IMAGE = 11
PCR_BOOT_APPLICATIONS = 4
STUB_252_MEASURED = (".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey")
EFI_CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
EFI_RETURNING_FROM_EFI_APPLICATION = b"Returning from EFI Application from Boot Option"
SEPARATOR = bytes(4)
BANKS = ("sha1", "sha256", "sha384", "sha512")
# Real UKIs map each section at about its raw size (ukify and objcopy set VirtualSize to the
# data's size; SizeOfRawData only rounds it up): 64 MiB of zero fill is far past any of them.
MAX_ZERO_FILL = 64 << 20

# `bootforge inspect --pcrs` asks for the prediction (it hashes the whole UKI once more per bank).
WANTED = ContextVar("pcr_prediction", default=False)


def extend(value, data, bank):
    return hashlib.new(bank, value + hashlib.new(bank, data).digest()).digest()


def section_bytes(data, section):
    """A section as the loader maps it: VirtualSize bytes, zero-filled past its raw data."""
    size = section.virtual_size or section.raw_size
    body = bytes(data[section.raw_offset:section.raw_offset + min(size, section.raw_size)])
    if size - len(body) > MAX_ZERO_FILL:
        # A VirtualSize of up to 4 GiB is 4 GiB of zeros to build and hash per bank: a 2 GiB one
        # took 2.1 GB and 8 s (observed, `inspect --pcrs` of a UKI whose .osrel said 0x7fffffff).
        raise LimitError(f"section {section.name}: VirtualSize {size:#x} is {size - len(body):#x} bytes past its "
                         f"raw data, more than the {MAX_ZERO_FILL >> 20} MiB of zeros a PCR prediction fills in",
                         offset=section.header_offset + 8)
    return body + bytes(size - len(body))


def pcr11_events(data, img):
    """[(description, bytes)] systemd-stub 252 measures into PCR 11, in order."""
    contents = {}
    for name in STUB_252_MEASURED:
        s = img.section(name)
        if s is not None and (s.virtual_size or s.raw_size):
            contents[name] = section_bytes(data, s)
    return events_of_contents(contents)


def events_of_contents(contents):
    """The PCR 11 events of sections {name: bytes as loaded}: empty sections are skipped, as the
    stub skips them (and systemd-measure skips empty files)."""
    events = []
    for name in STUB_252_MEASURED:
        body = contents.get(name)
        if body:
            events.append((f"{name} name", name.encode() + b"\0"))
            events.append((f"{name} contents", body))
    return events


def replay(events, bank):
    value = bytes(hashlib.new(bank).digest_size)
    for _, payload in events:
        value = extend(value, payload, bank)
    return value


def predict_pcr11(data, img, banks=("sha256",)):
    events = pcr11_events(data, img)
    return {bank: replay(events, bank).hex() for bank in banks}, [d for d, _ in events]


PREDICTION_SOURCE = "systemd-stub 252 (PCR 11), OVMF Tcg2Dxe booting it as the first boot option (PCR 4)"


def predictions(data, img, banks=BANKS, policy=None):
    """{"11": {bank: hex}, "4": {bank: hex}, "pcr11_events": [...], "source": ...} for a UKI;
    given a Secure Boot *policy* (secureboot/policy.py) read from a VARS file, also "7" and
    "pcr7_events" (secureboot/measure.py), and PCR 4 as that Secure Boot state gives it."""
    pcr11, events = predict_pcr11(data, img, banks)
    secure = policy is not None and policy.enabled
    out = {"11": pcr11, "4": predict_pcr4(data, img, banks, secure_boot=secure), "pcr11_events": events,
           "source": PREDICTION_SOURCE}
    if policy is not None and policy.store is not None:
        # Function-level import: PCR 7 reads the signatures (cryptography) only when a VARS file is given.
        from bootforge.secureboot.measure import allowing_entry, predict_pcr7
        allowed = allowing_entry(policy, data, img)
        out["7"], out["pcr7_events"] = predict_pcr7(policy.store, secure, [allowed] if allowed else [], banks)
        out["source"] += f", OVMF Tcg2Dxe and DxeImageVerificationLib with {policy.source} (PCR 7)"
    return out


def predict_pcr4(data, img, banks=("sha256",), failed_attempts=0, secure_boot=False):
    """PCR 4 after OVMF started this image as its boot option, *failed_attempts* boot options
    (that found nothing to load) having been tried before it.

    With Secure Boot on, systemd-stub 252 LoadImage()s its kernel under its own security
    override (src/boot/efi/linux.c: the firmware's Security2 FileAuthentication is replaced for
    the kernel's buffer, so OVMF's DxeTpm2MeasureBootLib never sees it): the UKI alone is
    measured (a real boot on snakeoil OVMF, tests/data/uki-tpm-pcrs-secureboot.txt)."""
    layout = hash_layout(data, img)
    linux = img.section(".linux")
    kernel = section_bytes(data, linux) if linux is not None else None
    kernel_layout = None
    if kernel is not None:
        try:
            kernel_layout = hash_layout(kernel)
        except FormatError:
            kernel = None          # not a PE: the stub cannot LoadImage it (nothing measured)
    out = {}
    for bank in banks:
        value = bytes(hashlib.new(bank).digest_size)
        value = extend(value, EFI_CALLING_EFI_APPLICATION, bank)
        value = extend(value, SEPARATOR, bank)
        for _ in range(failed_attempts):
            value = extend(value, EFI_RETURNING_FROM_EFI_APPLICATION, bank)
            value = extend(value, EFI_CALLING_EFI_APPLICATION, bank)
        # EV_EFI_BOOT_SERVICES_APPLICATION: the event's digest is the image's Authenticode hash
        # itself (extended as is, not hashed again): the UKI's, then its kernel's.
        value = hashlib.new(bank, value + layout.digest(data, bank)).digest()
        if kernel is not None and not secure_boot:
            value = hashlib.new(bank, value + kernel_layout.digest(kernel, bank)).digest()
        out[bank] = value.hex()
    return out


# systemd-measure 252's default --phase list (systemd-pcrphase extends these words into PCR 11
# as the boot goes on); TPM 2.0 Part 2 numbers.
DEFAULT_PHASES = ("enter-initrd", "enter-initrd:leave-initrd", "enter-initrd:leave-initrd:sysinit",
                  "enter-initrd:leave-initrd:sysinit:ready")
TPM_CC_POLICY_PCR = 0x0000017F
TPM_ALG = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}


def policy_pcr_digest(pcr, value, bank):
    """TPM2_PolicyPCR's policy digest (a SHA-256 session) for PCR *pcr* of *bank* at *value*
    (TPM 2.0 Part 3, 23.7: H(0...0 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values)))."""
    select = bytearray(3)
    select[pcr // 8] |= 1 << (pcr % 8)
    selection = (1).to_bytes(4, "big") + TPM_ALG[bank].to_bytes(2, "big") + bytes([3]) + bytes(select)
    return hashlib.sha256(bytes(32) + TPM_CC_POLICY_PCR.to_bytes(4, "big") + selection
                          + hashlib.sha256(value).digest()).digest()


def pcrsig_json(contents, key, public_key, banks=("sha256",), phases=DEFAULT_PHASES):
    """The .pcrsig text systemd-measure 252 `sign --json=short` writes: per bank, per phase,
    {"pcrs": [11], "pkfp": SHA-256 of the PKCS#1 public key, "pol": the PolicyPCR digest of the
    predicted PCR 11, "sig": base64 RSA PKCS#1 v1.5 signature of pol with the bank's hash}.
    *contents*: {section name: bytes} of the UKI (.pcrpkey included)."""
    # Function-level import: json, base64 and cryptography only when .pcrsig is written (inspect
    # imports this module for its PCR predictions).
    import base64
    import json
    # Function-level import: cryptography (RSA signing), as above.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    pkfp = hashlib.sha256(public_key.public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.PKCS1)).hexdigest()
    events = events_of_contents(contents)
    doc = {}
    for bank in banks:
        base = replay(events, bank)
        entries = []
        for phase in phases:
            value = base
            for word in (w for w in phase.split(":") if w):
                value = extend(value, word.encode(), bank)
            pol = policy_pcr_digest(PCR_KERNEL_IMAGE, value, bank)
            sig = key.sign(pol, padding.PKCS1v15(), getattr(hashes, bank.upper())())
            entries.append({"pcrs": [PCR_KERNEL_IMAGE], "pkfp": pkfp, "pol": pol.hex(),
                            "sig": base64.b64encode(sig).decode()})
        doc[bank] = entries
    return json.dumps(doc, separators=(",", ":")) + "\n"      # systemd-measure's stdout ends the line
