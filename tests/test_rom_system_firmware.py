"""System firmware images as `inspect` reads them: SeaBIOS's bios.bin and OVMF's flash
images (Debian's seabios and ovmf packages), their facts read back here with struct."""

import json
import struct
import subprocess
import uuid

from conftest import assert_one_line_error, require, run_bootforge

SEABIOS = "/usr/share/seabios/bios.bin"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def inspect_json(path):
    return json.loads(run_bootforge("inspect", "--json", path, check=0).stdout)


def test_seabios_bios_bin_is_named_with_its_version():
    require(SEABIOS)
    data = open(SEABIOS, "rb").read()
    doc = inspect_json(SEABIOS)
    assert doc["format"] == "legacy-bios" and doc["firmware"] == "SeaBIOS" and doc["size"] == len(data)
    # The package's own version is inside SeaBIOS's VERSION string ("1.16.2-debian-1.16.2-1").
    package = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "seabios"], capture_output=True,
                             text=True).stdout
    assert package and package.split("+")[0] in doc["version"]
    assert doc["reset_vector"]["offset"] == len(data) - 16
    offset, segment = struct.unpack_from("<HH", data, len(data) - 15)
    assert data[-16] == 0xEA and doc["reset_vector"]["jump"] == f"ljmp {segment:04x}:{offset:04x}" == "ljmp f000:e05b"
    assert doc["bios_date"] == data[-11:-3].decode()
    assert {t["signature"]: t["offset"] for t in doc["tables"]}["$PIR"] == data.find(b"$PIR")
    text = run_bootforge("inspect", SEABIOS, check=0).stdout
    assert text.startswith(f"{SEABIOS}: legacy BIOS image (SeaBIOS {doc['version']}), {len(data)} bytes (128 KiB)")


def _volumes(data):
    """(offset, length, FvName or None) of each firmware volume, read with struct."""
    out, at = [], 0
    while at + 0x38 <= len(data):
        if data[at + 0x28:at + 0x2C] != b"_FVH":
            at += 0x1000
            continue
        length, = struct.unpack_from("<Q", data, at + 0x20)
        ext, = struct.unpack_from("<H", data, at + 0x34)
        name = str(uuid.UUID(bytes_le=data[at + ext:at + ext + 16])).upper() if ext else None
        out.append((at, length, name))
        at += length
    return out


def test_ovmf_flash_image_names_its_volumes():
    require(OVMF_CODE)
    data = open(OVMF_CODE, "rb").read()
    doc = inspect_json(OVMF_CODE)
    assert doc["format"] == "uefi-flash" and doc["problems"] == []
    got = [(v["offset"], v["length"], v["name_guid"]) for v in doc["volumes"]]
    assert got == _volumes(data) and len(got) == 2
    names = [v["name"] for v in doc["volumes"]]
    assert names[0].startswith("OVMF FVMAIN_COMPACT") and names[1].startswith("OVMF SECFV")
    assert all(v["file_system"].startswith("FFS2") for v in doc["volumes"])
    text = run_bootforge("inspect", OVMF_CODE, check=0).stdout
    assert f"firmware volume at file offset {got[1][0]:#x}, {got[1][1]:#x} bytes (208 KiB): OVMF SECFV" in text


def test_ovmf_variable_store():
    require(OVMF_VARS)
    doc = inspect_json(OVMF_VARS)
    assert doc["variable_store"] and len(doc["volumes"]) == 1
    assert doc["volumes"][0]["file_system"] == "variable store (EFI_SYSTEM_NV_DATA_FV_GUID)"
    assert "variable store (EDK2 firmware volumes)" in run_bootforge("inspect", OVMF_VARS, check=0).stdout


def test_a_volume_that_lies_about_its_length_is_a_problem(tmp_path):
    require(OVMF_VARS)
    data = bytearray(open(OVMF_VARS, "rb").read())
    struct.pack_into("<Q", data, 0x20, 1 << 40)
    # The header checksum covers FvLength: re-balance it so the volume is still found.
    struct.pack_into("<H", data, 0x32, 0)
    total = sum(struct.unpack_from(f"<{struct.unpack_from('<H', data, 0x30)[0] // 2}H", data, 0))
    struct.pack_into("<H", data, 0x32, (-total) & 0xFFFF)
    bad = tmp_path / "vars.fd"
    bad.write_bytes(data)
    proc = run_bootforge("inspect", bad)
    assert proc.returncode == 1 and "firmware volume at 0x0: FvLength 0x10000000000 runs past the end" in proc.stdout


def test_a_reset_vector_with_a_date_that_is_not_digits_is_one_line(tmp_path):
    """A 64 KiB file ending in a far jump and "\\xff\\xff/\\xff\\xff/\\xff\\xff" where the BIOS date is
    (two slashes: inspect's detection claims it) and `--format legacy-bios` of 5 bytes (inputs the
    fuzz harness inspect-rest makes): one line naming the reset vector's offset, where
    UnicodeDecodeError and IndexError escaped before. The real bios.bin still reads (above)."""
    data = bytearray(0x10000)
    data[-16] = 0xEA
    data[-11:-3] = b"\xff\xff/\xff\xff/\xff\xff"
    bad = tmp_path / "bad-date.bin"
    bad.write_bytes(data)
    assert_one_line_error(run_bootforge("inspect", bad), "bad-date.bin", "offset 0xfff0", "not a legacy BIOS image")
    short = tmp_path / "short.bin"
    short.write_bytes(b"hello")
    assert_one_line_error(run_bootforge("inspect", "--format", "legacy-bios", short), "short.bin", "offset 0x0",
                          "not a legacy BIOS image")
