"""GRUB i386-pc core images and modules (loader/grub_heap.py): what `bootforge load` of a
bootforge image reads to size GRUB's heap (image/load.py _grub_heap). The first byte picks:

- 0 (its low 6 bits modulo 3): a core image as is (i386-pc core.img or i386-pc-eltorito.img): core_img_modules
  (lzma_decompress.img's size fields, the raw LZMA1 stream, the "mimg" module area and its
  object headers), module_heap of every module in it, image_held of their names;
- 1: the decompressed core (kernel.img's sections, then the module area): the harness
  compresses it and puts lzma_decompress.img (its size fields patched) and diskboot.img (and
  cdboot.img when bit 6 of the first byte is set) in front, as grub-mkimage does, so the
  module area is mutated and not only the LZMA stream; then as 0;
- 2: a GRUB ELF32 module (.mod): module_heap (sections, .modname, .moddeps, the symbol
  table, the relocations naming the register calls) and held_bytes of an `insmod` of it.
Bit 7 of the first byte picks image_held's format (iso, disk).

Seeds: every module of /usr/lib/grub/i386-pc; cores grub-mkimage makes (i386-pc with
biosdisk part_msdos fat, i386-pc-eltorito with biosdisk iso9660, one with an early config);
the cores bootforge's in-process builder makes (bootloaders/grub_core.py) for its own ISO
and disk module lists; the core of a GRUB ISO and of a GRUB disk image `bootforge build`
makes (the El Torito file, the BIOS boot partition); the decompressed bytes of each core."""

import functools
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, attempt, files, instrumented, main, seed_dir

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.bootloaders import grub, grub_core
    from bootforge.formats import grub_core as core_fmt
    from bootforge.loader import grub_heap

FAMILY = "grub-core"
PC_DIR = "/usr/lib/grub/i386-pc"
CORE, PAYLOAD, MODULE = 0, 1, 2
FUZZ = "fuzz"                   # the name held_bytes asks read_module for: the input itself


def _pc_file(name):
    p = Path(PC_DIR, name)
    return p.read_bytes() if p.exists() else b""


DECOMPRESSOR = _pc_file("lzma_decompress.img")
DISKBOOT = _pc_file("diskboot.img")
CDBOOT = _pc_file("cdboot.img")
STUB = len(DECOMPRESSOR)


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def _mkimage_cores(d):
    """Cores grub-mkimage (Debian's grub-common) makes."""
    if not shutil.which("grub-mkimage"):
        return []
    (d / "early.cfg").write_text("search --no-floppy --file --set=root /boot/grub/x.id\nset prefix=($root)/boot/grub\n")
    out = []
    for name, fmt, extra, mods in (("mkimage-pc-fat.img", "i386-pc", [], ["biosdisk", "part_msdos", "fat"]),
                                   ("mkimage-eltorito.img", "i386-pc-eltorito", [], ["biosdisk", "iso9660"]),
                                   ("mkimage-pc-cfg.img", "i386-pc", ["-c", str(d / "early.cfg")],
                                    ["biosdisk", "part_gpt", "fat", "search", "multiboot2"])):
        try:
            _run(["grub-mkimage", "-O", fmt, "-d", PC_DIR, "-p", "/boot/grub", *extra, "-o", str(d / name), *mods])
            out.append(d / name)
        except subprocess.CalledProcessError as exc:
            print(f"fuzz seeds: {name}: {exc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return out


def _bootforge_cores(d):
    """The cores bootforge's in-process builder makes for its own ISO and disk module lists."""
    out = []
    early = grub.early_cfg("/boot/grub/bootforge-00000000.id")
    for name, fmt, fs in (("bootforge-eltorito.img", "i386-pc-eltorito", "iso9660"),
                          ("bootforge-pc.img", "i386-pc", "fat")):
        mods = grub.module_list(("multiboot2",), "i386-pc", fs)
        core = grub_core.core_image(fmt, PC_DIR, mods, early, grub.PREFIX)
        if core is not None:
            (d / name).write_bytes(core)
            out.append(d / name)
    return out


def _core_of_image(path):
    """The GRUB core on a bootforge image, where image/load.py _grub_heap reads it."""
    from bootforge.image.read import fs_file, open_image, read_fs_file
    from bootforge.formats import gpt as gfmt
    view = open_image(path)
    if view.iso is not None and fs_file(view, "/boot/grub/i386-pc-eltorito.img") is not None:
        return read_fs_file(view, "/boot/grub/i386-pc-eltorito.img", 1 << 20)[0]
    for p in (view.gpt or {}).get("partitions", ()):
        if p["type_guid"] == gfmt.GPT_TYPE_BIOS_BOOT:
            return view.image.read(p["first_lba"] * 512, (p["last_lba"] + 1 - p["first_lba"]) * 512)
    return None


def _built_image_cores(d):
    """The cores in a GRUB ISO and a GRUB disk image `bootforge build` makes."""
    py = sys.executable
    kernel = d / "kernel.elf"
    out = []
    try:
        if not kernel.exists():
            _run([py, "-m", "bootforge", "build", str(REPO / "recipes" / "kernel-mbdump-mb2.toml"), "-o", str(kernel)],
                 cwd=REPO)
        for name, fmt in (("bf-grub.iso", "iso"), ("bf-grub.img", "disk")):
            recipe = d / f"{name}.toml"
            recipe.write_text(f'[image]\nformat = "{fmt}"\nloader = "grub"\nfirmware = ["bios"]\noutput = "{name}"\n'
                              '[[image.entries]]\ntitle = "seed"\nkernel = "kernel.elf"\nloader_path = "/boot/kernel"\n'
                              'protocol = "multiboot2"\ncmdline = "a=b"\n')
            _run([py, "-m", "bootforge", "build", str(recipe)], cwd=d)
            core = _core_of_image(d / name)
            if core is not None:
                (d / f"{name}.core").write_bytes(core.rstrip(b"\0"))
                out.append(d / f"{name}.core")
            (d / name).unlink()
    except (subprocess.CalledProcessError, OSError) as exc:
        err = exc.stderr.decode(errors="replace")[-200:] if isinstance(exc, subprocess.CalledProcessError) else exc
        print(f"fuzz seeds: bootforge image cores: {err}", file=sys.stderr)
    return out


def _decompressed(core):
    """(where lzma_decompress.img is, the bytes it unpacks) of *core*, or None when it is no GRUB
    LZMA core."""
    for at in grub_heap.STUB_AT:
        if len(core) < at + STUB:
            continue
        usize = int.from_bytes(core[at + core_fmt.DECOMPRESSOR_UNCOMPRESSED_SIZE:][:4], "little")
        try:
            raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=grub_core.LZMA_FILTERS).decompress(
                core[at + STUB:], max_length=usize)
        except lzma.LZMAError:
            continue
        if len(raw) == usize:
            return at, raw
    return None


def seeds():
    d, names = seed_dir("grub-core-seeds",
                        lambda d: [p.name for p in _mkimage_cores(d) + _bootforge_cores(d) + _built_image_cores(d)])
    out = []
    for name in names:
        core = (d / name).read_bytes()
        out.append((name, bytes([CORE | (0x80 if "eltorito" in name or "iso" in name else 0)]) + core))
        unpacked = _decompressed(core)
        if unpacked is not None:
            at, raw = unpacked
            out.append((name + ".raw", bytes([PAYLOAD | (0x40 if at == core_fmt.CDBOOT_SIZE + core_fmt.DISKBOOT_SIZE
                                                         else 0)]) + raw))
    out += [(n, bytes([MODULE]) + b) for n, b in files(PC_DIR + "/*.mod")]
    return out


def _wrap(raw, cdboot):
    """A core image around *raw* as grub-mkimage lays it out (util/mkimage.c): [cdboot.img,]
    diskboot.img, lzma_decompress.img with the compressed and uncompressed sizes, the stream."""
    stream = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[dict(grub_core.LZMA_FILTERS[0], preset=0)])
    stub = bytearray(DECOMPRESSOR)
    for at, value in ((core_fmt.DECOMPRESSOR_COMPRESSED_SIZE, len(stream)),
                      (core_fmt.DECOMPRESSOR_UNCOMPRESSED_SIZE, len(raw))):
        stub[at:at + 4] = value.to_bytes(4, "little")
    return (CDBOOT if cdboot else b"") + DISKBOOT + bytes(stub) + stream


@functools.lru_cache(maxsize=512)
def _held(names, fmt):
    # image_held parses each installed module by name: the same names give the same answer, and
    # the cache keeps the executions per second up (a core's module list rarely changes).
    return grub_heap.image_held(list(names), fmt)


@functools.lru_cache(maxsize=256)
def _module_heap(module):
    # A mutation of a core changes one module or none: the others are the same bytes as
    # before, and parsing them again (30 modules on bootforge's cores, ~0.3 s) finds nothing.
    return grub_heap.module_heap(module)


def _read_module(body):
    def read(name):
        return body if name == FUZZ else grub_heap.read_installed_module(name)
    return read


def target(data):
    if not data:
        return
    mode, body = (data[0] & 0x3F) % 3, data[1:]
    if mode == MODULE:
        heap = grub_heap.module_heap(body, "fuzz.mod")
        assert heap.size == sum(b for _, b in heap.blocks)
        attempt(grub_heap.held_bytes, (FUZZ,), read_module=_read_module(body),
                extents={FUZZ: (len(body) * 7, len(body))})
        return
    if mode == PAYLOAD:
        body = _wrap(body, data[0] & 0x40)
    modules = grub_heap.core_img_modules(body, "fuzz.img")
    names = tuple(_module_heap(m).name for m in modules)
    _held(names, "iso" if data[0] & 0x80 else "disk")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
