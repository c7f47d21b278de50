"""`bootforge load`'s inputs and outputs: the platform names the QEMU it models and the
i386 variant matches qemu-system-i386's captures (tests/data/mb-*-i386-*.dump, made as
tests/data/README.md says); load --json keeps the handed map under its own key; load
without a recipe; messages that name the right file."""

import json

import pytest

from conftest import DATA, REPO, assert_one_line_error, run_bootforge


def dump_json(name):
    return json.loads(run_bootforge("inspect", "--json", DATA / name, check=0).stdout)


def dump_mmap(name):
    from bootforge.memmap import io
    return [(r.start, r.size, r.type) for r in io.read_map(DATA / name, "mbdump").ranges]


def load_json(*args, check=0):
    return json.loads(run_bootforge("load", *args, "--json", check=check).stdout)


def test_qemu_i386_kernel_loader_hands_six_entries():
    observed = dump_mmap("mb-qemu-i386-mb1.dump")
    assert len(observed) == 6 and all(a < 1 << 32 for a, _s, _t in observed)
    doc = load_json("recipes/load-qemu.toml", "--platform", "qemu-pc-seabios-i386:128M")
    assert [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]] == observed
    assert doc["platform"]["qemu"] == {"binary": "qemu-system-i386", "machine": "pc", "cpu": "qemu32",
                                       "cpu_vendor": "GenuineIntel",
                                       "command": "qemu-system-i386 -machine pc -cpu qemu32 -m 128M"}
    # The x86_64 platform keeps the AMD HyperTransport hole its capture shows.
    x64 = dump_mmap("mb-qemu-mb1.dump")
    assert (0xFD00000000, 0x300000000, 2) in x64
    doc = load_json("recipes/load-qemu.toml")
    assert [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]] == x64
    assert doc["platform"]["qemu"]["binary"] == "qemu-system-x86_64" and doc["platform"]["qemu"]["cpu"] == "qemu64"


def test_grub_i386_mbi_size_and_map():
    observed = dump_json("mb-grub-pc-i386-mb2.dump")
    size = observed["multiboot2"]["total_size"]
    x64 = dump_json("mb-grub-pc-mb2.dump")["multiboot2"]["total_size"]
    assert x64 - size == 24                              # one 24-byte mmap entry fewer
    doc = load_json("recipes/load-grub-pc-mb2.toml", "--platform", "qemu-pc-seabios-i386:256M")
    assert doc["mbi"]["size"] == size
    assert [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]] == dump_mmap("mb-grub-pc-i386-mb2.dump")
    assert load_json("recipes/load-grub-pc-mb2.toml")["mbi"]["size"] == x64
    text = run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--platform", "qemu-pc-seabios-i386:256M",
                         check=0).stdout
    assert "  platform models: qemu-system-i386 -machine pc -cpu qemu32 -m 256M" in text.splitlines()


def test_handed_map_has_its_own_key(tmp_path):
    doc = load_json("recipes/load-grub-pc-mb2.toml", "--map-out", tmp_path / "map.json", "--map-format", "json")
    handed = doc["maps"]["handed-to-kernel"]["entries"]
    assert [(e["start"], e["size"], e["e820_type"]) for e in handed] == \
        [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]]
    assert len(doc["maps"]["input-retyped"]["entries"]) > len(handed)
    written = json.loads((tmp_path / "map.json").read_text())
    assert [(e["start"], e["size"]) for e in written["entries"]] == [(e["start"], e["size"]) for e in handed]


def test_load_a_kernel_without_a_recipe_equals_the_recipe():
    # recipes/load-grub-pc-mb2.toml, said on the command line instead.
    boot = REPO / "tests/data/load-root/boot"
    from_recipe = load_json("recipes/load-grub-pc-mb2.toml")
    from_args = json.loads(run_bootforge(
        "load", boot / "kernel", "--platform", "qemu-pc-seabios:256M", "--loader", "grub-pc-mb2",
        "--cmdline", "kernel-args a=b", "--module", f"{boot / 'mod1'}=mod1-args",
        "--module", f"{boot / 'mod2'}=mod2 args two", "--json", check=0).stdout)
    # The same places (the recipe names the files /boot/mod1...: only the names differ).
    assert [(p["start"], p["end"], p["rule"]) for p in from_args["placements"]] == \
        [(p["start"], p["end"], p["rule"]) for p in from_recipe["placements"]]
    assert from_args["mbi"]["mmap"] == from_recipe["mbi"]["mmap"]
    assert [(m["start"], m["end"], m["cmdline"]) for m in from_args["mbi"]["modules"]] == \
        [(m["start"], m["end"], m["cmdline"]) for m in from_recipe["mbi"]["modules"]]


def test_load_of_a_non_recipe_says_what_load_takes():
    kernel = REPO / "tests/data/load-root/boot/kernel"
    proc = run_bootforge("load", kernel)
    assert_one_line_error(proc, str(kernel), "not a [load] recipe (not UTF-8 text", "load takes a [load] recipe",
                          "--platform P --loader L")
    assert "codec" not in proc.stderr
    proc = run_bootforge("load", kernel, "--cmdline", "x")
    assert_one_line_error(proc, str(kernel), "needs --platform and --loader")
    proc = run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--module", "x")
    assert_one_line_error(proc, "recipes/load-grub-pc-mb2.toml", "go with a kernel, not a recipe")


def test_mb1_loader_on_mb2_kernel_names_the_kernel(tmp_path):
    kernel = REPO / "tests/data/load-root/boot/kernel"         # Multiboot2 only
    recipe = tmp_path / "boot.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb1"\n')
    proc = run_bootforge("load", recipe)
    assert_one_line_error(proc, f"{recipe}: kernel {kernel}: no multiboot header found")


def test_bare_json_list_map_is_told_the_shape(tmp_path):
    bare = tmp_path / "map.json"
    bare.write_text('[{"start": 0, "size": 4096, "type": "ram"}]\n')
    proc = run_bootforge("memmap", "show", bare)
    assert_one_line_error(proc, str(bare), "bare list", '{"family": "e820", "entries": [{"start": N')
    assert "--from" not in proc.stderr


def test_load_help_lists_the_declared_keys():
    from bootforge.loader.recipe import LOAD_FIELDS, MODULE_FIELDS
    text = run_bootforge("load", "--help", check=0).stdout
    assert "[load] keys" in text and "[[load.modules]] keys" in text
    lines = [line.strip() for line in text.splitlines()]
    for f in (*LOAD_FIELDS, *MODULE_FIELDS):
        assert any(line.startswith(f.name + " ") for line in lines), f.name
    assert "--module FILE[=STRING]" in text and "RECIPE|KERNEL" in text


def test_platform_name_longer_than_a_file_name_is_one_line(tmp_path):
    # Found by the recipe fuzzer (tests/fuzz): a 300-byte platform string made the built-in
    # profile lookup stat() a path with a component over NAME_MAX (OSError ENAMETOOLONG).
    kernel = REPO / "tests/data/load-root/boot/kernel"
    recipe = tmp_path / "boot.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "{"x" * 300}"\nloader = "grub-pc-mb2"\n')
    proc = run_bootforge("load", recipe)
    assert_one_line_error(proc, str(recipe), "platform map file", "File name too long")
