import json
import sys
import tomllib
from pathlib import Path

import click

from bootforge.errors import BootforgeError, RecipeError
from bootforge.fileio import read_input, write_atomic
from bootforge.commands.fdt import build_dts, dts_options, is_dts_source

# Top-level recipe table -> "module:function". A ROM builder returns (bytes, summary)
# and this command writes the bytes; the kernel builder writes its own output
# (bootforge.fileio.write_atomic) and returns the summary.
BUILDERS = {
    "rom": "bootforge.rom.recipe:build_rom_recipe",
    "kernel": "bootforge.multiboot.build:build_kernel_recipe",
    "uki": "bootforge.uki.build:build_uki_recipe",
    "image": "bootforge.image.build:build_image_recipe",
    "fit": "bootforge.fdtboot.fit_build:build_fit_recipe",
    "linux_image": "bootforge.fdtboot.image_build:build_linux_image_recipe",
    "dtb": "bootforge.fdt.dts_compile:build_dtb_recipe",
}
DEFAULT_SUFFIX = {"rom": ".rom", "kernel": ".elf", "uki": ".efi", "image": ".iso", "fit": ".itb",
                  "linux_image": ".Image", "dtb": ".dtb"}


class BuildCommand(click.Command):
    """`build --help` lists every key of the [rom], [kernel], [uki] and [image] recipes from their
    declarations (bootforge.schema.Field tables in rom/recipe.py, multiboot/build.py, uki/build.py
    and image/recipe.py), the tables validation reads; imported only when help is asked for."""

    def format_epilog(self, ctx, formatter):
        from bootforge.image import recipe as image
        from bootforge.multiboot import build as kernel
        from bootforge.rom import recipe as rom
        from bootforge.uki import build as uki

        def section(title, fields):
            with formatter.section(title):
                formatter.write_dl([(f.name, f"{f.kind()}: {f.meaning}") for f in fields])
        section("[rom] keys", rom.ROM_FIELDS)
        for kind, fields in rom.IMAGE_FIELDS.items():
            section(f'[[rom.images]] keys, type = "{kind}"', fields[1:])
        section("[kernel] keys", kernel.KERNEL_FIELDS)
        section("[kernel.multiboot1] keys", kernel.MB1_FIELDS)
        section("[kernel.multiboot2] keys (header tags)", kernel.MB2_FIELDS)
        section("[kernel.testing] keys", kernel.TESTING_FIELDS)
        section("[uki] keys", uki.UKI_FIELDS)
        section("[image] keys", image.IMAGE_FIELDS)
        section("[[image.entries]] keys", image.ENTRY_FIELDS)
        section("[[image.entries.modules]] keys", image.MODULE_FIELDS)
        section("[[image.files]] keys", image.FILE_FIELDS)


@click.command("build", cls=BuildCommand)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: the recipe's "
              "output key, else RECIPE's name with " + ", ".join(f"{s} ([{k}])" for k, s in DEFAULT_SUFFIX.items())
              + " in the current directory).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of what was built.")
@click.option("--sha256", "sha256", is_flag=True, help="[image]: put the SHA-256 of the written image in the "
              "summary (hashed while it is written; not by default: for a large image it costs more than the "
              "writing).")
@dts_options
def build_command(recipe, output, as_json, sha256, **dtc):
    """Build an option ROM, a Multiboot kernel, a UKI or a bootable ISO/disk image from a TOML RECIPE."""
    import importlib

    path = Path(recipe)
    if is_dts_source(recipe):       # DTS source (or `-` holding it): dtc's job, with dtc's options
        return build_dts(recipe, output, as_json, dtc)
    try:
        table = tomllib.loads(read_input(path).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"not valid TOML: {exc}", path=path) from None
    kinds = [k for k in BUILDERS if k in table]
    if len(kinds) != 1 or set(table) - set(BUILDERS):
        raise RecipeError(f"a recipe has exactly one top-level table, one of [{'], ['.join(BUILDERS)}]; "
                          f"found {', '.join(sorted(table)) or 'none'}", path=path)
    kind = kinds[0]
    module, _, attr = BUILDERS[kind].partition(":")
    builder = getattr(importlib.import_module(module), attr)
    if output is None:
        declared = table[kind].get("output") if isinstance(table[kind], dict) else None
        # A non-string output is the builder's to refuse (its schema names the key).
        output = path.parent / declared if isinstance(declared, str) and declared else \
            Path(path.stem + DEFAULT_SUFFIX[kind])
    try:
        if kind == "rom":
            data, summary = builder(path, table)
            write_atomic(output, data)
        elif kind == "image":
            summary = builder(path, table, Path(output), sha256=sha256)
        else:
            summary = builder(path, table, Path(output))
    except BootforgeError as exc:
        raise exc.located(path=path)
    summary = {"recipe": str(path), "output": str(output), **summary}
    for warning in summary.get("warnings", []):
        click.echo(f"bootforge: warning: {path}: {warning}", err=True)
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(f"{output}: {summary.get('format', kind)}, {summary.get('size', '?')} bytes")
        for image in summary.get("images", []):
            click.echo(f"  image {image['index']} at {image['offset']:#x}: {image['image_length']} bytes, "
                       f"code type {image['code_type']}, checksum byte "
                       f"{'none' if image['checksum_offset'] is None else hex(image['checksum_offset'])}")
        if kind == "image":
            from bootforge.image.report import render_build_summary
            click.echo(render_build_summary(summary), nl=False)
