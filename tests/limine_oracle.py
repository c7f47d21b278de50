"""The real Limine 11.4.1 (../shared/oracles/limine-11.4.1) as a test oracle.

- limine_tool(): the `limine` host tool built with cc from the release's
  limine.c into build/limine-tool/ (cached by the source's sha256; never
  committed).
- limine_iso(): a BIOS+UEFI hybrid ISO as Limine's USAGE.md and the issue
  build it: xorriso -as mkisofs ... then `limine bios-install`.
- boot(): the ISO under SeaBIOS (pc, -cdrom) or OVMF (q35, pflash), the
  dump kernel's output and the serial console (Limine prints its progress
  and its panics there with `serial: yes`).

    python tests/limine_oracle.py seabios|ovmf KERNEL MEM OUT.dump [MODSET]

captures one dump (the commands behind tests/data/limine-*.dump).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORACLE = Path(os.environ.get("LIMINE_ORACLE", REPO.parent / "shared" / "oracles" / "limine-11.4.1"))
TOOL_DIR = REPO / "build" / "limine-tool"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
KERNEL_CMDLINE = "kernel-args a=b"
# What Limine prints when it gives up (common/lib/panic.c) and what its menu shows when
# no entry boots: stop QEMU as soon as one appears.
STOP_ON = ("PANIC", "panic", "Press a key", "Cannot", "Could not")


def oracle_files():
    return [ORACLE / n for n in ("limine.c", "limine-bios.sys", "limine-bios-cd.bin", "limine-uefi-cd.bin",
                                 "BOOTX64.EFI")]


def limine_tool():
    """Path of the `limine` host tool, built from the release's limine.c on first use."""
    src = ORACLE / "limine.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    tool = TOOL_DIR / f"limine-{digest}"
    if not tool.exists():
        TOOL_DIR.mkdir(parents=True, exist_ok=True)
        tmp = TOOL_DIR / f".limine.{os.getpid()}"
        subprocess.run(["cc", "-O2", "-std=c99", "-I", str(ORACLE), str(src), "-o", str(tmp)],
                       check=True, capture_output=True)
        os.replace(tmp, tool)       # atomic: parallel test runs may build it too
    return tool


def limine_conf(protocol, cmdline, modules, kernel_path="boot():/boot/kernel", extra=()):
    """limine.conf text: one entry /dump; *modules* are (name, string) pairs."""
    lines = ["timeout: 0", "serial: yes", *extra, "", "/dump",
             f"    protocol: {protocol}", f"    path: {kernel_path}", f"    cmdline: {cmdline}"]
    for name, string in modules:
        lines.append(f"    module_path: boot():/boot/{name}")
        lines.append(f"    module_string: {string}")
    return "\n".join(lines) + "\n"


def limine_iso(kernel, workdir, protocol, modules=(), cmdline=KERNEL_CMDLINE, conf=None):
    """Build WORKDIR/lim.iso; *modules* are (name, bytes, string). Returns (iso, tree root)."""
    workdir = Path(workdir)
    root = workdir / "iso"
    lim = root / "boot" / "limine"
    lim.mkdir(parents=True, exist_ok=True)
    (root / "EFI" / "BOOT").mkdir(parents=True, exist_ok=True)
    for n in ("limine-bios.sys", "limine-bios-cd.bin", "limine-uefi-cd.bin"):
        shutil.copyfile(ORACLE / n, lim / n)
    shutil.copyfile(ORACLE / "BOOTX64.EFI", root / "EFI" / "BOOT" / "BOOTX64.EFI")
    shutil.copyfile(kernel, root / "boot" / "kernel")
    for name, data, _s in modules:
        (root / "boot" / name).write_bytes(data)
    if conf is None:
        conf = limine_conf(protocol, cmdline, [(n, s) for n, _d, s in modules])
    (lim / "limine.conf").write_text(conf)
    iso = workdir / "lim.iso"
    if iso.exists():
        iso.unlink()
    subprocess.run(["xorriso", "-as", "mkisofs", "-R", "-r", "-J", "-b", "boot/limine/limine-bios-cd.bin",
                    "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-hfsplus",
                    "-apm-block-size", "2048", "--efi-boot", "boot/limine/limine-uefi-cd.bin",
                    "-efi-boot-part", "--efi-boot-image", "--protective-msdos-label", str(root),
                    "-o", str(iso)], check=True, capture_output=True)
    subprocess.run([str(limine_tool()), "bios-install", str(iso)], check=True, capture_output=True)
    return iso, root


def boot(iso, workdir, firmware, memory_mib, limit=None, stop_on=STOP_ON):
    """Boot *iso* under SeaBIOS ("seabios") or OVMF ("ovmf"); (dump bytes, serial text)."""
    from bootforge.multiboot.oracle import run_qemu
    workdir = Path(workdir)
    args = ["-m", str(memory_mib)]
    if firmware == "ovmf":
        shutil.copyfile(OVMF_VARS, workdir / "vars.fd")
        args += ["-machine", "q35", "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={workdir / 'vars.fd'}"]
    args += ["-cdrom", str(iso)]
    dump, serial, _err = run_qemu(args, workdir, limit or (90 if firmware == "ovmf" else 40), stop_on)
    return dump, serial


def main(argv):
    from bootforge.loader.fidelity import MODULE_SETS
    from bootforge.multiboot.oracle import module_bytes
    firmware, kernel, mem, out = argv[:4]
    modset = int(argv[4]) if len(argv) > 4 else 0
    mods = [(n, module_bytes(n, size), s) for n, size, s in MODULE_SETS[modset]]
    with tempfile.TemporaryDirectory(prefix="limine-") as tmp:
        head = Path(kernel).read_bytes()[:32768]
        protocol = "multiboot2" if b"\xd6\x50\x52\xe8" in head else "multiboot1"
        iso, _root = limine_iso(kernel, tmp, protocol, mods)
        dump, serial = boot(iso, tmp, firmware, int(mem))
    if not dump.rstrip().endswith(b"DONE"):
        print(f"no dump; serial: {serial[-800:]!r}", file=sys.stderr)
        return 1
    Path(out).write_bytes(dump)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
