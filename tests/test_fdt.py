"""Device trees: byte-identical rebuilds of QEMU's DTBs, dtc as the oracle for DTS
text and for layout, the memory view, and hostile blobs."""

import json
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootforge.errors import FormatError, LimitError
from bootforge.fdt import DeviceTree, FdtNode, FdtProperty, build_dtb, parse_dtb, to_dts
from bootforge.memmap.convert import fdt_to_map
from conftest import DATA, assert_one_line_error, require, run_bootforge

QEMU = {
    "aarch64": ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "1G"],
    "riscv64": ["qemu-system-riscv64", "-machine", "virt", "-m", "1G"],
}


@pytest.fixture(scope="session")
def qemu_dtbs(tmp_path_factory):
    """QEMU's own DTBs, dumped fresh (`-machine virt,dumpdtb=F`)."""
    out = {}
    directory = tmp_path_factory.mktemp("qemu-dtb")
    for arch, cmd in QEMU.items():
        require(cmd[0])
        path = directory / f"{arch}.dtb"
        cmd = list(cmd)
        cmd[2] += f",dumpdtb={path}"
        subprocess.run(cmd + ["-display", "none", "-nodefaults"], check=True, capture_output=True, timeout=60)
        out[arch] = path
    return out


def dtc(*args, input=None):
    require("dtc")
    proc = subprocess.run(["dtc", "-q", *args], capture_output=True, input=input, check=True)
    return proc.stdout


@pytest.mark.parametrize("arch", QEMU)
def test_qemu_dtb_rebuilds_byte_for_byte(qemu_dtbs, arch):
    data = qemu_dtbs[arch].read_bytes()
    tree = parse_dtb(data)
    total = struct.unpack_from(">I", data, 4)[0]
    assert build_dtb(tree) == data[:total]


@pytest.mark.parametrize("arch", QEMU)
def test_qemu_dtb_dts_equals_dtc(qemu_dtbs, arch):
    tree = parse_dtb(qemu_dtbs[arch].read_bytes())
    assert to_dts(tree) == dtc("-I", "dtb", "-O", "dts", str(qemu_dtbs[arch])).decode()


def test_qemu_dtb_memory_views(qemu_dtbs):
    aarch64 = fdt_to_map(parse_dtb(qemu_dtbs["aarch64"].read_bytes()))
    riscv = fdt_to_map(parse_dtb(qemu_dtbs["riscv64"].read_bytes()))
    assert aarch64.keys() == [(0x40000000, 0x40000000, 1)]
    assert riscv.keys()[0] == (0x80000000, 0x40000000, 1)
    assert aarch64.facts["address_cells"] == 2 and aarch64.facts["size_cells"] == 2


def test_qemu_dtb_modified_then_dtc_agrees(qemu_dtbs, tmp_path):
    """A tree bootforge changed and built: dtc reads it back to bootforge's own view."""
    tree = parse_dtb(qemu_dtbs["aarch64"].read_bytes())
    chosen = tree.node("/chosen") or FdtNode("chosen")
    if tree.node("/chosen") is None:
        tree.root.children.append(chosen)
    chosen.set("bootargs", b"console=ttyAMA0 root=/dev/vda\0")
    tree.reservations.append((0x48000000, 0x1000))
    for fresh in (False, True):
        blob = build_dtb(tree, fresh_layout=fresh)
        (tmp_path / "m.dtb").write_bytes(blob)
        assert dtc("-I", "dtb", "-O", "dts", str(tmp_path / "m.dtb")).decode() == to_dts(tree)
        assert to_dts(parse_dtb(blob)) == to_dts(tree)


def test_dtc_compiled_source_parses_to_the_expected_tree():
    data = (DATA / "fdt-reserved.dtb").read_bytes()
    tree = parse_dtb(data)
    assert tree.reservations == [(0x48000000, 0x100000)]
    assert [c.name for c in tree.root.children] == ["memory@40000000", "reserved-memory", "chosen"]
    assert tree.node("/reserved-memory/secmon@40000000").has("no-map")
    chosen = tree.node("/chosen")
    assert chosen.prop("halves") == bytes.fromhex("123456789abc")
    assert chosen.prop("strings") == b"a\0bc\0\0"
    assert chosen.prop("u64") == (1 << 32).to_bytes(8, "big")
    # the same blob from bootforge's own dtc-style layout, byte for byte
    assert build_dtb(tree, fresh_layout=True) == data
    assert to_dts(tree) == dtc("-I", "dtb", "-O", "dts", str(DATA / "fdt-reserved.dtb")).decode()


def test_dtc_compiles_our_dts_back_to_the_same_blob(tmp_path):
    tree = parse_dtb((DATA / "fdt-reserved.dtb").read_bytes())
    text = to_dts(tree)
    blob = dtc("-I", "dts", "-O", "dtb", input=text.encode())
    assert blob == build_dtb(tree, fresh_layout=True)


def test_reserved_memory_view():
    m = fdt_to_map(parse_dtb((DATA / "fdt-reserved.dtb").read_bytes()))
    assert [(r.start, r.size, r.type, r.label, sorted(r.flags)) for r in m.ranges] == [
        (0x40000000, 0x40000000, 1, "memory@40000000", []),
        (0x100000000, 0x10000000, 1, "memory@40000000", []),
        (0x40000000, 0x200000, 2, "secmon@40000000", ["no-map"]),
        (0x7FF00000, 0x100000, 2, "ramoops@7ff00000", []),
        (0x48000000, 0x100000, 2, None, ["memreserve"]),
    ]
    assert m.facts["dynamic"] == [{"name": "linux,cma", "size": 0x4000000, "flags": ["reusable"],
                                   "alignment": 0x400000, "alloc-ranges": [(0x40000000, 0x40000000)]}]


def test_inspect_dtb_text_and_json():
    proc = run_bootforge("inspect", DATA / "fdt-reserved.dtb", check=0)
    assert "reservation map  0x28 (1 entries)" in proc.stdout
    assert "dynamic linux,cma: size 0x4000000 alignment 0x400000 reusable" in proc.stdout
    assert proc.stdout.rstrip().endswith(dtc("-I", "dtb", "-O", "dts", str(DATA / "fdt-reserved.dtb")).decode().rstrip())
    doc = json.loads(run_bootforge("inspect", "--json", DATA / "fdt-reserved.dtb", check=0).stdout)
    assert doc["format"] == "dtb" and doc["nodes"] == 7
    assert doc["reservations"] == [{"address": 0x48000000, "size": 0x100000}]


# ---- hostile blobs -------------------------------------------------------------

def good_blob():
    return (DATA / "fdt-reserved.dtb").read_bytes()


def patch_header(blob, field_index, value):
    b = bytearray(blob)
    struct.pack_into(">I", b, 4 * field_index, value)
    return bytes(b)


def deep_blob(depth):
    body = bytearray()
    for _ in range(depth):
        body += struct.pack(">I", 1) + b"n\0\0\0"
    for _ in range(depth):
        body += struct.pack(">I", 2)
    body += struct.pack(">I", 9)
    rsv = bytes(16)
    off_struct = 40 + len(rsv)
    total = off_struct + len(body)
    return struct.pack(">10I", 0xD00DFEED, total, off_struct, total, 40, 17, 16, 0, 0, len(body)) + rsv + bytes(body)


def hostile_cases():
    g = good_blob()
    off_struct, off_strings = struct.unpack_from(">II", g, 8)
    size_struct = struct.unpack_from(">I", g, 36)[0]
    first_prop = off_struct + 8                                   # after the root's BEGIN_NODE + empty name
    cases = {
        "totalsize past the file": (patch_header(g, 1, len(g) + 1), "past the end"),
        "struct offset past totalsize": (patch_header(g, 2, 0x10000), "outside"),
        "lying size_dt_struct": (patch_header(g, 9, 0x100000), "runs past totalsize"),
        "overlapping blocks": (patch_header(g, 3, off_struct + 16), "overlaps"),
        "missing FDT_END": (g[:off_struct + size_struct - 4] + struct.pack(">I", 4) + g[off_struct + size_struct:],
                            "without FDT_END"),
        "property length lie": (g[:first_prop + 4] + struct.pack(">I", 0x7FFFFFFF) + g[first_prop + 8:],
                                "runs off the structure block"),
        "name offset past strings": (g[:first_prop + 8] + struct.pack(">I", 0x10000) + g[first_prop + 12:],
                                     "past the strings block"),
        "unterminated property name": (patch_header(g, 8, 1), "strings block"),
        "bad magic": (b"\xd0\x0d\xfe\xee" + g[4:], "bad FDT magic"),
        "truncated header": (g[:20], "too short"),
        "unterminated reservation block": (g[:40] + b"\xff" * (off_struct - 40) + g[off_struct:], "not terminated"),
        "nesting 10,000 deep": (deep_blob(10000), "deeper than"),
    }
    # a node name that runs to the end of the structure block
    name_at = off_struct + 4
    cases["unterminated node name"] = (
        patch_header(g[:name_at] + b"x" * (len(g) - name_at), 9, 8), "node name runs off")
    return cases


@pytest.mark.parametrize("name", list(hostile_cases()))
def test_hostile_blob_raises_format_error_with_offset(name):
    blob, fragment = hostile_cases()[name]
    with pytest.raises(FormatError) as info:
        parse_dtb(blob, "x.dtb")
    if fragment:
        assert fragment in str(info.value)
    assert info.value.offset is not None
    if name == "nesting 10,000 deep":
        assert isinstance(info.value, LimitError)


@pytest.mark.parametrize("name", ["lying size_dt_struct", "nesting 10,000 deep", "missing FDT_END",
                                  "unterminated reservation block"])
def test_hostile_blob_cli_one_line(tmp_path, name):
    blob, fragment = hostile_cases()[name]
    (tmp_path / "bad.dtb").write_bytes(blob)
    assert_one_line_error(run_bootforge("inspect", tmp_path / "bad.dtb"), "bad.dtb", "offset 0x", fragment)
    assert_one_line_error(run_bootforge("memmap", "convert", tmp_path / "bad.dtb", "--from", "fdt", "--to", "json"),
                          "bad.dtb", "offset 0x")


def test_depth_limit_is_generous_for_real_trees():
    parse_dtb(deep_blob(200))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 938), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 939))
def test_mutated_blobs_parse_or_raise_format_error(flips, cut):
    blob = bytearray(good_blob())
    for at, value in flips:
        blob[at % len(blob)] = value
    for data in (bytes(blob), bytes(blob[:cut])):
        try:
            tree = parse_dtb(data)
        except FormatError:
            continue
        to_dts(tree)
        fdt_to_map_or_format_error(tree)


def fdt_to_map_or_format_error(tree):
    try:
        fdt_to_map(tree)
    except FormatError:
        pass


def test_built_tree_from_scratch_matches_dtc(tmp_path):
    root = FdtNode("", [FdtProperty("#address-cells", (1).to_bytes(4, "big")),
                        FdtProperty("#size-cells", (1).to_bytes(4, "big")),
                        FdtProperty("compatible", b"bootforge\0")])
    root.children.append(FdtNode("memory@0", [FdtProperty("device_type", b"memory\0"),
                                              FdtProperty("reg", bytes.fromhex("00000000 08000000"))]))
    tree = DeviceTree(root=root, reservations=[(0x1000, 0x1000)])
    blob = build_dtb(tree)
    assert dtc("-I", "dts", "-O", "dtb", input=to_dts(tree).encode()) == blob
    assert fdt_to_map(parse_dtb(blob)).keys() == [(0, 0x8000000, 1), (0x1000, 0x1000, 2)]


def test_version_16_blob(tmp_path):
    """dtc -V 16 writes the 36-byte header without size_dt_struct; bootforge reads and rebuilds it."""
    require("dtc")
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-V", "16", "-o", str(tmp_path / "v16.dtb"),
                    str(DATA / "fdt-reserved.dts")], check=True)
    data = (tmp_path / "v16.dtb").read_bytes()
    tree = parse_dtb(data)
    assert tree.version == 16 and tree.layout.struct_size == struct.unpack_from(">I", data, 0x0C)[0] - 0x48
    assert build_dtb(tree) == data
    assert to_dts(tree) == dtc("-I", "dtb", "-O", "dts", str(tmp_path / "v16.dtb")).decode()
    proc = run_bootforge("inspect", tmp_path / "v16.dtb", check=0)
    assert proc.stdout.splitlines()[0] == "Flattened device tree, version 16 (last compatible 16)"
    assert f"structure block  0x48 ({0x314 - 0x48:#x} bytes)" in proc.stdout


def test_memory_view_follows_linux_status_and_usable_memory(tmp_path):
    source = """/dts-v1/;
/ {
	#address-cells = <1>;
	#size-cells = <1>;
	memory@0 { device_type = "memory"; reg = <0x0 0x10000000>; linux,usable-memory = <0x0 0x8000000>; };
	memory@20000000 { device_type = "memory"; reg = <0x20000000 0x1000>; status = "disabled"; };
	memory@30000000 { device_type = "memory"; reg = <0x30000000 0x1000>; status = "okay"; };
	reserved-memory {
		#address-cells = <1>; #size-cells = <1>; ranges;
		off@100000 { reg = <0x100000 0x1000>; status = "disabled"; };
		on@200000 { reg = <0x200000 0x1000>; };
	};
};
"""
    tree = parse_dtb(dtc("-I", "dts", "-O", "dtb", input=source.encode()))
    assert fdt_to_map(tree).keys() == [(0, 0x8000000, 1), (0x30000000, 0x1000, 1), (0x200000, 0x1000, 2)]
