"""The zero page Linux's EFI stub (Debian 6.1.192) enters the decompressed kernel with under OVMF,
as linux-efi-stub predicts it byte for byte (bootforge/loader/linux_stub_zero_page.py).

The kept pages (tests/data/linux-efi-stub/stop-*.json: `bootforge verify` reports' boot_information,
commands in tests/data/README.md) were read at RSI when the stub jumped to the kernel (0x1600000):
Debian's kernel with the test initrd under QEMU -kernel, and the bootforge UKI, at 512M and 3G.
One real boot (the UKI at 512M) runs here; test_linux_image_verify.py boots it at 3G."""

import json

import pytest

from conftest import DATA, require, run_bootforge
from test_linux_grub import CMDLINE
from test_uki_build import KERNEL, bootforge_uki, make_initrd

from bootforge.verify import linux as vlinux

FIXTURES = DATA / "linux-efi-stub"
PAGE = 4096
# What OVMF decides and the policy declares: the system table, the stub's map buffer in OVMF's ACPI
# Reclaim pool, the GOP framebuffer's BAR (low and high halves each).
DECLARED = {0x1C4, 0x1D0, 0x1D8, 0x1DC, 0x18, 0x3A}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    require(KERNEL)
    d = tmp_path_factory.mktemp("efi-stub")
    return {"initrd": make_initrd(d / "initrd.img"), "uki": bootforge_uki(d)}


def kept(name):
    return json.loads((FIXTURES / f"stop-{name}.json").read_text())


PREDICTED = {}


def predicted(inputs, name, tmp_path):
    """`bootforge load ... --json --mbi-out` for the kept stop *name* (once per name)."""
    if name in PREDICTED:
        return PREDICTED[name]
    kind, memory = name.split("-")
    out = tmp_path / "zp.bin"
    if kind == "kernel":
        args = [KERNEL, "--cmdline", CMDLINE, "--module", inputs["initrd"]]
    else:
        args = [inputs["uki"]]
    proc = run_bootforge("load", *args, "--platform", f"qemu-q35-ovmf:{memory}", "--loader", "linux-efi-stub",
                         "--json", "--mbi-out", out, check=0)
    PREDICTED[name] = json.loads(proc.stdout), out.read_bytes()
    return PREDICTED[name]


class Result:
    def __init__(self, report, page):
        self.mbi_bytes = page
        self.linux = report["linux"]


@pytest.mark.parametrize("name", ["kernel-512M", "kernel-3G", "uki-512M", "uki-3G"])
def test_zero_page_equals_the_stubs(inputs, tmp_path, name):
    """All 4096 bytes but the declared firmware fields: the stub's header fields, the command line,
    initrd and setup_data pointers from OVMF's replayed allocator, screen_info of GOP mode 0,
    efi_info with the exit map's size, secure_boot, alt_mem_k, the E820 table."""
    report, page = predicted(inputs, name, tmp_path)
    seen = bytes.fromhex(kept(name)["zero_page"])
    zp = report["linux"]["zero_page"]
    assert len(page) == zp["predicted_bytes"] == PAGE and report["linux"]["placement"]["exact"]
    assert {d["offset"] for d in zp["declared"]} == DECLARED
    skip = {i for d in zp["declared"] for i in range(d["offset"], d["offset"] + d["size"])}
    assert [hex(i) for i in range(PAGE) if page[i] != seen[i] and i not in skip] == []
    assert seen[0x202:0x206] == bytes(4)            # efi_pe_entry copies no setup header ("HdrS")
    cmp = vlinux.zero_page_comparison(Result(report, page), seen)
    assert cmp["match"] and cmp["differing"] == []


def test_a_changed_byte_is_named_by_its_field(inputs, tmp_path):
    report, page = predicted(inputs, "kernel-512M", tmp_path)
    seen = bytearray(bytes.fromhex(kept("kernel-512M")["zero_page"]))
    seen[0x1D4] ^= 0x30                                # efi_memmap_size: one descriptor more
    seen[0x14] ^= 1                                    # screen_info.lfb_height
    cmp = vlinux.zero_page_comparison(Result(report, page), bytes(seen))
    assert not cmp["match"] and [d["name"] for d in cmp["differing"]] == ["screen_info", "efi_info"]


def test_a_map_file_platform_declares_what_it_cannot_know(inputs, tmp_path):
    """A platform given as an EFI map has no GOP and no replay of OVMF's allocator: screen_info and
    the address fields are declared with the reason, the rest still predicted."""
    report, _ = predicted(inputs, "kernel-512M", tmp_path)
    efi = tmp_path / "efi.json"
    efi.write_text(json.dumps(report["maps"]["efi-at-exit"]))
    proc = run_bootforge("load", KERNEL, "--platform", efi, "--loader", "linux-efi-stub", "--cmdline", CMDLINE,
                         "--json", check=0)
    zp = json.loads(proc.stdout)["linux"]["zero_page"]
    why = {d["offset"]: d["why"] for d in zp["declared"]}
    assert why[0].startswith("screen_info") and "not predicted" in why[0x228]


def test_verify_uki_512m_counts_the_zero_page(inputs):
    """The real boot: the bare UKI under QEMU -kernel on OVMF, stopped at the kernel's entry."""
    require("qemu-system-x86_64", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    proc = run_bootforge("verify", inputs["uki"], "--platform", "qemu-q35-ovmf:512M", "--loader", "linux-efi-stub",
                         "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    row = next(r for r in report["fields"] if r["name"] == "zero page bytes")
    assert row["match"] and row["counted"]
