"""GRUB i386-pc core images built in-process (bootforge/bootloaders/grub_core.py) against
grub-mkimage on this machine: what GRUB's lzma_decompress.img decompresses is grub-mkimage's
bytes exactly (kernel.img, the modules in grub-mkimage's order, the early configuration, the
prefix), and the uncompressed parts around the stream differ only in the fields that say how
long the stream is. That the images boot: tests/test_image_qemu.py (the GRUB ISO and disk under
SeaBIOS), tests/test_grub_heap.py (GRUB's heap on them, from a real boot)."""

import lzma
import subprocess
from pathlib import Path

import pytest

from bootforge.bootloaders import grub, grub_core
from bootforge.errors import ToolError
from conftest import require

PC = "/usr/lib/grub/i386-pc"
EARLY = ("search --no-floppy --file --set=root /boot/grub/bootforge-0123456789abcdef.id\n"
         "set prefix=($root)/boot/grub\n")
# The bench ISO's list (bootloaders/grub.py module_list for a Multiboot2 entry on an ISO) and
# a longer one: both protocols, linux, FAT + GPT, the video drivers, a module with many deps.
MODULE_SETS = (["search", "normal", "serial", "terminal", "boot", "iso9660", "multiboot2", "biosdisk"],
               ["search", "normal", "serial", "terminal", "boot", "fat", "multiboot", "multiboot2", "linux",
                "part_gpt", "biosdisk", "vbe", "all_video", "regexp"])
# Where lzma_decompress.img starts: after cdboot.img (2048 bytes) and diskboot.img (512), or
# after diskboot.img alone (util/mkimage.c writes them in that order).
STUB_AT = {"i386-pc-eltorito": 2048 + 512, "i386-pc": 512}


def real_core(tmp_path, fmt, mods):
    cfg = tmp_path / "early.cfg"
    cfg.write_text(EARLY)
    out = tmp_path / f"{fmt}.img"
    subprocess.run(["grub-mkimage", "-O", fmt, "-d", PC, "-p", "/boot/grub", "-c", cfg, "-o", out, *mods],
                   check=True, capture_output=True)
    return out.read_bytes()


def split(image, fmt):
    """(bytes before the stream, the decompressed payload, compressed size, sectors in the
    diskboot blocklist) of a core image: include/grub/offsets.h puts the compressed and
    uncompressed sizes at 0x08 and 0x0c of lzma_decompress.img; diskboot.img's blocklist
    length is the u16 at 508 (its last 12 bytes: u64 start, u16 length, u16 segment)."""
    at = STUB_AT[fmt]
    stub = len(Path(PC, "lzma_decompress.img").read_bytes())
    csize = int.from_bytes(image[at + 8:at + 12], "little")
    usize = int.from_bytes(image[at + 12:at + 16], "little")
    raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1, "lc": 3, "lp": 0, "pb": 2}]) \
        .decompress(image[at + stub:at + stub + csize], max_length=usize)
    assert len(raw) == usize
    sectors = int.from_bytes(image[at - 4:at - 2], "little")
    return image[:at + stub], raw, csize, sectors


@pytest.mark.parametrize("fmt", ["i386-pc-eltorito", "i386-pc"])
@pytest.mark.parametrize("mods", MODULE_SETS, ids=["iso-mb2", "disk-everything"])
def test_the_decompressed_core_is_grub_mkimages(tmp_path, fmt, mods):
    require("grub-mkimage", PC)
    theirs = real_core(tmp_path, fmt, mods)
    ours = grub_core.core_image(fmt, PC, mods, EARLY, "/boot/grub")
    head_t, raw_t, csize_t, sectors_t = split(theirs, fmt)
    head_o, raw_o, csize_o, sectors_o = split(ours, fmt)
    assert raw_o == raw_t                       # what GRUB runs: the same bytes
    # The stream's own length and the sectors diskboot reads follow from it, nothing else moves.
    at = STUB_AT[fmt]
    patched = {at - 4, at - 3} | set(range(at + 8, at + 12))
    assert [i for i in range(len(head_t)) if head_t[i] != head_o[i]] == sorted(
        i for i in patched if head_t[i] != head_o[i])
    assert csize_o == len(ours) - len(head_o) and csize_t == len(theirs) - len(head_t)
    assert sectors_o == -(-(len(ours) - at) // 512) and sectors_t == -(-(len(theirs) - at) // 512)


def test_the_same_inputs_give_the_same_bytes():
    require(PC)
    assert grub_core.core_image("i386-pc-eltorito", PC, MODULE_SETS[0], EARLY, "/boot/grub") == \
        grub_core.core_image("i386-pc-eltorito", PC, MODULE_SETS[0], EARLY, "/boot/grub")


def test_what_is_not_modelled_is_left_to_grub_mkimage(tmp_path, monkeypatch):
    """Another platform, a module path, a module the directory lacks: None here, and grub.mkimage
    runs grub-mkimage, whose own words name a missing module."""
    require("grub-mkimage", PC)
    assert grub_core.core_image("x86_64-efi", "/usr/lib/grub/x86_64-efi", ["normal"], EARLY, "/boot/grub") is None
    assert grub_core.core_image("i386-pc", PC, [f"{PC}/normal.mod"], EARLY, "/boot/grub") is None
    assert grub_core.core_image("i386-pc", PC, ["normal", "no_such_module"], EARLY, "/boot/grub") is None
    with pytest.raises(ToolError, match=r"grub-mkimage -O i386-pc failed: .*no_such_module\.mod"):
        grub.mkimage("i386-pc", PC, ["normal", "no_such_module"], EARLY)


def test_module_order_is_resolve_cs():
    """util/resolve.c: each module after its dependencies, a dependency line's names visited
    last first, each module once; a cycle is not modelled."""
    deps = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert grub_core.resolve(deps, ["a"]) == ["d", "c", "b", "a"]
    assert grub_core.resolve(deps, ["b", "a"]) == ["d", "b", "c", "a"]
    assert grub_core.resolve({"x": ["y"], "y": ["x"]}, ["x"]) is None
