"""GRUB 2.06 x86_64-efi `linux`/`initrd` under OVMF (grub-efi-linux) against Debian's kernel booted
from the GPT disk an [image] recipe with firmware ["uefi"] builds.

The kept boots (tests/data/linux-grub-efi/gdb-stop-{512M,966M,3G}.json, commands in
tests/data/README.md; 966M is where GRUB's heap in use was measured: the initrd comes out of the
heap's free blocks there) were stopped at the kernel's 32-bit entry through QEMU's gdbstub: the
registers, the zero page at ESI, what it points to (E820, ramdisk, command line, setup_data) and
the EFI map GRUB handed over (efi_info.efi_memmap). Unit tests compare `bootforge load` of the
image with them; one real boot (verify at 512M) is in make test, 3G in test_linux_image_verify.py."""

import json

import pytest

from conftest import DATA, require, run_bootforge
from test_linux_grub import image_recipe as bios_recipe
from test_uki_build import INITRD_SIZE, KERNEL

from bootforge.verify import linux as vlinux

FIXTURES = DATA / "linux-grub-efi"
PAGE = 4096


def image_recipe(directory):
    """The kept boots' recipe: test_linux_grub's disk (Debian's kernel, the test initrd) for UEFI."""
    p = bios_recipe(directory)
    text = p.read_text().replace('firmware = ["bios"]', 'firmware = ["uefi"]')
    p.write_text(text.replace('output = "grub-linux.img"', 'output = "grub-efi-linux.img"'))
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require(KERNEL, "grub-mkimage", "mformat")
    d = tmp_path_factory.mktemp("grub-efi-linux")
    recipe = image_recipe(d)
    run_bootforge("build", recipe, check=0)
    return recipe, d / "grub-efi-linux.img"


def kept(memory):
    return json.loads((FIXTURES / f"gdb-stop-{memory}.json").read_text())


def predict(source, memory, tmp_path):
    out = tmp_path / f"zp-{memory}.bin"
    proc = run_bootforge("load", source, "--platform", f"qemu-q35-ovmf:{memory}", "--json", "--mbi-out", out,
                         check=0)
    return json.loads(proc.stdout), out.read_bytes()


@pytest.fixture(scope="module")
def image_load(built, tmp_path_factory):
    """`bootforge load IMAGE --platform qemu-q35-ovmf:MEM --json --mbi-out` once per memory size."""
    done = {}

    def get(memory):
        if memory not in done:
            done[memory] = predict(built[1], memory, tmp_path_factory.mktemp("load"))
        return done[memory]
    return get


@pytest.mark.parametrize("memory", ["512M", "966M", "3G"])
def test_image_load_equals_the_kept_stop(image_load, memory):
    """Where GRUB jumped (code32_start: the kernel above the chunk its failed pref_address try
    left), boot_params at ESI, cmd_line_ptr and the string, the initrd, no setup_data and the
    E820 table in boot_params order, as the real boot handed them over."""
    report, _ = image_load(memory)
    lin, seen = report["linux"], kept(memory)
    params = seen["params"]
    assert report["loader"] == "grub-efi-linux"
    assert seen["registers"]["rip"] == lin["code32_start"] == params["code32_start"]
    assert seen["registers"]["rsi"] & 0xFFFFFFFF == lin["boot_params"] == params["address"]
    assert lin["cmd_line_ptr"] == params["cmd_line_ptr"]
    assert report["mbi"]["cmdline"] == params["cmdline"]
    assert (lin["ramdisk_image"], lin["ramdisk_size"]) == (params["ramdisk_image"], params["ramdisk_size"])
    assert params["ramdisk_size"] == INITRD_SIZE
    assert lin["setup_data"] == params["setup_data"] == []
    assert [[e["start"], e["size"], e["type"]] for e in report["mbi"]["mmap"]] == params["e820"]


@pytest.mark.parametrize("memory", ["512M", "966M", "3G"])
def test_exit_map_and_zero_page_equal_the_kept_stop(image_load, memory):
    """The EFI map GRUB handed over (efi_info.efi_memmap, read at the entry) descriptor by descriptor
    (its size is a zero page field), and the zero page up to the end of its E820 table (past GRUB's
    0x3fc-byte struct: 18 or 19 entries here) but the system table pointer the policy declares; one
    changed byte is named by its field."""
    report, predicted = image_load(memory)
    seen = kept(memory)
    exit_map = report["maps"]["efi-at-exit"]["entries"]
    assert [[r["efi_type"], r["start"], r["size"] // PAGE, r["attributes"]] for r in exit_map] == \
        seen["efi_map"]["descriptors"]
    page = bytes.fromhex(seen["zero_page"])
    zp = report["linux"]["zero_page"]
    # struct linux_kernel_params (0x3fc bytes), then the E820 entries GRUB fills in past it
    assert len(predicted) == zp["predicted_bytes"] == max(0x3FC, 0x2D0 + 20 * len(report["mbi"]["mmap"]))
    assert page[len(predicted) - 20:len(predicted)] != bytes(20)        # the last entry, written by GRUB
    declared = {i for d in zp["declared"] for i in range(d["offset"], d["offset"] + d["size"])}
    assert declared == set(range(0x1C4, 0x1C8)) | set(range(0x1D8, 0x1DC))
    assert [i for i in range(len(predicted)) if predicted[i] != page[i] and i not in declared] == []

    class Res:
        mbi_bytes = predicted
        linux = report["linux"]
    assert vlinux.zero_page_comparison(Res, page)["match"]
    bad = bytearray(page)
    bad[0x1EC] ^= 1                              # secure_boot: grub_efi_get_secureboot's answer
    cmp = vlinux.zero_page_comparison(Res, bytes(bad))
    assert not cmp["match"] and [d["name"] for d in cmp["differing"]] == ["secure_boot"]


def test_recipe_and_image_load_alike_where_the_medium_is_not_needed(built, image_load, tmp_path):
    """`load RECIPE` knows no BOOTX64.EFI or ESP (verify predicts from the image it builds): the
    kernel, boot_params, command line and E820 are the same; the heap and initrd follow the image."""
    a, _ = predict(built[0], "512M", tmp_path)
    b, _ = image_load("512M")
    for key in ("code32_start", "boot_params", "cmd_line_ptr", "ramdisk_size"):
        assert a["linux"][key] == b["linux"][key]
    assert a["mbi"]["mmap"] == b["mbi"]["mmap"]


def test_verify_512m_matches_every_field(built):
    """The real boot: verify builds the recipe's disk, boots OVMF, stops at code32_start."""
    require("qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    recipe, _ = built
    proc = run_bootforge("verify", recipe, "--platform", "qemu-q35-ovmf:512M", "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    rows = {r["name"]: r for r in report["fields"]}
    assert rows["zero page bytes"]["match"] and rows["zero page bytes"]["counted"]
    assert rows["ramdisk_image"]["counted"] and rows["initrd bytes"]["match"]


def test_256m_is_out_of_memory_as_grub_says(built):
    """At 256M the kernel's page_align(init_size) does not fit twice (the failed pref_address try's
    chunk, then the aligned one) beside GRUB's heap: GRUB x86_64-efi printed "error: out of memory."
    (tests/data/linux-grub-efi/out-of-memory-256M.serial)."""
    _, image = built
    said = (FIXTURES / "out-of-memory-256M.serial").read_text()
    assert "error: out of memory." in said and "you need to load the kernel first" in said
    proc = run_bootforge("load", image, "--platform", "qemu-q35-ovmf:256M")
    assert proc.returncode != 0 and "out of memory" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_verify_of_a_bare_kernel_names_the_image_it_needs():
    """GRUB reads the kernel from its image: a bare bzImage is not booted by QEMU -kernel (that
    would start the EFI stub, not GRUB)."""
    require(KERNEL)
    proc = run_bootforge("verify", KERNEL, "--loader", "grub-efi-linux", "--platform", "qemu-q35-ovmf:512M")
    assert proc.returncode == 2 and "boots a bootable image or an [image] recipe" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
