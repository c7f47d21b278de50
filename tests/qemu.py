"""Running QEMU for end-to-end tests on the product's one runner (bootforge.qemu.runner):
poll the guest's output files and stop QEMU as soon as what the test waits for has
appeared (or it exits)."""

from dataclasses import dataclass

from bootforge.qemu import host
from bootforge.qemu.runner import ANSI, Machine, Medium, QemuRun
from conftest import require

QEMU = host.QEMU
OVMF_CODE = host.OVMF_CODE
OVMF_VARS = host.OVMF_VARS


@dataclass
class QemuOutput:
    returncode: int | None      # None: stopped by the test once the output was there
    debugcon: str               # port 0xE9
    seabios_log: str            # port 0x402 (SeaBIOS) when captured
    serial: str                 # ANSI escapes stripped
    seconds: float


def _output(run, returncode):
    return QemuOutput(returncode, ANSI.sub(b"", run.debugcon()).decode("latin-1"), run.firmware_log(),
                      run.serial(), run.elapsed())


def run_qemu(args, *, until=None, timeout=60, firmware="seabios", memory="64"):
    """Boot QEMU with debugcon (0xE9), SeaBIOS log (0x402), serial to a file and
    isa-debug-exit; return a QemuOutput. `until(output)` ends the run early when true."""
    require(QEMU)
    if firmware == "ovmf":
        require(OVMF_CODE, OVMF_VARS)
    with QemuRun(Machine(firmware, int(memory)), Medium(list(args), "test devices")) as run:
        run.start()
        run.wait_until(None if until is None else (lambda r: until(_output(r, None))), timeout)
        returncode = run.returncode()
        run.stop()
        out = _output(run, returncode)
        err = run.qemu_stderr()
    if returncode == 1 and f"{QEMU}:" in err:  # QEMU refused its options (not a guest exit)
        raise AssertionError(f"QEMU failed ({returncode}): {err.strip()}")
    return out


def seabios_gave_up(run):
    """SeaBIOS has finished trying its boot devices."""
    return "No bootable device" in run.seabios_log or "Boot failed" in run.debugcon + run.serial
