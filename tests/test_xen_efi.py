"""Xen 4.17 on OVMF: Debian's xen.gz started by GRUB x86_64-efi (the xen-efi policy) and its
xen.efi started by OVMF from an ESP (xen-efi-esp), and GRUB's module loading: what Xen prints on
its console (load base, files read, "EFI RAM map:") and the EFI map it got, against the
prediction, from recorded real boots and one live `verify` each; modules gunzipped as GRUB's
module2 does."""

import gzip
import json
import lzma
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import DATA, require
import fidelity as F
from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.loader.image import KernelImage, read_kernel
from bootforge.loader.platforms import resolve
from bootforge.loader.policies import policy
from bootforge.loader.policies.grub_pc import grub_module_size
from bootforge.loader.result import LoadRequest, ModuleSpec
from bootforge.verify.xen import efi_map_in_image, predicted_facts, xen_console_facts

CONSOLE = DATA / "xen-efi-2G-console.txt"     # the command and module sizes: xen-efi-2G-console.README
ESP = DATA / "xen-efi-esp"       # xen.efi from an ESP: the command and files in README.md there
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


def test_xen_efi_e820_is_sorted_as_xen_prints_it():
    """With RAM above 4 GiB OVMF lists the MMCONFIG window and the flash after that RAM; Xen
    sanitizes (sorts) its E820 before printing it. The map does not depend on who loaded Xen
    (every loader and boot-services page is RAM), so the 3G boot from an ESP shows what xen-efi
    must give (a real xen-efi boot at 3G matched as well: 21 fields)."""
    mods = [ModuleSpec("-", "/boot/vmlinuz", "", 8247232)]
    req = LoadRequest(_xen(), "/boot/xen.gz", XEN_CMDLINE, mods, resolve("qemu-q35-ovmf:3G"), "xen-efi")
    printed = xen_console_facts((ESP / "console-3G.txt").read_text(errors="replace"))["e820"]
    assert [a for a, _s, _t in printed][-3:] == [0xb0000000, 0xffc00000, 1 << 32]
    assert policy("xen-efi")(req).mmap == printed


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


ESP_MODULES = [("vmlinuz", "root=/dev/ram0 console=hvc0", 8247232), ("initrd.img", "", 31173247)]


def _xen_efi():
    require(F.XEN_EFI)
    data = Path(F.XEN_EFI).read_bytes()
    return KernelImage(F.XEN_EFI, data, len(data), None, 64, 0, [(0x1000000, len(data), len(data))])


def _esp_request(memory, modules=ESP_MODULES):
    mods = [ModuleSpec("-", name, args, size) for name, args, size in modules]
    return LoadRequest(_xen_efi(), "/EFI/BOOT/BOOTX64.EFI", XEN_CMDLINE, mods, resolve(f"qemu-q35-ovmf:{memory}"),
                       "xen-efi-esp", {"trampoline_size": 0x2000})


def _recorded_esp_boot(memory):
    seen = xen_console_facts((ESP / f"console-{memory}.txt").read_text(errors="replace"))
    seen["efi_map"] = [tuple(d) for d in json.loads((ESP / f"exit-map-{memory}.json").read_text())["descriptors"]]
    return seen


@pytest.mark.parametrize("memory", ["512M", "2G", "3G"])
def test_xen_efi_from_an_esp_recorded_boot_equals_the_prediction(memory):
    """xen.efi as BOOTX64.EFI, started by OVMF: the load base Xen printed (where LoadImage put the
    PE: SizeOfImage + SectionAlignment pages top-down, rounded up to 2 MiB), the two files its
    EFI loader read (top-down Loader Data), its EFI RAM map (sorted by Xen) and the EFI map it got
    at ExitBootServices, in GetMemoryMap's order (at 3G the MMCONFIG window and the flash after
    the RAM above 4 GiB), equal the prediction. 2G is predicted from the 512M capture."""
    seen = _recorded_esp_boot(memory)
    want = predicted_facts(policy("xen-efi-esp")(_esp_request(memory)))
    assert seen["load_base"] == {"512M": 0x1ca00000, "2G": 0x7ca00000, "3G": 0x7ca00000}[memory]   # as Xen printed it
    assert [name for name, _a, _b in seen["files"]] == ["vmlinuz", "initrd.img"]
    assert (len(seen["e820"]), len(seen["efi_map"])) == {"512M": (16, 126), "2G": (16, 126), "3G": (17, 127)}[memory]
    assert seen.pop("grub_pages") is None               # no GRUB ran
    assert want == seen


@pytest.mark.parametrize("name", ["esp-xen-512M", "esp-xen-3G"])
def test_xen_efi_esp_capture_is_derived_from_the_recorded_boot(name):
    """The policy's captures of OVMF's map are what derive_capture makes of the kept exit maps
    (Xen's own pieces returned to conventional memory), not hand-written tables."""
    import xen_efi_esp_capture
    from bootforge.loader.ovmf_pages import CAPTURE_DIR
    kept = json.loads(CAPTURE_DIR.joinpath(name + ".json").read_text())
    assert json.loads(json.dumps(xen_efi_esp_capture.derive(name))) == kept
    assert kept["held"] == []           # the file buffer reaches the OVMF block above it


def test_the_efi_map_is_found_in_xens_image():
    """verify's reader: the descriptor array inside the saved image, wherever it lies, up to the
    first entry that is not a descriptor."""
    descs = _recorded_esp_boot("3G")["efi_map"]         # not sorted: MMIO after the RAM above 4 GiB
    # OVMF's DescriptorSize is 48: the 40-byte EFI_MEMORY_DESCRIPTOR and 8 bytes of padding
    body = b"".join(struct.pack("<IIQQQQ8x", t, 0, s, 0, n, a) for t, s, n, a in descs)
    image = bytes(range(256)) * 64 + b"\0" * 16 + body + b"\xff" * 64
    assert efi_map_in_image(image) == descs
    assert efi_map_in_image(bytes(4096)) is None


def test_xen_efi_esp_refuses_what_it_has_no_capture_for():
    req = _esp_request("512M")
    with pytest.raises(RecipeError, match="--platform qemu-q35-ovmf"):
        policy("xen-efi-esp")(replace(req, platform=resolve("r820-efi")))
    with pytest.raises(LoaderRefusal, match="No Dom0 kernel image specified"):
        policy("xen-efi-esp")(_esp_request("512M", []))
    with pytest.raises(LoaderRefusal, match="gzip-compressed"):        # OVMF's LoadImage does not gunzip
        policy("xen-efi-esp")(replace(req, kernel=_xen()))


def test_verify_xen_efi_from_an_esp():
    """One real boot: the xen-esp disk (xen.efi, BOOTX64.cfg, Debian's vmlinuz and the small
    busybox initrd) at 5G, other file sizes than the captures' and more RAM above 4 GiB than the
    3G capture's; every row matches."""
    require(F.OVMF_CODE, F.OVMF_VARS, F.XEN_EFI)
    vmlinuz, _initrd = F.debian_kernel_files()
    require(str(vmlinuz) if vmlinuz else "/boot/vmlinuz-*")
    from bootforge.verify.run import verify
    report = verify(F.XEN_EFI, "qemu-q35-ovmf:5G", "xen-efi-esp", cmdline=XEN_CMDLINE,
                    modules=[f"{vmlinuz}=root=/dev/ram0 console=hvc0", str(F.busybox_initrd())])
    assert report.status == "console", report.render_text()
    names = [r.name for r in report.rows]
    assert "EFI map 126" in names and "file 1" in names
    assert next(r for r in report.rows if r.name == "file 1").observed.startswith("busybox-initrd.gz [")
    assert report.ok, report.render_text()
