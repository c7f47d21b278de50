"""Device-tree boots for the tests: the dtdump kernels (stubs/dtdump-*.S behind the Image
header bootforge writes), QEMU -kernel runs on virt, their captures as fixtures
(tests/data/dtdump-*.serial and the machine's DTB of the same QEMU), and predictions
from a captured machine DTB so unit tests run without QEMU."""

import json
import subprocess
from pathlib import Path

from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot.machines import DtBoard
from bootforge.machines import MACHINES
from bootforge.loader.image import KernelImage
from bootforge.loader.platforms import Platform
from bootforge.loader.policies import policy
from bootforge.loader.result import LoadRequest, ModuleSpec
from bootforge.memmap.convert import fdt_to_map
from conftest import BUILD, DATA, REPO, require, run_bootforge

MIB = 1 << 20
QEMU_TIMEOUT = 60
INITRD_MAGIC = b"BFINITRD"


def dump_kernel(arch):
    """The dtdump Image for *arch*: `make` assembles the code, `bootforge build` writes the header."""
    require("make", {"aarch64": "aarch64-linux-gnu-as", "riscv64": "riscv64-linux-gnu-as",
                     "arm": "arm-linux-gnueabihf-as"}[arch])
    code = BUILD / "stubs" / f"dtdump-{arch}.bin"
    proc = subprocess.run(["make", "-s", str(code.relative_to(REPO))], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    image = BUILD / "stubs" / f"dtdump-{arch}.Image"
    run_bootforge("build", REPO / "stubs" / f"dtdump-{arch}.toml", "-o", image, check=0)
    return image


def make_initrd(path, size):
    """An initrd the dump kernel finds by its first 8 bytes (the same bytes every time)."""
    body = bytes((i * 7 + 3) & 0xFF for i in range(size - len(INITRD_MAGIC)))
    path.write_bytes(INITRD_MAGIC + body)
    return path


def legacy_uimage(kernel, out, address=0x40400000):
    """*kernel* as an uncompressed arm64 uImage made by mkimage (load = entry = *address*)."""
    require("mkimage")
    subprocess.run(["mkimage", "-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none", "-a", hex(address),
                    "-e", hex(address), "-n", "dtdump", "-d", str(kernel), str(out)], check=True, capture_output=True)
    return out


def verify_json(*args):
    """`bootforge verify ARGS --json -q`, which must exit 0: (its report, the report's fields by name)."""
    proc = run_bootforge("verify", *args, "--json", "-q")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    report = json.loads(proc.stdout)
    return report, {f["name"]: f for f in report["fields"]}


def qemu_command(machine, mem, kernel, initrd=None, cmdline=None, serial=None, extra=()):
    m = MACHINES[machine]
    argv = m.qemu_args(mem) + ["-display", "none", "-nographic", "-monitor", "none",
                               "-serial", f"file:{serial}" if serial else "stdio", "-kernel", str(kernel)]
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    if cmdline:
        argv += ["-append", cmdline]
    return argv + list(extra)


def boot(machine, mem, kernel, tmp, initrd=None, cmdline=None, extra=()):
    """Run the dump kernel under QEMU -kernel; return (serial text, the command)."""
    m = MACHINES[machine]
    require(m.binary)
    serial = Path(tmp) / "serial.txt"
    argv = qemu_command(machine, mem, kernel, initrd, cmdline, serial, extra)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=QEMU_TIMEOUT)
    assert proc.returncode == 0, (argv, proc.stderr)
    return serial.read_text("latin-1"), argv


def fixture_board(machine, mem, name, cmdline=None):
    """A DtBoard from a captured machine DTB (tests/data/<name>.machine.dtb, its used bytes:
    the rest of its totalsize is zero, as QEMU's buffer is)."""
    head = (DATA / f"{name}.machine.dtb").read_bytes()
    total = int.from_bytes(head[4:8], "big")
    m = MACHINES[machine]
    buffer = max(total, len(head), 1 << 20 if m.cmdline_in_machine_dtb else 0)    # RISC-V: packed, in 1 MiB
    return DtBoard(f"{machine}:{mem // MIB}M", m, mem, m.ram_base, head + bytes(buffer - len(head)),
                   f"tests/data/{name}.machine.dtb", cmdline=cmdline if m.cmdline_in_machine_dtb else None)


def predict(board, kernel_data, loader, initrd=None, cmdline=""):
    """The policy's LoadResult for the dump kernel on *board* (no QEMU needed)."""
    platform = Platform(board.name, "fdt", fdt_to_map(parse_dtb(board.dtb)), memory_bytes=board.memory_bytes,
                        devicetree=board)
    kernel = KernelImage("dtdump", kernel_data, len(kernel_data), None, 64, 0,
                         [(0, len(kernel_data), len(kernel_data))])
    modules = [ModuleSpec(str(initrd), Path(initrd).name, "", Path(initrd).stat().st_size)] if initrd else []
    return policy(loader)(LoadRequest(kernel, "dtdump.Image", cmdline, modules, platform, loader))


UBOOT_ARM64 = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
UBOOT_ARM = "/usr/lib/u-boot/qemu_arm/u-boot.bin"
UBOOT_RISCV64_SMODE = "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"     # started by OpenSBI: -kernel
UBOOT_LOAD_ADDR = 0x44000000


def uboot_run(image, command, timeout=60, address=UBOOT_LOAD_ADDR, preload=(), mem=1 << 30,
              machine="qemu-virt-aarch64", bios=UBOOT_ARM64, how="-bios"):
    """U-Boot (u-boot-qemu 2023.01, qemu_arm64) on virt with *image* preloaded at
    *address*: stop autoboot, type *command*, return the console until the dump kernel
    says DONE or U-Boot's prompt comes back."""
    import os
    import select
    import time
    require(MACHINES[machine].binary, bios)
    argv = MACHINES[machine].qemu_args(mem) + [
        "-display", "none", "-nographic", "-monitor", "none", "-serial", "stdio", "-nic", "none",
        how, bios, "-device", f"loader,file={image},addr={address:#x},force-raw=on"]
    for path, at in preload:        # more files in RAM before U-Boot starts (a ramdisk for booti)
        argv += ["-device", f"loader,file={path},addr={at:#x},force-raw=on"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.set_blocking(proc.stdout.fileno(), False)
    out, state, start = b"", 0, time.monotonic()
    try:
        while time.monotonic() - start < timeout and proc.poll() is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                try:
                    out += os.read(proc.stdout.fileno(), 1 << 16)     # the raw fd: nothing buffered away
                except BlockingIOError:
                    pass
            if state == 0 and b"Hit any key to stop autoboot" in out:
                proc.stdin.write(b"\r")
                proc.stdin.flush()
                state = 1
            elif state == 1 and out.rstrip().endswith(b"=>"):
                proc.stdin.write(command.encode() + b"\r")
                proc.stdin.flush()
                state, mark = 2, len(out)
            elif state == 2 and (b"DONE" in out[mark:] or out[mark:].rstrip().endswith(b"=>")):
                break
        # QEMU ends itself at PSCI SYSTEM_OFF: what it wrote before is still in the pipe.
        os.set_blocking(proc.stdout.fileno(), True)
        if proc.poll() is not None:
            out += proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    return out.decode("latin-1")
