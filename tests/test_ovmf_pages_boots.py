"""One real OVMF boot for the rule by which the file QEMU -kernel hands OVMF moves its DXE
allocations (bootforge/loader/ovmf_pages.py for_inputs, QemuKernelLoaderFsDxe's FetchBlob):
Debian's kernel made 1234567 bytes longer (no capture has that size) at 1G (no capture has that
memory size either), stopped at the kernel's entry by `bootforge verify`: boot_params,
cmd_line_ptr and the setup_data node are counted and equal linux-efi-stub's prediction. The
same fields of the other sizes' boots are checked without QEMU in tests/test_ovmf_pages.py."""

import json

from conftest import require, run_bootforge
from test_ovmf_pages import longer_kernel
from test_uki_build import KERNEL

CMDLINE = "console=ttyS0 earlyprintk=serial efi=debug nokaslr panic=-1"


def test_a_longer_kernel_boots_where_predicted(tmp_path):
    require(KERNEL, "qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    proc = run_bootforge("verify", longer_kernel(tmp_path), "--platform", "qemu-q35-ovmf:1G", "--loader",
                         "linux-efi-stub", "--cmdline", CMDLINE, "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    rows = {r["name"]: r for r in report["fields"]}
    for name in ("boot_params (ESI)", "cmd_line_ptr", "ramdisk_image", "setup_data"):
        assert rows[name]["counted"] and rows[name]["match"], rows[name]
    assert rows["boot_params (ESI)"]["observed"] == 0x3DC2D000     # the kept boot (verify-kernel-longer-1G.json)
