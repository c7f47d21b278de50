"""Truncated and inconsistent ELF kernels: each loader's verdict reads the file as that
loader does. GRUB 2.06 (multiboot_elfxx.c) seeks to each PT_LOAD's p_offset and reads
p_filesz bytes, then the section header table and every sh_addr == 0 section: a seek past
the end is "attempt to seek outside of the file" (kern/file.c), a short read "premature end
of file <name>". The real GRUB i386-pc said exactly that for the dump kernel cut to 4200
bytes (segment 0 at offset 0x2000: the seek fails) and to 8400 bytes (inside segment 0:
the read is short), through `bootforge verify` (the words on its serial console):

    bootforge verify k8400.toml  ->  error: premature end of file /boot/kernel.
    bootforge verify k4200.toml  ->  error: attempt to seek outside of the file.

inspect lists what the file lacks as problems and exits 1."""

import json

import pytest

from conftest import BUILD, require, run_bootforge
from bootforge.multiboot.verdicts import verdict
from bootforge.qemu import host

DUMP_MB2 = BUILD / "load-fidelity" / "mbdump-1m-mb2.elf"


@pytest.fixture(scope="module")
def dump_mb2():
    require("ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))
    import fidelity as F
    return F.dump_kernel("1m", "mb2").read_bytes()


@pytest.mark.parametrize("cut, words", [(4200, "attempt to seek outside of the file"),
                                        (8400, "premature end of file"),
                                        (0x2850 + 100, "premature end of file")])    # in the section headers
def test_grub_reads_the_file_as_far_as_its_headers_say(dump_mb2, cut, words):
    v = verdict("grub-mb2", dump_mb2[:cut])
    assert not v.ok and v.words == words
    assert verdict("grub-mb2", dump_mb2).ok


def test_limine_refuses_the_short_segment_in_its_words(dump_mb2):
    v = verdict("limine-mb2", dump_mb2[:8400])
    assert not v.ok and v.words == "elf: p_offset + p_filesz exceeds file size"


def test_inspect_names_what_the_file_lacks_and_exits_1(tmp_path, dump_mb2):
    k = tmp_path / "k.elf"
    k.write_bytes(dump_mb2[:8400])
    proc = run_bootforge("inspect", k)
    assert proc.returncode == 1, proc.stdout
    assert "program header 0 (PT_LOAD at offset 0x2000, p_filesz 0x32d) runs past the end of the file " \
           "(0x20d0 bytes)" in proc.stdout
    doc = json.loads(run_bootforge("inspect", "--json", k).stdout)
    assert doc["loaders"]["grub-mb2"]["ok"] is False and doc["loaders"]["grub-mb2"]["words"] == "premature end of file"
    whole = tmp_path / "whole.elf"
    whole.write_bytes(dump_mb2)
    assert run_bootforge("inspect", whole).returncode == 0


def test_load_refuses_in_grubs_words(tmp_path, dump_mb2):
    k = tmp_path / "k.elf"
    k.write_bytes(dump_mb2[:8400])
    proc = run_bootforge("load", k, "--platform", "qemu-pc-seabios:256M", "--loader", "grub-pc-mb2")
    assert proc.returncode == 2 and "premature end of file" in proc.stderr + proc.stdout


@pytest.mark.qemu
def test_real_grub_says_premature_end_of_file(tmp_path, dump_mb2):
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    k = tmp_path / "k.elf"
    k.write_bytes(dump_mb2[:8400])
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{k}"\nloader_path = "/boot/kernel"\ncmdline = "x"\n'
                      'platform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["status"] == "refused", doc
    assert "premature end of file /boot/kernel" in json.dumps(doc)
