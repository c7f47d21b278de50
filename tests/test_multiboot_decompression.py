"""Which loaders decompress a kernel: each policy decides as its verdict does, on the bytes
that loader reads. GRUB opens files through gzio/xzio, Syslinux's mboot.c32 gunzips
(zloadfile); QEMU -kernel, Debian's iPXE (no gzip image support in 1.0.0+git-20190125) and
Limine 11.4.1 take the file as it is, so Xen 4.17's xen.gz is refused in their words. The
real Limine said "multiboot2: Invalid magic" / "multiboot1: Invalid magic" on SeaBIOS for
xen.gz (`bootforge verify`, 0.4 s each)."""

import json
import os

import pytest

from conftest import require, run_bootforge

XEN_GZ = "/boot/xen-4.17-amd64.gz"
REFUSED = {
    "limine-mb1": "multiboot1: Invalid magic",
    "limine-mb2": "multiboot2: Invalid magic",
    "qemu-mb1": "no multiboot header found",
    "ipxe-pcbios-mb1": "Could not select: Exec format error",
}


@pytest.mark.parametrize("loader", sorted(REFUSED))
def test_loaders_that_do_not_decompress_refuse_xen_gz(loader):
    require(XEN_GZ)
    proc = run_bootforge("load", XEN_GZ, "--platform", "qemu-pc-seabios:512M", "--loader", loader)
    assert proc.returncode == 2, proc.stdout
    assert REFUSED[loader] in proc.stderr


@pytest.mark.parametrize("loader", ["grub-pc-mb1", "grub-pc-mb2", "syslinux-mb1"])
def test_loaders_that_decompress_load_xen_gz(loader):
    require(XEN_GZ)
    proc = run_bootforge("load", "--json", XEN_GZ, "--platform", "qemu-pc-seabios:512M", "--loader", loader)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["entry"]["e_entry"] == 0x200000 or "relocatable" in doc["entry"]["how"]


def test_inspect_ipxe_verdict_on_the_file_as_fetched():
    require(XEN_GZ, "/boot/invaders.exec")
    doc = json.loads(run_bootforge("inspect", "--json", XEN_GZ).stdout)
    assert doc["loaders"]["ipxe-mb1"]["words"] == "Could not select: Exec format error"
    assert doc["loaders"]["grub-mb2"]["ok"] and doc["loaders"]["syslinux-mb1"]["ok"]
    inv = json.loads(run_bootforge("inspect", "--json", "/boot/invaders.exec").stdout)
    assert inv["loaders"]["ipxe-mb1"]["ok"] and "ELF path first" in inv["loaders"]["ipxe-mb1"]["reason"]


@pytest.mark.qemu
def test_real_limine_refuses_xen_gz(tmp_path):
    limine = os.environ["BOOTFORGE_LIMINE_DIR"]
    require("qemu-system-x86_64", "xorriso", "cc", XEN_GZ, f"{limine}/limine-bios-cd.bin")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{XEN_GZ}"\nloader_path = "/boot/xen.gz"\ncmdline = "console=com1"\n'
                      'platform = "qemu-pc-seabios:512M"\nloader = "limine-mb2"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["status"] == "refused", doc
    assert "multiboot2: Invalid magic" in json.dumps(doc)
