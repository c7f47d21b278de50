"""U-Boot's bootm decoders as bootforge models them (bootforge/fdtboot/kernels.py: gunzip,
.lzma and LZ4 frames into CONFIG_SYS_BOOTM_LEN), on the compressed uImages real U-Boot booted
(tests/data/uboot-bootm-compressed/, see its cases.json), with headers changed the way the fuzz
harness (tests/fuzz/fuzz_fit.py) changed them. No boots (tests/test_uboot_qemu.py has them); `load`
runs QEMU only for the machine's DTB (dumpdtb).
"""

import os
import struct
import subprocess
import sys
import zlib

from bootforge.fdtboot import kernels
from bootforge.inspect import inspect_data
from conftest import DATA, REPO, assert_one_line_error, require, run_bootforge

CASES = DATA / "uboot-bootm-compressed"
SYS_BOOTM_LEN = 0x4000000      # Debian's qemu_arm64 CONFIG_SYS_BOOTM_LEN


def with_data(uimage, body):
    """*uimage*'s header over *body*, ih_size and both CRCs made right (as mkimage writes them)."""
    header = bytearray(uimage[:64])
    struct.pack_into(">I", header, 4, 0)
    struct.pack_into(">I", header, 12, len(body))
    struct.pack_into(">I", header, 24, zlib.crc32(body))
    struct.pack_into(">I", header, 4, zlib.crc32(header))
    return bytes(header) + body


def lzma_with_dictionary(size):
    """lzma.uImage (booted: 872 bytes at ih_load) with its .lzma header's dictionary size set to *size*."""
    real = (CASES / "lzma.uImage").read_bytes()
    body = real[64:]
    return real, with_data(real, body[:1] + struct.pack("<I", size) + body[5:])


ADDRESS_SPACE = 1 << 30       # the CLI's whole address space in these runs: 16 times the cap


def bootforge_in_address_space(*args, cache=None):
    """The real CLI in a subprocess whose address space is capped (RLIMIT_AS): an allocation sized
    by an unchecked field fails there as a MemoryError traceback. *cache*: an empty
    BOOTFORGE_CACHE, so the machine DTB is dumped by QEMU under the same cap."""
    script = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE})); "
              "from bootforge.cli import cli; sys.exit(cli.main(prog_name='bootforge'))")
    env = dict(os.environ, BOOTFORGE_CACHE=str(cache)) if cache is not None else None
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env=env)


def test_lzma_dictionary_size_allocates_nothing_beyond_the_cap(tmp_path):
    # The .lzma header's 4-byte dictionary size is the stream's claim, not U-Boot's buffer: liblzma
    # allocated it whole (4 GiB) before decoding (found by tests/fuzz/fuzz_fit.py under its cap).
    real, huge = lzma_with_dictionary(0xFFFFFFFF)
    path = tmp_path / "lzma-4g-dictionary.uImage"
    path.write_bytes(huge)
    proc = bootforge_in_address_space("inspect", "--json", path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # A dictionary holding the whole output decodes the bytes the real stream (64 MiB dictionary) gave.
    expected = kernels.bootm_loaded_bytes(real, SYS_BOOTM_LEN)
    assert len(expected) == 872
    assert kernels.bootm_loaded_bytes(huge, SYS_BOOTM_LEN) == expected
    assert '"decompressed_size": 872' in proc.stdout


def test_decompression_bombs_stop_at_the_cap(tmp_path):
    # The captures with more than 64 MiB of output (U-Boot: "<name> compressed: uncompress error N")
    # are refused by load in one line within the capped address space, the machine's DTB included:
    # each run starts from an empty cache, so QEMU's dumpdtb runs under the cap too.
    require("qemu-system-aarch64")
    for name in ("gzip-too-large", "lzma-too-large", "lz4-too-large"):
        proc = bootforge_in_address_space("load", "--platform", "qemu-virt-aarch64:512M", "--loader", "uboot-bootm",
                                          CASES / f"{name}.uImage", cache=tmp_path / name)
        assert_one_line_error(proc, f"{name}.uImage", "more than CONFIG_SYS_BOOTM_LEN (0x4000000 bytes)")


def test_compression_number_no_uboot_names(tmp_path):
    # ih_comp is any byte: one U-Boot has no name for reaches image_decomp's default case, as lzo and
    # zstd do on Debian's build ("Unimplemented compression type 6" observed for zstd: zstd.console).
    real = (CASES / "gzip.uImage").read_bytes()
    header = bytearray(real[:64])
    header[31] = 124
    odd = with_data(bytes(header), real[64:])
    doc = inspect_data("odd.uImage", odd, None).to_json()
    bootm = next(v for v in doc["verdicts"] if v["subject"] == "uboot-bootm")
    assert (bootm["ok"], bootm["words"]) == (False, "Unimplemented compression type 124")
    path = tmp_path / "odd.uImage"
    path.write_bytes(odd)
    proc = run_bootforge("load", "--platform", "qemu-virt-aarch64:512M", "--loader", "uboot-bootm", path)
    assert_one_line_error(proc, "odd.uImage", "no type 124 decompressor")
