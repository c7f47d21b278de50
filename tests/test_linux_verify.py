"""`bootforge verify` of Linux entries: the boot stopped at the kernel's 32-bit entry through
QEMU's gdbstub, boot_params read at ESI (E820, ramdisk_image/size, cmd_line_ptr and its
string, setup_data, the zero page byte for byte) against the policy's prediction.

make test boots twice: GRUB i386-pc `linux` from the disk image an [image] recipe builds (3G:
the initrd under GRUB's 0x37ffffff cap) and QEMU -kernel (512M). 512M GRUB and 3G QEMU run in
`make linux-verify` (tests/linux_verify_matrix.py, with the OVMF UKI boots). The comparison itself is checked here
without QEMU on the zero pages kept from real boots (tests/data/linux-grub-pc/)."""

import json
import struct

import pytest

from conftest import DATA, require, run_bootforge
from test_linux_grub import CMDLINE, image_recipe
from test_uki_build import INITRD_SIZE, KERNEL, make_initrd

from bootforge.verify import linux as vlinux

FIXTURES = DATA / "linux-grub-pc"
PAGE = 4096


class FakeGdb:
    """Guest memory for read_boot_params: {address: bytes}."""

    def __init__(self, blocks):
        self.blocks = blocks

    def read_memory(self, address, length):
        for at, data in self.blocks.items():
            if at <= address and address + length <= at + len(data):
                return data[address - at:address - at + length]
        return None


def grub_prediction(tmp_path, memory):
    recipe = image_recipe(tmp_path)
    out = tmp_path / "zp.bin"
    proc = run_bootforge("load", recipe, "--platform", f"qemu-pc-seabios:{memory}", "--json", "--mbi-out", out,
                         check=0)
    return json.loads(proc.stdout), out.read_bytes()


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_boot_params_read_from_a_kept_zero_page(tmp_path, memory):
    """The zero page GRUB handed the kernel (read at the entry of a real boot) as verify reads it:
    the E820 table, ramdisk and command-line fields as load predicts them; the page compared
    as the policy declares it matches, and one changed byte is named by its field."""
    require(KERNEL)
    report, predicted = grub_prediction(tmp_path, memory)
    lin = report["linux"]
    page = (FIXTURES / f"zero-page-{memory}.bin").read_bytes()
    cmdline = report["mbi"]["cmdline"].encode().ljust(PAGE, b"\0")
    gdb = FakeGdb({lin["boot_params"]: page, lin["cmd_line_ptr"]: cmdline})
    params, raw = vlinux.read_boot_params(gdb, lin["boot_params"])
    assert raw == page and params["problems"] == []
    assert params["e820"] == [(e["start"], e["size"], e["type"]) for e in report["mbi"]["mmap"]]
    assert (params["ramdisk_image"], params["ramdisk_size"]) == (lin["ramdisk_image"], INITRD_SIZE)
    assert (params["cmd_line_ptr"], params["cmdline"]) == (lin["cmd_line_ptr"], report["mbi"]["cmdline"])
    assert params["setup_data"] == [] and params["code32_start"] == lin["code32_start"]

    res = type("Res", (), {"mbi_bytes": predicted, "linux": lin})()
    same = vlinux.zero_page_comparison(res, page)
    assert same["match"] and same["predicted_size"] == 0x3FC
    assert [f["start"] for f in same["firmware_data"]] == [0, 0x3FC]
    changed = bytearray(page)
    changed[0x218] ^= 1                                  # ramdisk_image's low byte
    changed[0x2D0 + 20 + 8] ^= 1                         # e820_table[1].size
    changed[0x1] ^= 1                                    # orig_y: declared (GRUB's console)
    diff = vlinux.zero_page_comparison(res, bytes(changed))
    assert not diff["match"]
    assert [d["name"] for d in diff["differing"]] == ["hdr.ramdisk_image", "e820_table[1]"]


def test_setup_data_chain_is_followed_and_a_loop_is_named():
    page = bytearray(PAGE)
    page[0x202:0x206] = b"HdrS"
    struct.pack_into("<Q", page, 0x250, 0x5000)
    node1 = struct.pack("<QII", 0x6000, 9, 4) + b"seed"
    node2 = struct.pack("<QII", 0x5000, 1, 0)        # points back to the first: a loop
    params, _ = vlinux.read_boot_params(FakeGdb({0x1000: bytes(page), 0x5000: node1, 0x6000: node2}), 0x1000)
    assert [(n["address"], n["type"], n["len"]) for n in params["setup_data"]] == [(0x5000, 9, 4), (0x6000, 1, 0)]
    assert [n["type_name"] for n in params["setup_data"]] == ["SETUP_RNG_SEED", "SETUP_E820_EXT"]
    assert params["problems"] == ["the setup_data chain loops back to 0x5000"]


def rows(report):
    return {r["name"]: r for r in report["fields"]}


def test_verify_grub_linux_image_recipe_at_3g(tmp_path):
    """GRUB i386-pc's `linux`/`initrd` from the disk image the recipe builds: every field read at
    the entry equals load's prediction, and the zero page equals the one kept from an earlier
    real boot (tests/data/linux-grub-pc/zero-page-3G.bin) over GRUB's 0x3fc bytes."""
    require(KERNEL, "qemu-system-x86_64", "grub-mkimage")
    recipe = image_recipe(tmp_path)
    proc = run_bootforge("verify", recipe, "--platform", "qemu-pc-seabios:3G", "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    load = json.loads(run_bootforge("load", recipe, "--platform", "qemu-pc-seabios:3G", "--json", check=0).stdout)
    r = rows(report)
    lin = load["linux"]
    assert r["kernel entry"]["observed"] == lin["code32_start"] == report["registers"]["rip"] & 0xFFFFFFFF
    assert r["boot_params (ESI)"]["observed"] == lin["boot_params"]
    assert r["ramdisk_image"]["observed"] == lin["ramdisk_image"] and r["ramdisk_size"]["observed"] == INITRD_SIZE
    assert r["cmdline"]["observed"] == f"BOOT_IMAGE=/boot/vmlinuz {CMDLINE}"
    assert r["initrd bytes"]["match"] and r["setup_data"]["observed"] == []
    assert [tuple(x) for x in report["boot_information"]["e820"]] == \
        [(e["start"], e["size"], e["type"]) for e in load["mbi"]["mmap"]]
    page = bytes.fromhex(report["boot_information"]["zero_page"])
    assert page[:0x3FC] == (FIXTURES / "zero-page-3G.bin").read_bytes()[:0x3FC]
    assert r["zero page bytes"]["match"] and report["mbi_bytes"]["predicted_size"] == 0x3FC


def test_verify_qemu_kernel_at_512m(tmp_path):
    """QEMU -kernel/-initrd/-append: the initrd, the command line at 0x20000 and SeaBIOS's E820
    as the kernel's setup code hands them to the 32-bit entry; the boot_params address and the
    page itself are the setup code's (shown, not counted, with the reason)."""
    require(KERNEL, "qemu-system-x86_64")
    initrd = make_initrd(tmp_path / "initrd.img")
    proc = run_bootforge("verify", KERNEL, "--platform", "qemu-pc-seabios:512M", "--loader", "qemu-linux",
                         "--cmdline", CMDLINE, "--module", initrd, "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    r = rows(report)
    assert r["cmd_line_ptr"]["observed"] == 0x20000 and r["cmdline"]["observed"] == CMDLINE
    assert r["ramdisk_size"]["observed"] == INITRD_SIZE and r["initrd bytes"]["match"]
    assert not r["boot_params (ESI)"]["counted"] and not r["zero page bytes"]["counted"]
    assert "setup code" in report["mbi_bytes"]["firmware_data"][0]["reason"]
    text = run_bootforge("verify", KERNEL, "--platform", "qemu-pc-seabios:512M", "--loader", "qemu-linux",
                         "--cmdline", CMDLINE, "--module", initrd, check=0).stdout
    assert "result: all" in text and "ESI 0x" in text


def test_verify_of_a_linux_entry_needs_its_image(tmp_path):
    """grub-pc-linux reads its files from an image: a bare kernel is one line, exit 2."""
    require(KERNEL)
    proc = run_bootforge("verify", KERNEL, "--platform", "qemu-pc-seabios:512M", "--loader", "grub-pc-linux")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "bootable image or an [image] recipe" in proc.stderr


def test_an_allocator_models_placement_is_what_verify_compares():
    """linux-efi-stub gives its addresses in linux.placement (OVMF's page allocator model): verify
    compares those when exact, and names why not otherwise."""
    res = type("Res", (), {"linux": {"kernel": {"start": 0x1600000, "size": 1}, "initrd_size": 5,
                                     "setup_data": [{"type": "SETUP_PCI", "len": 40}],
                                     "placement": {"exact": True, "boot_params": 0x1000, "cmd_line_ptr": 0x2018,
                                                   "initrd": {"start": 0x3000, "size": 5}}}})()
    lin = vlinux.predicted_linux(res)
    assert (lin["boot_params"], lin["cmd_line_ptr"], lin["ramdisk_image"], lin["ramdisk_size"]) == \
        (0x1000, 0x2018, 0x3000, 5)
    assert lin["setup_data"] == [(3, 40)] and vlinux.entry_address(None, res) == 0x1600000
    res.linux["placement"] = {"exact": False, "reason": "no capture"}
    assert vlinux.predicted_linux(res)["varies_per_boot"]["boot_params"] == "not predicted: no capture"
