"""Errors as every command reports them: one stderr line naming the file (and the offset),
exit 2, and with --json the error document {"error": {"file", "offset", "message"}} on stdout."""

import json

import pytest
from conftest import DATA, assert_one_line_error, require, run_bootforge

IPXE_ISO = "/usr/lib/ipxe/ipxe.iso"


@pytest.fixture
def truncated_iso(tmp_path):
    """Debian's ipxe.iso cut at 300000 bytes: its El Torito boot image lies past the end."""
    require(IPXE_ISO)
    path = tmp_path / "cut.iso"
    with open(IPXE_ISO, "rb") as f:
        path.write_bytes(f.read(300000))
    return path


# Every command that reads a file and sniffs or parses it, with what it needs besides the file.
FILE_COMMANDS = [
    ("inspect",), ("memmap", "show"), ("memmap", "verify"), ("memmap", "convert", "--to", "json"),
    ("load",), ("verify",), ("build",), ("patch", "--vendor-id", "1", "-o", "OUT"), ("extract", "-o", "OUT"),
    ("compress", "-o", "OUT"), ("decompress", "-o", "OUT"),
]


@pytest.mark.parametrize("command", FILE_COMMANDS, ids=" ".join)
def test_missing_file_is_named_as_missing(tmp_path, command):
    """A file that is not there is "No such file or directory", never "cannot tell the format"."""
    missing = tmp_path / "nothere"
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    proc = run_bootforge(*args, missing)
    assert_one_line_error(proc, f"{missing}: No such file or directory")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [("load",), ("verify",)], ids=" ".join)
def test_image_errors_name_the_file(truncated_iso, command):
    proc = run_bootforge(*command, truncated_iso)
    assert_one_line_error(proc, f"{truncated_iso}: offset 0x10800: El Torito")


JSON_COMMANDS = [("inspect", "--json"), ("load", "--json"), ("verify", "--json"), ("build", "--json"),
                 ("memmap", "verify", "--json")]


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=" ".join)
def test_json_error_document_on_stdout(tmp_path, truncated_iso, command):
    missing = tmp_path / "nothere"
    proc = run_bootforge(*command, missing)
    assert_one_line_error(proc, str(missing))
    doc = json.loads(proc.stdout)
    if command[0] == "inspect":         # one entry per file named, carrying the same document
        assert doc["file"] == str(missing)
    assert doc["error"] == {"file": str(missing), "offset": None, "message": "No such file or directory"}


@pytest.mark.parametrize("command", [("load", "--json"), ("verify", "--json"), ("inspect", "--json")],
                         ids=" ".join)
def test_json_error_document_carries_the_offset(truncated_iso, command):
    proc = run_bootforge(*command, truncated_iso)
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["file"] == str(truncated_iso) and error["offset"] == 0x10800
    assert error["message"].startswith("El Torito x86 BIOS entry points at sector 466, past the end")
    assert proc.stderr.strip() == (f"bootforge: error: {truncated_iso}: offset 0x10800: {error['message']}")


def test_json_usage_error_is_a_document_too():
    proc = run_bootforge("load", "--json", "--firmware", "bogus", "x.toml")
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["file"] is None and "'--firmware'" in error["message"] and "bogus" in error["message"]


def test_inspect_check_of_a_non_kernel_gets_its_json_entry():
    rom = "/usr/share/seabios/vgabios-stdvga.bin"
    require(rom)
    proc = run_bootforge("inspect", "--json", "--check", "grub-mb2", rom)
    assert_one_line_error(proc, "not a kernel (option-rom)")
    assert json.loads(proc.stdout) == {"file": rom, "error": {
        "file": rom, "offset": None, "message": "--check grub-mb2: not a kernel (option-rom)"}}


def test_missing_platform_file_is_named_as_missing(tmp_path):
    missing = tmp_path / "host.e820"
    proc = run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--platform", missing)
    assert_one_line_error(proc, f"platform map file {missing}: No such file or directory")
    # A name that is no platform and no path is still "unknown platform".
    assert_one_line_error(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--platform", "bogus"),
                          "unknown platform 'bogus'")


@pytest.mark.parametrize("option", ["--secureboot-vars", "--db"])
def test_inspect_secure_boot_inputs_that_are_unusable_get_the_error_document(tmp_path, option):
    """inspect's own inputs besides FILES (an OVMF VARS store, a db certificate) are files too: a
    bad one is one stderr line and, with --json, the error document naming it, exit 2."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a VARS store or a certificate\n" * 4)
    target = DATA / "limine-seabios-mb1-256M-mods3-1m.dump"
    proc = run_bootforge("inspect", "--json", option, bad, target)
    assert_one_line_error(proc, str(bad))
    error = json.loads(proc.stdout)["error"]
    assert error["file"] == str(bad) and error["message"]
