"""Running QEMU for end-to-end tests: poll the guest's output files and stop
QEMU as soon as what the test waits for has appeared (or it exits)."""

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import require

QEMU = "qemu-system-x86_64"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class QemuRun:
    returncode: int | None      # None: stopped by the test once the output was there
    debugcon: str               # port 0xE9
    seabios_log: str            # port 0x402 (SeaBIOS) when captured
    serial: str                 # ANSI escapes stripped
    seconds: float


def _read(path):
    try:
        return ANSI.sub(b"", Path(path).read_bytes()).decode("latin-1")
    except FileNotFoundError:
        return ""


def run_qemu(args, *, until=None, timeout=60, firmware="seabios", memory="64"):
    """Boot QEMU with debugcon (0xE9), SeaBIOS log (0x402), serial to a file and
    isa-debug-exit; return a QemuRun. `until(run)` ends the run early when true."""
    require(QEMU)
    if firmware == "ovmf":
        require(OVMF_CODE, OVMF_VARS)
    with tempfile.TemporaryDirectory(prefix="bootforge-qemu-") as tmp:
        tmp = Path(tmp)
        e9, sb, serial = tmp / "e9.log", tmp / "seabios.log", tmp / "serial.txt"
        cmd = [QEMU, "-m", memory, "-display", "none", "-no-reboot", "-monitor", "none",
               "-serial", f"file:{serial}", "-debugcon", f"file:{e9}",
               "-nic", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if firmware == "ovmf":
            vars_copy = tmp / "vars.fd"
            shutil.copy(OVMF_VARS, vars_copy)
            cmd += ["-machine", "q35",
                    "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                    "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        else:
            cmd += ["-chardev", f"file,id=sb,path={sb}", "-device", "isa-debugcon,iobase=0x402,chardev=sb"]
        cmd += list(args)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        returncode = None
        try:
            while True:
                time.sleep(0.05)
                run = QemuRun(proc.poll(), _read(e9), _read(sb), _read(serial), time.monotonic() - start)
                if run.returncode is not None:
                    returncode = run.returncode
                    break
                if until is not None and until(run):
                    break
                if run.seconds > timeout:
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            out = proc.communicate()[0].decode("latin-1", "replace")
        run = QemuRun(returncode, _read(e9), _read(sb), _read(serial), time.monotonic() - start)
        if returncode == 1 and f"{QEMU}:" in out:  # QEMU refused its options (not a guest exit)
            raise AssertionError(f"QEMU failed ({returncode}): {out.strip()}")
        return run


def seabios_gave_up(run):
    """SeaBIOS has finished trying its boot devices."""
    return "No bootable device" in run.seabios_log or "Boot failed" in run.debugcon + run.serial
