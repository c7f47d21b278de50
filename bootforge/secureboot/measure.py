"""PCR 7 (the Secure Boot policy) as OVMF 2022.11 extends it for a VARS file and the images
it verifies (EDK2 SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c MeasureAllSecureVariables, MeasureVariable;
SecurityPkg/Library/DxeImageVerificationLib/Measurement.c; TCG PC Client Platform Firmware
Profile 1.05 section 3.3.4.8):

- EV_EFI_VARIABLE_DRIVER_CONFIG for SecureBoot, PK, KEK, db and dbx in that order, each with
  the variable's data, an absent one with none (a valid case: Tcg2Dxe measures it empty), then
  dbt when the store has one;
- the EV_EFI_SEPARATOR at ReadyToBoot;
- with Secure Boot on, one EV_EFI_VARIABLE_AUTHORITY per distinct db entry that allowed an
  image, as the image is verified: UEFI_VARIABLE_DATA named "db" holding that EFI_SIGNATURE_DATA
  (its owner GUID and the certificate or hash).

Every event's digest is the hash of its whole event data. Both a Secure Boot off boot
(OVMF_CODE_4M.fd + OVMF_VARS_4M.fd) and an on one (the snakeoil pair, a signed UKI) were read
back from the kernel's event log and PCR 7 (tests/data/uki-tpm-pcrs*.txt)."""

import hashlib

from bootforge.formats import efivars as fmt
from bootforge.secureboot.siglist import read_signature_lists

PCR_SECURE_BOOT_POLICY = 7
# Tcg2Dxe's mVariableType: the variables measured whether or not they exist.
MEASURED_VARIABLES = (("SecureBoot", fmt.EFI_GLOBAL_VARIABLE), ("PK", fmt.EFI_GLOBAL_VARIABLE),
                      ("KEK", fmt.EFI_GLOBAL_VARIABLE), ("db", fmt.EFI_IMAGE_SECURITY_DATABASE),
                      ("dbx", fmt.EFI_IMAGE_SECURITY_DATABASE))
SEPARATOR = bytes(4)


def variable_data(name, guid, data):
    """The UEFI_VARIABLE_DATA event bytes of variable *name* with *data*."""
    return fmt.UefiVariableDataHeader.build(dict(variable_name=guid.bytes_le, unicode_name_length=len(name),
                                                 variable_data_length=len(data))) + \
        name.encode("utf-16-le") + data


def pcr7_events(store, secure_boot, authorities=()):
    """[(description, event bytes)] OVMF extends into PCR 7: *store* a VarStore, *secure_boot*
    the SecureBoot variable's value, *authorities* the db SignatureEntries that allowed images,
    in the order of the images."""
    events = []
    for name, guid in MEASURED_VARIABLES:
        if name == "SecureBoot":
            # A volatile variable AuthVariableLib sets at start: 1 with a PK and SecureBootEnable on.
            data = bytes([1 if secure_boot else 0])
        else:
            var = store.get(name, guid)
            data = var.data if var is not None else b""
        events.append((f"{name} ({len(data)} bytes)", variable_data(name, guid, data)))
    dbt = store.get("dbt", fmt.EFI_IMAGE_SECURITY_DATABASE)
    if dbt is not None:
        events.append((f"dbt ({len(dbt.data)} bytes)", variable_data("dbt", fmt.EFI_IMAGE_SECURITY_DATABASE,
                                                                     dbt.data)))
    events.append(("separator", SEPARATOR))
    seen = set()
    for entry in authorities:
        body = entry.owner.bytes_le + entry.data
        if body in seen:           # DxeImageVerificationLib measures each db entry once
            continue
        seen.add(body)
        events.append((f"authority: db {entry.type_name} entry of owner {entry.owner}",
                       variable_data("db", fmt.EFI_IMAGE_SECURITY_DATABASE, body)))
    return events


def allowing_entry(policy, data, img):
    """The db SignatureEntry of *policy*'s store that DxeImageVerificationLib finds allowing PE
    *data* (its first valid signature whose chain meets an X.509 entry, entries in db order;
    else its SHA-256 hash entry), or None: Secure Boot off, the image refused, no store."""
    # Function-level import: signature checks (cryptography) only when PCR 7 is predicted.
    from bootforge.pe.authenticode import hash_layout
    from bootforge.pe.signature import issued_by, read_signatures
    from bootforge.secureboot.policy import secureboot_verdict

    store = policy.store
    var = store.get("db", fmt.EFI_IMAGE_SECURITY_DATABASE) if store is not None else None
    if var is None or not policy.enabled:
        return None
    layout = hash_layout(data, img)
    digest = layout.digest(data)
    signatures = read_signatures(data, layout) if layout.entries else []
    if secureboot_verdict(policy, layout, signatures, digest).fails:
        return None
    entries = read_signature_lists(var.data, "db", var.offset)
    # Function-level import: as above.
    from cryptography import x509
    for sig in signatures:
        if not sig.ok:
            continue
        for e in entries:
            if e.type == fmt.EFI_CERT_X509_GUID:
                anchor = x509.load_der_x509_certificate(e.data)
                if any(c == anchor or issued_by(c, anchor) for c in sig.certificates):
                    return e
    return next((e for e in entries if e.type == fmt.EFI_CERT_SHA256_GUID and e.data == digest), None)


def predict_pcr7(store, secure_boot, authorities=(), banks=("sha256",)):
    """({bank: hex} of PCR 7, the events' descriptions)."""
    events = pcr7_events(store, secure_boot, authorities)
    out = {}
    for bank in banks:
        value = bytes(hashlib.new(bank).digest_size)
        for _, data in events:
            value = hashlib.new(bank, value + hashlib.new(bank, data).digest()).digest()
        out[bank] = value.hex()
    return out, [d for d, _ in events]
