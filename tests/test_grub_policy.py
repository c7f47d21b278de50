"""grub-pc-mb1 / grub-pc-mb2 / grub-efi-mb2 byte facts against what the real GRUB 2.06
handed the dump kernel (tests/data/mb-grub-*.dump, tests/data/README.md has the commands)."""

import pytest

from conftest import BUILD, DATA, require
import fidelity as F


def _predict(loader, protocol, platform="qemu-pc-seabios:256M"):
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest
    require("ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))
    kernel = F.dump_kernel("1m", protocol)
    k = read_kernel(kernel, read_input(kernel))
    return k, policy(loader)(LoadRequest(k, "/boot/kernel", F.KERNEL_CMDLINE, [], resolve(platform), loader))


def test_mb1_elf_shndx_is_e_shstrndx():
    """multiboot_mbi.c grub_multiboot_add_elfsyms keeps the ELF header's e_shstrndx: the
    real GRUB i386-pc wrote shndx 7 (.shstrtab) for the dump kernel."""
    from bootforge.formats.multiboot import Multiboot1ElfSections, Multiboot1Info
    from bootforge.multiboot.dump import decode_dump
    seen = decode_dump((DATA / "mb-grub-pc-mb1.dump").read_bytes())[0]["multiboot1"]["elf_sections"]
    k, res = _predict("grub-pc-mb1", "mb1")
    syms = Multiboot1ElfSections.parse(Multiboot1Info.parse(res.mbi_bytes).syms)
    assert seen["shndx"] == k.shstrndx == 7
    assert (syms.num, syms.size, syms.shndx) == (seen["num"], seen["size"], seen["shndx"])
