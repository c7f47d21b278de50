"""AAVMF's page allocator replayed for the arm64 Linux EFI stub (bootforge/loader/aavmf_pages.py,
loader/policies/linux_efi_stub_arm64.py) against the kept real boot: Debian's 6.1 arm64 kernel as
EFI/BOOT/BOOTAA64.EFI of a bootforge disk image under AAVMF 2022.11 at 1G, its EFI exit map and
DTB read from guest memory (tests/data/aavmf/, commands in tests/data/README.md); the same kernel
by AAVMF's QEMU -kernel with an initrd, and in an arm64 UKI on the disk. No QEMU, no CLI (the
images and `bootforge load`/`verify` of them: tests/test_aavmf_boot.py)."""

import json
from pathlib import Path

import pytest

from aavmf_capture import BOOTS, capture
from aavmf_disk import KERNEL_CMDLINE, KERNEL_INITRD_SIZE, debian_arm64_kernel
from bootforge.fdtboot.libfdt import Fdt
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import aavmf_pages
from bootforge.loader.policies.linux_efi_stub_arm64 import stub_dtb
from bootforge.pe.image import read_pe

DATA = Path(__file__).parent / "data" / "aavmf"
EXIT_MAP = aavmf_pages.parse_exit_map((DATA / "esp-1G-exit-map.bin").read_bytes())
DTB = (DATA / "esp-1G-dtb.bin").read_bytes()
# The same disk at 2G (no capture: predicted from the 1G one moved with the end of RAM).
EXIT_MAP_2G = aavmf_pages.parse_exit_map((DATA / "esp-2G-exit-map.bin").read_bytes())
DTB_2G = (DATA / "esp-2G-dtb.bin").read_bytes()
# AAVMF's QEMU -kernel of the same kernel with -initrd and -append at 1G.
EXIT_MAP_QK = aavmf_pages.parse_exit_map((DATA / "qemu-kernel-initrd-1G-exit-map.bin").read_bytes())
DTB_QK = (DATA / "qemu-kernel-initrd-1G-dtb.bin").read_bytes()
# struct linux_efi_initrd {base, size} of that boot (its LINUX_EFI_INITRD_MEDIA table, the log's INITRD=)
INITRD_QK = (DATA / "qemu-kernel-initrd-1G-initrd-table.bin").read_bytes()
INITRD_QK_BASE, INITRD_QK_SIZE = int.from_bytes(INITRD_QK[:8], "little"), int.from_bytes(INITRD_QK[8:], "little")
# The same -kernel boot without -initrd.
EXIT_MAP_Q0 = aavmf_pages.parse_exit_map((DATA / "qemu-kernel-1G-exit-map.bin").read_bytes())
DTB_Q0 = (DATA / "qemu-kernel-1G-dtb.bin").read_bytes()
# An arm64 UKI of the same kernel, initrd and command line as the disk's BOOTAA64.EFI at 1G.
EXIT_MAP_UKI = aavmf_pages.parse_exit_map((DATA / "esp-uki-1G-exit-map.bin").read_bytes())
DTB_UKI = (DATA / "esp-uki-1G-dtb.bin").read_bytes()
INITRD_UKI_BASE = int.from_bytes((DATA / "esp-uki-1G-initrd-table.bin").read_bytes()[:8], "little")
# The same UKI by AAVMF's QEMU -kernel (no -append, no -initrd) at 1G.
EXIT_MAP_QU = aavmf_pages.parse_exit_map((DATA / "qemu-kernel-uki-1G-exit-map.bin").read_bytes())
DTB_QU = (DATA / "qemu-kernel-uki-1G-dtb.bin").read_bytes()
INITRD_QU_BASE = int.from_bytes((DATA / "qemu-kernel-uki-1G-initrd-table.bin").read_bytes()[:8], "little")
UKI_SIZE_OF_IMAGE = 0x2283000       # that UKI's PE SizeOfImage (its Loader Code run in the kept map)


def kept_chosen(dtb=DTB):
    fdt = Fdt(dtb)
    node = fdt.path_offset("/chosen")
    return {n: int.from_bytes(fdt.getprop(node, n), "big") for n, _ in fdt.properties(node)}


def kept_fdt_address(dtb, memory):
    """Where the kept boot's DTB was: the boots were read from RAM, the DTB found by its magic at
    the address tests/data/README.md names (0x7a200000 at 1G, 0xba200000 at 2G from an ESP,
    0x7bf10000 by -kernel)."""
    return {(DTB, 1 << 30): 0x7A200000, (DTB_2G, 2 << 30): 0xBA200000, (DTB_QK, 1 << 30): 0x7BF10000,
            (DTB_UKI, 1 << 30): 0x7A200000, (DTB_Q0, 1 << 30): 0x7C220000,
            (DTB_QU, 1 << 30): 0x7A200000}[(dtb, memory)]


def loader_pieces(ranges):
    return sorted((a, b, T(t)) for a, b, t in ranges if t in (T.LOADER_CODE, T.LOADER_DATA))


def test_captures_are_the_kept_boots():
    for name in BOOTS:
        stored = json.loads(aavmf_pages.CAPTURE_DIR.joinpath(name + ".json").read_text())
        assert stored == json.loads(json.dumps(capture(name)))


@pytest.mark.parametrize("dtb, cmdline", [(DTB, ""), (DTB_QK, KERNEL_CMDLINE + " initrd=initrd"),
                                          (DTB_UKI, KERNEL_CMDLINE), (DTB_Q0, KERNEL_CMDLINE),
                                          (DTB_QU, KERNEL_CMDLINE)],
                         ids=["esp", "qemu-kernel", "esp-uki", "qemu-kernel-no-initrd", "qemu-kernel-uki"])
def test_stub_tree_is_the_kept_dtb_byte_for_byte(dtb, cmdline):
    """update_fdt's empty tree (cells, /chosen, bootargs when there is a command line, the six
    properties in libfdt's order, packed) with the values the real boot had is the DTB the
    kernel got; AAVMF's -kernel appended " initrd=initrd" to -append."""
    v = kept_chosen(dtb)
    assert stub_dtb(cmdline, v["linux,uefi-system-table"], v["linux,uefi-mmap-start"],
                    v["linux,uefi-mmap-size"]) == dtb


@pytest.mark.parametrize("path, memory, exit_map, dtb", [("esp", 1 << 30, EXIT_MAP, DTB),
                                                          ("esp", 2 << 30, EXIT_MAP_2G, DTB_2G),
                                                          ("qemu-kernel", 1 << 30, EXIT_MAP_QK, DTB_QK),
                                                          ("esp-uki", 1 << 30, EXIT_MAP_UKI, DTB_UKI),
                                                          ("qemu-kernel-no-initrd", 1 << 30, EXIT_MAP_Q0, DTB_Q0),
                                                          ("qemu-kernel-uki", 1 << 30, EXIT_MAP_QU, DTB_QU)],
                         ids=["esp-1G", "esp-2G", "qemu-kernel-1G", "esp-uki-1G", "qemu-kernel-no-initrd-1G",
                              "qemu-kernel-uki-1G"])
def test_replay_gives_the_kept_loader_pieces(path, memory, exit_map, dtb):
    """LoadImage's Loader Code, the stub's pool page, initrd and 2 MiB FDT: every Loader piece of
    the real exit map, and the map's size and buffer address (2G: from the 1G capture)."""
    pe = read_pe(debian_arm64_kernel().read_bytes())
    initrd = KERNEL_INITRD_SIZE if path in ("qemu-kernel", "esp-uki", "qemu-kernel-uki") else 0
    cmdline = {"esp": "", "qemu-kernel": KERNEL_CMDLINE + " initrd=initrd", "esp-uki": KERNEL_CMDLINE,
               "qemu-kernel-no-initrd": KERNEL_CMDLINE, "qemu-kernel-uki": KERNEL_CMDLINE}[path]
    path = path.removesuffix("-no-initrd")
    capture = aavmf_pages.find_capture("qemu-virt-aarch64", path, memory, 0x40000000, initrd=initrd)
    # the kept UKI's PE: SizeOfImage 0x2283000, 4 KiB sections (tests/data/README.md)
    uki = (UKI_SIZE_OF_IMAGE, 0x1000) if path.endswith("-uki") else None
    got = aavmf_pages.replay(capture, size_of_image=pe.size_of_image, section_alignment=pe.section_alignment,
                             cmdline_bytes=len(cmdline) + 1, fdt_size=2 << 20, initrd_size=initrd, uki=uki)
    kept = loader_pieces([(s, s + n * 4096, t) for t, s, n, _ in exit_map])
    assert loader_pieces(got.pm.ranges) == kept
    assert got.image_block[0] == max(a for a, _, t in kept if t == T.LOADER_CODE)
    assert got.fdt in [a for a, _, t in kept if t == T.LOADER_DATA]     # the FDT starts a Loader Data run
    assert got.fdt == kept_fdt_address(dtb, memory)
    if initrd:
        assert got.initrd == {"qemu-kernel": (INITRD_QK_BASE, INITRD_QK_SIZE),
                              "esp-uki": (INITRD_UKI_BASE, KERNEL_INITRD_SIZE),
                              "qemu-kernel-uki": (INITRD_QU_BASE, KERNEL_INITRD_SIZE)}[path]
    v = kept_chosen(dtb)
    assert (got.memmap_start, got.memmap_size) == (v["linux,uefi-mmap-start"], v["linux,uefi-mmap-size"])
    assert got.memmap_size == len(exit_map) * 48
    assert capture.system_table == v["linux,uefi-system-table"]
