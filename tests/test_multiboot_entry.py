"""Where each loader jumps into a kernel: e_entry translated from virtual to physical as
GRUB (multiboot_elfxx.c), Limine (elf.c) and QEMU (elf_ops.h) do it, in inspect, load and
verify. The higher-half kernel is built here with binutils: an ELF64 Multiboot2 kernel
whose one PT_LOAD has p_vaddr 0xffffffff80100000 and p_paddr 0x100000 and no entry
address tag, the most common layout of a 64-bit hobby kernel; the real GRUB i386-pc and
Limine BIOS stop at 0x100018 (their RIP at the entry, read through QEMU's gdbstub)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import require, run_bootforge
from bootforge.fileio import read_input
from bootforge.loader.image import read_kernel
from bootforge.multiboot.entry import translate
from bootforge.multiboot.headers import read_elf
from bootforge.qemu import host

HIGHER_HALF_S = """\
    .section .mb2, "a"
    .align 8
hdr:
    .long 0xe85250d6, 0, hdr_end - hdr, -(0xe85250d6 + (hdr_end - hdr))
    .short 0, 0
    .long 8
hdr_end:
    .text
    .code32
    .globl _start
_start:
    cli
1:  hlt
    jmp 1b
"""
HIGHER_HALF_LD = """\
ENTRY(_start)
SECTIONS {
  . = 0xffffffff80100000;
  .text : AT(0x100000) { *(.mb2) *(.text) }
}
"""
E_ENTRY, ENTRY = 0xFFFFFFFF80100018, 0x100018
LIMINE_DIR = Path(os.environ["BOOTFORGE_LIMINE_DIR"])     # set by conftest
WORDS = "entry 0x100018 (e_entry 0xffffffff80100018, translated through segment 0)"


@pytest.fixture(scope="module")
def higher_half(tmp_path_factory):
    require("as", "ld")
    d = tmp_path_factory.mktemp("higher-half")
    (d / "k.S").write_text(HIGHER_HALF_S)
    (d / "k.ld").write_text(HIGHER_HALF_LD)
    subprocess.run(["as", "--64", "-o", d / "k.o", d / "k.S"], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-T", d / "k.ld", "--build-id=none", "-z", "max-page-size=0x1000",
                    "-o", d / "k.elf", d / "k.o"], check=True)
    return d / "k.elf"


def test_the_built_kernel_is_higher_half(higher_half):
    elf = read_elf(higher_half.read_bytes())
    assert elf.bits == 64 and elf.entry == E_ENTRY
    assert [(s.vaddr, s.paddr) for s in elf.loads] == [(0xFFFFFFFF80100000, 0x100000)]


def test_inspect_shows_both_addresses(higher_half):
    proc = run_bootforge("inspect", higher_half)
    assert proc.returncode == 0, proc.stdout
    assert f"  {WORDS}" in proc.stdout.splitlines()
    grub = next(line for line in proc.stdout.splitlines() if line.strip().startswith("grub-mb2"))
    assert WORDS in grub
    doc = json.loads(run_bootforge("inspect", "--json", higher_half).stdout)
    assert doc["entry"] == ENTRY and doc["elf"]["entry"] == E_ENTRY


@pytest.mark.parametrize("loader", ["grub-pc-mb2", "limine-mb2"])
def test_load_predicts_the_translated_entry(higher_half, loader):
    proc = run_bootforge("load", higher_half, "--platform", "qemu-pc-seabios:256M", "--loader", loader)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"  kernel {WORDS}" in proc.stdout.splitlines()
    doc = json.loads(run_bootforge("load", "--json", higher_half, "--platform", "qemu-pc-seabios:256M",
                                   "--loader", loader).stdout)
    assert doc["entry"] == {"address": ENTRY, "how": "ELF e_entry", "e_entry": E_ENTRY, "segment": 0}


def test_loader_rules_differ_where_the_loaders_do(higher_half):
    """GRUB translates through any program header holding e_entry, Limine through a PT_LOAD
    with memory, QEMU only through an executable PT_LOAD within p_filesz, Syslinux never."""
    k = read_kernel(higher_half, read_input(higher_half))
    elf = read_elf(k.data)
    assert translate(elf, "grub").address == translate(elf, "limine").address == ENTRY
    assert translate(elf, "qemu").address == ENTRY          # PF_X, p_vaddr != p_paddr, inside p_filesz
    assert translate(elf, "syslinux").address == E_ENTRY & 0xFFFFFFFF


def verify_json(tmp_path, kernel, loader, rc=0):
    recipe = tmp_path / f"{loader}.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nloader_path = "/boot/kernel"\ncmdline = "hh"\n'
                      f'platform = "qemu-pc-seabios:256M"\nloader = "{loader}"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    assert proc.returncode == rc, (proc.returncode, proc.stdout[-3000:], proc.stderr)
    return json.loads(proc.stdout)


@pytest.mark.qemu
@pytest.mark.parametrize("loader", ["grub-pc-mb2", "limine-mb2"])
def test_real_loaders_enter_the_higher_half_kernel_at_the_translated_entry(tmp_path, higher_half, loader):
    require("qemu-system-x86_64", "xorriso")
    if loader == "grub-pc-mb2":
        require("grub-mkrescue", "mformat", host.GRUB_I386_PC)
    else:
        require(str(LIMINE_DIR / "limine-bios-cd.bin"), str(LIMINE_DIR / "limine.c"), "cc")
    doc = verify_json(tmp_path, higher_half, loader)
    assert doc["status"] == "entry" and doc["registers"]["rip"] == ENTRY, doc
    assert doc["entry"] == ENTRY and "translated through segment 0" in doc["entry_how"]
