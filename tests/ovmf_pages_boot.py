"""One real OVMF boot against OVMF's page-allocator model (`make ovmf-pages`; about 40 s here,
so outside make test, whose check of the same fields reads the kept gdbstub captures in
tests/data/ovmf-pages): Debian's kernel with the test initrd under QEMU -kernel at 512M, stopped
at the decompressed kernel's entry through QEMU's gdbstub with gdb; boot_params (RSI),
cmd_line_ptr and its string, ramdisk_image/size and setup_data equal `bootforge load`'s
linux.placement."""

import shutil
import socket
import subprocess

import pytest

from conftest import require
from test_ovmf_pages import load, read_gdb
from test_uki_build import KERNEL, make_initrd

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
CMDLINE = "console=ttyS0 earlyprintk=serial efi=debug nokaslr panic=-1"
GDB_SCRIPT = """set pagination off
set confirm off
target remote :{port}
hbreak *0x1600000
continue
info registers rsi rip
x/2wx $rsi+0x218
x/1wx $rsi+0x228
x/2wx $rsi+0x250
x/s (unsigned long)*(unsigned int*)($rsi+0x228)
kill
quit
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.qemu
def test_a_real_boot_gets_the_predicted_pages(tmp_path):
    require("qemu-system-x86_64", "gdb", OVMF_CODE, OVMF_VARS, KERNEL)
    initrd = make_initrd(tmp_path / "initrd.img")
    shutil.copy(OVMF_VARS, tmp_path / "vars.fd")
    port = free_port()
    (tmp_path / "gdb.cmd").write_text(GDB_SCRIPT.format(port=port))
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512M", "-nic", "none", "-display", "none",
         "-no-reboot", "-monitor", "none", "-serial", f"file:{tmp_path / 'serial.txt'}",
         "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
         "-drive", f"if=pflash,format=raw,file={tmp_path / 'vars.fd'}",
         "-kernel", KERNEL, "-initrd", str(initrd), "-append", CMDLINE, "-gdb", f"tcp:127.0.0.1:{port}", "-S"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run(["gdb", "-batch", "-x", str(tmp_path / "gdb.cmd")], capture_output=True, text=True,
                             timeout=240)
    finally:
        qemu.kill()
        qemu.wait()
    (tmp_path / "gdb.txt").write_text(out.stdout)
    real = read_gdb(tmp_path / "gdb.txt")
    got = load(tmp_path, KERNEL, "512M", initrd, cmdline=CMDLINE)
    placement = got["placement"]
    assert placement["exact"], placement["reason"]
    assert (placement["boot_params"], placement["cmd_line_ptr"]) == (real["boot_params"], real["cmd_line_ptr"])
    assert real["cmdline"] == CMDLINE + " initrd=initrd"     # X86QemuLoadImageLib adds the initrd's name
    assert (placement["initrd"]["start"], placement["initrd"]["size"]) == (real["ramdisk_image"],
                                                                             real["ramdisk_size"])
    assert placement["setup_data"] == [real["setup_data"]]
