"""Inputs and outputs as a user meets them (issue 15 items 20, 21, 31, 32): standard input
read once, pipes and devices capped, every file named gets a JSON entry, a closed pipe
is not "defects found", a test header offset cannot grow a kernel without bound."""

import json
import resource
import subprocess
import sys
from pathlib import Path

from conftest import BUILD, DATA, REPO, assert_one_line_error, require, run_bootforge
from romcorpus import IPXE_DIR

BOOTFORGE = [sys.executable, "-m", "bootforge"]
DMESG = DATA / "memmap-dmesg-host.txt"


def run_bytes(*args, stdin=None, limit_memory=None):
    def cap():
        if limit_memory:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))
    return subprocess.run([*BOOTFORGE, *map(str, args)], input=stdin, capture_output=True, cwd=REPO,
                          preexec_fn=cap)


# -- item 20: standard input, read once --------------------------------------

def test_memmap_show_reads_dash_and_pipes_once_without_from():
    from_file = run_bootforge("memmap", "show", DMESG, check=0).stdout
    assert "5 ranges (e820)" in from_file
    for name in ("-", "/dev/stdin"):
        proc = run_bytes("memmap", "show", name, stdin=DMESG.read_bytes())
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.decode() == from_file


def test_binary_map_from_stdin_round_trips():
    e820 = run_bootforge("memmap", "convert", DMESG, "--to", "json", check=0).stdout
    binary = run_bytes("memmap", "convert", DMESG, "--to", "e820-bin").stdout
    back = run_bytes("memmap", "convert", "-", "--from", "e820-bin", "--to", "json", stdin=binary)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["entries"] == json.loads(e820)["entries"]


def test_inspect_and_patch_take_dash():
    rom = Path(f"{IPXE_DIR}/pxe-e1000.rom")
    require(str(rom))
    expected = json.loads(run_bootforge("inspect", "--json", rom, check=0).stdout)
    proc = run_bytes("inspect", "--json", "-", stdin=rom.read_bytes())
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["file"] == "-" and {**got, "file": str(rom)} == expected
    # patch - -o -: the ROM bytes on stdout, the report on stderr.
    proc = run_bytes("patch", "-", "-o", "-", "--device-id", "100f", stdin=rom.read_bytes())
    assert proc.returncode == 0 and "device_id 0x100e -> 0x100f" in proc.stderr.decode()
    assert len(proc.stdout) == rom.stat().st_size and proc.stdout[0x22] == 0x0F


# -- item 32: devices and pipes never exhaust memory -------------------------

def test_inspect_dev_zero_stops_at_the_cap_in_bounded_memory():
    proc = run_bytes("inspect", "/dev/zero", limit_memory=1 << 30)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "MemoryError" not in err
    assert "/dev/zero" in err and "not a regular file" in err and "at most 256 MiB" in err


def test_endless_pipe_is_capped():
    with subprocess.Popen(["yes"], stdout=subprocess.PIPE) as yes:
        proc = subprocess.run([*BOOTFORGE, "memmap", "show", "-"], stdin=yes.stdout, capture_output=True,
                              text=True, cwd=REPO)
        yes.kill()
    assert_one_line_error(proc, "-:", "at most 256 MiB from pipes and devices")


# -- item 21: every file gets an entry; a closed pipe is not exit 1 --------

def test_inspect_json_gives_a_missing_file_its_entry(tmp_path):
    rom = f"{IPXE_DIR}/pxe-e1000.rom"
    require(rom)
    missing = tmp_path / "missing.rom"
    proc = run_bootforge("inspect", "--json", rom, missing)
    assert proc.returncode == 2
    docs = json.loads(proc.stdout)
    assert [d["file"] for d in docs] == [rom, str(missing)]
    assert docs[0]["format"] == "option-rom" and "error" not in docs[0]
    assert docs[1] == {"file": str(missing), "error": {"file": str(missing), "offset": None,
                                                       "message": "No such file or directory"}}
    assert proc.stderr.strip() == f"bootforge: error: {missing}: No such file or directory"
    # A file that is there but unusable: its error and offset.
    junk = tmp_path / "junk.rom"
    junk.write_bytes(b"\x55\xaa" + bytes(10))
    doc = json.loads(run_bootforge("inspect", "--json", junk).stdout)
    assert doc["file"] == str(junk) and "truncated" in doc["error"]["message"] and doc["error"]["offset"] == 0


def test_closed_stdout_pipe_exits_141_quietly():
    roms = sorted(Path(IPXE_DIR).glob("*.rom"))
    require(IPXE_DIR)
    for args in (["inspect", *roms], ["inspect", "--json", *roms], ["memmap", "convert", DMESG, "--to", "json"]):
        proc = subprocess.Popen([*BOOTFORGE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=REPO)
        proc.stdout.close()        # the reader is gone before the first write, as `| head -0`
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, (args, err)
        assert err == "", err


# -- item 31: [kernel.testing] header_offset is bounded ----------------------

def test_header_offset_is_bounded(tmp_path):
    stub = BUILD / "stubs" / "mbdump.elf"
    require(str(stub))
    for offset, ok in ((0x40000000, False), (0xFFFFFFF8, False), (0x10008, False), (0x10000, True)):
        recipe = tmp_path / f"k{offset:x}.toml"
        recipe.write_text(f'[kernel]\ninput = "{stub}"\nprotocol = "multiboot2"\n'
                          f'[kernel.testing]\nheader_offset = {offset:#x}\n')
        out = tmp_path / f"k{offset:x}.elf"
        proc = run_bytes("build", recipe, "-o", out, limit_memory=1 << 30)
        if ok:
            assert proc.returncode == 0, proc.stderr
            assert out.stat().st_size < 0x30000
        else:
            proc = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                               proc.stderr.decode())
            assert_one_line_error(proc, str(recipe), "header_offset", "64 KiB")
            assert not out.exists()


def test_nul_byte_in_a_recipe_path_is_one_line(tmp_path):
    """Found by tests/fuzz/fuzz_recipes.py: os.stat raises ValueError, not OSError, on a NUL."""
    recipe = tmp_path / "nul.toml"
    recipe.write_text('[rom]\nvendor_id = 0x8086\ndevice_ids = [0x100e]\nclass_code = 0x020000\n'
                      '[[rom.images]]\ntype = "stub"\nstub = "a\\u0000b.elf"\n')
    assert_one_line_error(run_bootforge("build", recipe, "-o", tmp_path / "x.rom"), "NUL byte")
