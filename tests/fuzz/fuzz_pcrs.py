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

import subprocess
import sys
from pathlib import Path

from common import WORK, attempt, instrumented, main
from seeds_kernels import cut_pe

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.secureboot import ACTIVE
    from bootforge.secureboot.policy import policy_from_varstore
    from bootforge.uki import measure

FAMILY = "pcrs"
VARS = (None, "/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
HEAD = 256 << 10
POLICIES = [policy_from_varstore(Path(v).read_bytes(), v) if v and Path(v).exists() else None for v in VARS]


def _ukis():
    d = WORK / "pcrs-seeds"
    d.mkdir(parents=True, exist_ok=True)
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    small, signed = d / "small.efi", d / "signed.efi"
    try:
        if not small.exists() and kernels:
            with open(kernels[-1], "rb") as f:
                (d / "head.bzImage").write_bytes(cut_pe(f.read(HEAD)))
            (d / "initrd.img").write_bytes(b"070701" + b"0" * 2000)
            (d / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
            (d / "uki.toml").write_text('[uki]\nkernel = "head.bzImage"\ninitrd = ["initrd.img"]\n'
                                        'cmdline = "console=ttyS0 quiet"\nos_release = "os-release"\n'
                                        f'uname = "{kernels[-1].name[len("vmlinuz-"):]}"\noutput = "small.efi"\n')
            subprocess.run([sys.executable, "-m", "bootforge", "build", "uki.toml"], cwd=d, check=True,
                           capture_output=True)
        if small.exists() and not signed.exists() and Path(SNAKEOIL_KEY).exists():
            (d / "snakeoil.pass").write_text("snakeoil\n")
            subprocess.run([sys.executable, "-m", "bootforge", "sign", str(small), "--key", SNAKEOIL_KEY, "--cert",
                            SNAKEOIL_CERT, "--key-passphrase-file", str(d / "snakeoil.pass"), "-o", str(signed)],
                           check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        print(f"fuzz seeds: UKI: {exc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return [(p.name, p.read_bytes()) for p in (small, signed) if p.exists()]


def seeds():
    return [(f"{name}.{k}", bytes([k]) + data) for name, data in _ukis() for k in range(len(VARS))]


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
