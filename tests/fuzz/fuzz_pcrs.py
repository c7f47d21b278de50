"""Measured and Secure Boot of a UKI as `inspect --pcrs [--secureboot-vars VARS]` reads it:
uki/measure.py (PCR 11: systemd-stub 252's sections as loaded; PCR 4: the UKI's and its
.linux's Authenticode hashes) and, with a VARS file's policy, secureboot/measure.py (PCR 7: the
variables, the db entry that allows the image) and secureboot/report.py's Secure Boot verdict
(signatures checked against db/dbx); inspect as "uki" and as "efi-pe" (text + JSON). The first
byte picks the policy: none, OVMF_VARS_4M.fd (Secure Boot off), .snakeoil.fd, .ms.fd.

Seeds: a UKI bootforge builds from the first 256 KiB of Debian's bzImage (its PE sections cut
to the bytes kept), a small initrd, an os-release, a command line and a uname, and that UKI
signed by `bootforge sign` with Debian's snakeoil key (snakeoil OVMF's db allows it), each with
every policy."""

from pathlib import Path

from common import WORK, attempt, instrumented, main
from seeds_kernels import small_ukis

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.secureboot import ACTIVE
    from bootforge.secureboot.policy import policy_from_varstore
    from bootforge.uki import measure

FAMILY = "pcrs"
VARS = (None, "/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
POLICIES = [policy_from_varstore(Path(v).read_bytes(), v) if v and Path(v).exists() else None for v in VARS]


def seeds():
    return [(f"{name}.{k}", bytes([k]) + data) for name, data in small_ukis(WORK / "pcrs-seeds")
            for k in range(len(VARS))]


def target(data):
    if not data:
        return
    measure.WANTED.set(True)
    ACTIVE.set(POLICIES[data[0] % len(POLICIES)])
    for name in ("uki", "efi-pe"):
        report = attempt(inspect_data, "fuzz.efi", data[1:], name)
        if report is not None:
            report.render_text()
            report.to_json()


if __name__ == "__main__":
    main(FAMILY, seeds, target)
