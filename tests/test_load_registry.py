"""The loader policy registry, the declared [load] schema, the one Verdict shape and the
refusal/recipe-error split, through the CLI and the Python API."""

import json

import pytest

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.loader.policies import POLICIES, policy
from bootforge.loader.recipe import read_recipe
from bootforge.multiboot.verdicts import KERNEL_LOADERS
from bootforge.rom.firmware import ROM_FIRMWARE
from conftest import DATA, assert_one_line_error, run_bootforge

ROOT = DATA / "load-root"
VERDICT_KEYS = {"subject", "ok", "severity", "reason", "words", "facts"}


def _recipe(tmp_path, body, name="r.toml"):
    p = tmp_path / name
    p.write_text(body)
    return p


def _kernel_recipe(tmp_path, extra="", loader="grub-pc-mb2", kernel="kernel"):
    return _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/{kernel}"\nplatform = "qemu-pc-seabios:256M"\n'
                             f'loader = "{loader}"\n{extra}')


def test_every_policy_defers_to_a_registered_verdict_and_names_a_firmware():
    for name, p in POLICIES.items():
        assert p.name == name
        assert p.verdict is None or p.verdict in KERNEL_LOADERS, (name, p.verdict)
        assert set(p.firmware) <= {"bios", "uefi", "fdt"} and p.firmware
        assert p.source and p.summary
        assert not p.verified or p.boot_medium, f"{name} is verified against a real loader: how is it booted?"


def test_every_boot_medium_has_a_builder():
    from bootforge.qemu.media import MEDIA
    for name, p in POLICIES.items():
        assert p.boot_medium is None or p.boot_medium in MEDIA, (name, p.boot_medium)


def test_vocabulary_policy_and_verdict_names():
    # Verdicts are <loader>-<protocol>; the GRUB policies of both firmwares defer to one verdict.
    assert {"grub-mb1", "grub-mb2", "qemu-mb1", "syslinux-mb1", "limine-mb1", "limine-mb2"} <= set(KERNEL_LOADERS.names())
    assert POLICIES.get("grub-pc-mb2").verdict == POLICIES.get("grub-efi-mb2").verdict == "grub-mb2"
    assert POLICIES.get("qemu-mb1").verdict == "qemu-mb1"
    assert {"seabios", "uefi"} <= set(ROM_FIRMWARE.names())


def test_unknown_loader_lists_the_registry():
    with pytest.raises(RecipeError, match=r"unknown loader 'grub-pc-mb3' \(known: grub-pc-mb1, grub-pc-mb2"):
        policy("grub-pc-mb3")


def test_real_loader_refusal_is_not_a_recipe_error(tmp_path):
    # The dump kernel for MB1 has no MB2 header: GRUB says "no multiboot header found" (grub_error text).
    req = read_recipe(_kernel_recipe(tmp_path, kernel="kernel-mb1"))
    with pytest.raises(LoaderRefusal) as info:
        policy("grub-pc-mb2")(req)
    assert info.value.words == "no multiboot header found" and info.value.loader == "grub-mb2"
    assert not isinstance(info.value, RecipeError)
    # Still one line, exit 2, on the command line.
    assert_one_line_error(run_bootforge("load", _kernel_recipe(tmp_path, kernel="kernel-mb1")),
                          "no multiboot header found")


def test_wrong_firmware_is_a_recipe_error(tmp_path):
    req = read_recipe(_kernel_recipe(tmp_path, loader="grub-efi-mb2"))
    with pytest.raises(RecipeError, match="grub-efi-mb2 needs an EFI platform"):
        policy("grub-efi-mb2")(req)


def test_option_defaults_come_from_the_declaration(tmp_path):
    # xen-efi's trampoline_size default (0x2000) is the declaration's, applied by run_policy.
    doc = json.loads(run_bootforge("load", "recipes/load-xen-efi.toml", "--json", check=0).stdout)
    tramp = next(p for p in doc["placements"] if p["name"].startswith("trampoline"))
    assert tramp["size"] == 0x2000
    declared = {o.name: o.default for o in POLICIES.get("xen-efi").options}
    assert declared == {"trampoline_size": 0x2000}


@pytest.mark.parametrize("extra, words", [
    ('[load.options]\nipxe_outcome = "reboot"\n', "[load.options] ipxe_outcome must be one of boot, "),
    ('[load.options]\nipxe_basemem_kib = -1\n', "[load.options] ipxe_basemem_kib must be a non-negative integer"),
    ('[load.options]\nipxe_basemem_kib = true\n', "ipxe_basemem_kib must be a non-negative integer, not True"),
    ('[load.options]\nipxe_basemem_kib = "13"\n', "ipxe_basemem_kib must be a non-negative integer, not '13'"),
    ('[load.options]\ntrampoline_size = 4096\n', "unknown key(s): trampoline_size (known for ipxe-pcbios-mb1: "),
])
def test_options_checked_against_the_policy_schema(tmp_path, extra, words):
    p = _kernel_recipe(tmp_path, extra, loader="ipxe-pcbios-mb1", kernel="kernel-mb1")
    assert_one_line_error(run_bootforge("load", p), str(p), words)


@pytest.mark.parametrize("line, words", [
    ("cmdline = 3", "[load] cmdline must be a string, not 3"),
    ("root = 7", "[load] root must be a string, not 7"),          # was a TypeError traceback
    ("modules = 5", "[load] modules must be an array, not 5"),
    ("options = 5", "[load] options must be a table, not 5"),
    ("kernal = 'x'", "[load] unknown key(s): kernal"),
])
def test_load_keys_checked_against_the_schema(tmp_path, line, words):
    p = _kernel_recipe(tmp_path, line + "\n")
    assert_one_line_error(run_bootforge("load", p), words)


def test_module_keys_checked_against_the_schema(tmp_path):
    p = _kernel_recipe(tmp_path, '[[load.modules]]\npath = 3\n')
    assert_one_line_error(run_bootforge("load", p), "[load.modules 0] path must be a string, not 3")
    p = _kernel_recipe(tmp_path, '[[load.modules]]\ncmdline = "x"\n')
    assert_one_line_error(run_bootforge("load", p), "[load.modules 0] path is required")


def test_help_lists_loaders_keys_and_options():
    text = run_bootforge("load", "--help", check=0).stdout
    for words in ("grub-efi-mb2", "ipxe-pcbios-mb1", "linux-efi-stub", "grub_cfg", "loader_path",
                  "trampoline_size (xen-efi)", "ipxe_outcome (ipxe-pcbios-mb1)", "default 0x2000"):
        assert words in text, words


def test_one_verdict_shape_in_every_json(tmp_path):
    kernel = json.loads(run_bootforge("inspect", "--json", ROOT / "boot" / "kernel", check=0).stdout)
    assert kernel["loaders"] and all(set(v) == VERDICT_KEYS for v in kernel["loaders"].values())
    assert all(name == v["subject"] for name, v in kernel["loaders"].items())
    loaded = json.loads(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--json", check=0).stdout)
    assert loaded["checks"] and all(set(c) == VERDICT_KEYS for c in loaded["checks"])
    verified = json.loads(run_bootforge("memmap", "verify", DATA / "memmap-sysfs-host", "--json",
                                        check=0).stdout)
    assert verified["checks"] and all(set(c) == VERDICT_KEYS for c in verified["checks"])


def test_policies_are_listed_in_module_order_whatever_was_imported_first():
    """A policy module imported on its own (a test importing qemu_arm's helpers) registers before
    the registry fills: the listing (help, errors) is still POLICY_MODULES' order."""
    import subprocess
    import sys
    probe = ("import importlib; from bootforge.loader.policies import POLICY_MODULES; "
             "{first}from bootforge.loader.policies import POLICIES; print(' '.join(POLICIES.names()))")
    plain = subprocess.run([sys.executable, "-c", probe.format(first="")], capture_output=True, text=True, check=True)
    last_first = subprocess.run(
        [sys.executable, "-c", probe.format(
            first="importlib.import_module('bootforge.loader.policies.' + POLICY_MODULES[-1]); ")],
        capture_output=True, text=True, check=True)
    assert plain.stdout.split()[:2] == ["grub-pc-mb1", "grub-pc-mb2"]
    assert last_first.stdout == plain.stdout


def test_a_policy_looked_up_by_name_loads_its_own_module_only():
    """POLICIES.get(name) imports the module named after the policy (module_named_after) and no
    other: the image builder's verdict check (image/recipe.py verdict_for) then loads one policy
    module, not every one. Every bootloader's policy lives in the module named after it (any other
    name is still found: Registry.get falls back to every module)."""
    import subprocess
    import sys

    from bootforge.bootloaders import BOOTLOADERS
    from bootforge.loader.policies import POLICIES, module_named_after
    for b in BOOTLOADERS.values():
        for name in b.policies.values():
            assert POLICIES.get(name).load.__module__ == f"bootforge.loader.policies.{module_named_after(name)}", name
    probe = ("import sys; from bootforge.loader.policies import POLICIES; v = POLICIES.get('grub-pc-mb2').verdict; "
             "print(v, sorted(m for m in sys.modules if m.startswith('bootforge.loader.policies.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == POLICIES.get("grub-pc-mb2").verdict
    assert eval(out[1]) == ["bootforge.loader.policies.common", "bootforge.loader.policies.grub_pc"]
