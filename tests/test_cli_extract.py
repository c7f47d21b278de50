"""`bootforge extract ROM --image N -o FILE` (issue 15 item 8): images counted from 0,
EFI drivers as firmware hands them to LoadImage, compressed ones decompressed."""

import struct
import subprocess
import sys
from pathlib import Path

from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge
from romcorpus import IPXE_DIR

EFI_E1000 = f"{IPXE_DIR}/efi-e1000.rom"


def efi_driver_by_hand(data, image_offset):
    """What a user cut with dd: EFI image offset (0x16) to InitializationSize x 512 (0x02)."""
    init_blocks, = struct.unpack_from("<H", data, image_offset + 2)
    efi_at, = struct.unpack_from("<H", data, image_offset + 0x16)
    return data[image_offset + efi_at:image_offset + init_blocks * 512]


def test_efi_driver_of_debian_efi_e1000(tmp_path):
    require(EFI_E1000, "objdump")
    data = Path(EFI_E1000).read_bytes()
    image1 = 0x12600      # image 0 is 147 blocks (PCIR image length at 0x2c)
    assert struct.unpack_from("<H", data, 0x1C + 0x10)[0] * 512 == image1
    out = tmp_path / "e1000.efi"
    proc = run_bootforge("extract", EFI_E1000, "--image", "1", "-o", out, check=0)
    assert "image 1 at 0x12600" in proc.stdout
    driver = out.read_bytes()
    assert driver == efi_driver_by_hand(data, image1) and driver[:2] == b"MZ"
    dump = subprocess.run(["objdump", "-h", str(out)], capture_output=True, text=True)
    assert dump.returncode == 0 and "file format pei-x86-64" in dump.stdout and ".text" in dump.stdout


def test_compressed_image_is_decompressed(tmp_path):
    """recipes/e1000-compressed.toml stores the same driver EFI-compressed: extract gives it back."""
    require(EFI_E1000, str(BUILD / "stubs"))
    rom = tmp_path / "packed.rom"
    run_bootforge("build", REPO / "recipes/e1000-compressed.toml", "-o", rom, check=0)
    data = rom.read_bytes()
    image1 = struct.unpack_from("<H", data, 0x1C + 0x10)[0] * 512
    assert struct.unpack_from("<H", data, image1 + 0x0C)[0] == 1      # CompressionType 1
    out = tmp_path / "d.efi"
    proc = run_bootforge("extract", rom, "--image", "1", "-o", out, check=0)
    assert "decompressed" in proc.stdout
    assert out.read_bytes() == efi_driver_by_hand(Path(EFI_E1000).read_bytes(), 0x12600)
    # --raw: the image as stored (compressed), byte for byte.
    run_bootforge("extract", rom, "--image", "1", "--raw", "-o", out, check=0)
    assert out.read_bytes() == data[image1:]
    # A stream that does not decode: exit 1, one line, nothing written.
    bad = bytearray(data)
    efi_at = struct.unpack_from("<H", data, image1 + 0x16)[0]
    bad[image1 + efi_at + 8:image1 + efi_at + 64] = bytes(56)
    (tmp_path / "bad.rom").write_bytes(bad)
    proc = run_bootforge("extract", tmp_path / "bad.rom", "--image", "1", "-o", tmp_path / "bad.efi")
    assert proc.returncode == 1 and "does not decode" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.efi").exists()


def test_legacy_image_and_numbering(tmp_path):
    require(EFI_E1000)
    data = Path(EFI_E1000).read_bytes()
    out = tmp_path / "legacy.rom"
    run_bootforge("extract", EFI_E1000, "--image", "0", "-o", out, check=0)
    assert out.read_bytes() == data[:0x12600]
    assert_one_line_error(run_bootforge("extract", EFI_E1000, "-o", out), "2 images (0-1)", "--image")
    assert_one_line_error(run_bootforge("extract", EFI_E1000, "--image", "2", "-o", out), "--image 2")
    # One image: --image may be left out; the ROM may come from standard input.
    single = f"{IPXE_DIR}/pxe-e1000.rom"
    proc = subprocess.run([sys.executable, "-m", "bootforge", "extract", "-", "-o", tmp_path / "s.rom"],
                          input=Path(single).read_bytes(), capture_output=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.rom").read_bytes() == Path(single).read_bytes()
