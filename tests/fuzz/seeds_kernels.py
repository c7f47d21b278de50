"""Seed helpers shared by fuzz_load_kernel.py, fuzz_load_image.py and fuzz_pcrs.py."""

import struct
import subprocess
import sys

from common import REPO


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
