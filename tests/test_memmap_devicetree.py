"""Memory maps and device trees through the real CLI: inputs that once went wrong (a device
tree without /memory, zero-size placeholders, reserved ranges), each made here.

The device trees are QEMU's own `virt` tree (tests/data/qemu-virt-aarch64.dts, dumped by
qemu-system-aarch64 7.2) with one thing changed, compiled by dtc as the test runs.
"""

import json
import struct
import subprocess

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge

VIRT_DTS = (DATA / "qemu-virt-aarch64.dts").read_text()
VIRT_MEMORY = "\tmemory@40000000 {\n\t\treg = <0x00 0x40000000 0x00 0x40000000>;\n\t\tdevice_type = \"memory\";\n\t};\n"


def virt_dtb(tmp_path, name, edit=None):
    """QEMU's virt tree with *edit* applied to its DTS text, compiled by dtc."""
    require("dtc")
    text = VIRT_DTS if edit is None else edit(VIRT_DTS)
    assert text != VIRT_DTS or edit is None, "the edit changed nothing"
    src, out = tmp_path / f"{name}.dts", tmp_path / f"{name}.dtb"
    src.write_text(text)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", out, src], check=True, capture_output=True)
    return out


def with_memory(reg):
    return lambda t: t.replace("reg = <0x00 0x40000000 0x00 0x40000000>;", f"reg = <{reg}>;", 1)


def inspect_json(path, status):
    proc = run_bootforge("inspect", "--json", path, check=status)
    return json.loads(proc.stdout)


def test_fixture_is_qemu_virt_tree():
    assert VIRT_MEMORY in VIRT_DTS
    assert 'model = "linux,dummy-virt";' in VIRT_DTS


# ---- item 17: trees the boot loader fills in -------------------------------------

def test_tree_without_memory_node_is_a_warning_not_a_defect(tmp_path):
    dtb = virt_dtb(tmp_path, "nomem", lambda t: t.replace(VIRT_MEMORY, ""))
    doc = inspect_json(dtb, 0)
    assert doc["problems"] == []
    assert doc["memory"] == []
    assert any("memory-has-entries" in w and "fills in" in w for w in doc["warnings"])
    text = run_bootforge("inspect", dtb, check=0).stdout
    assert "Warning: warn memory-has-entries" in text


def test_zero_size_memory_placeholder_is_a_warning(tmp_path):
    dtb = virt_dtb(tmp_path, "zero", with_memory("0 0 0 0"))
    doc = inspect_json(dtb, 0)
    assert doc["problems"] == []
    assert any("memory-size-nonzero" in w for w in doc["warnings"])


def test_qemu_canyonlands_dtb_placeholder_memory(tmp_path):
    """QEMU's own canyonlands.dtb (Debian qemu-system-data) has reg = <0 0 0> in /memory, which
    QEMU's ppc440 board fills in at boot: read as one empty range, a warning, exit 0."""
    dtb = "/usr/share/qemu/canyonlands.dtb"
    require(dtb)
    doc = inspect_json(dtb, 0)
    assert [(e["start"], e["size"]) for e in doc["memory"]] == [(0, 0)]
    assert doc["problems"] == [] and any("memory-size-nonzero" in w for w in doc["warnings"])
    assert "  [0x000000000000 (empty)       ] memory" in run_bootforge("inspect", dtb, check=0).stdout


DYNAMIC = ("\treserved-memory {\n\t\t#address-cells = <2>;\n\t\t#size-cells = <2>;\n\t\tranges;\n"
           "\t\tlinux,cma {\n\t\t\tcompatible = \"shared-dma-pool\";\n\t\t\treusable;\n"
           "\t\t\tsize = <0 0x4000000>;\n\t\t};\n\t};\n")


def test_dynamic_region_without_memory_is_a_warning(tmp_path):
    dtb = virt_dtb(tmp_path, "cma-nomem", lambda t: t.replace(VIRT_MEMORY, DYNAMIC))
    doc = inspect_json(dtb, 0)
    assert doc["problems"] == []
    assert doc["dynamic_reserved"][0]["name"] == "linux,cma"
    assert any("dynamic-regions-allocatable" in w for w in doc["warnings"])


def test_dynamic_region_too_big_for_real_memory_is_still_a_defect(tmp_path):
    big = DYNAMIC.replace("size = <0 0x4000000>", "size = <1 0>")       # 4 GiB in a 1 GiB /memory
    dtb = virt_dtb(tmp_path, "cma-big", lambda t: t.replace(VIRT_MEMORY, VIRT_MEMORY + big))
    doc = inspect_json(dtb, 1)
    assert any("dynamic-regions-allocatable" in p and "no room" in p for p in doc["problems"])


# ---- item 18: one bad property does not sink the tree ---------------------------

def test_trailing_partial_reg_pair_reported_and_whole_pairs_kept(tmp_path):
    dtb = virt_dtb(tmp_path, "partial", with_memory("0x00 0x40000000 0x00 0x40000000 0x00"))
    doc = inspect_json(dtb, 0)
    assert [(e["start"], e["size"]) for e in doc["memory"]] == [(0x40000000, 0x40000000)]
    assert any("/memory@40000000 reg" in w and "last 4 bytes are ignored" in w for w in doc["warnings"])


def test_address_cells_5_reported_rest_of_tree_kept(tmp_path):
    dtb = virt_dtb(tmp_path, "cells5", lambda t: t.replace("#address-cells = <0x02>;", "#address-cells = <0x05>;", 1))
    doc = inspect_json(dtb, 0)
    assert doc["memory"] == []
    assert any("#address-cells = <5>" in w for w in doc["warnings"])
    assert "pl011@9000000" in doc["dts"] and doc["nodes"] > 20


def test_no_root_size_cells_reads_with_linux_default(tmp_path):
    # Linux's early scan takes #size-cells 1 (drivers/of/of_private.h); the 16-byte reg is then one
    # (2+1)-cell pair, address 0x40000000 size 0, and 4 bytes left over: both reported.
    dtb = virt_dtb(tmp_path, "nosize", lambda t: t.replace("\t#size-cells = <0x02>;\n", "", 1))
    doc = inspect_json(dtb, 0)
    assert [(e["start"], e["size"]) for e in doc["memory"]] == [(0x40000000, 0)]
    assert any("no #size-cells" in w for w in doc["warnings"])
    assert any("last 4 bytes" in w for w in doc["warnings"])


def test_reserved_memory_with_other_cells_is_ignored_as_linux_does(tmp_path):
    node = ("\treserved-memory {\n\t\t#address-cells = <1>;\n\t\t#size-cells = <1>;\n\t\tranges;\n"
            "\t\tfw@90000000 {\n\t\t\treg = <0x90000000 0x100000 0x90100000 0x100000>;\n\t\t\tno-map;\n"
            "\t\t};\n\t};\n")
    dtb = virt_dtb(tmp_path, "rsvcells", lambda t: t.replace(VIRT_MEMORY, VIRT_MEMORY + node))
    doc = inspect_json(dtb, 1)
    starts = [e["start"] for e in doc["memory"]]
    assert 0x9000000000100000 not in starts and 0x90000000 not in starts     # not misread, not read
    assert starts == [0x40000000]
    problem = next(p for p in doc["problems"] if "reserved-memory-cells" in p)
    assert "Linux ignores the node" in problem
    checks = json.loads(run_bootforge("memmap", "verify", "--json", dtb, check=1).stdout)["checks"]
    verdict = next(c for c in checks if c["subject"] == "reserved-memory-cells")
    assert verdict["words"] == "Reserved memory: unsupported node format, ignoring"


# ---- items 15 and 28: what a writer cannot hold; verify sees the wrap -----------

def _cells3(t):
    return (t.replace("#address-cells = <0x02>;", "#address-cells = <0x03>;", 1)
            .replace("reg = <0x00 0x40000000 0x00 0x40000000>;", "reg = <0x01 0x00 0x00 0x00 0x1000>;", 1))


@pytest.mark.parametrize("fmt", ["e820-bin", "mb1-mmap", "mb2-mmap", "smbios", "e820-dmesg", "json", "efi-bin"])
def test_address_past_2_64_refused_by_every_writer(tmp_path, fmt):
    dtb = virt_dtb(tmp_path, "cells3", _cells3)
    proc = run_bootforge("memmap", "convert", dtb, "--to", fmt, "-o", tmp_path / "out")
    if fmt == "efi-bin":            # an E820-family map never becomes an EFI map
        assert_one_line_error(proc, "cannot write an E820 map as efi-bin")
    else:
        assert_one_line_error(proc, f"{fmt} cannot hold range 0 [0x10000000000000000 + 0x1000]")
    assert not (tmp_path / "out").exists()


def test_range_ending_past_2_64_refused_to_smbios_and_verify_fails(tmp_path):
    dtb = virt_dtb(tmp_path, "wrap", with_memory("0xffffffff 0xfffff000 0x00 0x2000"))
    proc = run_bootforge("memmap", "convert", dtb, "--to", "smbios")
    assert_one_line_error(proc, "smbios cannot hold range 0 [0xfffffffffffff000 + 0x2000]", "ends past")
    proc = run_bootforge("memmap", "verify", dtb, check=1)
    assert "FAIL no-wraparound: memory@40000000 [0xfffffffffffff000, 0x10000000000001000) wraps" in proc.stdout
    proc = run_bootforge("memmap", "verify", virt_dtb(tmp_path, "plain"), check=0)
    assert "ok   no-wraparound" in proc.stdout


def test_e820_24_byte_writer_refuses_attributes_over_32_bits(tmp_path):
    from bootforge.errors import MemoryMapError
    from bootforge.memmap.formats.e820 import write_e820_bin
    from bootforge.memmap.model import MemoryMap, MemoryRange
    m = MemoryMap("e820", [MemoryRange(0, 0x1000, 1, attributes=1 << 32)])
    with pytest.raises(MemoryMapError, match="attributes 0x100000000 do not fit 32 bits"):
        write_e820_bin(m, {"entry_size": 24})
    assert len(write_e820_bin(m, {"entry_size": 20})) == 20       # the 20-byte form has no attributes


# ---- item 16: empty ranges ----------------------------------------------------

def test_empty_ranges_print_no_end_before_their_start(tmp_path):
    src = tmp_path / "m.json"
    src.write_text(json.dumps({"family": "e820", "entries": [
        {"start": 0, "size": 0, "type": "ram"}, {"start": 0x80000000, "size": 0, "type": "reserved"},
        {"start": 0x100000, "size": 0x1000, "type": "ram"}]}))
    out = run_bootforge("memmap", "show", src, check=0).stdout
    lines = out.splitlines()
    # the same width as "0x0000000000100000-0x0000000000100fff"
    assert lines[0].startswith("[mem 0x0000000000000000 (empty)" + " " * 11 + "] usable")
    assert lines[1].startswith("[mem 0x0000000080000000 (empty)" + " " * 11 + "] reserved")
    assert lines[2].startswith("[mem 0x0000000000100000-0x0000000000100fff] usable")
    assert "0x7fffffff" not in out and "-0x" not in out.replace("-0x0000000000100fff", "")
    dtb = virt_dtb(tmp_path, "zero", with_memory("0 0 0 0"))
    text = run_bootforge("inspect", dtb, check=0).stdout
    assert "  [0x000000000000 (empty)       ] memory           memory@40000000" in text
    assert "--0x" not in text


def test_empty_ranges_in_dmesg_form_as_linux_prints_them_and_back(tmp_path):
    # e820__print_table() prints addr + size - 1 in u64 arithmetic: start - 1 for an empty entry.
    src = tmp_path / "m.json"
    src.write_text(json.dumps({"family": "e820", "entries": [
        {"start": 0x80000000, "size": 0, "type": "reserved"}, {"start": 0, "size": 0, "type": "ram"}]}))
    out = run_bootforge("memmap", "convert", src, "--to", "e820-dmesg", check=0).stdout
    assert out.splitlines() == ["BIOS-e820: [mem 0x0000000080000000-0x000000007fffffff] reserved",
                                "BIOS-e820: [mem 0x0000000000000000-0xffffffffffffffff] usable"]
    (tmp_path / "d.txt").write_text(out.splitlines()[0] + "\n")
    back = json.loads(run_bootforge("memmap", "convert", tmp_path / "d.txt", "--to", "json", check=0).stdout)
    assert [(e["start"], e["size"]) for e in back["entries"]] == [(0x80000000, 0)]
    # Linux's line for an empty entry at 0 is [0, 2^64 - 1]: 2^64 bytes, which no E820 entry holds.
    (tmp_path / "d0.txt").write_text(out.splitlines()[1] + "\n")
    assert_one_line_error(run_bootforge("memmap", "show", tmp_path / "d0.txt"), "line 1", "wraps")


# ---- item 19: names with bytes >= 0x80 ----------------------------------------

def test_dts_text_is_byte_exact_as_dtc_prints_it(tmp_path):
    require("dtc")
    src = tmp_path / "hi.dts"
    src.write_text('/dts-v1/;\n/ {\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n\tcafQ@0 {\n'
                   '\t\tnQme = <1>;\n\t\tdevice_type = "memory";\n\t\treg = <0 0 0 0x1000>;\n\t};\n};\n')
    plain = tmp_path / "hi-ascii.dtb"
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", plain, src], check=True)
    # dtc's DTS lexer takes no such names, so the bytes go into the blob directly.
    dtb = tmp_path / "hi.dtb"
    dtb.write_bytes(plain.read_bytes().replace(b"cafQ", b"caf\xe9").replace(b"nQme", b"n\xe4me"))
    # dtc refuses the name (node_name_chars) unless forced; forced, it prints the bytes as they are.
    dtc_dts = subprocess.run(["dtc", "-f", "-I", "dtb", "-O", "dts", dtb], capture_output=True, check=True).stdout
    assert b"\tcaf\xe9@0 {\n\t\tn\xe4me = <0x01>;" in dtc_dts
    out = subprocess.run([*run_bootforge_argv(), "inspect", dtb], capture_output=True, check=True).stdout
    assert out.endswith(dtc_dts)
    doc = inspect_json(dtb, 0)
    assert doc["dts"].encode("latin-1") == dtc_dts
    from bootforge.fdt import build_dtb, parse_dtb
    assert build_dtb(parse_dtb(dtb.read_bytes())) == dtb.read_bytes()


def run_bootforge_argv():
    import sys
    return [sys.executable, "-m", "bootforge"]


# ---- item 29: SMBIOS type 19 [0, 2^64 - 1] --------------------------------------

def smbios_table(first, last):
    """One SMBIOS 2.7 type 19 structure (0x1F bytes, extended addresses) and the end of table."""
    t19 = struct.pack("<BBHIIHBQQ", 19, 0x1F, 0x1300, 0xFFFFFFFF, 0xFFFFFFFF, 0x1000, 1, first, last)
    return t19 + b"\0\0" + struct.pack("<BBH", 127, 4, 0xFEFF) + b"\0\0"


def test_smbios_range_of_2_64_bytes_refused_as_the_e820_readers_do(tmp_path):
    bad = tmp_path / "dmi.bin"
    bad.write_bytes(smbios_table(0, (1 << 64) - 1))
    proc = run_bootforge("memmap", "show", "--from", "smbios", bad)
    assert_one_line_error(proc, str(bad), "offset 0x4", "type 19 range [0x0 + 0x10000000000000000] wraps around 2^64")
    dmesg = tmp_path / "dmesg.txt"           # the same range as an E820 reader meets it
    dmesg.write_text("BIOS-e820: [mem 0x0000000000000000-0xffffffffffffffff] usable\n")
    assert_one_line_error(run_bootforge("memmap", "show", dmesg), "line 1", "wraps")
    good = tmp_path / "dmi-ok.bin"
    good.write_bytes(smbios_table(0x100000000, 0x17fffffff))
    out = run_bootforge("memmap", "show", "--from", "smbios", good, check=0).stdout
    assert "[mem 0x0000000100000000-0x000000017fffffff] usable" in out


# ---- items 25, 26: the Multiboot dump reader ------------------------------------

def test_dump_with_blank_and_whitespace_lines_reads_as_without(tmp_path):
    original = (DATA / "mb-grub-pc-mb2.dump").read_bytes()
    lines = original.split(b"\n")
    spaced = b"\n".join(lines[:1] + [b"   ", b"\t"] + lines[1:3] + [b" \r"] + lines[3:])
    path = tmp_path / "spaced.dump"
    path.write_bytes(spaced)
    a = inspect_json(DATA / "mb-grub-pc-mb2.dump", 0)
    b = inspect_json(path, 0)
    assert a["multiboot2"] == b["multiboot2"]


def _dump(mbi):
    """A BFMBDUMP capture holding one Multiboot2 MBI region, as stubs/mbdump.S prints it."""
    lines = [b"BFMBDUMP 1", b"EAX 36d76289", b"EBX 00010000", b"REGION mbi 00010000 %08x" % len(mbi)]
    lines += [mbi[i:i + 32].hex().encode() for i in range(0, len(mbi), 32)]
    return b"\n".join(lines + [b"END", b"DONE", b""])


def _mbi(*tags):
    body = b"".join(t + bytes(-len(t) % 8) for t in tags) + struct.pack("<II", 0, 8)
    return struct.pack("<II", 8 + len(body), 0) + body


@pytest.mark.parametrize("name, tag, field", [
    ("cmdline without its string", struct.pack("<II", 1, 8), "string"),
    ("module without its string", struct.pack("<IIII", 3, 16, 0x100000, 0x200000), "string"),
    ("framebuffer cut before its colour info", struct.pack("<II", 8, 31) + bytes(23), "reserved"),
])
def test_mb2_tag_shorter_than_its_fields(tmp_path, name, tag, field):
    path = tmp_path / "short.dump"
    data = _dump(_mbi(tag))
    path.write_bytes(data)
    # the offset is where the tag's hex digits are in the capture (the tag is MBI byte 8)
    at = data.index(tag[:8].hex().encode())
    for args in (["inspect", path], ["memmap", "show", path]):
        assert_one_line_error(run_bootforge(*args), str(path), f"offset {at:#x}: mbi byte 0x8:",
                              "truncated or malformed", field)


# ---- item 27: a Multiboot2 header whose last tag is cut short --------------------

def _mb2_header(*tags):
    body = b"".join(t + bytes(-len(t) % 8) for t in tags)
    length = 16 + len(body)
    return struct.pack("<IIII", 0xE85250D6, 0, length, -(0xE85250D6 + length) & 0xFFFFFFFF) + body


@pytest.mark.parametrize("tag", [struct.pack("<HHI", 10, 0, 12) + bytes(4),      # relocatable: 24 bytes of fields
                                 struct.pack("<HHI", 3, 0, 8)])                  # entry address: 12
def test_mb2_header_last_tag_cut_short(tmp_path, tag):
    path = tmp_path / "kernel.bin"
    path.write_bytes(b"\0" * 32 + _mb2_header(tag) + bytes(64))
    ttype = int.from_bytes(tag[:2], "little")
    assert_one_line_error(run_bootforge("inspect", path), str(path), "offset 0x30",
                          f"Multiboot2 header tag type {ttype} truncated or malformed")


# ---- item 22 (memmap): help that says what each command takes -------------------

def _option_help(command, option):
    """The help text of *option* in `bootforge memmap COMMAND --help` (click's layout, joined)."""
    text = run_bootforge("memmap", command, "--help", check=0).stdout
    lines = text.split("Options:", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " "))
    out = lines[start].strip()[len(option):]
    for line in lines[start + 1:]:
        if line.strip().startswith("-"):
            break
        # click wraps after a hyphen ("mb2-" / "efi-mmap"): no space there
        out += ("" if out.endswith("-") else " ") + line.strip()
    return " ".join(out.split())


def test_memmap_help_lists_formats_and_is_its_own():
    from bootforge.memmap.formats import registry
    readers = [n for n, f in registry().items() if f.read is not None]
    assert len(readers) >= 12
    for command in ("show", "verify", "convert"):
        text = _option_help(command, "--from")
        for name in readers:
            assert name in text, (command, name)
    # show and verify only read: no word of an output in their size options.
    for command in ("show", "verify"):
        for option in ("--entry-size", "--descriptor-size"):
            text = _option_help(command, option)
            assert "OUT" not in text and "output" not in text, (command, option, text)
            assert "IN" in text
    assert "OUT" in _option_help("convert", "--entry-size")
    ref = _option_help("verify", "--efi-reference-from")
    assert "efi-bin" in ref and "mb2-efi-mmap" in ref and "json" in ref and "default: efi-bin" in ref
