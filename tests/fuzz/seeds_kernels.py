"""Seed helpers shared by fuzz_load_kernel.py, fuzz_load_image.py, fuzz_pcrs.py and fuzz_sign.py."""

import struct
import subprocess
import sys

from pathlib import Path

from common import REPO

KERNEL_HEAD = 256 << 10
SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"


def cut_pe(image):
    """*image* (a head of a PE) with each section's raw data cut to the bytes kept (4 KiB-aligned)."""
    image = bytearray(image)
    pe = struct.unpack_from("<I", image, 0x3C)[0]
    if image[pe:pe + 4] != b"PE\0\0":
        return bytes(image)
    count, optional = struct.unpack_from("<H", image, pe + 6)[0], struct.unpack_from("<H", image, pe + 20)[0]
    for i in range(count):
        at = pe + 24 + optional + 40 * i
        raw_size, raw_offset = struct.unpack_from("<II", image, at + 16)
        if raw_offset + raw_size > len(image):
            cut = max(0, len(image) - raw_offset) & ~0xFFF
            struct.pack_into("<I", image, at + 8, cut)      # VirtualSize
            struct.pack_into("<I", image, at + 16, cut)     # SizeOfRawData
    return bytes(image)


def built_kernels(d):
    """The Multiboot kernels bootforge's kernel recipes make (ELF MB1, MB2, both; the a.out
    kludge; an EFI-entry MB2; a kernel far above 1 MiB), made once into the directory *d*."""
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for recipe in sorted((REPO / "recipes").glob("kernel-mbdump-*.toml")):
        kernel = d / (recipe.stem + ".elf")
        if not kernel.exists():
            proc = subprocess.run([sys.executable, "-m", "bootforge", "build", str(recipe), "-o", str(kernel)],
                                  cwd=REPO, capture_output=True)
            if proc.returncode:
                print(f"fuzz seeds: {recipe.name}: {proc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
                continue
        out.append((str(kernel), kernel.read_bytes()))
    return out


def small_ukis(d):
    """[(name, bytes)] of a UKI bootforge builds from the first 256 KiB of Debian's bzImage (its PE
    sections cut to it), a small initrd, an os-release, a command line and a uname, and of it
    signed by `bootforge sign` with Debian's snakeoil key; made once into the directory *d*."""
    d.mkdir(parents=True, exist_ok=True)
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    small, signed = d / "small.efi", d / "signed.efi"
    try:
        if not small.exists() and kernels:
            with open(kernels[-1], "rb") as f:
                (d / "head.bzImage").write_bytes(cut_pe(f.read(KERNEL_HEAD)))
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
