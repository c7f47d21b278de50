"""The recipe schema (bootforge.schema): one size syntax, and every recipe table's keys declared as
Fields that validation and `build --help` both read."""

import pytest

from bootforge.errors import RecipeError
from bootforge.image import recipe as image_recipe
from bootforge.loader.platforms import resolve
from bootforge.schema import Field, parse_size, validate
from bootforge.uki import build as uki_build
from conftest import assert_one_line_error, run_bootforge

MIB = 1 << 20


@pytest.mark.parametrize("text,size", [
    (4096, 4096), ("4096", 4096), ("64K", 64 << 10), ("64KiB", 64 << 10), ("256M", 256 * MIB),
    ("256 MB", 256 * MIB), ("3.5G", 7 << 29), ("1T", 1 << 40), ("0", 0),
])
def test_parse_size_bare_number_is_bytes(text, size):
    assert parse_size(text, "image") == size


@pytest.mark.parametrize("text", ["64Q", "", "M", "1.3M", "0.5", -1, True, 2.0, None, "1e6"])
def test_parse_size_refuses_what_is_not_whole_bytes(text):
    with pytest.raises(RecipeError, match=r'^\[image\] size must be a number of bytes or like "64M"'):
        parse_size(text, "image")


def test_platform_memory_keeps_qemus_mib():
    """`:<mem>` is QEMU's -m: a bare number is MiB (qemu-options.hx), so :256 is :256M."""
    bare, unit = resolve("qemu-pc-seabios:256"), resolve("qemu-pc-seabios:256M")
    assert bare.memory_bytes == unit.memory_bytes == 256 * MIB
    assert bare.memory_map.ranges == unit.memory_map.ranges
    assert resolve("qemu-q35-ovmf:1G").memory_bytes == resolve("qemu-q35-ovmf:1024").memory_bytes == 1 << 30
    with pytest.raises(RecipeError, match="bare number is MiB"):
        resolve("qemu-pc-seabios:lots")


def test_size_field_checks_bytes_against_its_bounds():
    f = Field("size", (int, str), None, "", text="size", min=1, max=1 << 20)
    assert validate({"size": "1K"}, (f,), "t") == {"size": 1024}
    for bad in ("2M", 0):
        with pytest.raises(RecipeError, match=r"^\[t\] size must be"):
            validate({"size": bad}, (f,), "t")


def test_build_help_lists_every_image_and_uki_key():
    out = run_bootforge("build", "--help", check=0).stdout
    assert "see README.md" not in out
    sections = {"[uki] keys:": uki_build.UKI_FIELDS, "[image] keys:": image_recipe.IMAGE_FIELDS,
                "[[image.entries]] keys:": image_recipe.ENTRY_FIELDS,
                "[[image.entries.modules]] keys:": image_recipe.MODULE_FIELDS,
                "[[image.files]] keys:": image_recipe.FILE_FIELDS}
    for title, fields in sections.items():
        body = out.split(title, 1)[1].split("\n\n", 1)[0]
        keys = [line.split()[0] for line in body.splitlines() if line.startswith("  ") and line[2] != " "]
        assert keys == [f.name for f in fields], title
    text = " ".join(out.split())
    for suffix, table in ((".rom", "[rom]"), (".elf", "[kernel]"), (".efi", "[uki]"), (".iso", "[image]")):
        assert f"{suffix} ({table})" in text or f"{suffix}/" in text, suffix     # the default output names


@pytest.mark.parametrize("extra,message", [
    ('timeout = "x"', "[image] timeout must be an integer in [0, 0xe10], not 'x'"),
    ("timeout = 3601", "[image] timeout must be an integer in [0, 0xe10], not 3601"),
    ('size = "64Q"', '[image] size must be a number of bytes or like "64M", not \'64Q\''),
    ("size = 0", "[image] size must be a number of bytes"),
    ('format = "vhd"', "[image] format must be one of iso, disk, not 'vhd'"),
    ("output = 5", "[image] output must be a path (a string), not 5"),
    ("sizes = 1", "[image] unknown key(s): sizes"),
])
def test_image_table_is_validated_by_its_fields(tmp_path, extra, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[image]\nloader = "grub"\n{extra}\n[[image.entries]]\nkernel = "k"\n')
    assert_one_line_error(run_bootforge("build", recipe), message)


@pytest.mark.parametrize("entry,message", [
    ('kernel = 5', "[image.entries 0] kernel must be a path (a string), not 5"),
    ('kernel = "k"\nprotocol = "chainload"', "[image.entries 0] protocol must be one of multiboot1, multiboot2"),
    ('kernel = "k"\ncmdline = 3', "[image.entries 0] cmdline must be a string, not 3"),
    ('kernel = "k"\n[[image.entries.modules]]\nloader_path = "/x"',
     "[image.entries 0 module 0] path is required"),
])
def test_image_entries_are_validated_by_their_fields(tmp_path, entry, message):
    (tmp_path / "k").write_bytes(b"\0" * 64)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[image]\nloader = "grub"\n[[image.entries]]\n{entry}\n')
    assert_one_line_error(run_bootforge("build", recipe), message)


@pytest.mark.parametrize("keys,message", [
    ('kernel = "k"\ncmdline = 5', "[uki] cmdline must be a string, not 5"),
    ('kernel = "k"\ninitrd = 5', "[uki] initrd must be an array or string, not 5"),
    ('stub = "/x"', "[uki] kernel is required"),
    ('kernel = "k"\nsplash = 1', "[uki] splash must be a path (a string), not 1"),
])
def test_uki_table_is_validated_by_its_fields(tmp_path, keys, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[uki]\n{keys}\n")
    assert_one_line_error(run_bootforge("build", recipe), message)
