"""AAVMF's page allocator replayed for the arm64 Linux EFI stub (bootforge/loader/aavmf_pages.py,
loader/policies/linux_efi_stub_arm64.py) against the kept real boot: Debian's 6.1 arm64 kernel as
EFI/BOOT/BOOTAA64.EFI of a bootforge disk image under AAVMF 2022.11 at 1G, its EFI exit map and
DTB read from guest memory (tests/data/aavmf/, commands in tests/data/README.md). No QEMU."""

import json
from pathlib import Path

import pytest

from aavmf_capture import BOOTS, capture
from aavmf_disk import build_esp_image
from bootforge.fdtboot.libfdt import Fdt
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import aavmf_pages
from bootforge.loader.policies.linux_efi_stub_arm64 import primary_entry_offset, stub_dtb
from bootforge.pe.image import read_pe
from conftest import assert_one_line_error, run_bootforge
from test_arm_images import debian_arm64_kernel

DATA = Path(__file__).parent / "data" / "aavmf"
EXIT_MAP = aavmf_pages.parse_exit_map((DATA / "esp-1G-exit-map.bin").read_bytes())
DTB = (DATA / "esp-1G-dtb.bin").read_bytes()
# The same disk at 2G (no capture: predicted from the 1G one moved with the end of RAM).
EXIT_MAP_2G = aavmf_pages.parse_exit_map((DATA / "esp-2G-exit-map.bin").read_bytes())
DTB_2G = (DATA / "esp-2G-dtb.bin").read_bytes()


@pytest.fixture(scope="module")
def esp_image(tmp_path_factory):
    return build_esp_image(tmp_path_factory.mktemp("aavmf"))


def kept_chosen(dtb=DTB):
    fdt = Fdt(dtb)
    node = fdt.path_offset("/chosen")
    return {n: int.from_bytes(fdt.getprop(node, n), "big") for n, _ in fdt.properties(node)}


def loader_pieces(ranges):
    return sorted((a, b, T(t)) for a, b, t in ranges if t in (T.LOADER_CODE, T.LOADER_DATA))


def test_captures_are_the_kept_boots():
    for name in BOOTS:
        stored = json.loads(aavmf_pages.CAPTURE_DIR.joinpath(name + ".json").read_text())
        assert stored == json.loads(json.dumps(capture(name)))


def test_stub_tree_is_the_kept_dtb_byte_for_byte():
    """update_fdt's empty tree (cells, /chosen, the six properties in libfdt's order, packed) with
    the values the real boot had is the DTB the kernel got."""
    v = kept_chosen()
    assert stub_dtb("", v["linux,uefi-system-table"], v["linux,uefi-mmap-start"], v["linux,uefi-mmap-size"]) == DTB


@pytest.mark.parametrize("memory, exit_map, dtb", [(1 << 30, EXIT_MAP, DTB), (2 << 30, EXIT_MAP_2G, DTB_2G)],
                         ids=["1G", "2G"])
def test_replay_gives_the_kept_loader_pieces(memory, exit_map, dtb):
    """LoadImage's Loader Code, the stub's pool page and 2 MiB FDT: every Loader piece of the real
    exit map, and the map's size and buffer address (2G: from the 1G capture)."""
    pe = read_pe(debian_arm64_kernel().read_bytes())
    capture = aavmf_pages.find_capture("qemu-virt-aarch64", "esp", memory, 0x40000000)
    got = aavmf_pages.replay(capture, size_of_image=pe.size_of_image, section_alignment=pe.section_alignment,
                             cmdline_bytes=1, fdt_size=2 << 20)
    kept = loader_pieces([(s, s + n * 4096, t) for t, s, n, _ in exit_map])
    assert loader_pieces(got.pm.ranges) == kept
    assert got.image_block[0] == next(a for a, _, t in kept if t == T.LOADER_CODE)
    assert got.fdt == next(a for a, b, t in kept if t == T.LOADER_DATA and b - a == 2 << 20)
    v = kept_chosen(dtb)
    assert (got.memmap_start, got.memmap_size) == (v["linux,uefi-mmap-start"], v["linux,uefi-mmap-size"])
    assert got.memmap_size == len(exit_map) * 48
    assert capture.system_table == v["linux,uefi-system-table"]


def test_load_of_the_disk_image_predicts_the_kept_boot(tmp_path, esp_image):
    """`bootforge load` of the disk image: the DTB handed over equals the kept one, x0 is the exit
    map's 2 MiB Loader Data block, and the entry is primary_entry inside the Loader Code block
    (the kernel's log said "Kernel Offset: 0x10000": the image's offset in its 2 MiB)."""
    image = esp_image
    out = tmp_path / "dtb"
    doc = json.loads(run_bootforge("load", image, "--json", "--mbi-out", out, check=0).stdout)
    assert doc["loader"] == "linux-efi-stub-arm64"
    assert out.read_bytes() == DTB
    kept = loader_pieces([(s, s + n * 4096, t) for t, s, n, _ in EXIT_MAP])
    code = next(a for a, _, t in kept if t == T.LOADER_CODE)
    assert doc["linux"]["registers"]["x0"] == next(a for a, b, t in kept if b - a == 2 << 20)
    assert doc["linux"]["image_base"] == code and code % (2 << 20) == 0x10000
    assert doc["linux"]["entry"] == code + primary_entry_offset(debian_arm64_kernel().read_bytes())


def test_load_at_2g_predicts_the_kept_2g_dtb(tmp_path, esp_image):
    image = esp_image
    out = tmp_path / "dtb"
    run_bootforge("load", image, "--platform", "qemu-virt-aarch64:2G", "--mbi-out", out, check=0)
    assert out.read_bytes() == DTB_2G


def test_ram_past_4gib_is_one_line(esp_image):
    image = esp_image
    proc = run_bootforge("load", image, "--platform", "qemu-virt-aarch64:4G")
    assert_one_line_error(proc, "no AAVMF page capture", "4096 MiB")
