"""Kernel images of the device-tree platforms under `bootforge inspect`: the arm64 Image
(Debian's real EFI-stub kernel and a stand-in), the RISC-V Image, U-Boot legacy
uImages made by mkimage (both CRC32s) and FIT images made by mkimage (embedded and
external data, every hash recomputed), each with the loaders' verdicts."""

import json
import re
import struct
import subprocess
import sys

import pytest

from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge

ARM64_KERNEL = BUILD / "debian-arm64" / "vmlinuz"


def debian_arm64_kernel():
    """Debian's arm64 kernel, fetched by `make arm64-kernel` (part of `make deps`) into build/."""
    if not ARM64_KERNEL.exists():
        subprocess.run(["make", "-s", "arm64-kernel"], cwd=REPO, capture_output=True)
    require(str(ARM64_KERNEL))
    return ARM64_KERNEL


def stand_in_arm64(path, text_offset=0, image_size=0x10000, flags=0xA):
    """An arm64 Image as booting.rst lays it out: b +0x40, then wfi; b . at 0x40."""
    header = struct.pack("<IIQQQQQQ4sI", 0x14000010, 0, text_offset, image_size, flags, 0, 0, 0, b"ARM\x64", 0)
    path.write_bytes(header + struct.pack("<II", 0xD503207F, 0x14000000))
    return path


def stand_in_riscv(path, image_size=0x10000):
    header = struct.pack("<IIQQQII Q8s4sI", 0x0400006F, 0, 0x200000, image_size, 0, 2, 0, 0,
                         b"RISCV\0\0\0", b"RSC\x05", 0)
    path.write_bytes(header + struct.pack("<I", 0x6F))
    return path


def inspect_json(path, check=0):
    proc = run_bootforge("inspect", "--json", path)
    assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def verdict(doc, subject):
    return next(v for v in doc["verdicts"] if v["subject"] == subject)


def mkimage(*args):
    require("mkimage")
    proc = subprocess.run(["mkimage", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_debian_arm64_kernel_both_views():
    kernel = debian_arm64_kernel()
    require("aarch64-linux-gnu-objdump")
    doc = inspect_json(kernel)
    assert doc["format"] == "arm64-image"
    h = doc["header"]
    assert h["magic"] == "ARM\x64" and h["pe_offset"] == 0x40
    # The header against the file's own bytes and `file`'s reading of it.
    raw = kernel.read_bytes()[:64]
    assert (h["text_offset"], h["image_size"], h["flags"]) == struct.unpack_from("<QQQ", raw, 8)
    described = subprocess.run(["file", "-b", str(kernel)], capture_output=True, text=True).stdout
    assert "ARM64 boot executable Image" in described and "4K pages" in described
    assert h["page_size"] == "4K" and not h["big_endian"]
    # The PE view against binutils: objdump's start address is ImageBase + entry RVA.
    objdump = subprocess.run(["aarch64-linux-gnu-objdump", "-f", str(kernel)], capture_output=True, text=True).stdout
    assert "pei-aarch64-little" in objdump
    start = int(re.search(r"start address (0x[0-9a-f]+)", objdump).group(1), 16)
    pe = doc["pe"]
    assert pe["machine"] == 0xAA64 and pe["subsystem"] == 10
    assert pe["image_base"] + pe["entry_point"] == start
    assert verdict(doc, "linux-efi-stub-arm64")["ok"]
    assert verdict(doc, "uboot-booti")["ok"]
    assert not verdict(doc, "uboot-bootm")["ok"]
    assert verdict(doc, "uboot-bootm")["words"] == "Wrong Image Format for bootm command"


def test_stand_in_arm64_and_gzip(tmp_path):
    image = stand_in_arm64(tmp_path / "Image", image_size=0)
    doc = inspect_json(image)
    booti = verdict(doc, "uboot-booti")
    assert booti["ok"] and booti["severity"] == "warning"
    assert booti["words"] == "Image lacks image_size field, assuming 16MiB"
    # image_size 0: QEMU falls back to its fixed 0x80000 offset and the file is taken raw.
    assert verdict(doc, "qemu-arm-kernel")["facts"]["offset"] == 0x80000
    assert verdict(doc, "linux-efi-stub-arm64")["words"] == "Unsupported"
    subprocess.run(["gzip", "-k", "-n", str(stand_in_arm64(tmp_path / "Image2"))], check=True)
    doc = inspect_json(tmp_path / "Image2.gz")
    assert doc["compressed"] == "gzip" and doc["header"]["image_size"] == 0x10000
    assert verdict(doc, "qemu-arm-kernel")["facts"]["offset"] == 0x200000


def test_riscv_image(tmp_path):
    doc = inspect_json(stand_in_riscv(tmp_path / "rv.Image"))
    assert doc["format"] == "riscv-image"
    assert doc["header"]["version"] == "0.2" and doc["header"]["magic2_ok"]
    assert verdict(doc, "uboot-booti")["ok"]
    doc = inspect_json(stand_in_riscv(tmp_path / "rv0.Image", image_size=0))
    assert verdict(doc, "uboot-booti")["words"] == "Image lacks image_size field, error!"


def test_uimage_crcs_against_mkimage(tmp_path):
    kernel = stand_in_arm64(tmp_path / "Image")
    out = tmp_path / "uImage"
    listing = mkimage("-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none", "-a", "0x40080000",
                      "-e", "0x40080000", "-n", "stand-in", "-d", kernel, out)
    doc = inspect_json(out)
    h = doc["header"]
    assert h["hcrc"] == h["hcrc_computed"] and h["dcrc"] == h["dcrc_computed"]
    assert f"Image Type:   {h['arch_name']} {h['os_name']} {h['type_name']} ({h['comp_name']})" in listing
    assert f"Load Address: {h['load']:08x}" in listing and h["name"] == "stand-in"
    assert doc["payload"]["kind"] == "arm64-image"
    assert verdict(doc, "uboot-bootm")["ok"]
    # One data byte changed: the data CRC no longer matches; U-Boot's words.
    data = bytearray(out.read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "bad.uImage").write_bytes(data)
    doc = inspect_json(tmp_path / "bad.uImage", check=1)
    assert verdict(doc, "uboot-bootm")["words"] == "Bad Data CRC"
    assert any("data CRC32" in p for p in doc["problems"])
    # A header byte changed: the header CRC.
    data = bytearray(out.read_bytes())
    data[40] ^= 1
    (tmp_path / "badh.uImage").write_bytes(data)
    doc = inspect_json(tmp_path / "badh.uImage", check=1)
    assert verdict(doc, "uboot-bootm")["words"] == "Bad Header Checksum"


def test_uimage_multi_and_wrong_arch(tmp_path):
    kernel = stand_in_arm64(tmp_path / "Image")
    (tmp_path / "rd").write_bytes(b"0123456789abc")
    listing = mkimage("-A", "riscv", "-O", "linux", "-T", "multi", "-C", "none", "-d",
                      f"{kernel}:{tmp_path / 'rd'}", tmp_path / "multi")
    doc = inspect_json(tmp_path / "multi")
    sizes = [f["size"] for f in doc["header"]["files"]]
    assert [f"   Image {i}: {s} Bytes" for i, s in enumerate(sizes)] == \
        [line.split(" =")[0] for line in listing.splitlines() if line.startswith("   Image ")]
    mkimage("-A", "arm", "-O", "linux", "-T", "kernel", "-C", "none", "-d", kernel, tmp_path / "arm")
    doc = inspect_json(tmp_path / "arm")
    assert verdict(doc, "qemu-arm-kernel")["ok"]


def _its(tmp_path, kernel, dtb, initrd):
    its = tmp_path / "t.its"
    its.write_text(f"""/dts-v1/;
/ {{
	description = "test FIT";
	#address-cells = <1>;
	images {{
		kernel-1 {{
			data = /incbin/("{kernel}"); type = "kernel"; arch = "arm64"; os = "linux";
			compression = "none"; load = <0x40200000>; entry = <0x40200000>;
			hash-1 {{ algo = "sha256"; }};
			hash-2 {{ algo = "crc32"; }};
		}};
		fdt-1 {{
			data = /incbin/("{dtb}"); type = "flat_dt"; arch = "arm64"; compression = "none";
			hash-1 {{ algo = "sha1"; }};
		}};
		ramdisk-1 {{
			data = /incbin/("{initrd}"); type = "ramdisk"; arch = "arm64"; os = "linux";
			compression = "none";
			hash-1 {{ algo = "md5"; }};
		}};
	}};
	configurations {{
		default = "conf-1";
		conf-1 {{ kernel = "kernel-1"; fdt = "fdt-1"; ramdisk = "ramdisk-1"; }};
	}};
}};
""")
    return its


@pytest.mark.parametrize("external", [False, True])
def test_fit_from_mkimage(tmp_path, external):
    require("mkimage", "dtc")
    kernel = stand_in_arm64(tmp_path / "Image")
    dtb = tmp_path / "board.dtb"
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(dtb), "-"], check=True, capture_output=True,
                   input=b'/dts-v1/; / { model = "Test board"; compatible = "acme,test", "linux,dummy-virt"; };')
    (tmp_path / "rd").write_bytes(b"0123456789abc")
    its = _its(tmp_path, kernel, dtb, tmp_path / "rd")
    out = tmp_path / "t.itb"
    listing = mkimage(*(["-E"] if external else []), "-f", its, out)
    doc = inspect_json(out)
    assert doc["format"] == "fit" and doc["external"] is external
    images = {i["name"]: i for i in doc["images"]}
    # Every hash value mkimage wrote (its listing) recomputed by bootforge over the data.
    written = re.findall(r"Hash value:\s+([0-9a-f]+)", listing)
    recomputed = [h["computed"] for i in doc["images"] for h in i["hashes"]]
    assert written == recomputed and all(h["ok"] for i in doc["images"] for h in i["hashes"])
    assert images["fdt-1"]["dtb"] == {"model": "Test board", "compatible": ["acme,test", "linux,dummy-virt"]}
    assert images["kernel-1"]["load"] == 0x40200000
    assert verdict(doc, "uboot-bootm")["ok"]
    if external:
        # One byte of the kernel's external data changed: U-Boot's fit_image_verify words.
        data = bytearray(out.read_bytes())
        data[images["kernel-1"]["data_offset"] + 0x40] ^= 1
        (tmp_path / "bad.itb").write_bytes(data)
        doc = inspect_json(tmp_path / "bad.itb", check=1)
        assert verdict(doc, "uboot-bootm")["words"] == "Bad hash value for 'hash-1' hash node in 'kernel-1' image node"


def test_fit_with_large_external_images(tmp_path):
    """Images of a MiB and more are hashed side by side, over a map of the file (fdtboot/fit.py,
    inspect.py MAPPED_FORMATS): every value mkimage wrote is what bootforge computes, a flipped
    byte in the last image fails its own hash only, and the FIT read from a pipe (its bytes, no
    map) gives the same document."""
    require("mkimage", "dtc")
    kernel = stand_in_arm64(tmp_path / "Image")
    with open(kernel, "ab") as f:
        f.write(bytes(range(256)) * (3 << 12))                      # 3 MiB
    (tmp_path / "rd").write_bytes(bytes(range(255, -1, -1)) * (6 << 10))  # 1.5 MiB
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"), "-"], check=True,
                   capture_output=True, input=b'/dts-v1/; / { model = "Big"; };')
    out = tmp_path / "big.itb"
    listing = mkimage("-E", "-f", _its(tmp_path, kernel, tmp_path / "b.dtb", tmp_path / "rd"), out)
    doc = inspect_json(out)
    written = re.findall(r"Hash value:\s+([0-9a-f]+)", listing)
    assert written == [h["computed"] for i in doc["images"] for h in i["hashes"]]
    assert all(h["ok"] for i in doc["images"] for h in i["hashes"])
    with open(out, "rb") as f:
        piped = subprocess.run([sys.executable, "-m", "bootforge", "inspect", "--json", "-"], stdin=f,
                               capture_output=True, text=True, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert {**json.loads(piped.stdout), "file": None} == {**doc, "file": None}
    data = bytearray(out.read_bytes())
    data[-1] ^= 1
    (tmp_path / "bad.itb").write_bytes(data)
    bad = inspect_json(tmp_path / "bad.itb", check=1)
    assert [(i["name"], h["ok"]) for i in bad["images"] for h in i["hashes"]] == [
        ("kernel-1", True), ("kernel-1", True), ("fdt-1", True), ("ramdisk-1", False)]


def test_fit_external_data_past_the_file(tmp_path):
    require("mkimage", "dtc")
    kernel = stand_in_arm64(tmp_path / "Image")
    (tmp_path / "rd").write_bytes(b"x" * 100)
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"), "-"], check=True,
                   capture_output=True, input=b"/dts-v1/; / { };")
    out = tmp_path / "t.itb"
    mkimage("-E", "-f", _its(tmp_path, kernel, tmp_path / "b.dtb", tmp_path / "rd"), out)
    data = out.read_bytes()
    (tmp_path / "cut.itb").write_bytes(data[:-50])
    proc = run_bootforge("inspect", tmp_path / "cut.itb")
    assert_one_line_error(proc, "cut.itb", "ramdisk-1", "runs past")


def test_truncated_headers(tmp_path):
    (tmp_path / "short.uImage").write_bytes(struct.pack(">I", 0x27051956) + bytes(20))
    assert_one_line_error(run_bootforge("inspect", tmp_path / "short.uImage"), "short.uImage", "uImage header")


def test_booti_on_a_board_dtb(tmp_path):
    """--platform board.dtb: the board's first /memory bank is the RAM start booti relocates to."""
    require("dtc")
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "board.dtb"), "-"], check=True,
                   capture_output=True, input=b"/dts-v1/; / { #address-cells = <2>; #size-cells = <2>; "
                   b'compatible = "acme,board"; memory@80000000 { device_type = "memory"; '
                   b"reg = <0 0x80000000 0 0x40000000>; }; };")
    kernel = stand_in_arm64(tmp_path / "Image", text_offset=0x80000, flags=0x2)   # 4K pages, bit 3 clear
    proc = run_bootforge("load", kernel, "--platform", tmp_path / "board.dtb", "--loader", "uboot-booti", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["platform"]["name"].endswith("board.dtb")
    # Not anywhere in RAM: the start of RAM (0x80000000), 2 MiB aligned, + text_offset.
    assert doc["linux"]["entry"] == 0x80080000
    assert doc["linux"]["move"] == "Moving Image from 0x40400000 to 0x80080000, end=80090000"


@pytest.mark.parametrize("board,arch", [("qemu_arm64", "aarch64"), ("qemu_arm", "arm"), ("qemu-riscv64", "riscv64"),
                                        ("qemu-riscv64_smode", "riscv64")])
def test_uboot_binaries(board, arch):
    """Debian's u-boot-qemu u-boot.bin: the version dpkg names, the architecture, arm64's start.S words."""
    path = f"/usr/lib/u-boot/{board}/u-boot.bin"
    require(path)
    doc = inspect_json(path)
    assert doc["format"] == "u-boot" and doc["arch"] == arch
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "u-boot-qemu"], capture_output=True,
                             text=True).stdout
    assert doc["version"] == version
    if arch == "aarch64":
        # _end_ofs is the image's end: u-boot.bin is the image, nothing appended (QEMU gives the DTB).
        assert doc["end_ofs"] == doc["size"] and "appended_dtb" not in doc
        assert doc["bss_start_ofs"] <= doc["bss_end_ofs"]
    assert ("M-mode" in doc["mode"]) == (board == "qemu-riscv64")


def test_truncated_files_never_crash(tmp_path):
    """Every prefix length that matters of a uImage, an external-data FIT and the Images: exit 0/1
    or one line naming the file, never a traceback."""
    require("mkimage", "dtc")
    kernel = stand_in_arm64(tmp_path / "Image")
    mkimage("-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none", "-d", kernel, tmp_path / "uImage")
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"), "-"], check=True,
                   capture_output=True, input=b'/dts-v1/; / { compatible = "linux,dummy-virt"; };')
    (tmp_path / "rd").write_bytes(b"r" * 300)
    mkimage("-E", "-f", _its(tmp_path, kernel, tmp_path / "b.dtb", tmp_path / "rd"), tmp_path / "fit.itb")
    samples = [tmp_path / "uImage", tmp_path / "fit.itb", kernel, stand_in_riscv(tmp_path / "rv")]
    from bootforge.errors import BootforgeError
    from bootforge.inspect import inspect_data
    for sample in samples:
        data = sample.read_bytes()
        for n in sorted({10, 0x30, 0x3B, 0x3C, 0x3F, 0x40, 0x41, 0x60, len(data) // 2, len(data) - 1}):
            try:        # in process: a report (exit 0/1) or a BootforgeError (one line, exit 2), nothing else
                report = inspect_data(f"cut-{sample.name}", data[:n])
                report.render_text()
                report.to_json()
            except BootforgeError:
                pass
    # And once through the CLI: the one line names the file.
    cut = tmp_path / "cut.itb"
    cut.write_bytes((tmp_path / "fit.itb").read_bytes()[:-7])
    assert_one_line_error(run_bootforge("inspect", cut), "cut.itb")


def test_uimage_named_as_dt_kernel_gets_its_uimage_report(tmp_path):
    """`inspect --format dt-kernel` of a uImage (a fuzzer's KeyError before): the uImage's report."""
    out = tmp_path / "uImage"
    mkimage("-A", "arm64", "-O", "linux", "-T", "kernel", "-C", "none", "-a", "0x40080000",
            "-e", "0x40080000", "-n", "stand-in", "-d", stand_in_arm64(tmp_path / "Image"), out)
    proc = run_bootforge("inspect", "--json", "--format", "dt-kernel", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["header"]["name"] == "stand-in" and doc["payload"]["kind"] == "arm64-image"


def test_uboot_format_of_a_file_without_the_version_string_is_one_line(tmp_path):
    """`inspect --format u-boot` of a file with no "U-Boot 20yy.mm (date)" string (the fuzz
    harness inspect-rest's input, 5 bytes "hello"): one line, not AttributeError escaping."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")
    assert_one_line_error(run_bootforge("inspect", "--format", "u-boot", junk), "junk.bin", "offset 0x0",
                          "no U-Boot version string")
