"""bench/image: `bootforge build` of a GRUB BIOS+UEFI ISO against grub-mkrescue on the same tree.

    .venv/bin/python bench/image.py [--big-gib N]

Goals (issue 12): bootforge's wall time <= 1.5x grub-mkrescue's for the same kernel and a
64 MiB module, its image smaller; peak RSS < 200 MiB when the module is 2 GiB (files are
copied in chunks, never held). Also prints whether two grub-mkrescue runs on the same tree
give the same bytes (bootforge's always do: tests/test_image.py).
Needs `make stubs` (the dump kernel), grub-common, grub-pc-bin, grub-efi-amd64-bin,
xorriso and mtools.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
KERNEL_RECIPE = REPO / "recipes" / "kernel-mbdump-mb2.toml"
RUNS = 3


def run(cmd, **kw):
    """(wall seconds, peak RSS in MiB of the child) of *cmd*; raises on failure."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} failed: {err.strip()[-400:]}")
    return wall, usage.ru_maxrss / 1024


def module(path, size):
    """A module of *size* bytes that is not all zeros (a 64 KiB pattern, written in chunks)."""
    pattern = hashlib.sha256(b"bench").digest() * 2048
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(pattern))
            f.write(pattern[:n])
            left -= n


def recipe(d, module_name):
    (d / "image.toml").write_text(
        '[image]\nformat = "iso"\nloader = "grub"\nfirmware = ["bios", "uefi"]\noutput = "bootforge.iso"\n'
        '[[image.entries]]\ntitle = "bench"\nkernel = "iso/boot/kernel"\nloader_path = "/boot/kernel"\n'
        'protocol = "multiboot2"\ncmdline = "a=b"\n'
        f'[[image.entries.modules]]\npath = "iso/boot/{module_name}"\nloader_path = "/boot/{module_name}"\n'
        'cmdline = "initrd"\n')
    return d / "image.toml"


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(argv):
    big_gib = 2
    if "--big-gib" in argv:
        big_gib = float(argv[argv.index("--big-gib") + 1])
    for tool in ("grub-mkrescue", "grub-mkimage", "xorriso", "mformat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/image: {tool} is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        d = Path(tmp)
        (d / "iso" / "boot" / "grub").mkdir(parents=True)
        run([PY, "-m", "bootforge", "build", str(KERNEL_RECIPE), "-o", str(d / "iso" / "boot" / "kernel")], cwd=REPO)
        module(d / "iso" / "boot" / "initrd", 64 << 20)
        (d / "iso" / "boot" / "grub" / "grub.cfg").write_text(
            'set timeout=0\nmenuentry "bench" {\n  multiboot2 /boot/kernel a=b\n  module2 /boot/initrd initrd\n}\n')
        r = recipe(d, "initrd")
        ours, theirs = [], []
        for _ in range(RUNS):       # interleaved, best of RUNS each: the machine is shared
            ours.append(run([PY, "-m", "bootforge", "build", str(r)], cwd=d)[0])
            theirs.append(run(["grub-mkrescue", "-o", str(d / "mkrescue.iso"), str(d / "iso")])[0])
        first = sha(d / "mkrescue.iso")
        run(["grub-mkrescue", "-o", str(d / "mkrescue2.iso"), str(d / "iso")])
        second = sha(d / "mkrescue2.iso")
        size_ours, size_theirs = (d / "bootforge.iso").stat().st_size, (d / "mkrescue.iso").stat().st_size
        ratio = min(ours) / min(theirs)
        print("GRUB BIOS+UEFI ISO, dump kernel + 64 MiB module (best of 3, interleaved):")
        print(f"  bootforge build   {min(ours):6.2f} s   {size_ours:>11,} bytes")
        print(f"  grub-mkrescue     {min(theirs):6.2f} s   {size_theirs:>11,} bytes")
        print(f"  wall ratio {ratio:.2f}x (goal <= 1.5x): {'ok' if ratio <= 1.5 else 'OVER'}; "
              f"size {size_ours - size_theirs:+,} bytes ({'smaller' if size_ours < size_theirs else 'NOT smaller'})")
        print(f"  grub-mkrescue twice on the same tree: {'outputs DIFFER' if first != second else 'same bytes'} "
              f"({first[:12]} vs {second[:12]})")
        ours_again = sha(d / "bootforge.iso")
        run([PY, "-m", "bootforge", "build", str(r)], cwd=d)
        print(f"  bootforge twice: {'same bytes' if ours_again == sha(d / 'bootforge.iso') else 'DIFFER'}")
        os.unlink(d / "iso" / "boot" / "initrd")
        os.unlink(d / "mkrescue.iso")
        os.unlink(d / "mkrescue2.iso")
        big = int(big_gib * (1 << 30))
        module(d / "iso" / "boot" / "big", big)
        r = recipe(d, "big")
        wall, rss = run([PY, "-m", "bootforge", "build", str(r)], cwd=d)
        size = (d / "bootforge.iso").stat().st_size
        print(f"{big_gib:g} GiB module: build {wall:.1f} s, image {size:,} bytes, peak RSS {rss:.0f} MiB "
              f"(goal < 200 MiB): {'ok' if rss < 200 else 'OVER'}")
        return 0 if ratio <= 1.5 and size_ours < size_theirs and rss < 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
