"""Multiboot header checks: a Multiboot magic without a valid header is named with what
is wrong and every loader's verdict (exit 1); `inspect --check LOADER`; `build` refuses a
second header and a kernel GRUB refuses. Kernels are the dump kernel built by the recipes
(recipes/kernel-mbdump-*.toml) with one field changed here."""

import json
import struct

import pytest

from conftest import REPO, require, run_bootforge, assert_one_line_error

MB1_MAGIC, MB2_MAGIC = 0x1BADB002, 0xE85250D6


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    require(str(REPO / "build/stubs/mbdump.elf"))
    d = tmp_path_factory.mktemp("k")
    for name in ("mb1", "mb2"):
        run_bootforge("build", REPO / f"recipes/kernel-mbdump-{name}.toml", "-o", d / f"{name}.elf", check=0)
    return d


def edited(src, dst, magic, edit):
    data = bytearray(src.read_bytes())
    at = data.find(magic.to_bytes(4, "little"))
    assert at >= 0
    edit(data, at)
    dst.write_bytes(bytes(data))
    return at


def test_mb2_bad_checksum_is_named_with_each_verdict(kernels, tmp_path):
    k = tmp_path / "badsum.elf"
    at = edited(kernels / "mb2.elf", k, MB2_MAGIC, lambda d, at: d.__setitem__(at + 12, d[at + 12] ^ 1))
    proc = run_bootforge("inspect", "--json", k)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["multiboot2"] is None
    [rejected] = doc["multiboot2_rejected"]
    assert rejected["offset"] == at and "checksum" in rejected["problems"][0] and "not 0" in rejected["problems"][0]
    grub = doc["loaders"]["grub-mb2"]
    # GRUB 2.06 multiboot_mbi2.c scans for magic + zero sum + architecture: its words stay its own.
    assert grub["ok"] is False and grub["words"] == "no multiboot header found"
    assert f"magic at {at:#x}" in grub["reason"]
    assert doc["loaders"]["limine-mb2"]["words"] == "multiboot2: Header checksum is invalid"
    assert doc["refused_protocols"] == ["multiboot2"]
    text = run_bootforge("inspect", k, check=1).stdout
    assert f"Multiboot2 header: none that loaders take; magic at {at:#x}: checksum" in text
    assert "none in the first 32 KiB" not in text


def test_mb2_wrong_architecture_and_length(kernels, tmp_path):
    def arch4(d, at):
        length = struct.unpack_from("<I", d, at + 8)[0]
        struct.pack_into("<I", d, at + 4, 4)
        struct.pack_into("<I", d, at + 12, (-(MB2_MAGIC + 4 + length)) & 0xFFFFFFFF)
    k = tmp_path / "arch.elf"
    edited(kernels / "mb2.elf", k, MB2_MAGIC, arch4)
    doc = json.loads(run_bootforge("inspect", "--json", k, check=1).stdout)
    problems = doc["multiboot2_rejected"][0]["problems"]
    assert problems == ["architecture 4 (mips32): x86 loaders take 0 (i386)"], problems

    def len16(d, at):
        struct.pack_into("<II", d, at + 8, 16, (-(MB2_MAGIC + 16)) & 0xFFFFFFFF)
    k = tmp_path / "len.elf"
    edited(kernels / "mb2.elf", k, MB2_MAGIC, len16)
    proc = run_bootforge("inspect", "--json", k)
    assert proc.returncode == 1 and proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["multiboot2_rejected"][0]["problems"] == ["header_length 16 is below 24 (header and end tag)"]
    assert not doc["loaders"]["grub-mb2"]["ok"]


def test_mb1_bad_checksum_exit_1_although_syslinux_boots_the_elf(kernels, tmp_path):
    k = tmp_path / "mb1.elf"
    at = edited(kernels / "mb1.elf", k, MB1_MAGIC, lambda d, at: d.__setitem__(at + 8, d[at + 8] ^ 1))
    proc = run_bootforge("inspect", "--json", k)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["multiboot1_rejected"][0]["offset"] == at
    assert doc["loaders"]["grub-mb1"]["words"] == "no multiboot header found"
    assert doc["loaders"]["qemu-mb1"]["words"] == "Error loading uncompressed kernel without PVH ELF Note"
    assert f"magic at {at:#x}" in doc["loaders"]["qemu-mb1"]["reason"]
    assert doc["loaders"]["syslinux-mb1"]["ok"]        # mboot.c32 boots any ELF32
    assert any(p.startswith(f"Multiboot1 magic at {at:#x}") for p in doc["problems"])


def test_check_loader(kernels, tmp_path):
    k = kernels / "mb2.elf"
    ok = run_bootforge("inspect", "--check", "grub-mb2", k)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    no = run_bootforge("inspect", "--check", "grub-mb1", k)
    assert (no.returncode, no.stdout, no.stderr) == (1, "", "")
    verbose = run_bootforge("inspect", "--check", "grub-mb1", "-v", k, check=1)
    assert "grub-mb1: REFUSES: no multiboot header found" in verbose.stdout
    doc = json.loads(run_bootforge("inspect", "--check", "qemu-mb1", "--json", kernels / "mb1.elf", check=0).stdout)
    assert doc["loader"] == "qemu-mb1" and doc["ok"] is True
    bad = run_bootforge("inspect", "--check", "grub-mb3", k)
    assert bad.returncode == 2 and "grub-mb1, grub-mb2" in bad.stderr
    rom = run_bootforge("inspect", "--check", "grub-mb2", "/usr/share/seabios/vgabios-stdvga.bin")
    assert rom.returncode == 2 and "not a kernel" in rom.stderr
    # Help lists the names the registry holds.
    help_text = run_bootforge("inspect", "--help", check=0).stdout
    assert "syslinux-mb1" in help_text and "option-rom" in help_text and "e820-dmesg" in help_text


def test_build_refuses_a_second_header(kernels, tmp_path):
    recipe = tmp_path / "again.toml"
    recipe.write_text(f'[kernel]\ninput = "{kernels / "mb2.elf"}"\nprotocol = "both"\n')
    out = tmp_path / "again.elf"
    proc = run_bootforge("build", recipe, "-o", out)
    assert_one_line_error(proc, str(recipe), "already has a Multiboot2 header at offset 0x78")
    assert not out.exists()


def test_build_refuses_what_grub_refuses(tmp_path):
    require(str(REPO / "build/stubs/mbdump.elf"))
    recipe = tmp_path / "smbios.toml"
    # SMBIOS (13) is the one information request GRUB 2.06 cannot satisfy (multiboot_mbi2.c).
    recipe.write_text(f'[kernel]\ninput = "{REPO / "build/stubs/mbdump.elf"}"\nprotocol = "multiboot2"\n'
                      '[kernel.multiboot2]\ninformation_request = [1, 13]\n')
    out = tmp_path / "smbios.elf"
    proc = run_bootforge("build", recipe, "-o", out)
    assert_one_line_error(proc, str(recipe), "grub-mb2", '"unsupported information tag: 0xd"')
    assert not out.exists()


@pytest.mark.parametrize("name,magic,at,fixture", [
    ("mb2", MB2_MAGIC, 12, "grub-pc-mb2-bad-checksum.serial"),
    ("mb1", MB1_MAGIC, 8, "grub-pc-mb1-bad-checksum.serial"),
])
def test_grub_words_for_a_bad_checksum_are_the_real_ones(kernels, tmp_path, name, magic, at, fixture):
    # The fixtures are GRUB i386-pc's serial console booting the same edit of the same kernel
    # (tests/data/README.md): its first error line is the verdict's words.
    from conftest import DATA
    real = next(line for line in (DATA / fixture).read_text().splitlines() if line.startswith("error: "))
    k = tmp_path / "k.elf"
    edited(kernels / f"{name}.elf", k, magic, lambda d, a: d.__setitem__(a + at, d[a + at] ^ 1))
    doc = json.loads(run_bootforge("inspect", "--json", k, check=1).stdout)
    assert real == f"error: {doc['loaders'][f'grub-{name}']['words']}."
