"""Bad input: one line naming the file, the offset and what is wrong, exit 2,
no traceback, no hang. Every case is generated here from real or built ROMs."""

import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from bootforge.cli import cli
from conftest import assert_one_line_error, run_bootforge
from romcorpus import IPXE_DIR, SEABIOS_DIR

E1000 = f"{IPXE_DIR}/efi-e1000.rom"


def inspect_inprocess(path, with_stdout=False):
    """The CLI in this process (fast for hundreds of cases); returns (status, stderr)."""
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return (result.exit_code, result.stderr) + ((result.stdout,) if with_stdout else ())


def header_boundaries(data):
    """Offsets at and inside every header of the two-image efi-e1000.rom."""
    cuts = set()
    for image in (0, 147 * 512):
        pcir = struct.unpack_from("<H", data, image + 0x18)[0]
        cuts |= set(range(image, image + 0x1C + 1))
        cuts |= set(range(image + pcir, image + pcir + 0x1C + 1))
        if image == 0:
            pnp = struct.unpack_from("<H", data, 0x1A)[0]
            cuts |= set(range(pnp, pnp + 0x21))
            cuts |= {0x84 + i for i in range(0x17)} | {0x9C + i for i in range(0x0D)}
    cuts |= {image + 0x38 + i for image in (147 * 512,) for i in range(0, 0x200, 7)}
    return sorted(c for c in cuts if c < len(data))


def test_truncation_at_and_inside_every_header(tmp_path):
    data = Path(E1000).read_bytes()
    rom = tmp_path / "cut.rom"
    for cut in header_boundaries(data):
        rom.write_bytes(data[:cut])
        status, err, out = inspect_inprocess(rom, with_stdout=True)
        if cut == 147 * 512:
            # Cut exactly before image 1: a complete image 0 without its last bit,
            # which the file alone cannot tell from a missing bit: a defect.
            assert status == 1 and err == "", err
            continue
        if cut > 147 * 512:
            # Image 0 is whole: it is read as firmware reads it; the cut image 1 is a defect
            # naming the file offset of what does not fit.
            assert status == 1 and err == "", (cut, err)
            assert "image 1 at 0x12600: cannot be read (file offset 0x" in out, (cut, out)
            assert "Image 0 -- Offset 0x0" in out and "Image 1 --" not in out
            continue
        assert status == 2, (cut, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(rom) in lines[0] and "offset 0x" in lines[0], (cut, err)


def mutate(tmp_path, name, edit, source=E1000):
    data = bytearray(Path(source).read_bytes())
    edit(data)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def put16(data, at, value):
    struct.pack_into("<H", data, at, value)


@pytest.mark.parametrize("name,edit,offset,words", [
    ("size0", lambda d: d.__setitem__(2, 0), "offset 0x2", "size is 0 blocks"),
    ("ilen0", lambda d: put16(d, 0x1C + 0x10, 0), "offset 0x2c", "image length is 0"),
    ("pnp-len0", lambda d: d.__setitem__(0x40 + 5, 0), "offset 0x45", "$PnP header length is 0"),
    ("pnp-loop", lambda d: put16(d, 0x40 + 6, 0x40), "offset 0x40", "loops back"),
    ("runs-off", lambda d: put16(d, 0x1C + 0x10, 600), "offset 0x2c", "runs past the end of the file"),
    ("devlist-long", lambda d: d.__setitem__(slice(0x1C + 0x4BF, 147 * 512), b"\x01" * (147 * 512 - 0x4DB)),
     "offset 0x6db", "device list has more than 256 entries"),
])
def test_lying_fields(tmp_path, name, edit, offset, words):
    path = mutate(tmp_path, name + ".rom", edit)
    assert_one_line_error(run_bootforge("inspect", path), str(path), offset, words)


VGA = f"{SEABIOS_DIR}/vgabios-stdvga.bin"  # 39936 bytes, PCIR at 0x99dc, no $PnP


def test_pcir_pointer_past_the_image(tmp_path):
    # Issue 15 item 1: a pointer to no 'PCIR' is no PCI data structure (SeaBIOS get_pci_rom),
    # a note; the edit breaks the checksum, which stays the one defect (exit 1).
    path = mutate(tmp_path, "pcir.rom", lambda d: put16(d, 0x18, 0xFFF0), VGA)
    proc = run_bootforge("inspect", path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    assert "PCIR pointer (offset 0x18) 0xfff0 points past the end of the image: no PCI data structure" in proc.stdout
    assert "checksum over 39936 bytes is 0x7a, not 0" in proc.stdout


def test_pnp_pointer_past_the_image(tmp_path):
    # A $PnP pointer 8 bytes before the end lands on no '$PnP': no PnP header (get_pnp_rom), a note.
    path = mutate(tmp_path, "pnp.rom", lambda d: put16(d, 0x1A, 0x9C00 - 8), VGA)
    proc = run_bootforge("inspect", path)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr
    assert "$PnP pointer (offset 0x1a) 0x9bf8 points at no '$PnP' signature: no $PnP header there" in proc.stdout


def test_pnp_header_cut_by_the_image_end(tmp_path):
    # A real '$PnP' signature whose 32-byte header runs past the image end is a lying structure.
    def edit(d):
        put16(d, 0x1A, 0x9C00 - 8)
        d[0x9C00 - 8:0x9C00 - 4] = b"$PnP"
    path = mutate(tmp_path, "pnpcut.rom", edit, VGA)
    assert_one_line_error(run_bootforge("inspect", path), str(path), "offset 0x9bf8",
                          "$PnP header at image offset 0x9bf8 runs past the end of the image")


def test_device_list_without_terminator(tmp_path):
    def edit(d):
        d[0x99DC + 0x0C] = 3                        # PCI 3.0 ...
        put16(d, 0x99DC + 8, 0x9C00 - 4 - 0x99DC)   # ... with a list in the last 4 bytes
        d[0x9BFC:0x9C00] = b"\x11\x11\x22\x22"
    path = mutate(tmp_path, "list.rom", edit, VGA)
    assert_one_line_error(run_bootforge("inspect", path), str(path), "offset 0x9c00",
                          "device list runs past the end of the image")


def test_efi_image_offset_at_no_pe_is_a_defect(tmp_path):
    path = mutate(tmp_path, "pe.rom", lambda d: put16(d, 147 * 512 + 0x16, 0xF000))
    proc = run_bootforge("inspect", "--json", path)
    assert proc.returncode == 1 and "expected 'MZ'" in proc.stdout


def test_chain_off_the_end_without_last_bit(tmp_path):
    # pxe-e1000.rom with the last bit cleared and a second image claimed by
    # appending half a header: the chain runs off the end of the file.
    def edit(d):
        d[0x1C + 0x15] = 0
        d += b"\x55\xaa\x01"
    path = mutate(tmp_path, "offend.rom", edit, f"{IPXE_DIR}/pxe-e1000.rom")
    # Image 0 reads (its checksum now off by the cleared bit); the half image is the defect.
    proc = run_bootforge("inspect", path)
    assert proc.returncode == 1 and proc.stderr == ""
    assert ("image 1 at 0x12600: cannot be read (file offset 0x12600): image 1 truncated: 3 bytes where "
            "a ROM header needs 28") in proc.stdout


def test_absurd_device_list_is_bounded(tmp_path):
    # A device list of 1,000 nonzero ids inside a 4 KiB image: refused, not walked forever.
    data = bytearray(4096)
    data[:3] = b"\x55\xaa\x08"
    put16(data, 0x18, 0x1C)
    data[0x1C:0x1C + 0x1C] = b"PCIR" + struct.pack("<HHHHB3sHHBBHHH", 0x8086, 0x100E, 0x1C, 0x1C, 3,
                                                   b"\0\0\2", 8, 0, 0, 0x80, 8, 0, 0)
    data[0x38:0x38 + 2000] = b"\x01\x10" * 1000
    path = tmp_path / "devs.rom"
    path.write_bytes(data)
    assert_one_line_error(run_bootforge("inspect", path), str(path), "more than 256 entries")


@pytest.mark.parametrize("content", [b"", b"\x7fELF" + bytes(60), b"hello world\n", b"\x55"])
def test_not_a_rom(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    assert_one_line_error(run_bootforge("inspect", path), str(path), "offset 0x")


def test_missing_file_and_directory(tmp_path):
    assert_one_line_error(run_bootforge("inspect", tmp_path / "nope.rom"), "nope.rom", "No such file")
    assert_one_line_error(run_bootforge("inspect", tmp_path), str(tmp_path), "directory")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_never_crashes(tmp_path, data):
    """Any byte flips in a real ROM give exit 0, 1 or 2 and never a traceback."""
    source = data.draw(st.sampled_from([E1000, f"{SEABIOS_DIR}/vgabios-stdvga.bin"]))
    rom = bytearray(Path(source).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, min(len(rom) - 1, 0x600)) | st.integers(147 * 512, 147 * 512 + 0x60)
                       if source == E1000 else st.integers(0, len(rom) - 1))
        if at < len(rom):
            rom[at] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.rom"
    path.write_bytes(rom)
    status, err = inspect_inprocess(path)
    assert status in (0, 1, 2)
    if status == 2:
        assert len(err.strip().splitlines()) == 1


def test_a_bad_later_image_blocks_only_itself(tmp_path):
    """efi-e1000.rom with image 1's PCIR image length sent past the end of the file: image 0
    is inspected, extracted and patched as before; image 1 is a defect (exit 1) and an error
    when asked for by number."""
    path = mutate(tmp_path, "runs-off.rom", lambda d: put16(d, 147 * 512 + 0x1C + 0x10, 400))
    proc = run_bootforge("inspect", path)
    assert proc.returncode == 1 and proc.stderr == ""
    assert ("image 1 at 0x12600: cannot be read (file offset 0x1262c): PCIR image length 204800 bytes "
            "runs past the end of the file (174592 bytes left)") in proc.stdout
    assert "SeaBIOS                   runs: runs on a PCI device with ids 8086:100e" in proc.stdout
    image0 = tmp_path / "image0.bin"
    run_bootforge("extract", "--image", "0", path, "-o", image0, check=0)
    assert image0.read_bytes() == Path(E1000).read_bytes()[:147 * 512]
    assert_one_line_error(run_bootforge("extract", "--image", "1", path, "-o", tmp_path / "x"),
                          str(path), "offset 0x1262c", "image 1 cannot be read")
    assert_one_line_error(run_bootforge("extract", path, "-o", tmp_path / "x"), "2 images", "--image N")
    assert_one_line_error(run_bootforge("patch", "--vendor-id", "1234", path, "-o", tmp_path / "x"),
                          "image 1 at 0x12600: cannot be read", "give --image N")
    assert not (tmp_path / "x").exists()
    run_bootforge("patch", "--image", "0", "--vendor-id", "1234", path, "-o", tmp_path / "p.rom", check=0)
    assert struct.unpack_from("<H", (tmp_path / "p.rom").read_bytes(), 0x1C + 4)[0] == 0x1234
