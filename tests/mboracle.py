"""Boot the dump kernel under real loaders in QEMU and capture what it writes through
port 0xE9 (test-only; how the fixtures in tests/data were made):

    python tests/mboracle.py grub-pc    KERNEL OUT.dump [--mb1]
    python tests/mboracle.py grub-efi   KERNEL OUT.dump [--mb1]
    python tests/mboracle.py qemu       KERNEL OUT.dump
    python tests/mboracle.py syslinux   KERNEL OUT.dump

Every run uses the same two modules (MODULES below), so sizes and strings are
known. The boot media and the runner are the product's (bootforge.qemu); QEMU is
polled and stopped as soon as the dump is complete (or a *stop_on* text, such as
the loader's error, appears on the serial console).
"""

import sys
import tempfile
from pathlib import Path

from bootforge.qemu.media import BootFile, build_medium, grub_cfg, grub_script_iso
from bootforge.qemu.runner import Machine, QemuRun

KERNEL_CMDLINE = "kernel-args a=b"
MODULES = [("mod1", 3000, "mod1-args"), ("mod2", 5000, "mod2 args two")]


def module_bytes(name, size):
    """Deterministic module contents (not all zero, so a misplaced module shows)."""
    seed = name.encode()
    return (seed * (size // len(seed) + 1))[:size]


def write_modules(directory, modules=MODULES):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, size, args in modules:
        (directory / name).write_bytes(module_bytes(name, size))
        out.append((directory / name, args))
    return out


def capture_dump(machine, medium, workdir, limit=60.0, stop_on=()):
    """Boot *medium* on *machine*; stop when the dump says DONE, QEMU exits, a *stop_on*
    text shows on the serial console, or *limit* seconds pass.
    Returns (dump bytes, serial text, QEMU's own messages)."""
    def done(run):
        return run.debugcon().rstrip().endswith(b"DONE") or \
            bool(stop_on) and any(s in run.serial() for s in stop_on)
    with QemuRun(machine, medium, workdir=workdir, firmware_log=False) as run:
        run.start()
        run.wait_until(done, limit, poll=0.1)
        run.stop()
        return run.debugcon(), run.serial(), run.qemu_stderr()


def boot(loader, kernel, workdir, mb1=False, stop_on=(), memory=256, cmdline=KERNEL_CMDLINE, preamble=()):
    """Boot *kernel* under *loader* (grub-pc, grub-efi, qemu, syslinux); see capture_dump."""
    workdir = Path(workdir)
    protocol = "multiboot1" if mb1 else "multiboot2"
    mods = write_modules(workdir / "mods")
    if loader in ("grub-pc", "grub-efi"):
        k = BootFile(Path(kernel), "/boot/kernel", cmdline)
        files = [BootFile(p, f"/boot/{p.name}", a) for p, a in mods]
        medium = grub_script_iso(workdir, grub_cfg(protocol, k, files, preamble=preamble),
                                 [(f.name, f.source) for f in [k, *files]])
        firmware, limit = ("ovmf", 90) if loader == "grub-efi" else ("seabios", 60)
        return capture_dump(Machine(firmware, memory), medium, workdir, limit, stop_on)
    if loader == "qemu":
        k = BootFile(Path(kernel), str(Path(kernel).resolve()), KERNEL_CMDLINE)
        files = [BootFile(p, str(p.resolve()), a) for p, a in mods]
        medium = build_medium("qemu-kernel", workdir, k, files, "multiboot1")
        return capture_dump(Machine("seabios", 128), medium, workdir, 30, stop_on)
    if loader == "syslinux":
        k = BootFile(Path(kernel), "/kernel.elf", KERNEL_CMDLINE)
        files = [BootFile(p, f"/{p.name}", a) for p, a in mods]
        medium = build_medium("isolinux-iso", workdir, k, files, protocol)
        return capture_dump(Machine("seabios", memory), medium, workdir, 60, stop_on)
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
