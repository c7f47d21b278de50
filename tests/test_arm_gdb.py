"""Debian's arm64 kernel under QEMU -kernel on virt, stopped at its entry through QEMU's
gdbstub: the registers (pc, x0-x3), the DTB read from guest memory at x0, the kernel's
header at the entry and the initrd's bytes where qemu-arm-kernel put them must be the
prediction's, byte for byte apart from the declared random bytes."""

import json
import subprocess
import time

from bootforge.fdtboot.handover import masked
from bootforge.qemu.gdbremote import GdbRemote
from conftest import require, run_bootforge
from dtboot import MIB, make_initrd, verify_json
from test_arm_images import debian_arm64_kernel

AARCH64_GDB = (tuple(f"x{i}" for i in range(31)) + ("sp", "pc"), 8)   # gdb-xml/aarch64-core.xml
CMDLINE = "console=ttyAMA0 earlycon root=/dev/vda ro"


def test_debian_kernel_entry(tmp_path):
    """`bootforge verify` of Debian's kernel under QEMU -kernel (verify/fdt.py: the gdbstub at the
    entry): pc, x0-x3, the 1 MiB DTB at x0 byte for byte apart from the seeds, the kernel's first
    and last MiB where it runs, and all of a 3 MiB initrd where qemu-arm-kernel put it."""
    require("qemu-system-aarch64")
    kernel = debian_arm64_kernel()
    initrd = make_initrd(tmp_path / "initrd.img", 3 * MIB + 123)
    args = (kernel, "--platform", "qemu-virt-aarch64:2G", "--loader", "qemu-arm-kernel", "--cmdline", CMDLINE)
    result = json.loads(run_bootforge("load", *args, "--initrd", initrd, "--json", check=0).stdout)
    report, fields = verify_json(*args, "--module", initrd)
    at = {p["kind"]: p for p in result["placements"]}
    assert report["registers"]["pc"] == result["linux"]["entry"] == at["kernel"]["start"]
    assert {k: report["registers"][k] for k in ("x0", "x1", "x2", "x3")} == result["linux"]["registers"]
    assert fields["kernel bytes (first MiB)"]["match"] and fields["kernel bytes (last MiB)"]["match"]
    assert fields["initrd start"]["observed"] == at["module"]["start"]
    assert fields["initrd end"]["observed"] == at["module"]["end"] == at["module"]["start"] + 3 * MIB + 123
    assert fields["initrd bytes"]["match"] and fields["dtb bytes"]["observed"] == "equal"
    assert fields["dtb totalsize"]["observed"] == MIB


def test_debian_kernel_through_uboot_booti(tmp_path):
    """U-Boot 2023.01 booti of Debian's kernel (preloaded at kernel_addr_r), stopped at the entry
    uboot-booti predicts: pc, x0-x3 (x0: U-Boot's DTB copy), and the DTB read there byte for byte."""
    import os
    import select
    require("qemu-system-aarch64", "/usr/lib/u-boot/qemu_arm64/u-boot.bin")
    kernel = debian_arm64_kernel()
    cmdline = "console=ttyAMA0 root=/dev/vda"
    proc = run_bootforge("load", kernel, "--platform", "qemu-virt-aarch64:1G", "--loader", "uboot-booti",
                         "--cmdline", cmdline, "--json", "--mbi-out", tmp_path / "dtb", check=0)
    result = json.loads(proc.stdout)
    entry = result["linux"]["entry"]
    sock = tmp_path / "gdb.sock"
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "1024M", "-display", "none",
            "-nographic", "-monitor", "none", "-serial", "stdio", "-nic", "none",
            "-bios", "/usr/lib/u-boot/qemu_arm64/u-boot.bin",
            "-device", f"loader,file={kernel},addr={result['linux']['loaded_at']:#x},force-raw=on",
            "-S", "-gdb", f"unix:{sock},server=on,wait=off"]
    qemu = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        gdb = GdbRemote(sock)
        gdb.hardware_breakpoint(entry)
        gdb.cont()
        os.set_blocking(qemu.stdout.fileno(), False)
        out, state, stop, deadline = b"", 0, None, time.monotonic() + 90
        while stop is None and time.monotonic() < deadline:
            ready, _, _ = select.select([qemu.stdout], [], [], 0.05)
            if ready:
                try:
                    out += os.read(qemu.stdout.fileno(), 1 << 16)
                except BlockingIOError:
                    pass
            if state == 0 and b"Hit any key to stop autoboot" in out:
                qemu.stdin.write(b"\r")
                qemu.stdin.flush()
                state = 1
            elif state == 1 and out.rstrip().endswith(b"=>"):
                qemu.stdin.write(f"setenv bootargs {cmdline}; booti {result['linux']['loaded_at']:#x} - "
                                 "${fdtcontroladdr}\r".encode())
                qemu.stdin.flush()
                state = 2
            stop = gdb.wait_stop(0.05)
        assert stop is not None, out.decode("latin-1")[-600:]
        # The CPU stopped at the breakpoint: what U-Boot printed before is still in the pipe.
        while select.select([qemu.stdout], [], [], 0.5)[0]:
            chunk = os.read(qemu.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            out += chunk
        assert b"Starting kernel" in out, out.decode("latin-1")[-600:]
        regs = gdb.registers(AARCH64_GDB)
        assert regs["pc"] == entry
        assert {k: regs[k] for k in ("x0", "x1", "x2", "x3")} == result["linux"]["registers"]
        predicted = (tmp_path / "dtb").read_bytes()
        got = gdb.read_memory(regs["x0"], len(predicted))
        spans = result["linux"]["devicetree"]["random_bytes"]
        assert masked(got, spans) == masked(predicted, spans)
        gdb.close()
    finally:
        qemu.kill()
        qemu.wait()


def test_debian_kernel_on_aavmf_says_what_the_verdict_says(tmp_path):
    """AAVMF (qemu-efi-aarch64) starting Debian's kernel from QEMU -kernel: the EFI stub's own lines
    are the ones linux-efi-stub-arm64 lists (ACPI machine: no firmware DTB, no RNG protocol)."""
    code = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
    require("qemu-system-aarch64", code)
    kernel = debian_arm64_kernel()
    doc = json.loads(run_bootforge("inspect", "--json", kernel, check=0).stdout)
    stub = next(v for v in doc["verdicts"] if v["subject"] == "linux-efi-stub-arm64")
    flash = tmp_path / "code.fd"
    flash.write_bytes(open(code, "rb").read().ljust(64 << 20, b"\0"))
    (tmp_path / "vars.fd").write_bytes(bytes(64 << 20))
    serial = tmp_path / "serial.txt"
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "1G", "-display", "none",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-nic", "none", "-no-reboot",
            "-drive", f"if=pflash,format=raw,readonly=on,file={flash}",
            "-drive", f"if=pflash,format=raw,file={tmp_path / 'vars.fd'}",
            "-kernel", str(kernel), "-append", "console=ttyAMA0 panic=-1"]
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and b"Booting Linux on physical CPU" not in \
                (serial.read_bytes() if serial.exists() else b""):
            time.sleep(0.5)
    finally:
        qemu.kill()
        qemu.wait()
    lines = [line.strip() for line in serial.read_text("latin-1").replace("\x1b", "\n").splitlines()]
    said = [line[line.index("EFI stub:"):] for line in lines if "EFI stub:" in line]
    assert said == stub["facts"]["stub_says"]
