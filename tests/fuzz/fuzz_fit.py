"""Images U-Boot and QEMU load on device-tree machines: FIT (fdtboot/fit.py), the legacy
uImage (formats/uimage.py, fdtboot/kernels.py), the arm64 / RISC-V Image and ARM zImage
headers (formats/arm_image.py): `inspect` as fit, uimage and dt-kernel (text + JSON: both
uImage CRCs, every FIT image's hash, configurations, embedded DTBs, the loaders' verdicts)
and the readers alone (read_fit, read_uimage, read_dt_kernel).

U-Boot's bootm decoders (fdtboot/kernels.py: gunzip, .lzma, LZ4 frames into CONFIG_SYS_BOOTM_LEN):
the input as a uImage with its CRCs made right (a uImage's own data, or any other input as the
data of an arm64 kernel uImage whose compression its first byte picks: gzip, lzma, lz4), so
bootm's checks let it through to the decoder, through `inspect` and through `bootforge load
--platform qemu-virt-aarch64:512M --loader uboot-bootm` (the CLI in-process: exit 0, 1 or 2); a
FIT's compressed kernels through the same decoders (verdicts._decompressed, after the hash check
the verdict makes first); each decoder alone on the data with a 1 MiB limit. A decoder that
returns more than its limit is a crash. The address space is capped (ADDRESS_SPACE): an
allocation sized by a header field (a 4 GiB lzma dictionary) is a MemoryError, so a crash too.

Seeds: mkimage's own outputs made at start (a uImage of each type bootforge names: kernel,
ramdisk, multi; FIT with embedded and with external data (-E), with crc32/sha1/sha256 hashes),
tests/data's arm64 and RISC-V Images, FIT images bootforge builds ([fit] recipes), the compressed
uImages and FITs real U-Boot booted or refused (tests/data/uboot-bootm-compressed/, QEMU's
gzip'd RISC-V uImage), their data as selector-byte inputs, and small gzip/lzma/lz4 bombs (just
past 64 MiB of output) made at start."""

import functools
import gzip
import lzma
import os
import resource
import struct
import subprocess
import zlib
from pathlib import Path

from common import REPO, WORK, attempt, files, instrumented, main, run_cli

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.fdtboot import kernels, machines, verdicts
    from bootforge.fdtboot.fit import read_fit
    from bootforge.fdtboot.kernels import read_dt_kernel, read_uimage
    from bootforge.formats import uimage as ufmt
    from bootforge.inspect import inspect_data

FAMILY = "fit"
# The 64 MiB cap's output, the decoders' own buffers and bootforge's imports fit well inside
# (an lzma bomb peaks near 220 MiB of RSS); libFuzzer's -rss_limit_mb is 3072.
ADDRESS_SPACE = 2 << 30
DIRECT_LIMIT = 1 << 20
COMPRESSIONS = (ufmt.UImageCompression.GZIP, ufmt.UImageCompression.LZMA, ufmt.UImageCompression.LZ4)
SCRATCH = WORK / "fit-scratch"
# load asks `qemu-system-aarch64 --version` for its cached DTB on every run (two processes: 85%
# of an input's time); the binary does not change while the harness runs.
machines.qemu_version = functools.lru_cache(maxsize=None)(machines.qemu_version)
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


def _bombs():
    """Streams of each decoder whose output is just past SYS_BOOTM_LEN, as selector-byte inputs."""
    big = bytes(verdicts.SYS_BOOTM_LEN + 4096)
    # An LZ4 frame (version 01, independent blocks, 4 MiB blocks) of 17 blocks, each one literal, a
    # match of offset 1 whose length 255-bytes take to ~4 MiB, and the closing literal.
    lz4 = bytearray(struct.pack("<IBBB", kernels.LZ4F_MAGIC, 0x60, 0x70, 0))
    block = bytes([0x1F, 0, 1, 0]) + b"\xff" * 16447 + bytes([0, 0x10, 0])
    for _ in range(17):
        lz4 += struct.pack("<I", len(block)) + block
    lz4 += bytes(4)
    return [("bomb-gzip", bytes([0]) + gzip.compress(big, 9, mtime=0)),
            ("bomb-lzma", bytes([1]) + lzma.compress(big, format=lzma.FORMAT_ALONE)),
            ("bomb-lz4", bytes([2]) + bytes(lz4))]


def seeds():
    out = _mkimage(WORK / "fit-seeds")
    out += files("tests/data/*.Image", "build/**/*.itb", "build/**/*uImage*", limit=200)
    real = files("tests/data/uboot-bootm-compressed/*.uImage", "tests/data/uboot-bootm-compressed/*.itb",
                 "tests/data/*.uImage", max_size=1 << 16)
    out += real
    pick = {int(c): i for i, c in enumerate(COMPRESSIONS)}
    for name, data in real:         # the compressed data alone, behind its selector byte
        if kernels.is_uimage(data) and data[31] in pick:
            out.append((name + ".data", bytes([pick[data[31]]]) + data[64:]))
    return out + _bombs()


def as_uimage(data):
    """*data* as a uImage bootm's checks pass: a uImage's own size cut to its file and both CRCs made
    right; anything else wrapped as an arm64 kernel's data (first byte: the compression)."""
    if kernels.is_uimage(data) and len(data) >= 64:
        header = bytearray(data[:64])
        size = min(struct.unpack_from(">I", header, 12)[0], len(data) - 64)
        body = data[64:64 + size]
    else:
        header = bytearray(struct.pack(">IIIIIIIBBBB32s", ufmt.UIMAGE_MAGIC, 0, 0, 0, 0x40400000, 0x40400000, 0,
                                       ufmt.UImageOs.LINUX, ufmt.UImageArch.ARM64, ufmt.UImageType.KERNEL,
                                       COMPRESSIONS[data[0] % 3] if data else 0, b"fuzz"))
        body = data[1:]
    struct.pack_into(">I", header, 12, len(body))
    struct.pack_into(">I", header, 24, zlib.crc32(body))
    struct.pack_into(">I", header, 4, 0)
    struct.pack_into(">I", header, 4, zlib.crc32(header))
    return bytes(header) + body


def decode(decoder, body, limit):
    """One decoder on *body*: its answers are its two exceptions; more output than *limit* is a crash."""
    try:
        out = decoder(body, limit)
    except (kernels.TooLarge, kernels.DecompressError):
        return
    if len(out) > limit:
        raise AssertionError(f"{decoder.__name__} returned {len(out)} bytes, limit {limit}")



def load(data, name):
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = SCRATCH / name
    path.write_bytes(data)
    run_cli(["load", "--platform", "qemu-virt-aarch64:512M", "--loader", "uboot-bootm", "--json", str(path)])


def target(data):
    for name in (None, "fit", "uimage", "dt-kernel"):
        report = attempt(inspect_data, "fuzz.img", data, name)
        if report is not None:
            report.render_text()
            report.to_json()
    fit = attempt(read_fit, data, "fuzz.itb")
    attempt(read_uimage, data, "fuzz.uImage")
    attempt(read_dt_kernel, data, "fuzz.Image")
    if fit is not None:
        for img in fit.images:
            comp = ufmt.UImageCompression.by_fit_name().get(img.props.get("compression", "none"))
            if comp in COMPRESSIONS:
                verdicts._decompressed(bytes(img.data), comp, "aarch64")
        load(data, "fuzz.itb")
    fixed = as_uimage(data)
    report = attempt(inspect_data, "fuzz.uImage", fixed, None)
    if report is not None:
        report.render_text()
        report.to_json()
    load(fixed, "fuzz.uImage")
    body = fixed[64:]
    for decoder in (kernels.gunzip_uboot, kernels.unlzma_uboot, kernels.unlz4_uboot):
        decode(decoder, body, DIRECT_LIMIT)


if __name__ == "__main__":
    if not os.environ.get("FUZZ_FIT_NO_RLIMIT"):
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    main(FAMILY, seeds, target)
