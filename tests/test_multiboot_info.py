"""Boot information on its own (`load --mbi-out`), read back by `inspect`; and the numbers
reports print by name: dimensions and counts in decimal, addresses in hex."""

import json
import struct

from conftest import BUILD, REPO, require, run_bootforge

STUB = BUILD / "stubs" / "mbdump.elf"


def mb2_tags(data):
    """(type, size) of each tag of an MB2 information structure, read with struct."""
    total, reserved = struct.unpack_from("<II", data)
    assert reserved == 0
    pos, out = 8, []
    while True:
        ttype, size = struct.unpack_from("<II", data, pos)
        out.append((ttype, size))
        if ttype == 0:
            return total, out
        pos += (size + 7) & ~7


def test_mbi_out_of_an_mb2_load_inspects(tmp_path):
    mbi = tmp_path / "mbi.bin"
    load = json.loads(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--json", "--mbi-out", mbi,
                                    check=0).stdout)
    data = mbi.read_bytes()
    total, tags = mb2_tags(data)
    doc = json.loads(run_bootforge("inspect", "--json", mbi, check=0).stdout)       # sniffed, no --format
    assert doc["format"] == "mb2-info" and doc["problems"] == []
    assert doc["multiboot2"]["total_size"] == total == len(data) == load["mbi"]["size"]
    assert [(t["type"], t["size"]) for t in doc["multiboot2"]["tags"]] == tags
    strings = {t["name"]: t.get("string") for t in doc["multiboot2"]["tags"]}
    assert strings["cmdline"] == "kernel-args a=b"
    modules = [(t["mod_start"], t["string"]) for t in doc["multiboot2"]["tags"] if t["name"] == "module"]
    assert [m[1] for m in modules] == ["mod1-args", "mod2 args two"]
    placed = {p["name"]: p["start"] for p in load["placements"]}
    assert all(start in placed.values() for start, _ in modules)
    text = run_bootforge("inspect", mbi, check=0).stdout
    assert text.startswith(f"{mbi}: Multiboot2 information, total_size {total:#x}, {len(tags)} tags")
    # The text console's framebuffer tag: dimensions in decimal, the address in hex.
    assert "framebuffer_addr 0xb8000, framebuffer_pitch 160, framebuffer_width 80, framebuffer_height 25, " \
           "framebuffer_bpp 16" in text
    # --format names it too; a structure whose total_size lies is not sniffed as one.
    assert json.loads(run_bootforge("inspect", "--json", "--format", "mb2-info", mbi, check=0).stdout)["format"] \
        == "mb2-info"
    lying = tmp_path / "lying.bin"
    lying.write_bytes(struct.pack("<I", total + 8) + data[4:] + bytes(8))
    proc = run_bootforge("inspect", "--json", lying)
    assert proc.returncode == 2 or json.loads(proc.stdout)["format"] != "mb2-info"
    # Cut inside its tags, with --format: one error line naming the offset.
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:total // 2])
    proc = run_bootforge("inspect", "--format", "mb2-info", cut)
    assert proc.returncode == 2 and f"{cut}: offset 0x0: MBI total_size {total:#x} exceeds" in proc.stderr


def test_mbi_out_of_an_mb1_load_inspects_with_format(tmp_path):
    mbi = tmp_path / "mbi1.bin"
    run_bootforge("load", "recipes/load-qemu.toml", "--mbi-out", mbi, check=0)
    data = mbi.read_bytes()
    flags, mem_lower, mem_upper = struct.unpack_from("<III", data)
    mods_count, mods_addr = struct.unpack_from("<II", data, 20)
    doc = json.loads(run_bootforge("inspect", "--json", "--format", "mb1-info", mbi, check=0).stdout)
    info = doc["multiboot1"]
    assert doc["format"] == "mb1-info" and doc["problems"] == []
    assert (info["flags"], info["mem_lower"], info["mem_upper"]) == (flags, mem_lower, mem_upper)
    assert (info["mods_count"], info["mods_addr"]) == (mods_count, mods_addr) and mods_count == 2
    # Its pointers lead out of the file: said, and normal for the kind (exit 0).
    assert f"mods at {mods_addr:#x} (32 bytes) lies outside this file (a guest address)" in doc["warnings"]
    text = run_bootforge("inspect", "--format", "mb1-info", mbi, check=0).stdout
    assert f"  mem_lower: {mem_lower}\n  mem_upper: {mem_upper}" in text and "  mods_count: 2" in text


def test_header_video_requests_print_in_decimal(tmp_path):
    """A kernel asking for 1024x768x32 (MB2 framebuffer tag, MB1 video fields): inspect prints
    the dimensions as the recipe gave them."""
    require(str(STUB))
    recipe = tmp_path / "fb.toml"
    recipe.write_text(f'[kernel]\ninput = "{STUB}"\nprotocol = "both"\n'
                      "[kernel.multiboot1]\nvideo = { mode_type = 0, width = 1024, height = 768, depth = 32 }\n"
                      "[kernel.multiboot2]\nframebuffer = { width = 1024, height = 768, depth = 32 }\n")
    out = tmp_path / "fb.elf"
    run_bootforge("build", recipe, "-o", out, check=0)
    text = run_bootforge("inspect", out).stdout
    assert "video: mode_type 0, width 1024, height 768, depth 32" in text
    assert "framebuffer            size  20: width 1024, height 768, depth 32" in text
    assert "0x400" not in text and "0x300" not in text
