"""Boot media for the real loaders, built from a kernel, its command line and modules.

Each builder takes BootFile entries (the file on this machine, the name the loader
is given, its arguments) and returns a runner.Medium. The layouts and configuration
lines are the ones of /work/shared/reference/qemu-oracles.md (observed: GRUB 2.06
grub-mkrescue, ISOLINUX 6.04 + mboot.c32, iPXE 1.0.0+git-20190125 pxe-e1000.rom
with QEMU's built-in TFTP, QEMU 7.2 -kernel).

MEDIA maps the medium kinds loader policies name ("qemu-kernel", "grub-pc-iso",
"grub-efi-iso", "isolinux-iso", "ipxe-tftp") to their builder.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bootforge import machines
from bootforge.bootloaders import ConfigEntry, grub, ipxe, limine, syslinux
from bootforge.errors import RecipeError, ToolError
from bootforge.image.sniff import is_disk_image
from bootforge.qemu import host
from bootforge.qemu.runner import Medium

TFTP_HOST = "tftp://10.0.2.2/"      # QEMU user network's host address, as iPXE names its files


@dataclass
class BootFile:
    source: Path            # the file on this machine
    name: str               # the name the loader is given (/boot/kernel, tftp://10.0.2.2/k, ...)
    args: str = ""          # what follows the name on the loader's line


def run_tool(cmd, timeout=180, **kw):
    """Run an external tool (grub-mkrescue, xorriso, ld); ToolError when missing or failing."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} is not installed (Debian package "
                        f"{host.PACKAGES.get(cmd[0], '?')})") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{cmd[0]} did not finish in {timeout} s") from None
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(map(str, cmd[:3]))} failed: {proc.stderr.strip()[-400:]}")
    return proc


def _place(root, name, source):
    """Copy *source* to *name* (an absolute path on the medium) under *root*."""
    rel = PurePosixPath(name)
    if not rel.is_absolute():
        raise RecipeError(f"{name!r}: the loader needs an absolute path on the boot medium (like /boot/{name})")
    parts = [p for p in rel.parts[1:] if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RecipeError(f"{name!r} is not a file path on the boot medium")
    dest = Path(root).joinpath(*parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


def _entry(protocol, kernel, modules, title="k"):
    """The one menu entry a medium boots, as the bootloaders' configuration writers take it."""
    return ConfigEntry(title, protocol, kernel.name, kernel.args, [(m.name, m.args) for m in modules])


def grub_cfg(protocol, kernel, modules, before=(), after=(), preamble=()):
    """grub.cfg with one entry booting *kernel* and *modules* (serial console, no menu wait):
    GRUB's one writer (bootforge.bootloaders.grub.write), as the image builder writes it."""
    return grub.write([_entry(protocol, kernel, modules)], 0, header=None, preamble=preamble, before=before,
                      after=after)


def grub_iso(workdir, protocol, kernel, modules, *, efi=False, before=(), after=(), reuse=False):
    """A grub-mkrescue ISO (boots on SeaBIOS through GRUB i386-pc and on OVMF through
    GRUB x86_64-efi) with the files at their names and one menu entry."""
    host.require("grub-mkrescue", "xorriso", "mformat", grub.EFI_DIR if efi else grub.PC_DIR)
    root = Path(workdir) / "iso"
    out = Path(workdir) / "grub.iso"
    files = {kernel.name: _place(root, kernel.name, kernel.source)}
    files.update({m.name: _place(root, m.name, m.source) for m in modules})
    (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    # A kernel asking for a framebuffer gets the video drivers bootforge's image builder puts in
    # (grub.VIDEO_MODULES: efi_gop/efi_uga on x86_64-efi; i386-pc's multiboot pulls in vbe).
    preamble = grub.video_preamble("x86_64-efi") if efi and grub.asks_for_video(Path(kernel.source).read_bytes()) \
        else ()
    (root / "boot" / "grub" / "grub.cfg").write_text(grub_cfg(protocol, kernel, modules, before, after, preamble))
    if not (reuse and out.exists()):
        run_tool(["grub-mkrescue", "-o", str(out), str(root)])
    return Medium(["-cdrom", str(out)], f"GRUB {'x86_64-efi' if efi else 'i386-pc'} ISO {out.name}",
                  files=files)


def grub_script_iso(workdir, cfg_text, files=(), name="grub.iso", reuse=False):
    """A grub-mkrescue ISO with a grub.cfg of the caller's (e.g. lsefimmap captures) and
    *files* [(name on the medium, source)]."""
    host.require("grub-mkrescue", "xorriso", "mformat")
    root = Path(workdir) / "iso"
    placed = {n: _place(root, n, src) for n, src in files}
    (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    (root / "boot" / "grub" / "grub.cfg").write_text(cfg_text)
    out = Path(workdir) / name
    if not (reuse and out.exists()):
        run_tool(["grub-mkrescue", "-o", str(out), str(root)])
    return Medium(["-cdrom", str(out)], f"GRUB ISO {out.name}", files=placed)


def isolinux_tree(root, kernel_source, kernel_name="/kernel.elf"):
    """An ISO tree with isolinux, mboot.c32 and the modules it needs, and the kernel."""
    host.require(syslinux.ISOLINUX_BIN, syslinux.BIOS_DIR)
    root = Path(root)
    (root / "isolinux").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(syslinux.ISOLINUX_BIN, root / "isolinux" / "isolinux.bin")
    for m in syslinux.MODULES:
        shutil.copyfile(f"{syslinux.BIOS_DIR}/{m}", root / "isolinux" / m)
    _place(root, kernel_name, kernel_source)
    return root


def isolinux_cfg(kernel, modules):
    """isolinux.cfg running mboot.c32 on *kernel*: Syslinux's one writer (bootforge.bootloaders.syslinux)."""
    return syslinux.write([_entry("multiboot1", kernel, modules)], 0, header=None)


def isolinux_iso(workdir, kernel, modules, *, reuse=False):
    """An isolinux ISO running mboot.c32 on *kernel* with *modules* (serial console on COM1)."""
    host.require("xorriso")
    root = isolinux_tree(Path(workdir) / "s", kernel.source, kernel.name)
    files = {kernel.name: root / kernel.name.lstrip("/")}
    files.update({m.name: _place(root, m.name, m.source) for m in modules})
    (root / "isolinux" / "isolinux.cfg").write_text(isolinux_cfg(kernel, modules))
    out = Path(workdir) / "syslinux.iso"
    if not (reuse and out.exists()):
        run_tool(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(out), "-b", "isolinux/isolinux.bin",
                  "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
                  str(root)])
    return Medium(["-cdrom", str(out)], f"isolinux ISO {out.name}", files=files)


def _tftp_name(name):
    rel = name[len(TFTP_HOST):] if name.startswith(TFTP_HOST) else name
    rel = rel.lstrip("/")
    if not rel or ".." in PurePosixPath(rel).parts or "://" in rel:
        raise RecipeError(f"{name!r}: iPXE fetches files from QEMU's TFTP server; name them "
                          f"{TFTP_HOST}<file> or <file>")
    return rel


def ipxe_tftp(workdir, kernel, modules, **_):
    """A TFTP root served by QEMU's user network (restrict=on: nothing leaves QEMU) with the
    kernel, the modules and an iPXE script booting them; iPXE from Debian's pxe-e1000.rom."""
    host.require(ipxe.PXE_E1000)
    root = Path(workdir) / "tftp"
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for f in [kernel, *modules]:
        rel = _tftp_name(f.name)
        _place(root, "/" + rel, f.source)
        files[f.name] = root / rel
    (root / "boot.ipxe").write_text(ipxe.write_script((_tftp_name(kernel.name), kernel.args),
                                                      [(_tftp_name(m.name), m.args) for m in modules]))
    return Medium(["-boot", "n", "-netdev", f"user,id=n0,restrict=on,tftp={root},bootfile=boot.ipxe",
                   "-device", f"e1000,netdev=n0,romfile={ipxe.PXE_E1000}"],
                  "iPXE (pxe-e1000.rom) over QEMU's TFTP", network=True, files=files)


def qemu_kernel(workdir, kernel, modules, **_):
    """QEMU's own Multiboot1 loader: -kernel/-append/-initrd. Names that are relative are
    made to exist (symbolic links) in a directory QEMU runs in, so QEMU sees the same names."""
    # A name climbing out with '..' (a recipe's loader_path = "../k", the kernel's own path from
    # the recipe's directory) still names its link: QEMU runs as many directories deep in the stage.
    up = max([_climb(PurePosixPath(f.name)) for f in [kernel, *modules]
              if not PurePosixPath(f.name).is_absolute()] + [0])
    stage = Path(workdir) / "qemu-root"
    cwd = stage.joinpath(*["d"] * up)
    cwd.mkdir(parents=True, exist_ok=True)
    files = {}
    for f in [kernel, *modules]:
        if "," in f.name or " " in f.name:
            raise RecipeError(f"{f.name!r}: QEMU's -initrd separates modules by ',' and names by ' '")
        p = PurePosixPath(f.name)
        if p.is_absolute():
            if not Path(f.name).exists() or not os.path.samefile(f.name, f.source):
                raise RecipeError(f"{f.name!r} (the name QEMU is given) is not the file {f.source}")
            files[f.name] = Path(f.name)
            continue
        link = Path(os.path.normpath(cwd / p))
        if link == cwd or link.is_dir():
            raise RecipeError(f"{f.name!r} is not a file name QEMU can be given")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(f.source).resolve())
        files[f.name] = link
    args = ["-kernel", kernel.name, "-append", kernel.args]
    if modules:
        args += ["-initrd", ",".join(f"{m.name} {m.args}".rstrip() for m in modules)]
    return Medium(args, "QEMU -kernel (its Multiboot1 loader)", cwd=str(cwd), files=files)


def _climb(path):
    """How many directories above its start a relative *path* reaches ('../../k': 2)."""
    depth = top = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        top = min(top, depth)
    return -top


def _grub_pc(workdir, kernel, modules, protocol="multiboot2", **kw):
    return grub_iso(workdir, protocol, kernel, modules, **kw)


def _grub_efi(workdir, kernel, modules, protocol="multiboot2", **kw):
    return grub_iso(workdir, protocol, kernel, modules, efi=True, **kw)


def _isolinux(workdir, kernel, modules, protocol=None, **kw):
    return isolinux_iso(workdir, kernel, modules, **kw)


def limine_release_dir():
    """The Limine binary release (BOOTX64.EFI, limine-bios*.bin/.sys, limine.c) named by
    $BOOTFORGE_LIMINE_DIR: Debian packages no Limine, so the user says where a release is
    (the test suite points it at ../shared/oracles/limine-11.4.1, tests/conftest.py)."""
    try:
        d = Path(limine.release_dir())
    except RecipeError as exc:
        raise ToolError(exc.message) from None
    if not (d / "BOOTX64.EFI").is_file():
        raise ToolError(f"no Limine release at {d}: set {limine.LIMINE_DIR_ENV} to a Limine 11.4.1 binary release")
    return d


def limine_conf(protocol, kernel, modules, extra=()):
    """limine.conf (v8+ syntax) with one entry: Limine's one writer (bootforge.bootloaders.limine)."""
    return limine.write([_entry(protocol, kernel, modules, "bootforge")], 0, header=None, extra=extra)


def limine_iso(workdir, kernel, modules, *, protocol="multiboot2", reuse=False, conf=None, **_):
    """A Limine 11.4.1 BIOS+UEFI hybrid ISO as Limine's USAGE.md builds it (xorriso, then
    `limine bios-install`): boots on SeaBIOS (-cdrom) and OVMF alike; limine.conf in
    /boot/limine with `serial: yes` (progress and panics on the serial console), or *conf*."""
    host.require("xorriso")
    lim = limine_release_dir()
    root = Path(workdir) / "limine-iso"
    out = Path(workdir) / "limine.iso"
    files = {kernel.name: _place(root, limine.limine_path(kernel.name), kernel.source)}
    files.update({m.name: _place(root, limine.limine_path(m.name), m.source) for m in modules})
    for name in ("limine-bios.sys", "limine-bios-cd.bin", "limine-uefi-cd.bin"):
        _place(root, f"/boot/limine/{name}", lim / name)
    _place(root, "/EFI/BOOT/BOOTX64.EFI", lim / "BOOTX64.EFI")
    (root / "boot" / "limine" / "limine.conf").write_text(conf or limine_conf(protocol, kernel, modules))
    if not (reuse and out.exists()):
        run_tool(["xorriso", "-as", "mkisofs", "-R", "-r", "-J", "-b", "boot/limine/limine-bios-cd.bin",
                  "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-hfsplus",
                  "-apm-block-size", "2048", "--efi-boot", "boot/limine/limine-uefi-cd.bin",
                  "-efi-boot-part", "--efi-boot-image", "--protective-msdos-label", str(root), "-o", str(out)])
        limine.bios_install(limine.tool(str(lim)), out)
    return Medium(["-cdrom", str(out)], f"Limine 11.4.1 hybrid ISO {out.name}", files=files)


# medium kind -> (builder, the firmware it boots with: bios, uefi; a tuple: any of them)
def _xen_esp(workdir, kernel, modules, **kw):
    # Function-level import: the xen-esp disk writes the xen-efi-esp policy's BOOTX64.cfg (the
    # loader layer), which only this medium needs.
    from bootforge.qemu.xen_esp import xen_esp
    return xen_esp(workdir, kernel, modules, **kw)


MEDIA = {
    "qemu-kernel": (qemu_kernel, "bios"),
    "grub-pc-iso": (_grub_pc, "bios"),
    "grub-efi-iso": (_grub_efi, "uefi"),
    "isolinux-iso": (_isolinux, "bios"),
    "ipxe-tftp": (ipxe_tftp, "bios"),
    "limine-iso": (limine_iso, ("bios", "uefi")),
    "xen-esp": (_xen_esp, "uefi"),     # xen.efi as BOOTX64.EFI with BOOTX64.cfg (qemu/xen_esp.py)
}


# Media whose loader opens a path on a file system: a bare file name (what a [load] recipe or
# `verify KERNEL` without loader_path gives) is put in this directory of the medium. iPXE's
# TFTP and QEMU -kernel take a bare name as it is.
DEFAULT_DIRECTORY = {"grub-pc-iso": "/boot", "grub-efi-iso": "/boot", "isolinux-iso": "/boot", "limine-iso": "/boot"}


def medium_name(kind, name):
    """The name medium *kind* gives the loader for a file named *name*: a bare file name goes to
    the medium's DEFAULT_DIRECTORY; anything else stays as it is."""
    where = DEFAULT_DIRECTORY.get(kind)
    if where is None or "/" in name or ":" in name or name in ("", ".", ".."):
        return name
    return f"{where}/{name}"


def build_medium(kind, workdir, kernel, modules, protocol, **kw):
    builder, _firmware = MEDIA[kind]
    return builder(workdir, kernel, modules, protocol=protocol, **kw)


def image_medium(path, machine=None):
    """The runner.Medium that boots the image file *path* as it is (None for a recipe): an ISO 9660
    image as a CD, a disk image as a raw drive (snapshot=on: the guest never writes the file), as
    *machine* (a bootforge.machines.Machine; default qemu-pc-seabios's way) attaches them."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x8010)
    except OSError:
        return None
    if not is_disk_image(head):
        return None
    attach = (machine or machines.machine("bios")).medium_args
    if head[0x8001:0x8006] == b"CD001":
        return Medium(attach("cdrom", path), f"the image {path} (-cdrom)")
    return Medium(attach("disk", path), f"the image {path} (raw disk)")
