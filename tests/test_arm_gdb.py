"""Debian's arm64 kernel under QEMU -kernel on virt, stopped at its entry through QEMU's
gdbstub: the registers (pc, x0-x3), the DTB read from guest memory at x0, the kernel's
header at the entry and the initrd's bytes where qemu-arm-kernel put them must be the
prediction's, byte for byte apart from the declared random bytes."""

import json
import subprocess

from bootforge.fdtboot.handover import masked
from bootforge.qemu.gdbremote import GdbRemote
from conftest import require, run_bootforge
from dtboot import MIB, make_initrd, qemu_command
from test_arm_images import debian_arm64_kernel

AARCH64_GDB = (tuple(f"x{i}" for i in range(31)) + ("sp", "pc"), 8)   # gdb-xml/aarch64-core.xml
CMDLINE = "console=ttyAMA0 earlycon root=/dev/vda ro"


def test_debian_kernel_entry(tmp_path):
    require("qemu-system-aarch64")
    kernel = debian_arm64_kernel()
    initrd = make_initrd(tmp_path / "initrd.img", 3 * MIB + 123)
    proc = run_bootforge("load", kernel, "--platform", "qemu-virt-aarch64:2G", "--loader", "qemu-arm-kernel",
                         "--cmdline", CMDLINE, "--initrd", initrd, "--json", "--mbi-out", tmp_path / "dtb", check=0)
    result = json.loads(proc.stdout)
    at = {p["kind"]: p for p in result["placements"]}
    predicted = (tmp_path / "dtb").read_bytes()
    sock = tmp_path / "gdb.sock"
    argv = qemu_command("qemu-virt-aarch64", 2048 * MIB, kernel, initrd, CMDLINE, tmp_path / "serial.txt",
                        extra=["-S", "-gdb", f"unix:{sock},server=on,wait=off"])
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        gdb = GdbRemote(sock)
        entry = result["linux"]["entry"]
        gdb.hardware_breakpoint(entry)
        gdb.cont()
        assert gdb.wait_stop(60) is not None, "the kernel's entry was not reached"
        regs = gdb.registers(AARCH64_GDB)
        assert regs["pc"] == entry == at["kernel"]["start"]
        assert {k: regs[k] for k in ("x0", "x1", "x2", "x3")} == result["linux"]["registers"]
        got = gdb.read_memory(regs["x0"], len(predicted))
        spans = result["linux"]["devicetree"]["random_bytes"]
        assert masked(got, spans) == masked(predicted, spans)
        assert gdb.read_memory(entry, 64) == kernel.read_bytes()[:64]
        assert gdb.read_memory(at["module"]["start"], 4096) == initrd.read_bytes()[:4096]
        end = at["module"]["end"]
        assert gdb.read_memory(end - 123, 123) == initrd.read_bytes()[-123:]
        gdb.close()
    finally:
        qemu.kill()
        qemu.wait()
