"""What real firmware does with each image of a ROM.

SeaBIOS (src/optionroms.c, 1.16): for a PCI device it walks the chain to the
first image whose PCIR vendor and device equal the device's and whose code
type is 0 (x86); the PCI 3.0 device list is not consulted. That image is run
only if it starts with 55 AA, its size byte is not 0 and the 8-bit sum of
size x 512 bytes is 0 ("Found option rom with bad checksum"). Its init entry
(offset 3) runs at POST when it has a $PnP header; then the BEV of each PnP
header becomes a boot entry, else each BCV; a ROM without $PnP gets offset 3
as a BCV. A ROM whose PCIR class is VGA (03:00) is the VGA BIOS: vgarom_setup
runs it first (init_pcirom with isvga: init at offset 3 whatever its $PnP
header), and optionrom_setup's scan skips VGA-class devices, so it gives no
boot entry. Vendor id 0x0000 or 0xffff matches no device (0xffff is what a
config read of an empty slot returns; 0 is no vendor), so such an image is
never matched to a PCI device.

UEFI PciBusDxe (EDK2 PciOptionRomSupport.c, x64 firmware such as OVMF): the
chain walk stops at a PCIR offset that is 0 or not 4-aligned; an image is
loaded when its code type is 3, its EFI signature is 0x0EF1, its subsystem is
a boot-service or runtime driver (applications are skipped), compression is 0
or 1, initialization size <= image length, the EFI image offset lies inside
the initialization size and the PE image's machine runs on the platform.

Each firmware is one function (rom -> one bootforge.verdict.Verdict per
image) registered by one @rom_firmware(...) line; `inspect` shows every
registered firmware (JSON key = its name, text line = its label and words).
"""

from dataclasses import dataclass

from bootforge.formats.optionrom import EFI_SUBSYSTEMS, EfiRomCompression, RomCodeType
from bootforge.formats import pe as pe_fmt
from bootforge.formats.pe import PeMachine, PeSubsystem
from bootforge.registry import Registry
from bootforge.verdict import Verdict

X64_UEFI_MACHINES = (PeMachine.X64, PeMachine.EBC)     # OVMF X64 carries the EBC interpreter
UEFI_DRIVERS = (PeSubsystem.EFI_BOOT_SERVICE_DRIVER, PeSubsystem.EFI_RUNTIME_DRIVER)
IPXE_MROM_CODE_TYPE = 0xFF      # iPXE's .mrom payload images (src/arch/x86/prefix/mromprefix.S)
PCI_CLASS_DISPLAY_VGA = 0x0300  # base class 03, sub-class 00 (SeaBIOS src/hw/pci_ids.h)
NO_VENDOR_IDS = (0x0000, 0xFFFF)    # no device answers with these vendor ids


@dataclass(frozen=True)
class RomFirmware:
    """A firmware that judges each image of a ROM (one registry entry)."""

    name: str           # JSON key and Verdict subject: "seabios"
    label: str          # text label: "SeaBIOS"
    words: tuple        # how its verdicts read in text: (yes, no, warning), e.g. ("runs", "does not run", ...)
    judge: object       # rom -> [Verdict], one per image in chain order
    source: str         # the upstream code the rules follow


ROM_FIRMWARE = Registry("ROM firmware")


def rom_firmware(name, label, words, source):
    """Register the decorated function (rom -> [Verdict per image]) as firmware *name*."""
    def register(judge):
        ROM_FIRMWARE.register(name, RomFirmware(name, label, tuple(words), judge, source))
        return judge
    return register


def firmware_verdicts(rom):
    """{firmware name: [Verdict per image]} for every registered firmware, in registry order."""
    return {name: fw.judge(rom) for name, fw in ROM_FIRMWARE.items()}


def _seabios(ok, reason, words=None, pci_ids=()):
    return Verdict("seabios", ok, reason, words=words, facts={"pci_ids": list(pci_ids)})


def _uefi(ok, reason):
    return Verdict("uefi", ok, reason)


def code_type_name(code_type):
    if code_type is None:
        return "none (no PCIR)"
    return RomCodeType.label_of(code_type, "iPXE .mrom payload" if code_type == IPXE_MROM_CODE_TYPE else "unknown")


@rom_firmware("seabios", "SeaBIOS", ("runs", "does not run", "warns"), "SeaBIOS 1.16 src/optionroms.c")
def seabios_verdicts(rom):
    """One Verdict per image: would SeaBIOS run this image from a PCI device's ROM BAR?"""
    verdicts = []
    matched = {}
    for image in rom.images:
        pcir = image.pcir
        if pcir is None:
            verdicts.append(_seabios(False, "no PCI data structure: SeaBIOS does not run it from a PCI "
                                     "device's ROM BAR (\"No valid pci signature found\"); only as a "
                                     "VGA or fw_cfg ROM, with init at offset 3", "No valid pci signature found"))
            continue
        ids = f"{pcir.vendor_id:04x}:{pcir.device_id:04x}"
        if pcir.code_type != RomCodeType.X86:
            words = (f"Didn't match dev/ven (got {pcir.device_id:04x}{pcir.vendor_id:04x}) "
                     f"or type (got {pcir.code_type})")
            verdicts.append(_seabios(False, f"code type {pcir.code_type:#x} ({code_type_name(pcir.code_type)}): "
                                     f"SeaBIOS skips it (\"{words}\")", words))
            continue
        if pcir.vendor_id in NO_VENDOR_IDS:
            verdicts.append(_seabios(False, f"vendor id {pcir.vendor_id:#06x} (ids {ids}): no PCI device "
                                     "answers with it, so the ROM cannot be matched to a device (SeaBIOS "
                                     "runs a ROM BAR image only when its ids equal the device's)"))
            continue
        if ids in matched:
            verdicts.append(_seabios(False, f"image {matched[ids]} matches {ids} first; SeaBIOS never "
                                     "reaches this one"))
            continue
        matched[ids] = image.index
        if not image.checksum_ok:
            words = f"Found option rom with bad checksum: len={image.size} sum={image.checksum:x}"
            verdicts.append(_seabios(False, f"\"{words}\": SeaBIOS does not run it", words, (ids,)))
            continue
        reason = f"runs on a PCI device with ids {ids}"
        if pcir.class_code >> 8 == PCI_CLASS_DISPLAY_VGA:
            reason += ("; VGA class (03:00): run at POST as the VGA BIOS (vgarom_setup -> init_pcirom "
                       "with isvga: init at offset 3"
                       + (")" if image.pnp else ", no $PnP header needed)")
                       + "; the option-ROM scan skips VGA devices, so it gives no boot entry")
        elif image.pnp:
            vectors = []
            for pnp in image.pnp:
                if pnp.fields.bev:
                    vectors.append(f"BEV {pnp.fields.bev:#06x}")
                elif pnp.fields.bcv:
                    vectors.append(f"BCV {pnp.fields.bcv:#06x}")
            reason += "; init (offset 3) at POST ($PnP ROM)"
            if vectors:
                reason += "; boot entries: " + ", ".join(vectors)
        else:
            reason += "; no $PnP header, so no init at POST: offset 3 becomes a BCV"
        if image.device_list and any(d != pcir.device_id for d in image.device_list):
            extra = ", ".join(f"{d:04x}" for d in image.device_list if d != pcir.device_id)
            reason += f"; the PCI 3.0 device list ({extra}) is ignored by SeaBIOS"
        verdicts.append(_seabios(True, reason, pci_ids=(ids,)))
    return verdicts


@rom_firmware("uefi", "UEFI", ("loads", "does not load", "warns"),
              "EDK2 MdeModulePkg/Bus/Pci/PciBusDxe/PciOptionRomSupport.c (x64, OVMF)")
def uefi_verdicts(rom):
    """One Verdict per image: would x64 UEFI PciBusDxe load this image as a driver?"""
    verdicts = []
    walk_stopped = None
    for image in rom.images:
        if walk_stopped is not None:
            verdicts.append(_uefi(False, walk_stopped))
            continue
        pcir_at = image.header.pcir_offset
        if image.pcir is None or pcir_at == 0 or pcir_at & 3:
            why = ("no PCI data structure" if image.pcir is None else
                   f"PCIR offset {pcir_at:#x} is not 4-aligned")
            verdicts.append(_uefi(False, f"{why}: PciBusDxe stops reading the ROM here"))
            walk_stopped = f"PciBusDxe stopped at image {image.index} ({why})"
            continue
        verdicts.append(_uefi_image_verdict(image))
    return verdicts


def _uefi_image_verdict(image):
    code_type = image.pcir.code_type
    if code_type != RomCodeType.EFI:
        return _uefi(False, f"code type {code_type:#x} ({code_type_name(code_type)}): PciBusDxe loads "
                       "only code type 3 (EFI) images")
    if not image.is_efi:
        return _uefi(False, "code type 3 but no EFI signature 0x0EF1 at offset 4")
    h = image.header
    subsystem = EFI_SUBSYSTEMS.get(h.subsystem, f"subsystem {h.subsystem}")
    if h.subsystem == PeSubsystem.EFI_APPLICATION:
        return _uefi(False, "EFI application: PciBusDxe skips applications in option ROMs")
    if h.subsystem not in UEFI_DRIVERS:
        return _uefi(False, f"{subsystem}: only boot service (11) and runtime (12) drivers load")
    if h.compression not in EfiRomCompression.labels():
        return _uefi(False, f"compression type {h.compression} is unknown (0 none, 1 EFI compression)")
    if h.initialization_size > image.pcir.image_length:
        return _uefi(False, f"initialization size {h.initialization_size} blocks exceeds the image "
                       f"length {image.pcir.image_length} blocks")
    if h.efi_image_offset >= image.size:
        return _uefi(False, f"EFI image offset {h.efi_image_offset:#x} is not inside the "
                       f"initialization size ({image.size:#x} bytes)")
    if h.machine not in X64_UEFI_MACHINES:
        machine = PeMachine.label_of(h.machine, f"{h.machine:#x}")
        return _uefi(False, f"machine {machine} ({h.machine:#x}) does not run on x64 UEFI")
    if h.compression == EfiRomCompression.EFI and image.decompressed is not None and not image.decompressed.ok:
        return _uefi(False, f"EFI decompression fails: {image.decompressed.error}")
    if image.pe_error:
        return _uefi(False, f"LoadImage fails: {image.pe_error}")
    machine = PeMachine(h.machine).label
    packed = ", EFI-compressed" if h.compression == EfiRomCompression.EFI else ""
    verdict = _uefi(True, f"PciBusDxe loads and starts it ({subsystem}, {machine}{packed})")
    secure = _secure_boot_facts(image)
    if secure:
        verdict = Verdict(verdict.subject, True, verdict.reason + "; " + secure["summary"], verdict.severity,
                          None, {"secure_boot": secure})
    return verdict


# OVMF's rule for option-ROM drivers under Secure Boot, observed (tests/test_rom_secureboot.py): an
# unsigned iPXE e1000 driver ran with snakeoil Secure Boot on, so Debian's OVMF 2022.11 does not
# verify them (PcdOptionRomImageVerificationPolicy ALWAYS_EXECUTE; SecurityPkg's default is
# DENY_EXECUTE_ON_SECURITY_VIOLATION, which checks them against db like any image).
OVMF_OPTION_ROM_POLICY = ("OVMF 2022.11 runs option-ROM drivers unverified with Secure Boot on "
                          "(PcdOptionRomImageVerificationPolicy ALWAYS_EXECUTE, observed)")


def _driver_bytes(image):
    """The buffer PciBusDxe hands LoadImage: the decompressed PE, or the image from the EFI image
    offset to the end of its initialization size."""
    if image.header.compression == EfiRomCompression.EFI:
        d = image.decompressed
        return d.data if d is not None and d.ok else None
    return bytes(image.data[image.header.efi_image_offset:image.size])


def _secure_boot_facts(image):
    """The driver's signatures and Secure Boot verdicts, for a signed driver or when inspect was
    given a db (--db/--secureboot-vars); {} otherwise (nothing said about unsigned drivers then)."""
    # Function-level import: the Secure Boot policy only for EFI images.
    from bootforge.secureboot import ACTIVE
    data = _driver_bytes(image)
    policy = ACTIVE.get()
    if data is None or (policy is None and _declares_no_certificate_table(data)):
        return {}
    # Function-level import: the PE signature readers only for EFI images that may be signed.
    from bootforge.errors import FormatError
    from bootforge.pe.authenticode import hash_layout
    try:
        layout = hash_layout(data)
    except FormatError:
        return {}
    if not layout.entries and policy is None:
        return {}
    signatures = []
    if layout.entries:
        # Function-level import: cryptography only for a signed driver.
        from bootforge.pe.signature import read_signatures
        signatures = read_signatures(data, layout)
    facts = {"authenticode_sha256": layout.digest(data).hex(), "ovmf": OVMF_OPTION_ROM_POLICY,
             "signatures": [{"signer": s.signer, "ok": s.ok, "problems": s.problems} for s in signatures]}
    signed = ", ".join(f"{s.signer} ({'valid' if s.ok else 'INVALID'})" for s in signatures) or "none"
    facts["summary"] = f"signatures: {signed}; {OVMF_OPTION_ROM_POLICY}"
    if policy is not None:
        # Function-level import: the verdict checks certificate chains (cryptography).
        from bootforge.secureboot.policy import secureboot_verdict
        v = secureboot_verdict(policy, layout, signatures, layout.digest(data))
        facts["deny_execute_policy"] = v.to_json()
        facts["summary"] += (f"; under SecurityPkg's DENY_EXECUTE policy with {policy.source}: "
                             f"{'allowed' if v.ok else 'refused'} ({v.reason})")
    return facts


def _declares_no_certificate_table(data):
    """True when the PE headers of *data* declare no certificate table (NumberOfRvaAndSizes <= 4,
    or data directory 4 of size 0), found where pe/image.py read_pe finds them: hash_layout would
    then give no entries or fail, so an unsigned driver with no db to judge it by says nothing
    (and inspect of a ROM does not load the Authenticode reader, ~2.5 ms). False when the headers
    cannot tell: hash_layout decides."""
    if len(data) < pe_fmt.E_LFANEW_OFFSET + 4 or data[:2] != pe_fmt.DOS_SIGNATURE:
        return False
    opt_at = int.from_bytes(data[pe_fmt.E_LFANEW_OFFSET:pe_fmt.E_LFANEW_OFFSET + 4], "little") + pe_fmt.COFF_HEADER_SIZE
    magic = int.from_bytes(data[opt_at:opt_at + 2], "little")
    tail = pe_fmt.OPTIONAL_HEADER_TAIL.get(magic)
    if tail is None:
        return False
    tail_at = opt_at + pe_fmt.OPTIONAL_HEADER_PARSED[magic]
    dirs_at = tail_at + tail.sizeof()
    if dirs_at > len(data):
        return False
    if tail.parse(data[tail_at:dirs_at]).number_of_rva_and_sizes <= pe_fmt.DIR_SECURITY:
        return True
    at = dirs_at + 8 * pe_fmt.DIR_SECURITY
    return at + 8 <= len(data) and pe_fmt.DataDirectory.parse(data[at:at + 8]).size == 0
