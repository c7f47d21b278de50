"""PE/COFF, UKIs and Linux bzImages: `inspect` as a UKI / EFI Linux image, as a PE and as a
Linux kernel (text + JSON: headers, sections, .osrel/.cmdline/.uname/.initrd, Authenticode
hash and signatures), and the PE readers themselves (pe.read_pe_facts, pe.image.read_pe).

Seeds: a UKI bootforge builds from Debian's kernel and systemd-stub with a small initrd
(its first 256 KiB: headers and every section before .linux), systemd's stubs and
systemd-boot, iPXE's ipxe.efi, memtest86+'s EFI images, the Xen EFI image's first 256 KiB,
and the first 64 KiB of Debian's bzImage (boot sector, setup header, the PE header of its
EFI stub). arm64 (bootforge/uki/arm64.py): a UKI bootforge builds from systemd's
linuxaa64.efi.stub (build/debian-arm64/, `make arm64-kernel`) and the first 256 KiB of Debian's
arm64 Image, its PE sections cut to the bytes kept and its Linux banner appended (333 KiB:
inspect shows both views of .linux and AAVMF's, systemd-stub's and QEMU's verdicts), that Image
alone, and the stub; an input with an arm64 Image header also goes to uki.arm64.image_views."""

import subprocess
import sys
from pathlib import Path

from common import REPO, WORK, attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.pe import read_pe_facts
    from bootforge.pe.image import read_pe
    from bootforge.fdtboot.kernels import is_arm64_image
    from bootforge.uki.arm64 import image_views

FAMILY = "pe"
KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"
STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
HEAD = 256 << 10
ARM64 = REPO / "build" / "debian-arm64"
ARM64_BANNER = b"Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org) \0"


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


def _arm64_uki():
    """(name, bytes) of a small arm64 UKI and of the cut Image in it (nothing without build/debian-arm64)."""
    d = WORK / "pe-seeds"
    kernel, uki = d / "arm64-head.Image", d / "small-arm64.efi"
    if not uki.exists() and (ARM64 / "vmlinuz").exists() and (ARM64 / "linuxaa64.efi.stub").exists():
        d.mkdir(parents=True, exist_ok=True)
        with open(ARM64 / "vmlinuz", "rb") as f:
            image = bytearray(f.read(HEAD))
        pe = int.from_bytes(image[0x3C:0x40], "little")
        count = int.from_bytes(image[pe + 6:pe + 8], "little")
        optional = int.from_bytes(image[pe + 20:pe + 22], "little")
        for i in range(count):          # each section's raw data cut to the bytes kept
            at = pe + 24 + optional + 40 * i
            raw_size, raw_offset = (int.from_bytes(image[at + o:at + o + 4], "little") for o in (16, 20))
            if raw_offset + raw_size > len(image):
                cut = max(0, len(image) - raw_offset) & ~0xFFF
                image[at + 8:at + 12] = image[at + 16:at + 20] = cut.to_bytes(4, "little")
        kernel.write_bytes(bytes(image) + ARM64_BANNER)
        (d / "arm64-initrd.img").write_bytes(b"070701" + b"0" * 500)
        (d / "arm64-uki.toml").write_text(f'[uki]\nkernel = "{kernel}"\nstub = "{ARM64 / "linuxaa64.efi.stub"}"\n'
                                          'initrd = ["arm64-initrd.img"]\ncmdline = "console=ttyAMA0"\n'
                                          'os_release = { ID = "debian", VERSION_ID = "12" }\n'
                                          'output = "small-arm64.efi"\n')
        try:
            subprocess.run([sys.executable, "-m", "bootforge", "build", "arm64-uki.toml"], cwd=d, check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as exc:
            print(f"fuzz seeds: arm64 UKI: {exc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return [(str(p), p.read_bytes()) for p in (uki, kernel) if p.exists()]


def seeds():
    out = _uki() + _arm64_uki()
    out += files(str(ARM64 / "linuxaa64.efi.stub"))
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
    if is_arm64_image(data):
        attempt(image_views, data)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
