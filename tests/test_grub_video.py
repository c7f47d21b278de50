"""GRUB i386-pc's video mode for a kernel that asks for a framebuffer (MB2 framebuffer tag,
MB1 header flag 2), under QEMU's stdvga with SeaVGABIOS (bootforge.loader.video: its mode
list, QEMU's 1280x800 EDID, GRUB's choice rules). The real GRUB set, read back at the
entry by `bootforge verify` (tags 7 and 8 / the MB1 VBE and framebuffer fields byte for
byte, the LFB address and the video BIOS's blocks declared firmware data):

- the dump kernel with a required 1024x768x32 tag: VBE mode 0x4144, pitch 4096;
- the same with 1920x1080x32: 0x4192, pitch 7680;
- the MB1 dump kernel with flag 2, mode_type 0, 1024x768x32: vbe_mode 0x4144;
- Xen 4.17 (optional 0x0x0 tag: "auto", the EDID's 1280x800): 0x417a, MBI 0x580 bytes;
- tboot 1.10.5 (optional 2560x1440x32): 0x4198."""

import json

import pytest

from conftest import BUILD, require, run_bootforge
from bootforge.loader.video import grub_mode_string, grub_vbe_choose
from bootforge.qemu import host
import fidelity as F


def test_grub_choice_rules():
    assert grub_mode_string(0, 0, 0) == "auto"
    assert grub_mode_string(1024, 768, 32) == "1024x768x32,1024x768,auto"
    assert grub_vbe_choose("auto").mode == 0x17A                     # within 1280x800, largest frame
    assert grub_vbe_choose("1024x768x32,1024x768,auto").mode == 0x144
    assert grub_vbe_choose("2560x1440x32,2560x1440,auto").mode == 0x198
    assert grub_vbe_choose("1000x1000x32,1000x1000,auto").mode == 0x17A    # no such mode: auto
    assert grub_vbe_choose("1024x768,auto").mode == 0x144               # any depth: the largest frame


def _kernel(tmp_path, protocol, video):
    from bootforge.multiboot.build import build_kernel_recipe
    require("ld", str(BUILD / "stubs" / "mbdump.elf"))
    out = tmp_path / f"k-{protocol}-{video[0]}.elf"
    if protocol == "multiboot2":
        opts = {"information_request": [1, 2, 3, 6], "module_alignment": True,
                "framebuffer": {"width": video[0], "height": video[1], "depth": video[2]}}
    else:
        opts = {"page_align_modules": True, "memory_info": True,
                "video": {"mode_type": 0, "width": video[0], "height": video[1], "depth": video[2]}}
    build_kernel_recipe(tmp_path / "recipe.toml", {"kernel": {"input": str(BUILD / "stubs" / "mbdump.elf"),
                                                               "protocol": protocol, protocol: opts}}, out)
    return out


def _recipe(tmp_path, kernel, loader):
    r = tmp_path / f"{loader}.toml"
    r.write_text(f'[load]\nkernel = "{kernel}"\nloader_path = "/boot/kernel"\ncmdline = "{F.KERNEL_CMDLINE}"\n'
                 f'platform = "qemu-pc-seabios:256M"\nloader = "{loader}"\n')
    return r


CASES = [("multiboot2", (1024, 768, 32), 0x144, 4096), ("multiboot2", (1920, 1080, 32), 0x192, 7680),
         ("multiboot1", (1024, 768, 32), 0x144, 4096)]


@pytest.mark.parametrize("protocol, video, mode, pitch", CASES)
def test_load_predicts_the_mode(tmp_path, protocol, video, mode, pitch):
    loader = "grub-pc-mb2" if protocol == "multiboot2" else "grub-pc-mb1"
    proc = run_bootforge("load", _recipe(tmp_path, _kernel(tmp_path, protocol, video), loader))
    assert proc.returncode == 0, proc.stderr
    assert f"video: GRUB sets VBE mode {mode:#x} ({video[0]}x{video[1]}x{video[2]})" in proc.stdout


@pytest.mark.qemu
@pytest.mark.parametrize("protocol, video, mode, pitch", CASES)
def test_real_grub_sets_the_mode(tmp_path, protocol, video, mode, pitch):
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    loader = "grub-pc-mb2" if protocol == "multiboot2" else "grub-pc-mb1"
    proc = run_bootforge("verify", "--json", "-q", _recipe(tmp_path, _kernel(tmp_path, protocol, video), loader))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]
    info = doc["boot_information"]
    if protocol == "multiboot2":
        tags = {t["type"]: t for t in info["multiboot2"]["tags"]}
        assert tags[7]["vbe_mode"] == mode | 0x4000
        fb = tags[8]
    else:
        assert info["multiboot1"]["vbe"]["vbe_mode"] == mode | 0x4000
        fb = info["multiboot1"]["framebuffer"]
    assert (fb["framebuffer_width"], fb["framebuffer_height"], fb["framebuffer_bpp"], fb["framebuffer_pitch"],
            fb["framebuffer_type"]) == (*video, pitch, 1)


@pytest.mark.qemu
@pytest.mark.parametrize("loader", ["grub-pc-mb2", "limine-mb2"])
def test_auto_request_takes_the_edid_mode(tmp_path, loader):
    """An optional 0x0x0 framebuffer tag (Xen's): GRUB's "auto" and Limine's VBE setup both take
    the EDID's preferred 1280x800 at 32 bpp on SeaBIOS (tag 8 byte for byte)."""
    import os
    from bootforge.multiboot.build import build_kernel_recipe
    require("qemu-system-x86_64", "xorriso", str(BUILD / "stubs" / "mbdump.elf"))
    if loader == "grub-pc-mb2":
        require("grub-mkrescue", "mformat", host.GRUB_I386_PC)
    else:
        require(os.path.join(os.environ["BOOTFORGE_LIMINE_DIR"], "limine-bios-cd.bin"), "cc")
    k = tmp_path / "fb0.elf"
    build_kernel_recipe(tmp_path / "recipe.toml", {"kernel": {
        "input": str(BUILD / "stubs" / "mbdump.elf"), "protocol": "multiboot2", "multiboot2": {
            "information_request": [1, 2, 3, 6], "module_alignment": True,
            "framebuffer": {"width": 0, "height": 0, "depth": 0, "optional": True}}}}, k)
    doc = json.loads(run_bootforge("verify", "--json", "-q", _recipe(tmp_path, k, loader)).stdout)
    assert doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]
    fb = next(t for t in doc["boot_information"]["multiboot2"]["tags"] if t["type"] == 8)
    assert (fb["framebuffer_width"], fb["framebuffer_height"], fb["framebuffer_bpp"]) == (1280, 800, 32)


EXAMPLE_KERNEL = "/usr/lib/multiboot/examples/kernel"     # Debian's multiboot: the spec's example


def test_syslinux_choice_rule():
    """initvesa.c never lowers its distance bound, so the last mode at least as large as the
    request and within width + height of it wins: 1600x900x32 for 1024x768x32 on stdvga."""
    from bootforge.loader.video import syslinux_choose
    m = syslinux_choose(1024, 768, 32)
    assert (m.mode, m.width, m.height, m.bpp) == (0x195, 1600, 900, 32)


@pytest.mark.qemu
def test_real_syslinux_sets_vesa_for_the_spec_example_kernel(tmp_path):
    require("qemu-system-x86_64", "xorriso", host.ISOLINUX_BIN, f"{host.SYSLINUX_BIOS_MODULES}/mboot.c32",
            EXAMPLE_KERNEL)
    r = tmp_path / "r.toml"
    r.write_text(f'[load]\nkernel = "{EXAMPLE_KERNEL}"\nloader_path = "/kernel.elf"\ncmdline = "x"\n'
                 'platform = "qemu-pc-seabios:256M"\nloader = "syslinux-mb1"\n')
    doc = json.loads(run_bootforge("verify", "--json", "-q", r).stdout)
    assert doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]
    vbe = doc["boot_information"]["multiboot1"]["vbe"]
    assert vbe["vbe_mode"] == 0x4195
    assert (vbe["mode_info"]["x_resolution"], vbe["mode_info"]["y_resolution"],
            vbe["mode_info"]["bits_per_pixel"]) == (1600, 900, 32)
