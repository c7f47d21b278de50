"""OVMF VARS stores (secureboot/varstore.py, siglist.py, policy.py): the firmware volume and
authenticated variable store headers, the variable walk (states, deleted copies), the
signature lists of PK/KEK/db/dbx and their X.509 entries (`inspect --secureboot-vars`'s
policy), the rewrite `build` does to enrol keys (write_varstore, read back), and `inspect`
of the file itself (text + JSON).

Seeds: Debian's OVMF_VARS files (empty, Microsoft-enrolled, snakeoil-enrolled; 2 MiB and
4 MiB layouts) and a store bootforge enrols with the snakeoil certificate."""

import sys
from pathlib import Path

from common import WORK, attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.formats import efivars as fmt
    from bootforge.inspect import inspect_data
    from bootforge.secureboot.policy import BOOTFORGE_OWNER, policy_from_varstore
    from bootforge.secureboot.siglist import sha256_list
    from bootforge.secureboot.varstore import read_varstore, write_varstore

FAMILY = "varstore"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
# One variable the rewrite puts in: an EFI_SIGNATURE_LIST of one SHA-256 (db's own GUID).
DB = ("db", fmt.EFI_IMAGE_SECURITY_DATABASE, 0x27, sha256_list(BOOTFORGE_OWNER, [bytes(32)]))


def _enrolled():
    out = WORK / "varstore-seeds" / "enrolled.fd"
    template = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
    if not out.exists() and template.exists() and Path(SNAKEOIL_CERT).exists():
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            from bootforge.secureboot.policy import enrolled_varstore
            pem = x509.load_pem_x509_certificate(Path(SNAKEOIL_CERT).read_bytes())
            cert = pem.public_bytes(Encoding.DER)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(enrolled_varstore(template.read_bytes(), cert, [cert], [cert]))
        except Exception as exc:  # noqa: BLE001 -- a seed less, not a failed run
            print(f"fuzz seeds: enrolled VARS: {exc}", file=sys.stderr)
    return [(str(out), out.read_bytes())] if out.exists() else []


def seeds():
    return files("/usr/share/OVMF/OVMF_VARS*.fd", max_size=4 << 20) + _enrolled()


def target(data):
    report = attempt(inspect_data, "fuzz.fd", data)
    if report is not None:
        report.render_text()
        report.to_json()
    store = attempt(read_varstore, data, "fuzz.fd")
    if store is None:
        return
    for v in store.variables:
        store.get(v.name, v.guid)
    attempt(policy_from_varstore, data, "fuzz.fd")
    rewritten = attempt(write_varstore, data, [DB], "fuzz.fd")
    if rewritten is not None:
        again = read_varstore(rewritten, "rewritten.fd")        # what we wrote must read back
        if again.get("db", fmt.EFI_IMAGE_SECURITY_DATABASE) is None:
            raise AssertionError("the rewritten store has no db")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
