"""`bootforge load IMAGE [--firmware bios|uefi] [--entry 1] --json` (the CLI in-process) of
the input as a bootable ISO or disk image: image/load.py and image/read.py (the El Torito
catalog, GPT/MBR, the ISO 9660 or the ESP's FAT, the loader found on it, its configuration,
the entry, the kernel and modules read from the file system, GRUB's core for its heap) and then
the loader's placement. The first byte picks the firmware (bit 0) and the entry (bit 1:
`--entry 1`). An answer is exit 0, 1 or 2; a traceback is a crash.

GRUB's heap on bootforge's images parses every module the core names in /usr/lib/grub/i386-pc
(grub_heap.image_held, ~0.3 s): the harness caches its answer per module list (the grub-core
harness fuzzes it), so a BIOS load is not 50 times slower than a UEFI one.

Seeds: images `bootforge build` makes from the kernels of recipes/kernel-mbdump-{mb1,mb2}.toml
(GRUB ISO and GPT disk for BIOS + UEFI, Limine ISO, Syslinux ISO; two entries each, one with a
module), a small grub-mkrescue ISO (i386-pc, two menu entries) and Debian's ipxe.iso, each with
every first byte. The image is written to /dev/shm per input (the readers read a file)."""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, files, instrumented, main, run_cli, scratch_path, seed_dir
from seeds_kernels import built_kernels

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.loader import grub_heap

FAMILY = "load-image"
SCRATCH = str(scratch_path("load-image", ".img"))
MAX_SEED = 4 << 20             # run.py gives the family max_len 4 MiB + 512 (the first byte, rounded)
# Where the tests find a Limine binary release (tests/conftest.py); bootforge reads only the variable.
ENV = {"BOOTFORGE_LIMINE_DIR": str(REPO.parent / "shared" / "oracles" / "limine-11.4.1"), **os.environ}

_image_held = grub_heap.image_held


@functools.lru_cache(maxsize=256)
def _held(names, fmt):
    return _image_held(list(names), fmt)


def _cached_image_held(names, fmt, **kw):
    return _held(tuple(names), fmt) if not kw else _image_held(names, fmt, **kw)


grub_heap.image_held = _cached_image_held


def _recipe(d, name, fmt, loader, firmware, entries):
    """An [image] recipe in *d* with one [[image.entries]] per (title, kernel, protocol, module)."""
    listed = ", ".join(f'"{f}"' for f in firmware)
    text = f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = [{listed}]\noutput = "{name}"\n'
    for title, kernel, protocol, module in entries:
        text += (f'[[image.entries]]\ntitle = "{title}"\nkernel = "{kernel}"\nloader_path = "/boot/{title}.elf"\n'
                 f'protocol = "{protocol}"\ncmdline = "console=ttyS0 a=b"\n')
        if module:
            text += '[[image.entries.modules]]\npath = "initrd"\nloader_path = "/boot/initrd"\ncmdline = "initrd"\n'
    (d / f"{name}.toml").write_text(text)
    return d / f"{name}.toml"


def _images(d):
    """Bootable images, made once into *d*: bootforge's GRUB ISO and disk (BIOS + UEFI), Limine ISO
    and Syslinux ISO, each with two entries (Multiboot2 with a module, Multiboot1), and a small
    grub-mkrescue ISO (i386-pc, two menu entries)."""
    kernels = {Path(n).stem: Path(n) for n, _ in built_kernels(d)}
    mb1, mb2 = kernels.get("kernel-mbdump-mb1"), kernels.get("kernel-mbdump-mb2")
    if mb1 is None or mb2 is None:
        return []
    (d / "initrd").write_bytes(b"initrd " * 300)
    two = [("mb2", mb2.name, "multiboot2", True), ("mb1", mb1.name, "multiboot1", False)]
    out = []
    for name, fmt, loader, firmware in (("grub.iso", "iso", "grub", ("bios", "uefi")),
                                        ("grub.img", "disk", "grub", ("bios", "uefi")),
                                        ("limine.iso", "iso", "limine", ("bios", "uefi")),
                                        ("syslinux.iso", "iso", "syslinux", ("bios",))):
        entries = two if loader != "syslinux" else [("mb1", mb1.name, "multiboot1", True),
                                                    ("mb1b", mb1.name, "multiboot1", False)]
        proc = subprocess.run([sys.executable, "-m", "bootforge", "build", str(_recipe(d, name, fmt, loader, firmware,
                                                                                      entries))],
                              cwd=d, capture_output=True, env=ENV)
        if proc.returncode:
            print(f"fuzz seeds: {name}: {proc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
        else:
            out.append(d / name)
    if shutil.which("grub-mkrescue"):
        tree = d / "mkrescue"
        (tree / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        shutil.copy(mb2, tree / "boot" / "kernel")
        (tree / "boot" / "grub" / "grub.cfg").write_text('menuentry "seed" {\n  multiboot2 /boot/kernel a=b\n}\n'
                                                         'menuentry "two" {\n  multiboot2 /boot/kernel b=c\n}\n')
        proc = subprocess.run(["grub-mkrescue", "-d", "/usr/lib/grub/i386-pc", "-o", str(d / "mkrescue.iso"),
                               "--install-modules=normal multiboot2 iso9660 biosdisk part_msdos configfile echo",
                               "--locales=", "--fonts=", "--themes=", str(tree), "--", "-padding", "0"],
                              capture_output=True)
        if proc.returncode == 0:
            out.append(d / "mkrescue.iso")
    return out


def seeds():
    d, names = seed_dir("load-image-seeds", lambda d: [p.name for p in _images(d)])
    made = [(n, (d / n).read_bytes()) for n in names]
    made += files("/usr/lib/ipxe/ipxe.iso", max_size=MAX_SEED)
    return [(f"{name}.{k}", bytes([k]) + data) for name, data in made if len(data) <= MAX_SEED for k in range(4)]



def target(data):
    if not data:
        return
    with open(SCRATCH, "wb") as f:
        f.write(data[1:])
    try:
        run_cli(["load", SCRATCH, "--firmware", "uefi" if data[0] & 1 else "bios", *(["--entry", "1"] if data[0] & 2 else []),
                "--json"])
    finally:
        # Per input: atheris.Fuzz() never returns, so main's own unlink below never runs under it.
        os.unlink(SCRATCH)


if __name__ == "__main__":
    main(FAMILY, seeds, target, scratch=SCRATCH)
