"""Boot a kernel under real loaders in QEMU and capture what the dump kernel writes.

Used by the end-to-end tests and to (re)capture the fixtures in tests/data:

    python -m bootforge.multiboot.oracle grub-pc    KERNEL OUT.dump [--mb1]
    python -m bootforge.multiboot.oracle grub-efi   KERNEL OUT.dump [--mb1]
    python -m bootforge.multiboot.oracle qemu       KERNEL OUT.dump
    python -m bootforge.multiboot.oracle syslinux   KERNEL OUT.dump

Every run uses the same two modules (MODULES below), so sizes and strings
are known. QEMU is polled and stopped as soon as the dump is complete (or
the loader's error appears on the serial console).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bootforge.errors import ToolError

KERNEL_CMDLINE = "kernel-args a=b"
MODULES = [("mod1", 3000, "mod1-args"), ("mod2", 5000, "mod2 args two")]
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
QEMU_COMMON = ["-display", "none", "-no-reboot", "-monitor", "none", "-nic", "none",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


def module_bytes(name, size):
    """Deterministic module contents (not all zero, so a misplaced module shows)."""
    seed = name.encode()
    return (seed * (size // len(seed) + 1))[:size]


def run_tool(cmd, timeout=120, **kw):
    """Run an external tool (grub-mkrescue, xorriso, ld); ToolError when missing or failing."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} is not installed") from None
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(map(str, cmd[:3]))} failed: {proc.stderr.strip()[-400:]}")
    return proc


def _write_modules(directory):
    paths = []
    for name, size, args in MODULES:
        p = Path(directory) / name
        p.write_bytes(module_bytes(name, size))
        paths.append((p, args))
    return paths


def grub_iso(kernel, workdir, mb1=False, kernel_name="kernel", cmdline=KERNEL_CMDLINE, preamble=()):
    """A grub-mkrescue ISO (BIOS and EFI) booting *kernel* with the command line and both modules."""
    iso = Path(workdir) / "iso"
    (iso / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernel, iso / "boot" / kernel_name)
    _write_modules(iso / "boot")
    cmd, mod = ("multiboot", "module") if mb1 else ("multiboot2", "module2")
    lines = ["set timeout=0", "serial --unit=0 --speed=115200", "terminal_input serial",
             "terminal_output serial", *preamble, 'menuentry "k" {',
             f"  {cmd} /boot/{kernel_name} {cmdline}"]
    lines += [f"  {mod} /boot/{name} {args}" for name, _, args in MODULES]
    lines += ["  boot", "}", ""]
    (iso / "boot" / "grub" / "grub.cfg").write_text("\n".join(lines))
    out = Path(workdir) / "grub.iso"
    run_tool(["grub-mkrescue", "-o", str(out), str(iso)])
    return out


def isolinux_tree(root, kernel):
    """An ISO tree with isolinux, mboot.c32 and what it needs, and *kernel* as /kernel.elf."""
    root = Path(root)
    (root / "isolinux").mkdir(parents=True, exist_ok=True)
    shutil.copyfile("/usr/lib/ISOLINUX/isolinux.bin", root / "isolinux" / "isolinux.bin")
    for m in ("ldlinux", "libcom32", "mboot"):
        shutil.copyfile(f"/usr/lib/syslinux/modules/bios/{m}.c32", root / "isolinux" / f"{m}.c32")
    shutil.copyfile(kernel, root / "kernel.elf")
    return root


def syslinux_iso(kernel, workdir):
    """An isolinux ISO running mboot.c32 on *kernel* with both modules."""
    root = isolinux_tree(Path(workdir) / "s", kernel)
    _write_modules(root)
    mods = " ".join(f"--- /{name} {args}" for name, _, args in MODULES)
    (root / "isolinux" / "isolinux.cfg").write_text(
        f"SERIAL 0 115200\nDEFAULT k\nPROMPT 0\nTIMEOUT 0\nLABEL k\n  KERNEL mboot.c32\n"
        f"  APPEND /kernel.elf {KERNEL_CMDLINE} {mods}\n")
    out = Path(workdir) / "syslinux.iso"
    run_tool(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(out), "-b", "isolinux/isolinux.bin",
          "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
          str(root)])
    return out


def run_qemu(args, workdir, limit=60.0, stop_on=()):
    """Run QEMU; stop when the dump says DONE, QEMU exits, a *stop_on* text shows on the
    serial console, or *limit* seconds pass. Returns (dump bytes, serial text, QEMU stderr)."""
    dump = Path(workdir) / "e9.log"
    serial = Path(workdir) / "serial.txt"
    for p in (dump, serial):
        if p.exists():
            p.unlink()
    cmd = ["qemu-system-x86_64", *QEMU_COMMON, "-debugcon", f"file:{dump}",
           "-serial", f"file:{serial}", *args]
    err = Path(workdir) / "qemu.err"
    with open(err, "w") as errf:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                    start_new_session=True)
        except FileNotFoundError:
            raise ToolError("qemu-system-x86_64 is not installed") from None
        deadline = time.monotonic() + limit
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                if dump.exists() and dump.read_bytes().rstrip().endswith(b"DONE"):
                    break
                if stop_on and serial.exists():
                    text = serial.read_bytes().decode("latin-1")
                    if any(s in text for s in stop_on):
                        break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    read = lambda p: p.read_bytes() if p.exists() else b""  # noqa: E731
    return read(dump), read(serial).decode("latin-1"), read(err).decode("latin-1")


def boot(loader, kernel, workdir, mb1=False, stop_on=(), memory=256, cmdline=KERNEL_CMDLINE, preamble=()):
    """Boot *kernel* under *loader* (grub-pc, grub-efi, qemu, syslinux); see run_qemu."""
    workdir = Path(workdir)
    if loader == "grub-pc":
        iso = grub_iso(kernel, workdir, mb1, cmdline=cmdline, preamble=preamble)
        return run_qemu(["-m", str(memory), "-cdrom", str(iso)], workdir, 60, stop_on)
    if loader == "grub-efi":
        iso = grub_iso(kernel, workdir, mb1, cmdline=cmdline, preamble=preamble)
        vars_copy = workdir / "vars.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        return run_qemu(["-m", str(memory), "-machine", "q35",
                         "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                         "-drive", f"if=pflash,format=raw,file={vars_copy}",
                         "-cdrom", str(iso)], workdir, 90, stop_on)
    if loader == "qemu":
        mods = _write_modules(workdir)
        initrd = ",".join(f"{p} {a}" for p, a in mods)
        return run_qemu(["-m", "128", "-kernel", str(kernel), "-append", KERNEL_CMDLINE,
                         "-initrd", initrd], workdir, 30, stop_on)
    if loader == "syslinux":
        iso = syslinux_iso(kernel, workdir)
        return run_qemu(["-m", str(memory), "-cdrom", str(iso)], workdir, 60, stop_on)
    raise ValueError(loader)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    loader, kernel, out = argv[0], argv[1], argv[2]
    with tempfile.TemporaryDirectory(prefix="mbdump-") as tmp:
        dump, serial, err = boot(loader, kernel, tmp, mb1="--mb1" in argv)
    if not dump:
        print(f"no dump; serial: {serial[-500:]!r} qemu: {err[-500:]!r}", file=sys.stderr)
        return 1
    Path(out).write_bytes(dump)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
