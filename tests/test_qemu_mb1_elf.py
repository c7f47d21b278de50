"""QEMU's -kernel reading a Multiboot 1 ELF32 kernel (load_elf and load_multiboot): which program
headers it refuses, in its words, and where it puts the image when a zero-filled tail overlaps
another segment.

The kernels are the dump kernel (tests/data/load-root/boot/kernel-mb1: segment 0 at 0x100000,
0x32d file bytes of 0x1330; segment 1, the Multiboot header, 0xc bytes at 0x102078) with one
program header patched. OBSERVED is what qemu-system-x86_64 7.2 (Debian 1:7.2+dfsg-7) printed
first on stderr, or the signal it died of, for

    qemu-system-x86_64 -display none -nodefaults -m 256 -kernel K -initrd mod1

and the qemu-marked test runs it again."""

import json
import shutil
import struct
import subprocess

import pytest

from conftest import REPO, assert_one_line_error, require, run_bootforge

KERNEL = REPO / "tests" / "data" / "load-root" / "boot" / "kernel-mb1"
MOD1 = REPO / "tests" / "data" / "load-root" / "boot" / "mod1"
PHDR = 0x34                       # e_phoff of the dump kernel; Elf32_Phdr is 32 bytes
P_FILESZ, P_MEMSZ = 16, 20


def patched(tmp_path, name, *, cut=None, **fields):
    """The dump kernel with program header fields set: seg0_memsz=..., seg1_paddr=... (p_vaddr
    follows p_paddr), seg0_filesz=... (p_memsz follows p_filesz), or cut to its first *cut* bytes."""
    data = bytearray(KERNEL.read_bytes())
    for key, value in fields.items():
        seg, what = key.split("_")
        at = PHDR + 32 * int(seg[3:])
        if what == "paddr":
            struct.pack_into("<II", data, at + 8, value, value)
        elif what == "filesz":      # p_filesz and p_memsz both
            struct.pack_into("<II", data, at + P_FILESZ, value, value)
        else:
            struct.pack_into("<I", data, at + P_MEMSZ, value)
    out = tmp_path / name
    out.write_bytes(data[:cut] if cut else data)
    return out


# name: (patch, what QEMU 7.2 did)
OBSERVED = {
    # load_elf: PT_LOAD file bytes past the end of the file (the load-kernel fuzzer's input was such a
    # 187-byte file).
    "cut-short": (dict(cut=187), "Error while loading elf kernel"),
    # The zero tail [0x10032d, 2^32 wrapping to 0) overlaps nothing, so it stays: 0xfff0000c bytes,
    # a negative int to load_multiboot.
    "tail-to-4g": (dict(seg0_memsz=0xFFF00000), "Error while loading elf kernel"),
    "2g-at-2g": (dict(seg0_paddr=0x80000000, seg0_memsz=0x80000000), "Error while loading elf kernel"),
    # Both segments of size 0: no ROM, and rom_copy of the 1-byte image copies nothing.
    "empty": (dict(seg0_filesz=0, seg1_filesz=0), "Error while fetching elf kernel from rom"),
    # Segment 1 inside segment 0's file bytes: rom_copy counts to the end of segment 1 only.
    "overlapping": (dict(seg1_paddr=0x100100), "Error while fetching elf kernel from rom"),
    # Up to 4 GiB: the segment and SeaBIOS's 256 KiB at 0xfffc0000 overlap.
    "up-to-4g": (dict(seg0_paddr=0xFFFFF000, seg0_memsz=0x1000), "Some ROM regions are overlapping"),
    # The image takes in the start of the BIOS ROM: rom_copy's length goes negative (size_t).
    "into-bios": (dict(seg1_paddr=0xFFFBFFF8), "SIGSEGV"),
}


# What `load` says instead of QEMU's words: its kernel reader stops first, for every loader.
LOAD_SAYS = {"empty": "the kernel ELF has no PT_LOAD segment with memory"}


@pytest.mark.parametrize("name", OBSERVED)
def test_the_verdict_is_qemus_own_words(tmp_path, name):
    patch, observed = OBSERVED[name]
    kernel = patched(tmp_path, name, **patch)
    proc = run_bootforge("inspect", kernel)
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("qemu-mb1"))
    assert "REFUSES" in line
    if observed == "SIGSEGV":
        assert "QEMU crashes (SIGSEGV in rom_copy)" in line
    else:
        assert line.split("REFUSES", 1)[1].strip().startswith(observed + " (")
        proc = run_bootforge("load", kernel, "--platform", "qemu-pc-seabios:256M", "--loader", "qemu-mb1",
                             "--module", f"{MOD1}=mod1")
        assert_one_line_error(proc, str(kernel), LOAD_SAYS.get(name, observed))


@pytest.mark.qemu
@pytest.mark.parametrize("name", OBSERVED)
def test_qemu_does_what_observed_says(tmp_path, name):
    require("qemu-system-x86_64")
    patch, observed = OBSERVED[name]
    kernel = patched(tmp_path, name, **patch)
    proc = subprocess.run(["qemu-system-x86_64", "-display", "none", "-nodefaults", "-m", "256", "-kernel",
                           str(kernel), "-initrd", str(MOD1)], capture_output=True, text=True, timeout=60)
    if observed == "SIGSEGV":
        assert proc.returncode == -11, (proc.returncode, proc.stderr)
    else:
        assert proc.returncode == 1 and proc.stderr.splitlines()[0] == f"qemu-system-x86_64: {observed}"


def test_a_zero_tail_over_another_segment_is_not_loaded(tmp_path):
    """Segment 0 with 3 GiB of memsz: its zero tail covers segment 1, so load_elf loads only its
    file bytes and the image ends at segment 1's end (0x102084): the module list follows at the
    next page, 0x103000, as with the unpatched kernel."""
    kernel = patched(tmp_path, "big-tail", seg0_memsz=0xC0000000)
    doc = json.loads(run_bootforge("load", kernel, "--platform", "qemu-pc-seabios:256M", "--loader", "qemu-mb1",
                                   "--module", f"{MOD1}=mod1", "--json", check=0).stdout)
    assert doc["mbi"]["regions"]["mods"] == 0x103000 and doc["mbi"]["modules"][0]["start"] == 0x104000


@pytest.mark.qemu
def test_a_zero_tail_over_another_segment_verifies_under_qemu(tmp_path):
    require("qemu-system-x86_64")
    kernel = patched(tmp_path, "big-tail", seg0_memsz=0xC0000000)
    shutil.copyfile(MOD1, tmp_path / "mod1")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nqemu_args = "-kernel {kernel} -append \'kernel-args a=b\' -initrd \'{tmp_path}/mod1 '
                      f'mod1-args\'"\nplatform = "qemu-pc-seabios:256M"\nloader = "qemu-mb1"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"] and doc["status"] == "entry", doc.get("mismatches")
    start = next(f for f in doc["fields"] if f["name"] == "module 0 start")
    assert start["observed"] == 0x104000 and start["match"]
