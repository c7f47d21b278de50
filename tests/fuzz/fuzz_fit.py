"""Images U-Boot and QEMU load on device-tree machines: FIT (fdtboot/fit.py), the legacy
uImage (formats/uimage.py, fdtboot/kernels.py), the arm64 / RISC-V Image and ARM zImage
headers (formats/arm_image.py): `inspect` as fit, uimage and dt-kernel (text + JSON: both
uImage CRCs, every FIT image's hash, configurations, embedded DTBs, the loaders' verdicts)
and the readers alone (read_fit, read_uimage, read_dt_kernel).

Seeds: mkimage's own outputs made at start (a uImage of each type bootforge names: kernel,
ramdisk, multi; FIT with embedded and with external data (-E), with crc32/sha1/sha256 hashes),
tests/data's arm64 and RISC-V Images, and FIT images bootforge builds ([fit] recipes)."""

import subprocess
from pathlib import Path

from common import REPO, WORK, attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.fdtboot.fit import read_fit
    from bootforge.fdtboot.kernels import read_dt_kernel, read_uimage
    from bootforge.inspect import inspect_data

FAMILY = "fit"
ARM64 = REPO / "tests" / "data" / "dtdump-aarch64.Image"
DTB = REPO / "tests" / "data" / "fdt-reserved.dtb"

ITS = """/dts-v1/;
/ {
\tdescription = "fuzz seed";
\t#address-cells = <1>;
\timages {
\t\tkernel-1 {
\t\t\tdata = /incbin/("%(kernel)s");
\t\t\ttype = "kernel"; arch = "arm64"; os = "linux"; compression = "none";
\t\t\tload = <0x40080000>; entry = <0x40080000>;
\t\t\thash-1 { algo = "crc32"; }; hash-2 { algo = "sha1"; }; hash-3 { algo = "sha256"; };
\t\t};
\t\tfdt-1 { data = /incbin/("%(dtb)s"); type = "flat_dt"; arch = "arm64"; compression = "none";
\t\t\thash-1 { algo = "sha256"; }; };
\t\tramdisk-1 { data = /incbin/("%(rd)s"); type = "ramdisk"; arch = "arm64"; os = "linux";
\t\t\tcompression = "none"; load = <0x48000000>; };
\t};
\tconfigurations {
\t\tdefault = "conf-1";
\t\tconf-1 { kernel = "kernel-1"; fdt = "fdt-1"; ramdisk = "ramdisk-1"; };
\t\tconf-2 { kernel = "kernel-1"; };
\t};
};
"""


def _mkimage(d):
    d.mkdir(parents=True, exist_ok=True)
    rd = d / "rd"
    rd.write_bytes(b"070701" + b"0" * 500)
    jobs = {
        "kernel.uImage": ["-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none", "-a", "0x40080000",
                          "-e", "0x40080000", "-n", "fuzz", "-d", str(ARM64)],
        "ramdisk.uImage": ["-A", "arm", "-O", "linux", "-T", "ramdisk", "-C", "gzip", "-d", str(rd)],
        "multi.uImage": ["-A", "riscv", "-O", "linux", "-T", "multi", "-C", "none", "-d", f"{ARM64}:{rd}"],
    }
    (d / "fit.its").write_text(ITS % {"kernel": ARM64, "dtb": DTB, "rd": rd})
    jobs["embedded.itb"] = ["-f", str(d / "fit.its")]
    jobs["external.itb"] = ["-E", "-f", str(d / "fit.its")]
    jobs["auto.itb"] = ["-f", "auto", "-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none",
                        "-a", "0x40080000", "-e", "0x40080000", "-d", str(ARM64), "-b", str(DTB)]
    out = []
    for name, args in jobs.items():
        target = d / name
        if not target.exists():
            try:
                subprocess.run(["mkimage", *args, str(target)], check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"fuzz seeds: mkimage {name}: {exc}")
                continue
        out.append((str(target), target.read_bytes()))
    return out


def seeds():
    out = _mkimage(WORK / "fit-seeds")
    out += files("tests/data/*.Image", "build/**/*.itb", "build/**/*uImage*", limit=200)
    return out


def target(data):
    for name in (None, "fit", "uimage", "dt-kernel"):
        report = attempt(inspect_data, "fuzz.img", data, name)
        if report is not None:
            report.render_text()
            report.to_json()
    attempt(read_fit, data, "fuzz.itb")
    attempt(read_uimage, data, "fuzz.uImage")
    attempt(read_dt_kernel, data, "fuzz.Image")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
