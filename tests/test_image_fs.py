"""bootforge's own file-system writers, judged by independent readers: FAT12/16/32 by fsck.fat and
mtools, ISO 9660 + Rock Ridge by isoinfo and xorriso; and read back by bootforge's readers."""

import os
import subprocess

import pytest

from bootforge.errors import RecipeError
from bootforge.image.content import FileContent, utc
from bootforge.image.fat import FatVolume, FatWriter
from bootforge.image.iso import IsoVolume, IsoWriter, iso_identifier
from conftest import require

NAMES = {
    "/EFI/BOOT/BOOTX64.EFI": b"pe" * 3000,
    "/boot/grub/grub.cfg": b"set timeout=0\n",
    "/boot/kernel-with-a-long-name.elf": b"k" * 5000,
    "/boot/Mixed.Case.Name.tar": b"m" * 10,
    "/boot/space name": b"s",
    "/boot/empty": b"",
    "/boot/\u00e9t\u00e9.txt": b"utf8",
}


def fat_image(tmp_path, files, sectors=None):
    w = FatWriter({p: FileContent.from_bytes(d) for p, d in files.items()}, utc(315532800), 0xCAFEF00D)
    w.layout(sectors)
    path = tmp_path / "fat.img"
    with open(path, "wb") as f:
        f.truncate(w.size)
        w.write(f, 0)
    return path, w


@pytest.mark.parametrize("sectors,fat_type", [(None, 12), (80 << 11, 16), (600 << 11, 32)])
def test_fat_types_pass_fsck_and_mtools_reads_every_name(tmp_path, sectors, fat_type):
    require("fsck.fat", "mdir", "mtype")
    path, w = fat_image(tmp_path, NAMES, sectors)
    assert w.geometry.fat_type == fat_type
    proc = subprocess.run(["fsck.fat", "-n", "-v", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and f"2 FATs, {fat_type} bit entries" in proc.stdout, proc.stdout + proc.stderr
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(path), "::"], capture_output=True,
                             text=True, env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout.splitlines()
    for name, data in NAMES.items():
        assert "::" + name in listing, (name, listing)
        got = subprocess.run(["mtype", "-i", str(path), "::" + name], capture_output=True,
                             env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
        assert got == data, name
    serial = subprocess.run(["mdir", "-i", str(path), "::"], capture_output=True, text=True).stdout
    assert "Volume Serial Number is CAFE-F00D" in serial
    with open(path, "rb") as f:
        v = FatVolume(lambda o, n: os.pread(f.fileno(), n, o), path.stat().st_size)
        assert v.info["type"] == f"FAT{fat_type}"
        assert {p: v.read_file(x, 1 << 20) for p, x in v.walk() if not x.is_dir} == NAMES


def test_fat_refuses_names_equal_but_for_case(tmp_path):
    with pytest.raises(RecipeError, match="FAT names ignore case"):
        fat_image(tmp_path, {"/boot/Kernel": b"a", "/boot/kernel": b"b"})


@pytest.mark.parametrize("sectors", [None, 80 << 11])
def test_fat_self_partition_entry_is_the_one_mformat_writes(tmp_path, sectors):
    """An ESP outside any partition (an El Torito image) carries the partition entry mformat puts
    in its boot sector (OVMF reads it: its allocations before BDS differ without it); a GPT
    partition's ESP keeps the table zero."""
    require("mformat", "fsck.fat")
    w = FatWriter({p: FileContent.from_bytes(d) for p, d in NAMES.items()}, utc(315532800), 0xCAFEF00D,
                  self_partition=True)
    w.layout(sectors)
    path = tmp_path / "fat.img"
    with open(path, "wb") as f:
        f.truncate(w.size)
        w.write(f, 0)
    mt = tmp_path / "mformat.img"
    subprocess.run(["mformat", "-i", str(mt), "-C", "-T", str(w.geometry.sectors), "-h", "64", "-s", "32",
                    "::"], check=True, capture_output=True)
    assert path.read_bytes()[446:462] == mt.read_bytes()[446:462]
    assert subprocess.run(["fsck.fat", "-n", str(path)], capture_output=True).returncode == 0
    (tmp_path / "plain").mkdir()
    plain, _ = fat_image(tmp_path / "plain", NAMES, sectors)
    assert plain.read_bytes()[446:462] == bytes(16)


def test_iso_rock_ridge_names_read_by_isoinfo(tmp_path):
    require("isoinfo", "xorriso")
    w = IsoWriter({p: FileContent.from_bytes(d) for p, d in NAMES.items()}, "TEST_VOL", utc(315532800))
    sectors = w.layout()
    path = tmp_path / "t.iso"
    with open(path, "wb") as f:
        f.truncate(sectors * 2048)
        w.write(f)
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(path)], capture_output=True, text=True,
                             env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout.splitlines()
    assert set(NAMES) <= set(listing)
    for name, data in NAMES.items():
        got = subprocess.run(["isoinfo", "-R", "-x", name, "-i", str(path)], capture_output=True).stdout
        assert got == data, name
    # Without Rock Ridge: the level-2 identifiers of iso_identifier().
    plain = subprocess.run(["isoinfo", "-f", "-i", str(path)], capture_output=True, text=True).stdout.split()
    assert "/BOOT/KERNEL_WITH_A_LONG_NAME.ELF;1" in plain and "/BOOT/SPACE_NAME.;1" in plain
    assert iso_identifier("space name", False) == b"SPACE_NAME.;1"
    report = subprocess.run(["xorriso", "-indev", str(path), "-find", "/", "-exec", "report_lba"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    assert "kernel-with-a-long-name.elf" in report and "FAILURE" not in report
    with open(path, "rb") as f:
        v = IsoVolume(lambda o, n: os.pread(f.fileno(), n, o), path.stat().st_size)
        assert v.names == "Rock Ridge"
        assert {p: v.read_file(x, 1 << 20) for p, x in v.walk() if not x.is_dir} == NAMES


def test_iso_refuses_two_names_with_one_identifier():
    with pytest.raises(RecipeError, match="ISO 9660 name A_B.TXT;1"):
        IsoWriter({"/a-b.txt": FileContent.from_bytes(b"1"), "/a_b.txt": FileContent.from_bytes(b"2")},
                  "V", utc(315532800))


def test_files_over_4_gib_are_refused_by_both_writers(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate((4 << 30) + 1)                     # sparse: nothing is read
    content = FileContent.from_file(str(big))
    with pytest.raises(RecipeError, match="at most 4 GiB - 1 bytes"):
        FatWriter({"/big": content}, utc(315532800), 1)
    with pytest.raises(RecipeError, match="at most 4 GiB - 1 bytes"):
        IsoWriter({"/big": content}, "V", utc(315532800))


def test_the_iso_writer_hashes_the_file_it_writes(tmp_path):
    """IsoWriter.write(out, size) returns the sha256 of the whole file (what the caller wrote
    before it, the extents, the holes between them) without reading the extents back; a file
    copied from disk is hashed as it is copied (more than two copy buffers, a short last one)."""
    import hashlib

    big = tmp_path / "big.bin"
    content = bytes(range(256)) * (9 << 12) + b"tail"
    big.write_bytes(content)
    files = {p: FileContent.from_bytes(d) for p, d in NAMES.items()}
    files["/boot/big.bin"] = FileContent.from_file(big)
    iso = IsoWriter(files, "HASHED", utc(315532800))
    total = iso.layout() * 2048 + 4096
    path = tmp_path / "hashed.iso"
    with open(path, "w+b") as out:
        out.truncate(total)
        os.pwrite(out.fileno(), b"system area" * 40, 0)
        os.pwrite(out.fileno(), b"after the ISO", total - 100)
        digest = iso.write(out, total)
    data = path.read_bytes()
    assert digest == hashlib.sha256(data).hexdigest()
    vol = IsoVolume(lambda o, n: data[o:o + n], len(data))
    assert vol.read_file(vol.lookup("/boot/big.bin"), 1 << 30) == content


@pytest.mark.parametrize("hashed", [False, True])
def test_holes_of_a_file_stay_holes_in_the_iso(tmp_path, hashed):
    """A sparse module (a hole, data, a hole: SEEK_DATA/SEEK_HOLE) reads back byte for byte from
    the image, the image's sha256 (when asked) is that of its bytes, and the holes are not
    allocated in the image either (where the file system made the input sparse)."""
    import hashlib

    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(64 << 20)
        os.pwrite(f.fileno(), b"data in the middle" * 1000, 40 << 20)
    content = sparse.read_bytes()
    iso = IsoWriter({"/boot/sparse.bin": FileContent.from_file(sparse)}, "SPARSE", utc(315532800))
    total = iso.layout() * 2048
    path = tmp_path / "sparse.iso"
    with open(path, "w+b") as out:
        out.truncate(total)
        digest = iso.write(out, total if hashed else None)
    data = path.read_bytes()
    vol = IsoVolume(lambda o, n: data[o:o + n], len(data))
    assert vol.read_file(vol.lookup("/boot/sparse.bin"), 1 << 30) == content
    assert digest == (hashlib.sha256(data).hexdigest() if hashed else None)
    if sparse.stat().st_blocks * 512 < 1 << 20:
        assert path.stat().st_blocks * 512 < 1 << 20


def test_an_image_replaces_the_old_one_whole(tmp_path):
    """An image written over an older one (AtomicOutput durable=False: renameat2 RENAME_EXCHANGE,
    then the old file removed): the name holds the new bytes, a reader that had the old file
    open still reads the old bytes, no temporary file is left; a directory in the way is an
    error and stays as it was."""
    from bootforge.errors import BootforgeError
    from bootforge.fileio import AtomicOutput

    path = tmp_path / "os.iso"
    path.write_bytes(b"old image" * 1000)
    with open(path, "rb") as reader:
        with AtomicOutput(path, durable=False) as out:
            out.write(b"new image")
        assert path.read_bytes() == b"new image"
        assert reader.read() == b"old image" * 1000
    assert os.stat(path).st_nlink == 1 and sorted(os.listdir(tmp_path)) == ["os.iso"]
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "kept").write_text("x")
    with pytest.raises((BootforgeError, OSError)):
        with AtomicOutput(tmp_path / "dir", durable=False) as out:
            out.write(b"image")
    assert (tmp_path / "dir" / "kept").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["dir", "os.iso"]


def test_a_large_files_fingerprint_is_its_crc_32_split_or_not(tmp_path, monkeypatch):
    """A file over content.SPLIT_CRC is CRC'd in two halves on two threads and the halves
    combined: the fingerprint is zlib.crc32 of the whole file all the same (its size and CRC,
    the ids an image derives from it unchanged). Small windows stand in for a 2 GiB module."""
    import zlib

    from bootforge.image import content
    data = os.urandom(3 << 20) + b"\x00" * 70001 + os.urandom(12345)      # halves at a window, odd tail
    path = tmp_path / "module"
    path.write_bytes(data)
    whole = len(data).to_bytes(8, "little") + zlib.crc32(data).to_bytes(4, "little")
    assert FileContent.from_file(path).fingerprint() == whole
    monkeypatch.setattr(content, "WINDOW", 1 << 16)
    monkeypatch.setattr(content, "SPLIT_CRC", 1 << 20)
    assert FileContent.from_file(path).fingerprint() == whole
    for a, b in ((b"", b""), (b"x", b""), (b"", b"y"), (data[:999], data[999:5000])):
        assert content.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
