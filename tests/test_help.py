"""Every `--help` runs, and each claim a help text makes is what the registries hold:
loaders and their firmware, protocol and real-boot claims, formats, verdict names,
recipe keys, default output names. Help is generated from them, so it cannot go stale;
this test is what says so."""

import re

import click
import pytest
from click.testing import CliRunner

from bootforge.cli import cli


def _commands(group=cli, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


COMMANDS = list(_commands())


def help_text(*path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and result.exception is None, (path, result.output, result.exc_info)
    # click wraps at 80 columns and breaks words at hyphens: join the lines back.
    return re.sub(r"\s+", " ", re.sub(r"-\n\s+", "-", result.output))


def section(text, title, until=None):
    """The text of the help section *title* up to the heading *until* (or the end)."""
    start = text.index(title + ":") + len(title) + 1
    return text[start:text.index(until + ":", start)] if until else text[start:]


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_help_runs(path):
    assert "Usage: " in help_text(*path)


def test_top_level_help_lists_every_command():
    text = help_text()
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert f" {path[0]} " in text, path


def test_load_help_states_each_policy_as_declared():
    from bootforge.loader.policies import POLICIES
    from bootforge.verify.run import verifiable_loaders, verify_medium
    text = help_text("load")
    loaders = section(text, "Loaders (--loader, [load] loader)", "[load.options] (per loader)")
    verifiable = verifiable_loaders()
    names = list(POLICIES.names())
    for i, name in enumerate(names):
        start = loaders.index(f" {name} " if i else f"{name} ")
        end = loaders.index(f" {names[i + 1]} ", start) if i + 1 < len(names) else len(loaders)
        row = loaders[start:end]
        p = POLICIES.get(name)
        assert f"; {'/'.join(p.firmware).upper()}, {p.protocol};" in row, row
        boots = "`bootforge verify` boots it under the real loader" in row
        assert boots == (name in verifiable), row
        if boots:
            assert f"({verify_medium(name)})" in row
        if not boots:
            assert ("checked against the real loader" in row) == p.verified, row
        assert "not checked against a real loader" not in row
    for option in (o for p in POLICIES.values() for o in p.options):
        assert f"{option.name} (" in section(text, "[load.options] (per loader)")
    from bootforge.memmap.formats import load_output_names
    choices = re.search(r"--map-format \[([^\]]+)\]", text).group(1).split("|")
    assert choices == load_output_names()


def test_verify_help_lists_the_loaders_verify_boots():
    from bootforge.verify.run import verifiable_loaders
    listed = section(help_text("verify"), "Loaders verify boots (--loader)")
    found = [n for n in re.findall(r"(?:^| )([a-z0-9]+(?:-[a-z0-9]+)+) ", listed)
             if n in set(verifiable_loaders())]
    assert found == verifiable_loaders()


def test_help_says_which_linux_loaders_verify_boots_from_images():
    """The Linux policies verify boots from an image's entry (no medium of their own) are listed
    in verify's help and said so in load's, from the policy registry."""
    from bootforge.verify.run import image_linux_loaders
    loaders = image_linux_loaders()
    assert {"grub-pc-linux", "limine-linux", "linux-efi-stub"} <= set(loaders)
    listed = section(help_text("verify"), "Linux loaders verify boots from an image's entry")
    assert [n for n in re.findall(r"(?:^| )([a-z0-9]+(?:-[a-z0-9]+)+) ", listed) if n in set(loaders)] == loaders
    load_help = " ".join(help_text("load").split())
    for name in loaders:
        assert f"{name} " in load_help
        row = load_help[load_help.index(f" {name} "):]
        assert row.split("; ")[2].startswith("`bootforge verify` boots it from an image's Linux entry"), row[:300]


def test_inspect_help_names_the_formats_and_kernel_loaders():
    from bootforge.inspect import format_names
    from bootforge.multiboot.verdicts import KERNEL_LOADERS
    text = help_text("inspect")
    formats = section(text, "--format names", "--check loaders (kernel loader verdicts)").strip()
    assert formats.split(", ") == format_names()
    checks = section(text, "--check loaders (kernel loader verdicts)")
    for name, v in KERNEL_LOADERS.items():
        assert f"{name} {v.protocol}: " in checks


def test_memmap_help_lists_the_registry():
    from bootforge.memmap.formats import input_names, output_names, registry
    text = help_text("memmap")
    for f in registry().values():
        assert f" {f.name} {f.help}" in text
    convert = help_text("memmap", "convert")
    assert "Output format: " + ", ".join(output_names()) + "." in convert
    assert "Format of IN: " + ", ".join(input_names()) + "." in convert


def test_build_help_names_each_recipe_key():
    from bootforge.multiboot import build as kernel
    from bootforge.rom import recipe as rom
    text = help_text("build")
    for fields in (rom.ROM_FIELDS, kernel.KERNEL_FIELDS, kernel.MB1_FIELDS, kernel.MB2_FIELDS):
        for f in fields:
            assert f" {f.name} {f.kind()}: " in text, f.name
    from bootforge.commands import build
    options = text[text.index("Options:"):]
    for kind, suffix in build.DEFAULT_SUFFIX.items():
        assert f"{suffix} ([{kind}])" in options, f"build --help does not name the default {suffix} of [{kind}]"
