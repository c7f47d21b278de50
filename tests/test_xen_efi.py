"""Xen 4.17 (Debian's xen.gz) started by GRUB x86_64-efi on OVMF (the xen-efi policy) and
GRUB's module loading: what Xen prints on its console (load base, "EFI RAM map:") against
the prediction, from a recorded real boot and from one live `verify`; modules gunzipped as
GRUB's module2 does."""

import gzip
import lzma

import pytest

from conftest import DATA, require
import fidelity as F
from bootforge.errors import RecipeError
from bootforge.loader.image import read_kernel
from bootforge.loader.platforms import resolve
from bootforge.loader.policies import policy
from bootforge.loader.policies.grub_pc import grub_module_size
from bootforge.loader.result import LoadRequest, ModuleSpec
from bootforge.verify.xen import predicted_facts, xen_console_facts

CONSOLE = DATA / "xen-efi-2G-console.txt"     # the command and module sizes: xen-efi-2G-console.README
XEN_CMDLINE = "console=com1 com1=115200,8n1"


def _xen():
    require(F.XEN_GZ)
    with open(F.XEN_GZ, "rb") as f:
        return read_kernel(F.XEN_GZ, f.read())


def test_recorded_xen_console_equals_the_prediction():
    """The real boot's load base, 16-entry EFI RAM map and GRUB's loader-data pages equal the
    prediction for the same modules (sizes as recorded) on the qemu-q35-ovmf:2G profile."""
    mods = [ModuleSpec("/nonexistent/vmlinuz", "/boot/vmlinuz-6.1.0-57-amd64", "root=/dev/ram0 console=hvc0",
                       8247232),
            ModuleSpec("/nonexistent/initrd", "/boot/initrd.img-6.1.0-57-amd64", "", 31173247)]
    req = LoadRequest(_xen(), "/boot/xen-4.17-amd64.gz", XEN_CMDLINE, mods, resolve("qemu-q35-ovmf:2G"), "xen-efi")
    seen = xen_console_facts(CONSOLE.read_text(errors="replace"))
    assert seen["load_base"] == 0x7dc00000 and len(seen["e820"]) == 16     # as Xen printed them
    assert predicted_facts(policy("xen-efi")(req)) == seen


def test_a_console_without_the_map_is_no_boot_information():
    assert xen_console_facts("(XEN) Xen version 4.17\n(XEN) Panic on CPU 0:\n") is None


def test_grub_loads_gzip_and_xz_modules_decompressed_and_others_as_they_are(tmp_path):
    """GRUB's module2 gunzips (the size is the gzip trailer's ISIZE) and unxz's; a zstd file is
    loaded as it is. (Real GRUB i386-pc: the gzip'd busybox initrd as Xen's third module ends at
    start + its gunzipped size, fidelity point grub-pc-mb2 256M mods=3.)"""
    raw = bytes(range(256)) * 300
    for name, data in (("m.gz", gzip.compress(raw, mtime=0)), ("m.xz", lzma.compress(raw))):
        path = tmp_path / name
        path.write_bytes(data)
        assert grub_module_size(ModuleSpec(str(path), "/boot/" + name, "", len(data))) == len(raw)
        assert grub_module_size(ModuleSpec("-", "/boot/" + name, "", len(data), data=data)) == len(raw)
    zstd = b"\x28\xb5\x2f\xfd" + raw[:100]
    assert grub_module_size(ModuleSpec("-", "/boot/m.zst", "", len(zstd), data=zstd)) == len(zstd)


def test_verify_xen_efi_on_a_bios_platform_is_one_line():
    _xen()
    from bootforge.verify.run import verify
    with pytest.raises(RecipeError, match="boots OVMF"):
        verify(F.XEN_GZ, "qemu-pc-seabios:512M", "xen-efi")


def test_verify_xen_efi_boots_and_reads_xens_console():
    """One real boot: GRUB x86_64-efi loads Xen with Debian's vmlinuz and initrd; Xen's printed
    load base and EFI RAM map, and GRUB's new loader-data pages, equal the prediction."""
    require(F.OVMF_CODE, F.OVMF_VARS, F.host.GRUB_X86_64_EFI, "grub-mkrescue", "xorriso", "mformat", F.XEN_GZ)
    vmlinuz, initrd = F.debian_kernel_files()
    require(str(vmlinuz) if vmlinuz else "/boot/vmlinuz-*")
    from bootforge.verify.run import verify
    mods = [f"{vmlinuz}=root=/dev/ram0 console=hvc0"] + ([str(initrd)] if initrd else [])
    report = verify(F.XEN_GZ, "qemu-q35-ovmf:2G", "xen-efi", cmdline=XEN_CMDLINE, modules=mods)
    assert report.status == "console", report.render_text()
    names = [r.name for r in report.rows]
    assert "load base (Xen's console)" in names and "mmap 15" in names
    assert report.ok, report.render_text()


def test_xen_efi_started_by_ovmf_from_an_esp():
    """xen.efi as BOOTX64.EFI (no GRUB; tests/data/xen-efi-esp-512M-console.txt): the reader
    takes Xen's base and map without GRUB's lsefimmap printouts. Observed: the 16-entry EFI RAM
    map equals the xen-efi (GRUB) prediction at 512M, the load base does not (0x1ca00000: where
    OVMF's LoadImage put the PE, not GRUB's relocator), so xen-efi does not stand for this boot."""
    seen = xen_console_facts((DATA / "xen-efi-esp-512M-console.txt").read_text(errors="replace"))
    assert seen["load_base"] == 0x1ca00000 and seen["grub_pages"] is None
    mods = [ModuleSpec("-", "/boot/vmlinuz", "", 8247232), ModuleSpec("-", "/boot/initrd.img", "", 31173247)]
    req = LoadRequest(_xen(), "/boot/xen.gz", XEN_CMDLINE, mods, resolve("qemu-q35-ovmf:512M"), "xen-efi")
    want = predicted_facts(policy("xen-efi")(req))
    assert want["e820"] == seen["e820"] and len(seen["e820"]) == 16
    assert want["load_base"] != seen["load_base"]
