"""`bootforge memmap` and `bootforge inspect` on memory maps, through the real CLI:
conversions a user runs, verification verdicts, the SVG, and bad input."""

import json
import struct
import xml.etree.ElementTree as ET

import pytest

from conftest import DATA, assert_one_line_error, run_bootforge
from test_memmap_formats import LINUX_STUB_E820, XEN_E820, efi_bin

SVG = "{http://www.w3.org/2000/svg}"


def e820_bin(entries):
    return b"".join(struct.pack("<QQI", *e) for e in entries)


def entries_of(data, size=20):
    return [e[:3] for e in struct.iter_unpack("<QQI" if size == 20 else "<QQII", data)]


@pytest.fixture
def efi_file(tmp_path):
    path = tmp_path / "efi.bin"
    path.write_bytes(efi_bin())
    return path


def test_convert_efi_to_e820_by_the_linux_stub_and_by_xen(tmp_path, efi_file):
    run_bootforge("memmap", "convert", efi_file, "--from", "efi-bin", "--to", "e820-bin",
                  "-o", tmp_path / "linux.e820", check=0)
    assert entries_of((tmp_path / "linux.e820").read_bytes()) == LINUX_STUB_E820
    run_bootforge("memmap", "convert", efi_file, "--from", "efi-bin", "--to", "e820-bin", "--efi-convention", "xen",
                  "-o", tmp_path / "xen.e820", check=0)
    assert entries_of((tmp_path / "xen.e820").read_bytes()) == XEN_E820


def test_convert_efi_to_mb2_efi_tag_and_back(tmp_path, efi_file):
    run_bootforge("memmap", "convert", efi_file, "--from", "efi-bin", "--to", "mb2-efi-mmap",
                  "-o", tmp_path / "tag17", check=0)
    assert (tmp_path / "tag17").read_bytes() == struct.pack("<II", 48, 1) + efi_bin()
    run_bootforge("memmap", "convert", tmp_path / "tag17", "--from", "mb2-efi-mmap", "--to", "efi-bin",
                  "--descriptor-size", "40", "-o", tmp_path / "efi40", check=0)
    assert (tmp_path / "efi40").read_bytes() == efi_bin(size=40)


def test_convert_sysfs_to_sanitized_dmesg_stdout():
    proc = run_bootforge("memmap", "convert", DATA / "memmap-sysfs-host", "--to", "e820-dmesg", "--sanitize", check=0)
    assert proc.stdout.splitlines()[2] == "BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable"


def test_convert_sanitizes_overlaps(tmp_path):
    (tmp_path / "m.bin").write_bytes(e820_bin([(0x100000, 0x1000000, 1), (0, 0xA0000, 1), (0x200000, 0x1000, 2)]))
    run_bootforge("memmap", "convert", tmp_path / "m.bin", "--from", "e820-bin", "--to", "e820-bin",
                  "--to-entry-size", "24", "--sanitize", "-o", tmp_path / "s.bin", check=0)
    assert entries_of((tmp_path / "s.bin").read_bytes(), 24) == [
        (0, 0xA0000, 1), (0x100000, 0x100000, 1), (0x200000, 0x1000, 2), (0x201000, 0xEFF000, 1)]


def test_convert_to_sysfs_directory_and_dtb(tmp_path):
    run_bootforge("memmap", "convert", DATA / "memmap-dmesg-host.txt", "--to", "e820-sysfs",
                  "-o", tmp_path / "memmap", check=0)
    assert (tmp_path / "memmap" / "4" / "end").read_text() == "0x63fffffff\n"
    run_bootforge("memmap", "convert", tmp_path / "memmap", "--to", "fdt", "-o", tmp_path / "m.dtb", check=0)
    back = run_bootforge("memmap", "convert", tmp_path / "m.dtb", "--to", "e820-dmesg", "--sanitize", check=0)
    assert back.stdout == (DATA / "memmap-dmesg-host.txt").read_text().replace("[    0.000000] ", "")


def test_convert_refuses_e820_to_efi(tmp_path):
    proc = run_bootforge("memmap", "convert", DATA / "memmap-dmesg-host.txt", "--to", "efi-bin", "-o", tmp_path / "x")
    assert_one_line_error(proc, "cannot write an E820 map as efi-bin")
    assert not (tmp_path / "x").exists()


def test_verify_real_maps_hold():
    for path in (DATA / "memmap-sysfs-host", DATA / "memmap-dmesg-host.txt", DATA / "fdt-reserved.dtb"):
        proc = run_bootforge("memmap", "verify", path, check=0)
        assert "FAIL" not in proc.stdout


def test_verify_names_the_broken_invariants(tmp_path):
    (tmp_path / "m.bin").write_bytes(e820_bin([(0x100000, 0x1000, 1), (0, 0x1000, 1), (0x800, 0x1000, 2),
                                               (0x2000, 0, 1)]))
    proc = run_bootforge("memmap", "verify", tmp_path / "m.bin", "--from", "e820-bin", check=1)
    failed = [line.split()[1].rstrip(":") for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == ["size-nonzero", "sorted", "no-overlap", "sanitized"]
    assert "FAIL sorted: entry 1 [0x0, 0x1000) starts below entry 0 [0x100000, 0x101000)" in proc.stdout


def test_verify_empty_map_fails(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    proc = run_bootforge("memmap", "verify", tmp_path / "empty", "--from", "e820-bin", check=1)
    assert "FAIL has-entries: no entries: an empty map describes no memory" in proc.stdout


def test_verify_efi_invariants(tmp_path):
    bad = [(5, 0x1000, 1, 0xF), (7, 0x2800, 1, 0xF), (0x12345, 0x4000, 1, 0)]
    (tmp_path / "e.bin").write_bytes(efi_bin(bad))
    proc = run_bootforge("memmap", "verify", tmp_path / "e.bin", "--from", "efi-bin", "--json", check=1)
    doc = json.loads(proc.stdout)
    failed = {c["subject"] for c in doc["checks"] if not c["ok"]}
    assert failed == {"page-aligned", "known-types", "runtime-attribute"}


def test_verify_stub_agreement(tmp_path, efi_file):
    (tmp_path / "good.e820").write_bytes(e820_bin(LINUX_STUB_E820))
    (tmp_path / "xen.e820").write_bytes(e820_bin(XEN_E820))
    ok = run_bootforge("memmap", "verify", tmp_path / "good.e820", "--from", "e820-bin",
                       "--efi-reference", efi_file, check=0)
    assert "ok   efi-stub-agrees" in ok.stdout
    bad = run_bootforge("memmap", "verify", tmp_path / "xen.e820", "--from", "e820-bin",
                        "--efi-reference", efi_file, check=1)
    assert "FAIL efi-stub-agrees: differs from the stub's conversion at entry 3" in bad.stdout


def test_verify_multiboot_entry_formats(tmp_path):
    (tmp_path / "mb1").write_bytes(struct.pack("<IQQI4x", 24, 0, 0x9FC00, 1))
    proc = run_bootforge("memmap", "verify", tmp_path / "mb1", "--from", "mb1-mmap", check=1)
    assert "FAIL mb1-entry-size: entry sizes [24]" in proc.stdout
    (tmp_path / "mb2").write_bytes(struct.pack("<II", 32, 1) + struct.pack("<QQII8x", 0, 0x9FC00, 1, 0))
    proc = run_bootforge("memmap", "verify", tmp_path / "mb2", "--from", "mb2-mmap", check=1)
    assert "FAIL mb2-entry-format: entry_size 32, entry_version 1 (want 24, 0)" in proc.stdout


def test_show_table_and_svg(tmp_path):
    proc = run_bootforge("memmap", "show", DATA / "memmap-sysfs-host", "--svg", tmp_path / "m.svg", check=0)
    assert proc.stdout.splitlines()[0].startswith("[mem 0x0000000000000000-0x000000000009fbff] usable")
    assert proc.stdout.splitlines()[-1] == "5 ranges (e820), 24.0 GiB usable RAM"
    svg = ET.parse(tmp_path / "m.svg").getroot()
    texts = [t.text for t in svg.iter(SVG + "text")]
    assert {"0 - 1 MiB", "1 MiB - 4 GiB", "4 GiB - 25 GiB"} <= set(texts)
    ranges = [r for r in svg.iter(SVG + "rect") if r.find(SVG + "title") is not None]
    # the first MiB band shows both low ranges; the reserved one crosses no band edge
    titles = [r.find(SVG + "title").text for r in ranges]
    assert titles[:2] == ["ram [0x0, 0x9fc00) 639 KiB", "reserved [0x9fc00, 0x100000) 385 KiB"]
    assert len(ranges) == 5
    widths = {t: float(r.get("width")) for t, r in zip(titles, ranges)}
    assert widths["ram [0x0, 0x9fc00) 639 KiB"] > 400          # 639 KiB of 1 MiB is readable


def test_show_efi_map_in_shell_layout(efi_file):
    proc = run_bootforge("memmap", "show", efi_file, "--from", "efi-bin", check=0)
    assert proc.stdout.splitlines()[2] == "Available  0000000000001000-000000000009FFFF 000000000000009F 000000000000000F"


def test_inspect_raw_maps_by_format(tmp_path, efi_file):
    proc = run_bootforge("inspect", "--format", "efi-bin", "--json", efi_file, check=0)
    doc = json.loads(proc.stdout)
    assert doc["format"] == "efi-bin" and doc["entries"][9]["type"] == "runtime-services-data"
    (tmp_path / "m.bin").write_bytes(e820_bin([(0, 0x1000, 1), (0, 0x1000, 2)]))
    proc = run_bootforge("inspect", "--format", "e820-bin", tmp_path / "m.bin", check=1)
    assert "Problem: FAIL no-overlap" in proc.stdout


# ---- bad input: one line, exit 2 --------------------------------------------

def efi_desc(t, start, pages, attr=0xF, size=48):
    return struct.pack("<IIQQQQ", t, 0, start, 0, pages, attr) + bytes(size - 40)


@pytest.mark.parametrize("name, data, args, fragments", [
    ("efi size 36", efi_desc(7, 0, 1, size=40)[:36] * 2, ["--from", "efi-bin", "--descriptor-size", "36"],
     ["descriptor size 36"]),
    ("efi size 44", bytes(88), ["--from", "efi-bin", "--descriptor-size", "44"], ["descriptor size 44"]),
    ("efi zero pages", efi_desc(7, 0, 1) + efi_desc(7, 0x1000, 0), ["--from", "efi-bin"],
     ["offset 0x48", "NumberOfPages 0"]),
    ("efi past 2^64", efi_desc(7, 0, 1) + efi_desc(7, (1 << 64) - 0x1000, 2), ["--from", "efi-bin"],
     ["offset 0x38", "ends past 2^64"]),
    ("efi huge stride", bytes(8), ["--from", "mb2-efi-mmap"], ["descriptor size 0"]),
    ("efi trailing", efi_desc(7, 0, 1) + bytes(8), ["--from", "efi-bin"], ["offset 0x30", "whole number"]),
    ("e820 wrap", e820_bin([(0, 0x1000, 1), ((1 << 64) - 0x1000, 0x2000, 2)]), ["--from", "e820-bin"],
     ["offset 0x14", "wraps"]),
    ("e820 ragged", bytes(30), ["--from", "e820-bin"], ["offset 0x14", "whole number"]),
    ("mb1 lying size", struct.pack("<IQQI", 0xFFFFFFF0, 0, 0x1000, 1), ["--from", "mb1-mmap"],
     ["offset 0x0", "runs past the end"]),
    ("mb1 small size", struct.pack("<IQQI", 4, 0, 0x1000, 1), ["--from", "mb1-mmap"], ["under 20"]),
    ("mb2 entry size", struct.pack("<II", 0, 0), ["--from", "mb2-mmap"], ["entry_size 0"]),
    ("mb2 huge entry size", struct.pack("<II", 0xFFFFFFF8, 0), ["--from", "mb2-mmap"], ["offset 0x0", "over 4096"]),
    ("json garbage", b'{"entries": [{"start": -1, "size": 1, "type": "ram"}]}', ["--from", "json"],
     ["entry 0: start -1"]),
    ("json unknown type", b'{"entries": [{"start": 0, "size": 1, "type": "lava"}]}', ["--from", "json"],
     ["unknown e820 type 'lava'"]),
    ("json deep", b"[" * 100000, ["--from", "json"], ["not JSON"]),
    ("no format", b"\x00" * 40, [], ["give --from"]),
    ("dmesg nothing", b"hello\n", ["--from", "e820-dmesg"], ["no \"BIOS-e820:\" lines"]),
])
def test_bad_input_is_one_line(tmp_path, name, data, args, fragments):
    path = tmp_path / "bad.map"
    path.write_bytes(data)
    for command in (["convert", path, *args, "--to", "json"], ["verify", path, *args]):
        assert_one_line_error(run_bootforge("memmap", *command), "bad.map", *fragments)


def test_bad_sysfs_directory(tmp_path):
    (tmp_path / "memmap" / "0").mkdir(parents=True)
    (tmp_path / "memmap" / "0" / "start").write_text("zz\n")
    (tmp_path / "memmap" / "0" / "end").write_text("0x10\n")
    (tmp_path / "memmap" / "0" / "type").write_text("System RAM\n")
    assert_one_line_error(run_bootforge("memmap", "show", tmp_path / "memmap"), "are not hex")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_bootforge("memmap", "show", tmp_path / "empty"), "no numbered entries")


def test_missing_file_is_one_line():
    assert_one_line_error(run_bootforge("memmap", "show", "/nonexistent/map", "--from", "e820-bin"),
                          "/nonexistent/map")


# -- e820-bin entry size sniffed ------------------------------------------------------

HOST_DMESG = DATA / "memmap-dmesg-host.txt"      # 5 entries: 120 bytes are 5 x 24 and 6 x 20


def test_24_byte_table_without_entry_size_is_read_as_24(tmp_path):
    """The table a user made with --to-entry-size 24 from the host's 5-entry map, read back
    without --entry-size: 120 bytes divide both ways; as 20-byte entries its types would be
    3220176896 and 0, so it is read as 24-byte entries and gives the host's ranges."""
    table = tmp_path / "host24.bin"
    run_bootforge("memmap", "convert", HOST_DMESG, "--to", "e820-bin", "--to-entry-size", "24", "-o", table,
                  check=0)
    assert len(table.read_bytes()) == 120
    shown = run_bootforge("memmap", "show", table, "--from", "e820-bin", check=0).stdout
    assert shown.splitlines()[:5] == run_bootforge("memmap", "show", HOST_DMESG, check=0).stdout.splitlines()[:5]
    assert "5 ranges (e820, 24-byte entries by their length and types), 24.0 GiB usable RAM" in shown
    assert "3220176896" not in shown
    # Asked for 20-byte entries, it reads them (the garbage the user asked for).
    forced = run_bootforge("memmap", "show", table, "--from", "e820-bin", "--entry-size", "20", check=0).stdout
    assert "type 3220176896" in forced
    # A 20-byte table of 6 entries (also 120 bytes) reads as 20.
    six = tmp_path / "six.bin"
    six.write_bytes(e820_bin([(i << 20, 1 << 20, 1 + i % 2) for i in range(6)]))
    assert "6 ranges (e820, 20-byte entries" in run_bootforge("memmap", "show", six, "--from", "e820-bin",
                                                             check=0).stdout


def test_e820_stride_that_cannot_be_told_is_refused(tmp_path):
    """120 bytes of plausible-looking entries either way (all zero: type 0 in both readings is
    no firmware's) and a table no reading makes sense of: refused, naming --entry-size."""
    for name, data in [("zeros", bytes(120)), ("noise", bytes(range(120)))]:
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        proc = run_bootforge("memmap", "show", path, "--from", "e820-bin")
        assert_one_line_error(proc, str(path), "divide into 20- and 24-byte entries", "give --entry-size 20 or 24")


# -- device trees: named as device trees, their reader's warnings said -----------------

def test_device_tree_map_is_not_labelled_e820(tmp_path):
    from conftest import require
    require("dtc")
    dtb = tmp_path / "virt.dtb"
    import subprocess
    subprocess.run(["dtc", "-q", "-O", "dtb", "-o", dtb, DATA / "qemu-virt-aarch64.dts"], check=True)
    out = run_bootforge("memmap", "show", dtb, check=0).stdout
    assert "(e820)" not in out and "usable" not in out
    assert "[mem 0x0000000040000000-0x000000007fffffff] memory" in out
    assert "1 ranges (device tree), 1 GiB memory" in out
    reserved = run_bootforge("memmap", "show", DATA / "fdt-reserved.dtb", check=0).stdout
    assert "reserved-memory             2 MiB  secmon@40000000 no-map" in reserved
    assert "[mem 0x0000000048000000-0x00000000480fffff] memreserve" in reserved


def _dtb_with_reserved_cells(tmp_path):
    """tests/data/fdt-reserved.dts with /reserved-memory's #address-cells 1 (the root's is 2) and
    memory from 0 (so an x86 loader can place a kernel in it), compiled by dtc."""
    from conftest import require
    require("dtc")
    import subprocess
    dts = (DATA / "fdt-reserved.dts").read_text()
    head, tail = dts.split("reserved-memory {", 1)
    tail = tail.replace("#address-cells = <2>;", "#address-cells = <1>;", 1)
    head = head.replace("reg = <0x0 0x40000000 0x0 0x40000000>, <0x1 0x0 0x0 0x10000000>;",
                        "reg = <0x0 0x0 0x0 0x10000000>;")
    (tmp_path / "cells.dts").write_text(head + "reserved-memory {" + tail)
    dtb = tmp_path / "cells.dtb"
    subprocess.run(["dtc", "-q", "-O", "dtb", "-o", dtb, tmp_path / "cells.dts"], check=True)
    return dtb


RESERVED_IGNORED = ("/reserved-memory: its #address-cells/#size-cells (1, 2) differ from the root's (2, 2), "
                    "so Linux ignores the node (\"Reserved memory: unsupported node format, ignoring\", Linux "
                    "fdt_scan_reserved_mem): none of its 3 region(s) is reserved")


def test_every_command_reading_the_dtb_says_its_reserved_memory_is_ignored(tmp_path):
    dtb = _dtb_with_reserved_cells(tmp_path)
    warning = f"bootforge: warning: {dtb}: {RESERVED_IGNORED}"
    for command in (["memmap", "show", dtb], ["memmap", "convert", dtb, "--to", "e820-dmesg"],
                    ["memmap", "convert", dtb, "--to", "json"]):
        proc = run_bootforge(*command, check=0)
        assert proc.stderr.strip() == warning, command
    doc = json.loads(run_bootforge("memmap", "convert", dtb, "--to", "json", check=0).stdout)
    assert doc["warnings"] == [RESERVED_IGNORED]
    assert [e["type"] for e in doc["entries"]] == ["ram", "reserved"]      # /memory and the memreserve
    verified = run_bootforge("memmap", "verify", "--json", dtb, check=1)
    assert json.loads(verified.stdout)["warnings"] == [RESERVED_IGNORED]
    assert f"FAIL reserved-memory-cells: {RESERVED_IGNORED}" in run_bootforge("memmap", "verify", dtb).stdout
    inspected = json.loads(run_bootforge("inspect", "--json", dtb, check=1).stdout)
    assert f"FAIL reserved-memory-cells: {RESERVED_IGNORED}" in inspected["problems"]
    # load reads the DTB as its platform: the same warning first, whatever the loader then says.
    loaded = run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--platform", dtb)
    assert loaded.stderr.splitlines()[0] == warning


def test_readme_efi_convention_examples_change_the_output(efi_file):
    """Each README command with --efi-convention (efi.bin: the test EFI map) prints something
    else without the option; where nothing converts, the option is refused."""
    import shlex
    readme = (DATA.parent.parent / "README.md").read_text()
    lines = [line.split("#")[0] for line in readme.splitlines()
             if "bootforge memmap" in line and "--efi-convention" in line]
    assert lines
    for line in lines:
        args = [str(efi_file) if a == "efi.bin" else a for a in shlex.split(line)[1:]]
        at = args.index("--efi-convention")
        with_option = run_bootforge(*args, check=0).stdout
        assert with_option != run_bootforge(*args[:at], *args[at + 2:], check=0).stdout, line
    proc = run_bootforge("memmap", "convert", efi_file, "--from", "efi-bin", "--to", "json",
                         "--efi-convention", "xen")
    assert proc.returncode == 2 and "nothing is converted" in proc.stderr


def test_efi_bin_descriptor_stride_is_sniffed(tmp_path):
    """GRUB's EFI map from a real OVMF boot (mb-grub-efi-mb2.dump), written with 40- and 48-byte
    descriptors and cut to 240 bytes (6 x 40 = 5 x 48): read without --descriptor-size, each
    gives its own first descriptors; all-zero bytes are refused rather than guessed."""
    dump = DATA / "mb-grub-efi-mb2.dump"
    tables = {}
    for size in (40, 48):
        out = tmp_path / f"efi{size}.bin"
        run_bootforge("memmap", "convert", dump, "--from", "mbdump-efi", "--to", "efi-bin",
                      "--to-descriptor-size", str(size), "-o", out, check=0)
        cut = tmp_path / f"cut{size}.bin"
        cut.write_bytes(out.read_bytes()[:240])
        tables[size] = cut
    reference = json.loads(run_bootforge("memmap", "convert", dump, "--from", "mbdump-efi", "--to", "json",
                                         check=0).stdout)["entries"]
    for size, count in ((40, 6), (48, 5)):
        doc = json.loads(run_bootforge("memmap", "convert", tables[size], "--from", "efi-bin", "--to", "json",
                                       check=0).stdout)
        assert doc["descriptor_size"] == size
        assert [(e["start"], e["size"]) for e in doc["entries"]] == \
            [(e["start"], e["size"]) for e in reference[:count]]
        shown = run_bootforge("memmap", "show", tables[size], "--from", "efi-bin", check=0).stdout
        assert f"{count} ranges (efi, {size}-byte descriptors by their length and fields)" in shown
    zeros = tmp_path / "zeros.bin"
    zeros.write_bytes(bytes(240))
    assert_one_line_error(run_bootforge("memmap", "show", zeros, "--from", "efi-bin"),
                          "divide into 48- and 40-byte descriptors", "give --descriptor-size 48 or 40")
