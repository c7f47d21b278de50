"""One decompression path (bootforge.compress.streams) with one limit: inspect, load, verify and
build refuse a gzip bomb alike, in one line, before allocating what it claims."""

import gzip
import lzma
import zlib

import pytest

from bootforge.compress import streams
from bootforge.errors import FormatError, LimitError
from conftest import DATA, assert_one_line_error, run_bootforge

KERNEL = (DATA / "load-root" / "boot" / "kernel").read_bytes()
TOO_BIG = f"decompresses to more than {streams.MAX_DECOMPRESSED} bytes"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A gzip file of the limit plus 1 MiB of zeros (about 270 KiB), written chunk by chunk."""
    path = tmp_path_factory.mktemp("bomb") / "kernel.gz"
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(z.compress(KERNEL))
        for _ in range((streams.MAX_DECOMPRESSED >> 20) + 1):
            f.write(z.compress(zero))
        f.write(z.flush())
    return path


def test_unpack_gzip_xz_and_plain():
    assert streams.unpack(gzip.compress(KERNEL, mtime=0)) == ("gzip", KERNEL)
    assert streams.unpack(lzma.compress(KERNEL, format=lzma.FORMAT_XZ)) == ("xz", KERNEL)
    assert streams.unpack(KERNEL) == (None, KERNEL)
    with pytest.raises(FormatError, match="truncated gzip stream"):
        streams.unpack(gzip.compress(KERNEL)[:-20])


def test_the_limit_is_checked_before_the_output_is_allocated(bomb):
    with pytest.raises(LimitError, match=TOO_BIG):
        streams.unpack(bomb.read_bytes())


def test_inspect_load_verify_and_build_refuse_a_gzip_bomb_alike(bomb, tmp_path):
    assert_one_line_error(run_bootforge("inspect", bomb), TOO_BIG)
    assert_one_line_error(run_bootforge("load", bomb, "--platform", "qemu-pc-seabios:256M",
                                        "--loader", "grub-pc-mb2"), str(bomb), TOO_BIG)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{bomb}"\nplatform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    assert_one_line_error(run_bootforge("verify", "-q", recipe), TOO_BIG)
    image = tmp_path / "i.toml"
    image.write_text(f'[image]\nloader = "grub"\noutput = "os.iso"\n[[image.entries]]\nkernel = "{bomb}"\n')
    assert_one_line_error(run_bootforge("build", image), TOO_BIG)
    assert not (tmp_path / "os.iso").exists()
