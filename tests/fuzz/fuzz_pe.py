"""PE/COFF, UKIs and Linux bzImages: `inspect` as a UKI / EFI Linux image, as a PE and as a
Linux kernel (text + JSON: headers, sections, .osrel/.cmdline/.uname/.initrd, Authenticode
hash and signatures), and the PE readers themselves (pe.read_pe_facts, pe.image.read_pe).

Seeds: a UKI bootforge builds from Debian's kernel and systemd-stub with a small initrd
(its first 256 KiB: headers and every section before .linux), systemd's stubs and
systemd-boot, iPXE's ipxe.efi, memtest86+'s EFI images, the Xen EFI image's first 256 KiB,
and the first 64 KiB of Debian's bzImage (boot sector, setup header, the PE header of its
EFI stub)."""

import subprocess
import sys
from pathlib import Path

from common import REPO, WORK, attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.pe import read_pe_facts
    from bootforge.pe.image import read_pe

FAMILY = "pe"
KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"
STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
HEAD = 256 << 10


def _uki():
    d = WORK / "pe-seeds"
    uki = d / "small-initrd.efi"
    if not uki.exists() and Path(KERNEL).exists() and Path(STUB).exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / "initrd.img").write_bytes(b"070701" + b"0" * 2000)
        (d / "os-release").write_text('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n')
        (d / "uki.toml").write_text(f'[uki]\nkernel = "{KERNEL}"\ninitrd = ["initrd.img"]\n'
                                    'cmdline = "console=ttyS0 quiet"\nos_release = "os-release"\n'
                                    'uname = "6.1.0-57-amd64"\noutput = "small-initrd.efi"\n')
        try:
            subprocess.run([sys.executable, "-m", "bootforge", "build", "uki.toml"], cwd=d, check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as exc:
            print(f"fuzz seeds: UKI: {exc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return [(str(uki), uki.read_bytes()[:HEAD])] if uki.exists() else []


def seeds():
    out = _uki()
    out += files("/usr/lib/systemd/boot/efi/*.efi*", "/boot/memtest86+*.efi", "/boot/ipxe.efi", max_size=1 << 20)
    for path, size in (("/boot/xen-4.17-amd64.efi", HEAD), (KERNEL, 64 << 10)):
        if Path(path).exists():
            with open(path, "rb") as f:
                out.append((path + ".head", f.read(size)))
    return out


def target(data):
    for name in (None, "uki", "pe", "linux-kernel"):
        report = attempt(inspect_data, "fuzz.efi", data, name)
        if report is not None:
            report.render_text()
            report.to_json()
    attempt(read_pe_facts, data)
    attempt(read_pe, data)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
