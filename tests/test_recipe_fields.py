"""Recipe fields and help: every key of [rom], [[rom.images]], [kernel]
and its sub-tables is checked against one declared schema (bootforge/schema.py Field):
a wrong value is one line naming the recipe, the key and what was expected, exit 2, and
nothing is written. The cases are the classes the recipe fuzz campaign found."""

import pytest

from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge

STUB = BUILD / "stubs" / "hello-rom.elf"
KERNEL_STUB = BUILD / "stubs" / "mbdump.elf"

ROM = """[rom]
vendor_id = 0x8086
device_ids = [0x100e]
{rom}
[[rom.images]]
type = "stub"
stub = "{stub}"
init = "init_entry"
{image}
"""
KERNEL = """[kernel]
input = "{stub}"
protocol = "multiboot2"
{kernel}
[kernel.multiboot2]
{mb2}
"""


def build(tmp_path, text):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    out = tmp_path / "out.bin"
    proc = run_bootforge("build", recipe, "-o", out)
    assert not out.exists()
    return recipe, proc


@pytest.mark.parametrize("rom,image,words", [
    ("", 'product = 5', "[rom.images 0] product must be an ASCII string"),
    ("", 'manufacturer = "Ünï Corp"', "[rom.images 0] manufacturer must be an ASCII string"),
    ("", 'device_type = [2, 0]', "[rom.images 0] device_type must be an array of 3 integers (exactly 3)"),
    ("", 'device_type = [2, 0, 256]', "[rom.images 0] device_type must be an array of 3 integers"),
    ("", 'code_revision = 0x10000', "[rom.images 0] code_revision must be an integer in [0, 0xffff]"),
    ("code_revision = 0x10000", "", "[rom] code_revision must be an integer in [0, 0xffff]"),
    ("", 'bev = 1.5', "[rom.images 0] bev must be an integer or string"),
    ("", 'pnp_device_id = "x"', "[rom.images 0] pnp_device_id must be an integer"),
    ("vendor_id2 = 1", "", "[rom] unknown key(s): vendor_id2"),
    ('padding = "ff"', "", "[rom] padding must be an integer in [0, 0xff]"),
    ("device_ids2 = 0", 'device_ids = ["a"]', "[rom] unknown key(s): device_ids2"),
    ("", 'device_ids = ["a"]', "[rom.images 0] device_ids must be an array of integers"),
    ("", 'device_ids = [0]', "[rom.images 0] device_ids must be an array of integers"),
])
def test_rom_recipe_values(tmp_path, rom, image, words):
    require(str(STUB))
    recipe, proc = build(tmp_path, ROM.format(rom=rom, stub=STUB, image=image))
    assert_one_line_error(proc, str(recipe), words)


@pytest.mark.parametrize("body,words", [
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = {a = 1}\nstub = "x"\n',
     "[rom.images 0] type must be one of stub, rom-image, efi"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = "stub"\nstub = 1\ninit = 0\n',
     "[rom.images 0] stub must be a path (a string)"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = "rom-image"\nfile = 7\n',
     "[rom.images 0] file must be a path (a string)"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = "rom-image"\nfile = "x.rom"\nindex = "0"\n',
     "[rom.images 0] index must be an integer in [0, 0x3f]"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = "stub"\nstub = "a\\u0000b"\ninit = 0\n',
     "[rom.images 0] stub must be a path (a string) without a NUL byte"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\n[[rom.images]]\ntype = "stub"\nstub = "' + "a" * 300 + '"\ninit = 0\n',
     "[rom.images 0] stub must be a path (a string) the system can open"),
    ('[rom]\nvendor_id = 1\ndevice_ids = [2]\nimages = [5]\n', "[rom.images 0] must be a table"),
])
def test_rom_image_tables(tmp_path, body, words):
    recipe, proc = build(tmp_path, body)
    assert_one_line_error(proc, str(recipe), words)


def test_missing_stub_names_recipe_and_key(tmp_path):
    recipe, proc = build(tmp_path, ROM.format(rom="", stub="stubs/missing.elf", image=""))
    assert_one_line_error(proc, str(recipe), "[rom.images 0] stub = 'stubs/missing.elf':",
                          str(tmp_path / "stubs/missing.elf"), "does not exist")


def test_missing_kernel_input_names_recipe_and_key(tmp_path):
    recipe, proc = build(tmp_path, KERNEL.format(stub="nothing.elf", kernel="", mb2=""))
    assert_one_line_error(proc, str(recipe), "[kernel] input = 'nothing.elf':", "does not exist")


@pytest.mark.parametrize("kernel,mb2,words", [
    ("", "extra_tags = \"x\"", "[kernel.multiboot2] extra_tags must be an array of tables"),
    ("", "extra_tags = [{type = \"a\"}]", "[kernel.multiboot2.extra_tags 0] type must be an integer in [0, 0xffff]"),
    ("", "extra_tags = [{type = 11, payload = \"zz\"}]", "[kernel.multiboot2.extra_tags 0] payload must be a hex string"),
    ("", "entry_address = \"x\"", "[kernel.multiboot2] entry_address must be a boolean or integer"),
    ("", "information_request = \"x\"", "[kernel.multiboot2] information_request must be an array"),
    ("", "information_request = [1, \"x\"]", "[kernel.multiboot2] information_request must be an array of integers"),
    ("", "relocatable = {align = \"x\"}", "[kernel.multiboot2.relocatable] align must be an integer"),
    ("", "relocatable = {preference = 3}", "[kernel.multiboot2.relocatable] preference must be one of none, low, high"),
    ("", "framebuffer = 1", "[kernel.multiboot2] framebuffer must be a table"),
    ("", "bogus = 1", "[kernel.multiboot2] unknown key(s): bogus"),
    ("output = 5", "", "[kernel] output must be a path (a string)"),
    ("compress = \"zstd\"", "", "[kernel] compress must be one of none, gzip, xz"),
    ("bss_size = 0xffffffff", "", "[kernel] bss_size must be an integer in [0, 0x4000000]"),
    ("multiboot1 = {video = 5}", "", "[kernel.multiboot1] video must be a table"),
    ("multiboot1 = {page_align_modules = 1}", "", "[kernel.multiboot1] page_align_modules must be a boolean"),
])
def test_kernel_recipe_values(tmp_path, kernel, mb2, words):
    require(str(KERNEL_STUB))
    recipe, proc = build(tmp_path, KERNEL.format(stub=KERNEL_STUB, kernel=kernel, mb2=mb2))
    assert_one_line_error(proc, str(recipe), words)


def test_kernel_input_number(tmp_path):
    recipe, proc = build(tmp_path, "[kernel]\ninput = 5\n")
    assert_one_line_error(proc, str(recipe), "[kernel] input must be a path (a string), not 5")


def test_load_over_long_platform_and_number_paths(tmp_path):
    require(str(KERNEL_STUB))
    recipe = tmp_path / "l.toml"
    recipe.write_text(f'[load]\nkernel = "{KERNEL_STUB}"\nloader = "qemu-mb1"\nplatform = "{"p" * 5000}"\n')
    assert_one_line_error(run_bootforge("load", recipe), str(recipe), "platform", "longer than 4096 bytes")
    recipe.write_text(f'[load]\nkernel = 5\nloader = "qemu-mb1"\nplatform = "qemu-pc-seabios:64M"\n')
    assert_one_line_error(run_bootforge("load", recipe), str(recipe), "[load] kernel must be a string")


def test_build_help_lists_every_declared_key():
    from bootforge.multiboot.build import KERNEL_FIELDS, MB2_FIELDS
    from bootforge.rom.recipe import IMAGE_FIELDS, ROM_FIELDS
    text = run_bootforge("build", "--help", check=0).stdout
    for section in ("[rom] keys", '[[rom.images]] keys, type = "stub"', "[kernel] keys",
                    "[kernel.multiboot2] keys"):
        assert section in text
    names = {f.name for f in (*ROM_FIELDS, *KERNEL_FIELDS, *MB2_FIELDS)} | \
        {f.name for fields in IMAGE_FIELDS.values() for f in fields if f.name != "type"}
    lines = text.splitlines()
    assert all(any(line.strip().startswith(name + " ") for line in lines) for name in names), \
        [n for n in names if not any(line.strip().startswith(n + " ") for line in lines)]


def test_readme_command_table_lists_every_command():
    from bootforge.cli import COMMANDS
    table = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `bootforge ")]
    for name in COMMANDS:
        # `bootforge compress` / `decompress ...` shares a row.
        assert any(f"`bootforge {name}" in row or f"/ `{name} " in row for row in table), name
