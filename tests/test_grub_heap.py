"""GRUB 2.06 i386-pc's heap in use, derived for modules (bootforge.loader.grub_heap), against the
real heap read block by block at a probe kernel's entry (tests/data/grub-heap/probe-1G.json,
made by tests/grub_pc_heap_walk.py: the command is in the file)."""

import collections
import json

import pytest

from conftest import DATA, require

PC_DIR = "/usr/lib/grub/i386-pc"
KEPT = json.loads((DATA / "grub-heap" / "probe-1G.json").read_text())


def _counts(boot):
    return collections.Counter({int(k, 16): v for k, v in KEPT["boots"][boot]["used_block_sizes"].items()})


def _regexp_extent():
    e = KEPT["regexp_mod_extent"]
    return e["lba"] * 2048, e["size"]


def test_every_loaded_modules_segment_block_is_the_tsize_rule():
    """struct grub_dl's sz for each of the 39 modules GRUB had loaded equals kern/dl.c's tsize
    over every section (not only SHF_ALLOC ones) as grub_heap computes it from the .mod file."""
    require(PC_DIR)
    from bootforge.loader import grub_heap
    seen = KEPT["grub_dl_in_regexp_boot"]["modules"]
    assert len(seen) == 39
    derived = {n: grub_heap.module_heap(grub_heap.read_installed_module(n), n).tsize for n in seen}
    assert derived == seen


def test_insmod_adds_exactly_the_derived_blocks():
    """`insmod regexp` against `insmod extcmd` (already loaded: the same line, no module): the
    real heap gained exactly module_heap(regexp.mod)'s blocks and the two 32 KiB disk-cache
    blocks its file's extent on the ISO touches."""
    require(PC_DIR)
    from bootforge.loader import grub_heap
    gained = _counts("regexp") - _counts("extcmd")
    assert not _counts("extcmd") - _counts("regexp")
    mod = grub_heap.module_heap(grub_heap.read_installed_module("regexp"), "regexp")
    cache = grub_heap.cache_blocks(_regexp_extent())
    derived = collections.Counter(b for _w, b in mod.blocks)
    derived[grub_heap.block(grub_heap.DISK_CACHE_BLOCK)] += len(cache)
    assert mod.deps == ("extcmd", "normal") and not mod.unmodelled
    assert derived == gained


def test_the_insmod_line_alone():
    """The line's own blocks (BUILDS' insmod_line) are what `insmod extcmd` added to the plain boot."""
    from bootforge.loader import grub_heap
    line = collections.Counter(grub_heap.BUILDS[grub_heap.BUILD].insmod_line)
    assert _counts("extcmd") - _counts("base") == line and not _counts("base") - _counts("extcmd")


def _placed(held):
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies.grub_pc import Relocator
    p = KEPT["probe"]
    rel = Relocator(resolve("qemu-pc-seabios:1G").memory_map, held)
    return rel.alloc(p["image_bytes"], p["align"], p["min_addr"], p["max_addr"] - p["image_bytes"], high=True)


def test_a_module_moves_the_relocatable_kernel_as_the_real_grub_did():
    """With `insmod regexp` the real GRUB put the probe one 2 MiB step lower (0x3fc00000) than
    without (0x3fe00000). The measured constant alone predicts the old place; the constant plus
    what grub_heap derives for regexp predicts the real one."""
    require(PC_DIR)
    from bootforge.loader import grub_heap
    from bootforge.loader.policies.grub_pc import HEAP_IN_USE
    base, regexp = KEPT["boots"]["base"]["probe_at"], KEPT["boots"]["regexp"]["probe_at"]
    assert base != regexp
    assert _placed(HEAP_IN_USE) == base
    held = grub_heap.held_bytes(("regexp",), extents={"regexp": _regexp_extent()})
    assert _placed(held) == regexp


def test_a_module_file_that_is_no_module_is_one_line(tmp_path):
    from bootforge.errors import FormatError
    from bootforge.loader import grub_heap
    with pytest.raises(FormatError, match=r"bad\.mod: offset 0: not an ELF32 GRUB module"):
        grub_heap.module_heap(b"\x7fELF\x02" + bytes(60), "bad.mod")
    cut = bytearray(b"\x7fELF\x01\x01\x01" + bytes(45))
    cut[0x20:0x24] = (0x1000).to_bytes(4, "little")     # e_shoff past the end
    cut[0x2e:0x30] = (40).to_bytes(2, "little")
    cut[0x30:0x32] = (3).to_bytes(2, "little")
    with pytest.raises(FormatError, match=r"cut\.mod: offset 0x1000: section headers outside the file"):
        grub_heap.module_heap(bytes(cut), "cut.mod")


IMAGES = json.loads((DATA / "grub-heap" / "images-1G.json").read_text())


@pytest.mark.parametrize("name", sorted(IMAGES["boots"]))
def test_a_bootforge_images_modules_and_used_heap_are_derived(name):
    """On images `bootforge build` makes (every module in core.img), the modules GRUB had loaded
    are the recipe's module list with its .moddeps closure, and the heap bytes in use are their
    derived blocks + the image's cache blocks + the build's rest, to the byte; the ISO with
    grub_modules = ["regexp"] checks the rest measured on the plain ISO."""
    require(PC_DIR)
    from bootforge.bootloaders.grub import module_list
    from bootforge.loader import grub_heap
    boot = IMAGES["boots"][name]
    fs = "iso9660" if boot["format"] == "iso" else "fat"
    names = grub_heap.core_closure(module_list(("multiboot2",), "i386-pc", fs, False, tuple(boot["grub_modules"])))
    assert names == boot["grub_dl_names"]
    used, span = grub_heap.image_held(names, boot["format"])
    assert used == boot["used_bytes"]
    assert span >= IMAGES["heap_region_top"] - boot["lowest_used"]      # the holes: measured, not replayed


def test_the_measured_iso_constant_misplaces_a_kernel_on_a_bootforge_image():
    """`verify` of a bootforge ISO image: the grub-mkrescue figure (HEAP_IN_USE) put a 0x40034-byte
    relocatable probe one 2 MiB step too low; the image's derived heap places it where GRUB did."""
    require(PC_DIR)
    from bootforge.bootloaders.grub import module_list
    from bootforge.loader import grub_heap
    from bootforge.loader.policies.grub_pc import HEAP_IN_USE
    seen = IMAGES["verify_with_the_constant"]
    p = dict(KEPT["probe"], image_bytes=seen["image_bytes"])

    def placed(held):
        from bootforge.loader.platforms import resolve
        from bootforge.loader.policies.grub_pc import Relocator
        rel = Relocator(resolve("qemu-pc-seabios:1G").memory_map, held)
        return rel.alloc(p["image_bytes"], p["align"], p["min_addr"], p["max_addr"] - p["image_bytes"], high=True)
    assert placed(HEAP_IN_USE) == seen["predicted"] != seen["observed"]
    _used, span = grub_heap.image_held(grub_heap.core_closure(module_list(("multiboot2",), "i386-pc", "iso9660")), "iso")
    assert placed(span) == seen["observed"]


def built_probe_image(tmp_path, fmt, bss):
    """tmp_path/p.img: `bootforge build` of a GRUB BIOS image (*fmt* iso or disk) with the heap
    walker's Multiboot2 probe kernel (bss *bss* bytes) as its one entry, as the kept boots had."""
    from conftest import run_bootforge
    from grub_pc_heap_walk import probe_kernel
    probe_kernel(tmp_path, bss)
    (tmp_path / "r.toml").write_text(f'[image]\nformat = "{fmt}"\nloader = "grub"\nfirmware = ["bios"]\n'
                                     'output = "p.img"\n[[image.entries]]\ntitle = "probe"\nkernel = "probe.elf"\n'
                                     'protocol = "multiboot2"\ncmdline = "x"\n')
    run_bootforge("build", tmp_path / "r.toml")
    return tmp_path / "p.img"


def test_the_modules_are_read_from_the_images_own_core(tmp_path):
    """The module list image_held needs comes from the image itself: the El Torito core of a
    `bootforge build` ISO, decompressed, holds exactly the modules GRUB had loaded (the kept
    boot's struct grub_dl names), and their derived heap is the kept boot's used bytes."""
    require(PC_DIR, "grub-mkimage", "xorriso", "as", "ld")
    import subprocess
    from bootforge.loader import grub_heap
    built_probe_image(tmp_path, "iso", 0x9000)
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(tmp_path / "p.img"), "-extract",
                    "/boot/grub/i386-pc-eltorito.img", str(tmp_path / "core.img")], check=True, capture_output=True)
    mods = grub_heap.core_img_modules((tmp_path / "core.img").read_bytes())
    names = sorted(grub_heap.module_heap(m).name for m in mods)
    boot = IMAGES["boots"]["probe-iso"]
    assert names == boot["grub_dl_names"]
    assert grub_heap.image_held(names, "iso")[0] == boot["used_bytes"]
    from bootforge.errors import FormatError
    with pytest.raises(FormatError, match=r"x\.img: offset 0xa00: no GRUB i386-pc LZMA core"):
        grub_heap.core_img_modules(bytes(8192), "x.img")


def test_load_of_a_bootforge_iso_predicts_where_grub_put_the_kernel(tmp_path):
    """`load IMAGE` of the ISO whose verify the constant got wrong: the image's own core gives
    GRUB's heap (image/load.py -> LoadRequest.grub_heap), and the load base is the real one."""
    require(PC_DIR, "grub-mkimage", "xorriso", "as", "ld")
    from conftest import run_bootforge
    seen = IMAGES["verify_with_the_constant"]
    built_probe_image(tmp_path, "iso", 0x40000)
    doc = json.loads(run_bootforge("load", "--json", tmp_path / "p.img", "--platform", "qemu-pc-seabios:1G").stdout)
    placed = [p["start"] for p in doc["placements"] if p["name"] == "relocatable image"]
    assert placed == [seen["observed"]] and doc["entry"]["address"] == seen["observed"] + 0x30


def test_load_of_a_bootforge_disk_reads_grubs_core_from_the_bios_boot_partition(tmp_path):
    """`load IMAGE` of a bootforge GPT disk: the core.img in its BIOS boot partition gives the
    modules (image/load.py _grub_heap), so GRUB's heap in use starts at the lowest block the real
    GRUB held on that disk (the kept probe-disk boot) and the probe lands where GRUB put it."""
    require(PC_DIR, "grub-mkimage", "mformat", "as", "ld")
    from conftest import run_bootforge
    boot = IMAGES["boots"]["probe-disk"]
    built_probe_image(tmp_path, "disk", 0x9000)
    doc = json.loads(run_bootforge("load", "--json", tmp_path / "p.img", "--platform", "qemu-pc-seabios:1G").stdout)
    heap = next(p for p in doc["placements"] if p["name"] == "GRUB heap in use")
    assert (heap["start"], heap["end"]) == (boot["lowest_used"], IMAGES["heap_region_top"])
    assert "derived from the modules of the image's core" in heap["rule"]
    assert [p["start"] for p in doc["placements"] if p["name"] == "relocatable image"] == [boot["probe_at"]]
