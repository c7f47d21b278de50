"""Seed images for fuzz_images.py, made once into $BOOTFORGE_FUZZ_DIR/image-seeds/ from real tools:
bootforge's own ISO and disk images (GRUB BIOS+UEFI, Syslinux), grub-mkrescue's ISO,
Debian's ipxe.iso, and FAT12/16/32 volumes made by mkfs.fat with long names copied in by
mtools. Each large image is also kept as its first 1 MiB (its tables, descriptors and
directories; the fuzzer mutates those, not the file data)."""

import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, seed_dir

HEAD = 1 << 20
LONG_NAMES = ["a long file name.txt", "Mixed Case Name.cfg", "x" * 100 + ".bin", "émigré.txt", "SHORT.TXT"]


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def _fat(d, fat_type, size_kib):
    img = d / f"fat{fat_type}.img"
    img.unlink(missing_ok=True)
    _run(["mkfs.fat", "-C", "-F", str(fat_type), "-n", f"FAT{fat_type}", str(img), str(size_kib)])
    src = d / "fatsrc"
    src.mkdir(exist_ok=True)
    for i, name in enumerate(LONG_NAMES):
        (src / name).write_bytes(bytes([i]) * (300 + 700 * i))
    _run(["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT", "::/a directory with a long name"])
    for name in LONG_NAMES:
        _run(["mcopy", "-i", str(img), str(src / name), f"::/a directory with a long name/{name}"])
    _run(["mcopy", "-i", str(img), str(src / LONG_NAMES[0]), "::/EFI/BOOT/BOOTX64.EFI"])
    return img


def _bootforge_images(d):
    py = sys.executable
    kernel = d / "iso" / "boot" / "kernel"
    kernel.parent.mkdir(parents=True, exist_ok=True)
    _run([py, "-m", "bootforge", "build", str(REPO / "recipes" / "kernel-mbdump-mb2.toml"), "-o", str(kernel)],
         cwd=REPO)
    # Syslinux's mboot.c32 starts Multiboot1 kernels only: its image gets the MB1 build.
    _run([py, "-m", "bootforge", "build", str(REPO / "recipes" / "kernel-mbdump-mb1.toml"), "-o",
          str(kernel.with_name("kernel-mb1"))], cwd=REPO)
    (d / "iso" / "boot" / "initrd").write_bytes(b"initrd " * 300)
    out = []
    for name, fmt, loader, firmware in (("bf-grub.iso", "iso", "grub", '"bios", "uefi"'),
                                        ("bf-syslinux.iso", "iso", "syslinux", '"bios"'),
                                        ("bf-grub.img", "disk", "grub", '"bios", "uefi"')):
        recipe = d / f"{name}.toml"
        recipe.write_text(
            f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = [{firmware}]\noutput = "{name}"\n'
            '[[image.entries]]\ntitle = "seed"\nkernel = "iso/boot/kernel"\nloader_path = "/boot/kernel"\n'
            'protocol = "multiboot2"\ncmdline = "a=b"\n' if loader == "grub" else
            f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = [{firmware}]\noutput = "{name}"\n'
            '[[image.entries]]\ntitle = "seed"\nkernel = "iso/boot/kernel-mb1"\nloader_path = "/boot/kernel"\n'
            'protocol = "multiboot1"\ncmdline = "a=b"\n')
        with open(recipe, "a") as f:
            f.write('[[image.entries.modules]]\npath = "iso/boot/initrd"\nloader_path = "/boot/initrd"\n'
                    'cmdline = "initrd"\n')
        try:
            _run([py, "-m", "bootforge", "build", str(recipe)], cwd=d)
            out.append(d / name)
        except subprocess.CalledProcessError as exc:
            print(f"fuzz seeds: {name}: {exc.stderr.decode(errors='replace').strip()[-200:]}", file=sys.stderr)
    return out


def _make_images(d):
    made = []
    if shutil.which("mkfs.fat") and shutil.which("mcopy"):
        made += [_fat(d, 12, 1440), _fat(d, 16, 16384), _fat(d, 32, 34000)]
    made += _bootforge_images(d)
    if shutil.which("grub-mkrescue"):
        (d / "iso" / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        (d / "iso" / "boot" / "grub" / "grub.cfg").write_text(
            'menuentry "seed" {\n  multiboot2 /boot/kernel a=b\n  module2 /boot/initrd initrd\n}\n')
        try:
            _run(["grub-mkrescue", "-o", str(d / "mkrescue.iso"), "-d", "/usr/lib/grub/i386-pc", str(d / "iso")])
            made.append(d / "mkrescue.iso")
        except subprocess.CalledProcessError:
            pass
    if Path("/usr/lib/ipxe/ipxe.iso").exists():
        shutil.copy("/usr/lib/ipxe/ipxe.iso", d / "ipxe.iso")
        made.append(d / "ipxe.iso")
    return [p.name for p in made]


def image_seeds():
    """[(name, bytes)] of the seed images (and their first MiB)."""
    d, names = seed_dir("image-seeds", _make_images)
    out = []
    for name in names:
        data = (d / name).read_bytes()
        if len(data) <= 4 * HEAD:
            out.append((name, data))
        out.append((name + ".head", data[:HEAD]))
    return out
