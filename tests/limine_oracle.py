"""Capture what the real Limine 11.4.1 hands the dump kernel (the tests/data/limine-*.dump
fixtures; tests/data/README.md has the commands):

    python tests/limine_oracle.py seabios|ovmf KERNEL MEM_MIB OUT.dump [MODSET] [--conf FILE]

The ISO is bootforge.qemu.media.limine_iso's (xorriso + `limine bios-install`, the host tool
built from the release's limine.c with cc); the kernel at /boot/kernel, the modules of
tests/fidelity.py MODULE_SETS[MODSET] at /boot/mod1.., limine.conf generated (or FILE).
QEMU runs without the gdbstub: the dump kernel writes what it got to port 0xE9.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def capture(firmware, kernel, memory_mib, modset=0, conf=None, workdir=None, limit=None):
    """(dump bytes, serial text) of one boot."""
    import fidelity as F
    from bootforge.qemu.media import BootFile, limine_iso
    from bootforge.qemu.runner import Machine, QemuRun
    with tempfile.TemporaryDirectory(prefix="limine-oracle-") as tmp:
        work = Path(workdir or tmp)
        mods = F.write_modules(work / "mods", modset)
        head = Path(kernel).read_bytes()[:32768]
        protocol = "multiboot2" if b"\xd6\x50\x52\xe8" in head else "multiboot1"
        medium = limine_iso(work, BootFile(Path(kernel), "/boot/kernel", F.KERNEL_CMDLINE),
                            [BootFile(p, f"/boot/{p.name}", a) for p, _s, a in mods], protocol=protocol, conf=conf)
        with QemuRun(Machine(firmware, memory_mib), medium, workdir=work) as run:
            run.start()
            run.wait_until(lambda r: r.debugcon().rstrip().endswith(b"DONE") or "Press a key" in r.serial(),
                           limit or (120 if firmware == "ovmf" else 40), poll=0.1)
            return run.debugcon(), run.serial()


def main(argv):
    conf = None
    if "--conf" in argv:
        i = argv.index("--conf")
        conf = Path(argv[i + 1]).read_text()
        argv = argv[:i] + argv[i + 2:]
    firmware, kernel, mem, out = argv[:4]
    dump, serial = capture(firmware, kernel, int(mem), int(argv[4]) if len(argv) > 4 else 0, conf)
    if not dump.rstrip().endswith(b"DONE"):
        print(f"no dump; serial: {serial[-800:]!r}", file=sys.stderr)
        return 1
    Path(out).write_bytes(dump)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
