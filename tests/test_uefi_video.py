"""The framebuffer a kernel gets on UEFI (OVMF 2022.11 on QEMU's stdvga): the GOP mode list
OVMF offers, the mode GRUB x86_64-efi (video/efi_gop.c) and Limine 11.4.1 (drivers/gop.c) choose
from it, the tag 8 / MB1 fields they hand over, the image builder's video modules, and verify's
framebuffer rows.

Expected values come from real boots: GRUB's `videoinfo` (tests/data/ovmf-gop-videoinfo.txt)
and the framebuffers read back at the kernel's entry (tests/data/uefi-video/, commands in its
README). Two boots run here: a bootforge-built GRUB image under OVMF (the image builder adds
efi_gop/efi_uga for a kernel with a framebuffer tag) and Limine UEFI with a request OVMF has no
mode for."""

import json
import os
import re

import pytest

from conftest import BUILD, DATA, assert_one_line_error, require, run_bootforge
from bootforge.loader.video import GOP_RGB, grub_gop_choose, grub_mode_string, limine_gop_choose, ovmf_gop_modes

CAPTURES = json.loads((DATA / "uefi-video" / "framebuffers.json").read_text())
MBDUMP = BUILD / "stubs" / "mbdump.elf"


def _videoinfo():
    """[(mode, width, height, bpp, pitch, (r, g, b positions))] as GRUB's videoinfo printed them."""
    out = []
    for line in (DATA / "ovmf-gop-videoinfo.txt").read_text().splitlines():
        m = re.match(r"\s+0x([0-9a-f]+)\s+(\d+) x\s+(\d+) x (\d+) \((\d+)\).*pos: (\d+)/(\d+)/(\d+)/", line)
        if m:
            v = [int(m.group(1), 16)] + [int(x) for x in m.groups()[1:]]
            out.append((*v[:5], tuple(v[5:8])))
    return out


def test_ovmf_mode_list_is_the_one_the_real_firmware_offers():
    seen = _videoinfo()
    assert len(seen) == 30 and seen[0][:4] == (0, 1280, 800, 32)     # QEMU's EDID mode first
    assert [(m.mode, m.width, m.height, m.bpp, m.pitch, (GOP_RGB[0], GOP_RGB[2], GOP_RGB[4]))
            for m in ovmf_gop_modes()] == seen


def test_grub_and_limine_choice_rules():
    def grub(w, h, d):
        return grub_gop_choose(grub_mode_string(w, h, d) + ";auto")
    assert (grub(1024, 768, 32).mode, grub(1920, 1080, 32).mode) == (7, 22)
    assert grub(1000, 1000, 32).mode == 0                  # no such mode: "auto" keeps OVMF's 1280x800
    assert grub(1024, 768, 16).mode == 7                   # "WxH" takes any depth
    assert grub(0, 0, 0).mode == 0
    assert limine_gop_choose(1920, 1080, 32).mode == 22
    assert limine_gop_choose(1024, 768, 16).mode == 0      # exact depth only, else the EDID's 1280x800
    assert limine_gop_choose(0, 0, 0).mode == 0


def _kernel(tmp_path, protocol, request):
    from bootforge.multiboot.build import build_kernel_recipe
    require("ld", str(MBDUMP))
    w, h, d = request
    out = tmp_path / f"k-{protocol}-{w}x{h}.elf"
    if protocol == "multiboot2":
        opts = {"information_request": [1, 2, 3, 6], "module_alignment": True,
                "framebuffer": {"width": w, "height": h, "depth": d}}
    else:
        opts = {"page_align_modules": True, "memory_info": True,
                "video": {"mode_type": 0, "width": w, "height": h, "depth": d}}
    build_kernel_recipe(tmp_path / f"{out.stem}.toml", {"kernel": {"input": str(MBDUMP), "protocol": protocol,
                                                                   protocol: opts}}, out)
    return out


def _load_recipe(tmp_path, kernel, loader, platform="qemu-q35-ovmf:256M"):
    r = tmp_path / f"{kernel.stem}-{loader}.toml"
    r.write_text(f'[load]\nkernel = "{kernel}"\nloader_path = "/boot/kernel"\ncmdline = "x y"\n'
                 f'platform = "{platform}"\nloader = "{loader}"\n')
    return r


_KERNELS = {}


def _kernel_once(tmp_path_factory, protocol, request):
    key = (protocol, tuple(request))
    if key not in _KERNELS:
        _KERNELS[key] = _kernel(tmp_path_factory.mktemp("k"), protocol, request)
    return _KERNELS[key]


def _predicted_framebuffer(tmp_path_factory, case):
    """The framebuffer `bootforge load`'s policy predicts for a captured case (its MBI bytes)."""
    from bootforge.formats.multiboot import Multiboot1Info
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_arguments
    from bootforge.multiboot.dump import decode_mb2_info
    kernel = _kernel_once(tmp_path_factory, case["protocol"], case["request"])
    req = request_from_arguments(str(kernel), case["platform"], case["loader"], cmdline="x y")
    data = bytes(run_policy(POLICIES.get(case["loader"]), req).mbi_bytes)
    if case["protocol"] == "multiboot2":
        return next(t for t in decode_mb2_info(data)["tags"] if t["type"] == 8)
    info = Multiboot1Info.parse(data)
    return {k: getattr(info, k) for k in case["framebuffer"]}


@pytest.mark.parametrize("case", CAPTURES, ids=[f"{c['loader']}-{c['platform'].split('-')[2].split(':')[0]}-"
                                                f"{'x'.join(map(str, c['request']))}" for c in CAPTURES])
def test_load_predicts_the_captured_framebuffer(tmp_path_factory, case):
    """Every field of the real tag 8 (MB1: framebuffer fields) but the address, which is the
    display's PCI BAR OVMF assigned (0xc0000000 here) and stays firmware data."""
    if case["loader"].startswith("limine"):
        require(os.path.join(os.environ.get("BOOTFORGE_LIMINE_DIR", "/nonexistent"), "BOOTX64.EFI"))
    want = {k: v for k, v in case["framebuffer"].items() if k != "framebuffer_addr"}
    got = _predicted_framebuffer(tmp_path_factory, case)
    assert {k: got.get(k) for k in want} == want
    bar = 0xC0000000 if case["platform"].startswith("qemu-q35-ovmf") else 0xFD000000    # OVMF's / SeaBIOS's
    assert got["framebuffer_addr"] == 0 and case["framebuffer"]["framebuffer_addr"] == bar


def test_captures_matched_byte_for_byte_but_grubs_auto_tag17():
    """The real boots' whole MBI equalled the prediction, except GRUB's 1000x1000 request
    (ending in "auto"), where OVMF's exit map held one more descriptor (tests/data/uefi-video)."""
    bad = [(c["loader"], c["request"], c["mbi_bytes_differing"]) for c in CAPTURES if not c["mbi_bytes_match"]]
    assert bad == [("grub-efi-mb2", [1000, 1000, 32], ["fixed part total_size", "tag 17 (efi_mmap)",
                                                        "tag 17 (efi_mmap) size"])]


def test_grub_gop_mode_walks():
    """efi_gop.c grub_video_gop_setup per item of multiboot.c's "WxHxD,WxH,auto;auto": "auto" or
    the current mode's size (OVMF's 1280x800) keeps it; another size walks every mode, and stops
    the string when one matched."""
    from bootforge.loader.policies.grub_efi import gop_mode_scans
    walks = {req: gop_mode_scans(grub_mode_string(*req) + ";auto")
             for req in ((1024, 768, 32), (1000, 1000, 32), (1024, 768, 24), (0, 0, 0), (1280, 800, 32))}
    assert walks == {(1024, 768, 32): 1, (1000, 1000, 32): 2, (1024, 768, 24): 2, (0, 0, 0): 0,
                     (1280, 800, 32): 0}


def predicted_tag17(tmp_path_factory, case):
    """[type, start, pages, attribute] of tag 17 in the MBI `load` predicts for a kept boot's case."""
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_arguments
    from bootforge.multiboot.dump import decode_mb2_info
    kernel = _kernel_once(tmp_path_factory, "multiboot2", case["request"])
    req = request_from_arguments(str(kernel), case["platform"], case["loader"], cmdline="x y")
    tags = decode_mb2_info(bytes(run_policy(POLICIES.get(case["loader"]), req).mbi_bytes))["tags"]
    return [[d["type"], d["physical_start"], d["number_of_pages"], d["attribute"]]
            for d in next(t for t in tags if t["type"] == 17)["descriptors"]]


WALK_CAPTURES = json.loads((DATA / "uefi-video" / "grub-gop-walks-tag17.json").read_text())["cases"]


@pytest.mark.parametrize("case", WALK_CAPTURES, ids=["x".join(map(str, c["request"])) for c in WALK_CAPTURES])
def test_load_predicts_grubs_exit_map_after_the_mode_walks(tmp_path_factory, case):
    """The real tag 17 after two mode walks (one more BootServicesData page, OVMF's pool) and
    after none, descriptor by descriptor."""
    assert predicted_tag17(tmp_path_factory, case) == case["tag17_descriptors"]


BLT_CAPTURES = json.loads((DATA / "uefi-video" / "grub-gop-blt-tag17.json").read_text())["cases"]


@pytest.mark.parametrize("case", BLT_CAPTURES, ids=["x".join(map(str, c["request"])) + "-" + c["platform"][-4:]
                                                    for c in BLT_CAPTURES])
def test_load_predicts_grubs_exit_map_after_the_blt_reallocation(tmp_path_factory, case):
    """The real tag 17 after SetMode of a mode wider than 2026 pixels (2048, 2560): QemuVideoDxe
    freed its 2-page BLT configuration and allocated 3 pages top-down, descriptor by descriptor."""
    assert predicted_tag17(tmp_path_factory, case) == case["tag17_descriptors"]


def test_the_blt_configuration_grows_a_page_past_2026_pixels():
    """What the captures say of QemuVideoDxe's configuration (FrameBufferBltLib: one scan line):
    the modes up to 1920 wide leave the exit map as at 1280 (2 pages, Q's 1024 and 1920 captures),
    2048 and 2560 take 3; the first mode with 3 pages is the first wider than 2026."""
    from bootforge.loader.ovmf_pages import pool_pages
    from bootforge.loader.video import blt_configure_size
    pages = {m.width: pool_pages(blt_configure_size(m)) for m in ovmf_gop_modes()}
    assert pages[1280] == pages[1920] == pages[2000] == 2 and pages[2048] == pages[2560] == 3
    widths = [case["request"][0] for case in BLT_CAPTURES]
    assert all(pages[w] == 3 for w in widths)
    for case in BLT_CAPTURES:
        low = 0x10000000 if case["platform"].endswith("256M") else 0x20000000
        d = case["tag17_descriptors"]
        block = next((a, p) for t, a, p, _x in d if t == 4 and 700 < p < 1000)
        if case["request"][2] == 32:    # the 3 pages filled the 3-page hole above OVMF's block (728 -> 731)
            assert block == (low - 0x10000000 + 0xE256000, 731)
        else:   # two mode walks ("x24" finds nothing) took the hole's top page first: the 3 pages went under it
            assert block == (low - 0x10000000 + 0xE253000, 731)


LIMINE_BLT_CAPTURES = json.loads((DATA / "uefi-video" / "limine-gop-blt-tag17.json").read_text())["cases"]


@pytest.mark.parametrize("case", LIMINE_BLT_CAPTURES,
                         ids=["x".join(map(str, c["request"])) + "-" + c["platform"][-4:] for c in LIMINE_BLT_CAPTURES])
def test_load_predicts_limines_exit_map_after_the_blt_reallocation(tmp_path_factory, case):
    """Limine's tag 17 and total_size after init_gop's SetMode of a mode wider than 1280 (the
    new BLT configuration under OVMF's Boot Services Data below Limine's image: 2 pages for
    1920, 3 for 2048 and 2560), descriptor by descriptor."""
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_arguments
    from bootforge.multiboot.dump import decode_mb2_info
    kernel = _kernel_once(tmp_path_factory, "multiboot2", case["request"])
    req = request_from_arguments(str(kernel), case["platform"], case["loader"], cmdline="x y")
    info = decode_mb2_info(bytes(run_policy(POLICIES.get(case["loader"]), req).mbi_bytes))
    got = [[d["type"], d["physical_start"], d["number_of_pages"], d["attribute"]]
           for d in next(t for t in info["tags"] if t["type"] == 17)["descriptors"]]
    assert got == case["tag17_descriptors"]
    assert len(bytes(run_policy(POLICIES.get(case["loader"]), req).mbi_bytes)) == case["total_size"]


LIMINE_SEARCH_CAPTURES = json.loads((DATA / "uefi-video" / "limine-gop-search-tag17.json").read_text())["cases"]


@pytest.mark.parametrize("case", LIMINE_SEARCH_CAPTURES, ids=["x".join(map(str, c["request"]))
                                                              for c in LIMINE_SEARCH_CAPTURES])
def test_load_predicts_limines_exit_map_after_a_mode_search(tmp_path_factory, case):
    """The real tag 17 after Limine searched the GOP modes for a mode narrower than mode 0, 1280 wide,
    or absent (1000x1000, 1234x567): OVMF's Boot Services Data below Limine's image grew by the
    QueryMode records' pool pages, descriptor by descriptor, counted (nothing declared)."""
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_arguments
    from bootforge.multiboot.dump import decode_mb2_info
    kernel = _kernel_once(tmp_path_factory, "multiboot2", case["request"])
    req = request_from_arguments(str(kernel), case["platform"], case["loader"], cmdline="x y")
    res = run_policy(POLICIES.get(case["loader"]), req)
    assert not res.firmware_data
    got = [[d["type"], d["physical_start"], d["number_of_pages"], d["attribute"]]
           for d in next(t for t in decode_mb2_info(bytes(res.mbi_bytes))["tags"] if t["type"] == 17)["descriptors"]]
    assert got == case["tag17_descriptors"]


def test_limines_mode_searches_take_pool_pages_at_the_33rd_and_41st_query():
    """What the kept captures say, read from them alone: the Boot Services Data under Limine's image
    (8 pages on the default path, S's captures) against the QueryMode calls init_gop makes
    (gop.c, counted by loader/video.py limine_query_modes): one more page from 33 calls, two from 41."""
    from bootforge.loader.video import limine_query_modes
    seen = {}
    for case in LIMINE_SEARCH_CAPTURES:
        d = case["tag17_descriptors"]
        at = next(i for i, x in enumerate(d) if x[0] == 1 and x[1] < 1 << 32)
        assert d[at - 1][0] == 4
        seen[limine_query_modes(*case["request"])[1]] = d[at - 1][2] - 8
    # 52: 1600x1200, whose new 2-page BLT configuration went back to the old one's place
    assert seen == {33: 1, 35: 1, 39: 1, 40: 1, 41: 2, 42: 2, 43: 2, 46: 2, 52: 2, 62: 2}


# ------------------------------------------------------------------ the image builder

def _image_recipe(tmp_path, kernel, loader="grub", extra=""):
    r = tmp_path / f"image-{loader}.toml"
    r.write_text(f'[image]\nformat = "iso"\nloader = "{loader}"\nfirmware = ["bios", "uefi"]\n'
                 f'output = "out.iso"\n{extra}\n[[image.entries]]\nkernel = "{kernel}"\nprotocol = "multiboot2"\n'
                 'cmdline = "a=b"\n' + ('grub_extra = ["echo video entry"]\n' if loader == "grub" else ""))
    return r


def _build(recipe):
    """`bootforge build --json`: the modules it put in GRUB's core images (bios, uefi) and grub.cfg."""
    proc = run_bootforge("build", recipe, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return doc["grub_modules_bios"], doc["grub_modules_uefi"], doc["configuration"]


def test_image_builder_adds_the_video_drivers_a_kernel_asks_for(tmp_path):
    require("grub-mkimage", "xorriso", "/usr/lib/grub/x86_64-efi", "/usr/lib/grub/i386-pc")
    fb = _kernel(tmp_path, "multiboot2", (1024, 768, 32))
    bios, uefi, cfg = _build(_image_recipe(tmp_path, fb, extra='grub_modules = ["all_video"]'))
    assert {"efi_gop", "efi_uga", "all_video", "echo"} <= set(uefi) and {"vbe", "all_video", "echo"} <= set(bios)
    assert "\techo video entry\n\tmultiboot2 /boot/" in cfg
    # The same kernel without a framebuffer tag: no video driver on UEFI (multiboot2 pulls vbe on BIOS).
    plain = tmp_path / "plain.elf"
    from bootforge.multiboot.build import build_kernel_recipe
    build_kernel_recipe(tmp_path / "plain.toml", {"kernel": {"input": str(MBDUMP), "protocol": "multiboot2",
                                                             "multiboot2": {"information_request": [1]}}}, plain)
    (tmp_path / "out.iso").unlink()
    assert not {"efi_gop", "efi_uga"} & set(_build(_image_recipe(tmp_path, plain))[1])


def test_grub_keys_on_another_loader_are_one_line(tmp_path):
    r = tmp_path / "bad.toml"
    (tmp_path / "k.elf").write_bytes(MBDUMP.read_bytes() if MBDUMP.exists() else b"\0" * 64)
    r.write_text('[image]\nloader = "limine"\nlimine_dir = "."\ngrub_modules = ["all_video"]\n'
                 '[[image.entries]]\nkernel = "k.elf"\n')
    assert_one_line_error(run_bootforge("build", r), "grub_modules is for loader grub")
    r.write_text('[image]\nloader = "grub"\ngrub_modules = ["all video"]\n[[image.entries]]\nkernel = "k.elf"\n')
    assert_one_line_error(run_bootforge("build", r), "grub_modules must be a list")


# ------------------------------------------------------------------ real boots

@pytest.mark.qemu
def test_bootforge_grub_image_hands_over_the_gop_framebuffer(tmp_path):
    """The issue's case: a bootforge GRUB image, a kernel with a required 1024x768x32 tag, real
    GRUB x86_64-efi on OVMF: tag 8 is GOP mode 7 (it said "no suitable video mode found." and
    gave none before the builder added efi_gop), and verify's framebuffer rows say so. The
    whole MBI matches too: tag 17 follows the image's own BOOTX64.EFI (GRUB's image and OVMF's
    freed file buffer) and its ESP's boot-sector partition entry (OVMF's pages before BDS)."""
    require("qemu-system-x86_64", "grub-mkimage", "xorriso", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    fb = _kernel(tmp_path, "multiboot2", (1024, 768, 32))
    assert run_bootforge("build", _image_recipe(tmp_path, fb)).returncode == 0
    doc = json.loads(run_bootforge("verify", "--json", "-q", tmp_path / "out.iso",
                                   "--platform", "qemu-q35-ovmf:256M").stdout)
    rows = {r["name"]: r for r in doc["fields"]}
    for name, value in (("framebuffer width", 1024), ("framebuffer height", 768), ("framebuffer bpp", 32),
                        ("framebuffer pitch", 4096), ("framebuffer type", 1)):
        assert rows[name]["observed"] == value and rows[name]["match"], rows[name]
    assert rows["framebuffer rgb (pos/size r, g, b)"]["match"]
    assert "framebuffer address" not in rows          # GOP's FrameBufferBase: firmware data
    assert doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]


@pytest.mark.qemu
def test_limine_uefi_falls_back_to_the_edid_mode(tmp_path):
    """A required 1000x1000x32 tag (no such OVMF mode) under real Limine UEFI: gop.c falls back
    to the EDID's 1280x800x32; tag 8 and the whole MBI match."""
    lim = os.environ.get("BOOTFORGE_LIMINE_DIR", "/nonexistent")
    require("qemu-system-x86_64", "xorriso", os.path.join(lim, "BOOTX64.EFI"), "/usr/share/OVMF/OVMF_CODE_4M.fd")
    k = _kernel(tmp_path, "multiboot2", (1000, 1000, 32))
    doc = json.loads(run_bootforge("verify", "--json", "-q", _load_recipe(tmp_path, k, "limine-mb2")).stdout)
    assert doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]
    fb = next(t for t in doc["boot_information"]["multiboot2"]["tags"] if t["type"] == 8)
    assert (fb["framebuffer_width"], fb["framebuffer_height"], fb["framebuffer_pitch"]) == (1280, 800, 5120)


def test_an_optional_framebuffer_tag_gets_no_video_driver_on_grub_efi(tmp_path):
    """Xen's and tboot's tags are optional: no efi_gop in the image or verify's medium, so GRUB
    x86_64-efi hands over no tag 8 (as it did for tboot 1.10.5 on the real boot of
    test_grub_policy's tboot case); gzip'd kernels are read decompressed, as GRUB reads them."""
    import gzip
    from bootforge.bootloaders.grub import asks_for_video
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_arguments
    from bootforge.multiboot.build import build_kernel_recipe
    from bootforge.multiboot.dump import decode_mb2_info
    require("ld", str(MBDUMP))
    k = tmp_path / "opt.elf"
    build_kernel_recipe(tmp_path / "opt.toml", {"kernel": {"input": str(MBDUMP), "protocol": "multiboot2",
                        "multiboot2": {"information_request": [1, 2, 3, 6], "module_alignment": True,
                                       "framebuffer": {"width": 0, "height": 0, "depth": 0, "optional": True}}}}, k)
    required = _kernel(tmp_path, "multiboot2", (1024, 768, 32))
    assert not asks_for_video(k.read_bytes()) and asks_for_video(gzip.compress(required.read_bytes()))
    res = run_policy(POLICIES.get("grub-efi-mb2"), request_from_arguments(str(k), "qemu-q35-ovmf:256M",
                                                                           "grub-efi-mb2", cmdline="x"))
    assert 8 not in [t["type"] for t in decode_mb2_info(bytes(res.mbi_bytes))["tags"]]
