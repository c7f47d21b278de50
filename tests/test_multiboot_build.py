"""Kernel recipes: the headers land where every loader looks, checked with pyelftools and readelf."""

import gzip
import json
import lzma
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from bootforge.multiboot import headers, verdicts
from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge

STUB = BUILD / "stubs" / "mbdump.elf"


def build(tmp_path, recipe_text, name="k.toml", out="k.out"):
    require(str(STUB))
    recipe = tmp_path / name
    recipe.write_text(recipe_text.replace("STUB", str(STUB)))
    out_path = tmp_path / out
    proc = run_bootforge("build", recipe, "-o", out_path, "--json", check=0)
    return out_path, json.loads(proc.stdout)


def readelf(path):
    require("readelf")
    return subprocess.run(["readelf", "-lSW", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("recipe", ["mb2", "mb1", "efi"])
def test_shipped_recipes_put_headers_in_a_loaded_segment(tmp_path, recipe):
    require(str(STUB))
    out = tmp_path / "k.elf"
    summary = json.loads(run_bootforge("build", REPO / f"recipes/kernel-mbdump-{recipe}.toml", "-o", out,
                                       "--json", check=0).stdout)
    data = out.read_bytes()
    stub = STUB.read_bytes()
    with open(out, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert len(loads) == 2
        hdr_seg = loads[1]
        mb = elf.get_section_by_name(".multiboot")
        assert mb is not None and mb["sh_flags"] & 2 and mb["sh_addr"] == hdr_seg["p_paddr"]
        text = elf.get_section_by_name(".text").data()
        orig = ELFFile(open(STUB, "rb")).get_section_by_name(".text").data()
        assert text == orig                                    # code moved, not changed
        assert elf.header["e_entry"] == 0x100000
        for seg in loads:
            assert seg["p_offset"] % seg["p_align"] == seg["p_vaddr"] % seg["p_align"]
    if recipe in ("mb1",):
        hdr = headers.find_mb1(data)
        assert hdr["offset"] % 4 == 0 and hdr["offset"] + 12 <= 8192 and hdr["checksum_ok"]
        assert summary["multiboot1_offset"] == hdr["offset"]
    else:
        hdr = headers.find_mb2(data)
        assert hdr["offset"] % 8 == 0 and hdr["offset"] < 32768
        assert summary["multiboot2_offset"] == hdr["offset"]
    assert hdr_seg["p_offset"] <= hdr["offset"] < hdr_seg["p_offset"] + hdr_seg["p_filesz"]
    listing = readelf(out)
    assert ".multiboot" in listing and listing.count("LOAD") == 2
    v = verdicts.verdicts(data, data)
    want = ["grub-mb1", "qemu-mb1", "syslinux-mb1", "limine-mb1"] if recipe == "mb1" else ["grub-mb2", "limine-mb2"]
    for name in want:
        assert v[name].ok, (name, v[name])
    assert len(stub) < len(data)


def test_both_headers_gzip_and_xz(tmp_path):
    for compress, unpack in (("gzip", gzip.decompress), ("xz", lzma.decompress)):
        out, summary = build(tmp_path, f'[kernel]\ninput = "STUB"\nprotocol = "both"\ncompress = "{compress}"\n'
                                        '[kernel.multiboot2]\ninformation_request = [1, 6]\n'
                                        'framebuffer = { width = 1024, height = 768, depth = 32, optional = true }\n')
        raw = unpack(out.read_bytes())
        assert summary["uncompressed_size"] == len(raw)
        assert headers.find_mb1(raw)["offset"] == summary["multiboot1_offset"]
        tags = headers.find_mb2(raw)["tags"]
        assert [(t["type"], t["optional"]) for t in tags] == [(1, False), (5, True), (0, False)]
        doc = json.loads(run_bootforge("inspect", "--json", out, check=0).stdout)
        assert doc["compression"] == compress
        assert doc["loaders"]["grub-mb2"]["ok"] and doc["loaders"]["grub-mb1"]["ok"]
        assert not doc["loaders"]["qemu-mb1"]["ok"]


def test_flat_kludge_image_fields(tmp_path):
    out, summary = build(tmp_path, '[kernel]\ninput = "STUB"\nprotocol = "both"\nlayout = "flat"\n')
    data = out.read_bytes()
    mb1 = headers.find_mb1(data)
    a = mb1["addresses"]
    assert mb1["aout_kludge"] and a["load_addr"] == 0x100000 and a["entry_addr"] == 0x100000
    assert a["load_end_addr"] - a["load_addr"] == len(data)
    assert a["header_addr"] - a["load_addr"] == mb1["offset"]
    stub = ELFFile(open(STUB, "rb"))
    seg = next(s for s in stub.iter_segments() if s["p_type"] == "PT_LOAD")
    assert data[:seg["p_filesz"]] == seg.data()
    assert data[seg["p_filesz"]:seg["p_memsz"]] == bytes(seg["p_memsz"] - seg["p_filesz"])   # bss in the file
    tags = {t["type"]: t for t in headers.find_mb2(data)["tags"]}
    assert tags[2]["header_addr"] - tags[2]["load_addr"] == headers.find_mb2(data)["offset"]
    assert tags[3]["entry_addr"] == 0x100000
    v = verdicts.verdicts(data, data)
    assert all(x.ok for x in v.values()), v


def test_binary_input_with_every_mb2_tag(tmp_path):
    blob = tmp_path / "flat.bin"
    blob.write_bytes(b"\xf4" * 100)
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{blob}"\nprotocol = "multiboot2"\nload_addr = 0x200000\nentry = 0x200000\n'
                      'bss_size = 0x100\n[kernel.multiboot2]\ninformation_request = [1]\n'
                      'console_flags = { console_required = false }\nmodule_alignment = true\n'
                      'efi_boot_services = { optional = true }\nentry_address_efi64 = { entry_addr = 0x200000, optional = true }\n'
                      'entry_address_efi32 = { entry_addr = 0x200000, optional = true }\n'
                      'framebuffer = { width = 640, height = 480, depth = 8, optional = true }\n'
                      'relocatable = { min_addr = 0x100000, max_addr = 0x1000000, align = 0x1000, preference = "high" }\n')
    out = tmp_path / "k.bin"
    run_bootforge("build", recipe, "-o", out, check=0)
    data = out.read_bytes()
    mb2 = headers.find_mb2(data)
    assert sorted(t["type"] for t in mb2["tags"]) == list(range(0, 11))
    assert mb2["offset"] == 0x168 and data[:100] == b"\xf4" * 100 and data[100:0x164] == bytes(0x100)
    assert verdicts.verdict("grub-mb2", data).ok


def test_far_header_is_refused_by_the_grub_verdict(tmp_path):
    require(str(STUB))
    out = tmp_path / "far.elf"
    summary = json.loads(run_bootforge("build", REPO / "recipes/kernel-mbdump-far.toml", "-o", out, "--json",
                                       check=0).stdout)
    assert summary["multiboot2_offset"] == 0x9000
    # Exit 1: no Multiboot2 loader loads it; the reason says where the header is (issue 15 item 9).
    doc = json.loads(run_bootforge("inspect", "--json", out, check=1).stdout)
    assert doc["multiboot2"] is None
    assert doc["multiboot2_rejected"] == [{"offset": 0x9000, "problems": [
        "a header past the first 32 KiB, where loaders search for it"]}]
    assert doc["loaders"]["grub-mb2"] == {"subject": "grub-mb2", "ok": False, "severity": "error", "reason": "no multiboot header found (magic at 0x9000: a header past the first 32 KiB, where loaders search for it)", "words": "no multiboot header found", "facts": {}}


def test_recipe_and_build_errors_are_one_line(tmp_path):
    require(str(STUB))
    cases = {
        'protocol = "multiboot3"': "protocol",
        'colour = 1': "unknown key",
        '[kernel.multiboot2]\nrelocatable = { preference = "middle" }': "preference",
        '[kernel.testing]\nheader_offset = 3': "header_offset",
    }
    for i, (extra, fragment) in enumerate(cases.items()):
        recipe = tmp_path / f"bad{i}.toml"
        recipe.write_text(f'[kernel]\ninput = "{STUB}"\n' + extra + "\n")
        assert_one_line_error(run_bootforge("build", recipe, "-o", tmp_path / "x"), str(recipe), fragment)
    # A kernel linked so its first segment maps the ELF headers: no room without moving them.
    require("ld", "as")
    src = tmp_path / "t.S"
    src.write_text(".text\n.globl _start\n_start: hlt\n")
    subprocess.run(["as", "--32", "-o", tmp_path / "t.o", src], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-z", "noseparate-code", "-o",
                    tmp_path / "t.elf", tmp_path / "t.o"], check=True)
    recipe = tmp_path / "hdr.toml"
    recipe.write_text(f'[kernel]\ninput = "{tmp_path / "t.elf"}"\n')
    assert_one_line_error(run_bootforge("build", recipe, "-o", tmp_path / "x"), "maps the ELF and program headers")


def default_linked_stub(tmp_path):
    """The dump kernel linked by GNU ld's default script: a read-only PT_LOAD maps the ELF headers."""
    require("ld", str(BUILD / "stubs" / "mbdump.o"))
    out = tmp_path / "default.elf"
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext-segment=0x100000", "-e", "_start",
                    "--no-warn-rwx-segments", "-o", out, BUILD / "stubs" / "mbdump.o"], check=True)
    return out


def test_default_ld_layout_grows_the_header_segment(tmp_path):
    stub = default_linked_stub(tmp_path)
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{stub}"\nprotocol = "both"\n')
    out = tmp_path / "k.elf"
    run_bootforge("build", recipe, "-o", out, check=0)
    before = ELFFile(open(stub, "rb"))
    after = ELFFile(open(out, "rb"))
    segs_before = [s.header for s in before.iter_segments()]
    segs_after = [s.header for s in after.iter_segments()]
    assert len(segs_after) == len(segs_before)
    assert segs_after[0]["p_offset"] == 0 and segs_after[0]["p_filesz"] > segs_before[0]["p_filesz"]
    assert segs_after[1:] == segs_before[1:]                        # nothing else moved
    data = out.read_bytes()
    mb1, mb2 = headers.find_mb1(data), headers.find_mb2(data)
    assert mb1["offset"] >= segs_before[0]["p_filesz"] and mb2["offset"] + mb2["header_length"] <= segs_after[0]["p_filesz"]
    assert after.get_section_by_name(".multiboot")["sh_offset"] == mb1["offset"]
    assert after.get_section_by_name(".text").data() == before.get_section_by_name(".text").data()
    v = verdicts.verdicts(data, data)
    assert all(x.ok for x in v.values()), v


def assembled_kernel(tmp_path, name, source):
    """*source* assembled with GNU as (32-bit) and linked at 1 MiB by ld: an ELF kernel."""
    require("as", "ld")
    src = tmp_path / f"{name}.S"
    src.write_text(source)
    subprocess.run(["as", "--32", "-o", tmp_path / f"{name}.o", src], check=True)
    kernel = tmp_path / f"{name}.elf"
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-o", kernel, tmp_path / f"{name}.o"], check=True)
    return kernel


def test_magic_that_is_no_header_warns_and_builds(tmp_path):
    """A kernel whose source says `.set MB2_MAGIC, 0xe85250d6` (and MB1's): the values sit in
    .symtab, in bytes no PT_LOAD loads, with no valid checksum. They are no header a loader
    finds: the build warns about each and adds the headers, which GRUB's verdict then loads."""
    kernel = assembled_kernel(tmp_path, "k", ".set MB2_MAGIC, 0xe85250d6\n.set MB2_ARCH, 0\n"
                              ".set MB1_MAGIC, 0x1badb002\n.set MB1_FLAGS, 3\n.globl _start\n.text\n"
                              "_start: cli\n1: hlt\njmp 1b\n")
    data = kernel.read_bytes()
    symtab = ELFFile(open(kernel, "rb")).get_section_by_name(".symtab")
    sym_start, sym_end = symtab["sh_offset"], symtab["sh_offset"] + symtab["sh_size"]
    mb2_at = data.find((0xE85250D6).to_bytes(4, "little"))
    mb1_at = data.find((0x1BADB002).to_bytes(4, "little"))
    assert sym_start <= mb2_at < sym_end and sym_start <= mb1_at < sym_end and mb2_at % 8 == 0
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{kernel}"\nprotocol = "both"\n')
    out = tmp_path / "out.elf"
    proc = run_bootforge("build", recipe, "-o", out, "--json", check=0)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith(f"bootforge: warning: {recipe}: the magic of a Multiboot1 header at input "
                               f"offset {mb1_at:#x} is no header a loader finds (checksum ")
    assert lines[1].startswith(f"bootforge: warning: {recipe}: the magic of a Multiboot2 header at input "
                               f"offset {mb2_at:#x} is no header a loader finds (checksum ")
    assert all("in bytes no loader loads" in line for line in lines)
    assert len(json.loads(proc.stdout)["warnings"]) == 2
    built = out.read_bytes()
    assert headers.find_mb1(built)["offset"] < 0x1000 and headers.find_mb2(built)["offset"] < 0x1000
    assert all(v.ok for v in verdicts.verdicts(built, built).values())


def test_loaded_header_in_the_window_is_still_refused(tmp_path):
    """The same kernel with a real, loaded MB2 header in .text: adding one is refused."""
    kernel = assembled_kernel(tmp_path, "h", ".text\n.globl _start\n.align 8\n"
                              "hdr: .long 0xe85250d6, 0, 24, -(0xe85250d6 + 24)\n.short 0, 0\n.long 8\n"
                              "_start: hlt\n")
    at = headers.find_mb2(kernel.read_bytes())["offset"]
    recipe = tmp_path / "h.toml"
    recipe.write_text(f'[kernel]\ninput = "{kernel}"\n')
    proc = run_bootforge("build", recipe, "-o", tmp_path / "x.elf")
    assert_one_line_error(proc, str(recipe), f"already has a Multiboot2 header at offset {at:#x}")
    assert not (tmp_path / "x.elf").exists()
