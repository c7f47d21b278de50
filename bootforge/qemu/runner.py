"""The one QEMU runner: a machine (pc + SeaBIOS or q35 + OVMF with a fresh copy of
its variable store), memory, a boot medium, the debug console (port 0xE9), the
serial console, the firmware log (port 0x402, SeaBIOS), isa-debug-exit and
optionally QEMU's gdbstub on a unix socket, stopped at the first instruction.

QEMU is always ended: on leaving the `with` block, on Ctrl-C (KeyboardInterrupt
reaches the block), on SIGTERM (turned into SystemExit while a run is active)
and when bootforge itself dies (PR_SET_PDEATHSIG). Its files live in a private
temporary directory that is removed afterwards unless the caller keeps it.
Command lines follow /work/shared/reference/qemu-oracles.md (observed on QEMU 7.2).
"""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bootforge import machines
from bootforge.errors import ToolError
from bootforge.qemu import host, monitor

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
PR_SET_PDEATHSIG = 1
COMMON = ["-display", "none", "-no-reboot", "-monitor", "none",
          "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


@dataclass
class Machine:
    """A machine of the registry (bootforge.machines) with a memory size. *firmware* names the
    machine (qemu-pc-seabios, qemu-pc-seabios-i386, qemu-q35-ovmf), or for older callers its
    firmware (bios or seabios: qemu-pc-seabios; uefi or ovmf: qemu-q35-ovmf)."""
    firmware: str = "qemu-pc-seabios"
    memory_mib: int = 256

    @property
    def declared(self):
        return machines.machine(self.firmware)

    @property
    def machine_type(self):
        return self.declared.machine

    def describe(self):
        return f"{self.declared.title}, {self.memory_mib} MiB"


@dataclass
class Medium:
    """What QEMU boots: its arguments (-cdrom ISO, -kernel ..., -netdev ... TFTP)."""
    args: list
    description: str
    network: bool = False           # the medium brings its own NIC (iPXE); else -nic none
    cwd: str | None = None          # -kernel/-initrd names relative to this directory
    files: dict = field(default_factory=dict)   # what was put on it: name -> host path


def _die_with_parent():
    # Linux: QEMU gets SIGKILL when bootforge dies, whatever kills it.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class QemuRun:
    """One QEMU process. Use as a context manager:

        with QemuRun(Machine("seabios", 256), medium, gdb=True) as run:
            run.start()
            ...
    """

    def __init__(self, machine, medium, *, workdir=None, gdb=False, firmware_log=True, extra=()):
        self.machine, self.medium, self.gdb, self.extra = machine, medium, gdb, list(extra)
        self.firmware_log_wanted = firmware_log and machine.declared.firmware_log is not None
        self.register_layout = machine.declared.gdb_registers      # the gdbstub's 'g' reply
        # Sockets need a short path (108 bytes): always a private directory under the temp dir.
        self.private = Path(tempfile.mkdtemp(prefix="bootforge-qemu-"))
        # Absolute: QEMU may run in another directory (the -kernel medium's cwd), and its -serial,
        # -debugcon and firmware-log files are named from here (a relative `verify --keep DIR`).
        self.workdir = Path(workdir).absolute() if workdir is not None else self.private
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_path = self.workdir / "serial.txt"
        self.debugcon_path = self.workdir / "e9.log"
        self.firmware_log_path = self.workdir / "firmware.log"
        self.stderr_path = self.workdir / "qemu.err"
        self.gdb_socket = self.private / "gdb.sock"
        self.monitor_socket = self.private / "monitor.sock"     # screen(): the VGA text buffer
        self._screen = (0.0, [])
        self.proc = None
        self.started = None
        self._old_sigterm = None

    # -- the command line
    def command(self):
        m, d = self.machine, self.machine.declared
        host.require(d.binary)
        cmd = [d.binary, "-machine", d.machine, "-cpu", d.cpu, "-m", str(m.memory_mib), *COMMON,
               "-serial", f"file:{self.serial_path}", "-debugcon", f"file:{self.debugcon_path}"]
        if d.firmware_files:
            host.require(*d.firmware_files)
            vars_copy = self.workdir / "vars.fd"        # a fresh variable store per boot
            shutil.copyfile(d.firmware_files[1], vars_copy)
            cmd += list(d.firmware_args(vars_copy))
        elif self.firmware_log_wanted:
            cmd += ["-chardev", f"file,id=fwlog,path={self.firmware_log_path}",
                    "-device", f"isa-debugcon,iobase={d.firmware_log:#x},chardev=fwlog"]
        if not self.medium.network:
            cmd += ["-nic", "none"]
        if self.gdb:
            cmd += ["-S", "-gdb", f"unix:{self.gdb_socket},server=on,wait=off"]
        cmd += ["-monitor", f"unix:{self.monitor_socket},server=on,wait=off"]
        return cmd + list(self.medium.args) + self.extra

    # -- life cycle
    def start(self):
        cmd = self.command()
        for p in (self.serial_path, self.debugcon_path, self.firmware_log_path):
            if p.exists():
                p.unlink()
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
        self._stderr = open(self.stderr_path, "w")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                         stderr=subprocess.STDOUT, cwd=self.medium.cwd,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise ToolError(f"{cmd[0]} is not installed (Debian package "
                            f"{host.PACKAGES.get(cmd[0], 'qemu-system-x86')})") from None
        self.started = time.monotonic()
        return self

    def elapsed(self):
        return time.monotonic() - self.started if self.started else 0.0

    def exited(self):
        return self.proc is not None and self.proc.poll() is not None

    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def wait_until(self, predicate, timeout, poll=0.05):
        """Poll until predicate(self) is true ("matched"), QEMU exits ("exited") or
        *timeout* seconds from start pass ("timeout")."""
        while True:
            if predicate is not None and predicate(self):
                return "matched"
            if self.exited():
                return "matched" if predicate is not None and predicate(self) else "exited"
            if self.elapsed() > timeout:
                return "timeout"
            time.sleep(poll)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait()
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
            self._stderr = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def close(self):
        self.stop()
        shutil.rmtree(self.private, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- what the guest wrote
    def serial_bytes(self):
        return _read(self.serial_path)

    def serial(self):
        """The serial console as text, ANSI escapes stripped."""
        return ANSI.sub(b"", _read(self.serial_path)).decode("latin-1")

    def debugcon(self):
        return _read(self.debugcon_path)

    def firmware_log(self):
        return _read(self.firmware_log_path).decode("latin-1")

    def screen(self, every=1.0):
        """The VGA text screen's rows (bootforge.qemu.monitor), read at most once per *every* seconds."""
        at, rows = self._screen
        if self.proc is not None and not self.exited() and time.monotonic() - at >= every:
            rows = monitor.vga_text(self.monitor_socket, self.private / "screen.bin")
            self._screen = (time.monotonic(), rows)
        return rows

    def qemu_stderr(self):
        return _read(self.stderr_path).decode("latin-1", "replace")


def _read(path):
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return b""


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


def last_lines(text, n=3, width=200):
    """The last *n* non-empty lines of a console, for 'last seen on serial: ...'."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return " | ".join(lines[-n:])[-width:]
