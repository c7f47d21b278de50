"""`bootforge load`: where a loader puts a kernel, its modules and the boot information."""

import json
import sys

import click

from bootforge.errors import RecipeError
from bootforge.machines import platform_syntax
from bootforge.memmap.formats import load_output_names

# --map-format choices: the memory-map formats marked load_output in the registry (bootforge/memmap/formats/).
MAP_FORMATS = tuple(load_output_names())


def verify_claim(p, verifiable):
    """What the registry says about real boots of policy *p*, in words: `bootforge verify` boots
    it (*verifiable*: bootforge.verify.run.verifiable_loaders()), or its declaration says it is
    checked against the real loader otherwise (the fidelity matrix), or verify does not boot it."""
    # Function-level import: only for help (verifiable is computed there too).
    from bootforge.verify.run import image_linux_loaders, verify_medium
    if p.name in verifiable:
        return f"`bootforge verify` boots it under the real loader ({verify_medium(p.name)})"
    if p.name in image_linux_loaders():
        return f"`bootforge verify` boots it from {verify_medium(p.name)}"
    if p.verified:
        return "checked against the real loader; `bootforge verify` does not boot it"
    return "`bootforge verify` does not boot it"


class LoadCommand(click.Command):
    """`load --help` lists the [load] keys (bootforge.loader.recipe.LOAD_FIELDS), the loaders
    and their [load.options] (the policy registry, bootforge.loader.policies): the declarations
    validation reads, imported only when help is asked for."""

    def format_epilog(self, ctx, formatter):
        from bootforge.loader.policies import POLICIES
        from bootforge.loader.recipe import LOAD_FIELDS, MODULE_FIELDS
        with formatter.section("[load] keys"):
            formatter.write_dl([(f.name, f"{f.kind()}: {f.meaning}") for f in LOAD_FIELDS])
        with formatter.section("[[load.modules]] keys"):
            formatter.write_dl([(f.name, f"{f.kind()}: {f.meaning}") for f in MODULE_FIELDS])
        from bootforge.post.machine import DEVICE_FIELDS
        with formatter.section("[[load.devices]] keys (--device MODEL[=ROMFILE])"):
            formatter.write_dl([(f.name, f"{f.kind()}: {f.meaning}") for f in DEVICE_FIELDS])
        rows = []
        from bootforge.verify.run import verifiable_loaders
        verifiable = verifiable_loaders()
        for name, p in POLICIES.items():
            rows.append((name, f"{p.summary}; {'/'.join(p.firmware).upper()}, {p.protocol}; "
                               f"{verify_claim(p, verifiable)}"))
        with formatter.section("Loaders (--loader, [load] loader)"):
            formatter.write_dl(rows)
        options = [(f"{o.name} ({name})", f"{o.kind()}: {o.meaning}") for name, p in POLICIES.items()
                   for o in p.options]
        if options:
            with formatter.section("[load.options] (per loader)"):
                formatter.write_dl(options)


@click.command("load", cls=LoadCommand)
@click.argument("recipe", metavar="RECIPE|KERNEL", type=click.Path(dir_okay=False), required=False)
@click.option("--platform", help=f"Override the recipe's platform ({platform_syntax()}, "
              "r820-efi, a map file, a board's .dtb; <mem> as QEMU's -m: a bare number is MiB).")
@click.option("--loader", help="Override the recipe's loader (one of the loaders listed below).")
@click.option("--entry", help="An image's entry (index or title; default the first Multiboot entry).")
@click.option("--firmware", type=click.Choice(["bios", "uefi"]), help="Which firmware boots the image "
              "(default: the first it supports).")
@click.option("--cmdline", help="Without a recipe: the kernel's command line.")
@click.option("--module", "modules", multiple=True, metavar="FILE[=STRING]",
              help="Without a recipe: a module and its string (repeat for more, in order).")
@click.option("--device", "devices", multiple=True, metavar="MODEL[=ROMFILE]",
              help="A PCI device of the qemu-pc-seabios machine with its option ROM (default QEMU's); repeat "
              "for more. Without a kernel, load predicts SeaBIOS's POST: where each ROM runs, UMB, boot "
              "entries, PMM, E820.")
@click.option("--vga", type=click.Choice(["std", "none"]), help="QEMU's -vga for --device (default std).")
@click.option("--initrd", "initrds", multiple=True, metavar="FILE",
              help="Without a recipe: an initrd (Linux and device-tree loaders; repeat for more).")
@click.option("--dtb", type=click.Path(dir_okay=False), help="Without a recipe: a DTB the loader gets instead of "
              "the machine's (QEMU -dtb).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--svg", "svg_out", type=click.Path(dir_okay=False), help="Draw physical memory with every placement.")
@click.option("--mbi-out", type=click.Path(dir_okay=False), help="Write the boot information bytes.")
@click.option("--map-out", type=click.Path(dir_okay=False), help="Write the memory map the kernel is given.")
@click.option("--map-format", type=click.Choice(MAP_FORMATS), default="table", show_default=True,
              help="Format of --map-out.")
def load_command(recipe, platform, loader, entry, firmware, cmdline, modules, devices, vga, initrds, dtb, as_json,
                 svg_out, mbi_out, map_out, map_format):
    """Simulate firmware and a boot loader placing the kernel and modules of RECIPE
    (a [load] or [image] recipe, or a bootable ISO/disk image), or of KERNEL with
    --platform, --loader and optionally --cmdline and --module FILE[=STRING] (no recipe).

    Prints where everything lands and by which rule, the boot information and
    memory map the kernel is given, and the placement checks. Exit status 1
    when a check fails, 2 on bad input or when the real loader would refuse.
    """
    from bootforge.fileio import write_atomic
    from bootforge.loader.recipe import is_toml_text, read_recipe, request_from_arguments
    from bootforge.loader.policies import policy
    from bootforge.verdict import passed

    from bootforge.errors import BootforgeError
    from bootforge.image.load import BUILT_NOTE, built_image_request, image_request
    # RECIPE may also be a bootable image (ISO, disk) or an [image] recipe: bootforge/image/load.py.
    from bootforge.errors import LoaderRefusal
    # A machine with devices and no kernel: SeaBIOS's POST (bootforge/post/).
    from bootforge.post.load import post_request
    machine = post_request(recipe, platform, devices, vga)
    if machine is not None:
        _post_report(machine, as_json, svg_out)
        return
    if not (platform and loader) and not is_toml_text(recipe):
        # A bare UKI: linux-efi-stub on QEMU's UEFI machine unless told otherwise.
        from bootforge.loader.policies.linux_efi_stub import BARE_UKI_PLATFORM, is_uki_file
        if is_uki_file(recipe):
            platform, loader = platform or BARE_UKI_PLATFORM, loader or "linux-efi-stub"
    built = False
    if modules or initrds or dtb or cmdline is not None or (platform and loader and not is_toml_text(recipe)):
        # A kernel and the command line instead of a recipe: the [load] table they stand for.
        if is_toml_text(recipe):
            raise RecipeError("--cmdline and --module go with a kernel, not a recipe (the recipe names them)",
                              path=recipe)
        req = request_from_arguments(recipe, platform, loader, cmdline, modules, initrds, dtb)
    else:
        # An [image] recipe: `load` of the image it builds (built privately; the UEFI loaders' pages
        # follow the image's BOOTX64.EFI and medium, which the recipe alone does not give).
        req = built_image_request(recipe, platform, loader, entry, firmware)
        built = req is not None
        req = req or image_request(recipe, platform, loader, entry, firmware) or read_recipe(recipe, platform, loader)
    # A kernel recipe with [[load.devices]]: SeaBIOS's POST too, and the booting ROM's iPXE facts.
    from bootforge.post.load import with_devices
    req, post = with_devices(recipe, platform, req)
    # A platform read from a file (a DTB whose /reserved-memory Linux ignores): what its reader
    # went past is said here as memmap says it, on stderr and in the JSON "warnings".
    from bootforge.memmap.model import reading_warnings
    platform_warnings = reading_warnings(req.platform.memory_map)
    for warning in platform_warnings:
        click.echo(f"bootforge: warning: {req.platform.name}: {warning}", err=True)
    try:
        result = policy(req.loader)(req)
    except LoaderRefusal as exc:
        # A kernel loader verdict refusing the file (the loader's header and ELF checks) is about
        # the kernel: the line names it after the recipe that named it; refusals of the load
        # itself (no memory for a module) are the recipe's alone.
        from bootforge.multiboot.verdicts import KERNEL_LOADERS
        kernel_path = getattr(req.kernel, "path", None)
        if exc.loader in KERNEL_LOADERS.names() and kernel_path and str(kernel_path) != str(recipe):
            exc.message = f"kernel {kernel_path}: {exc.message}"
        raise exc.located(path=recipe)
    except BootforgeError as exc:
        raise exc.located(path=recipe)
    if built:
        result.notes.insert(0, BUILT_NOTE)
    if mbi_out:
        write_atomic(mbi_out, result.mbi_bytes)
    if map_out:
        from bootforge.memmap.io import write_map
        handed = result.handed_map()
        if map_format == "efi-bin":
            if "efi-at-exit" not in result.maps:
                raise RecipeError(f"{result.loader} hands over no EFI map (--map-format efi-bin)")
            handed = result.maps["efi-at-exit"]
        elif map_format == "e820-dmesg" and "e820-printed" in result.maps:
            # Linux sorts and merges its table before printing "BIOS-e820:" (linux-efi-stub).
            handed = result.maps["e820-printed"]
        write_map(handed, map_format, map_out)
    if svg_out:
        from bootforge.loader.svg import render_load_svg
        write_atomic(svg_out, render_load_svg(result).encode())
    if as_json:
        doc = result.to_json()
        if platform_warnings:
            doc["warnings"] = list(doc.get("warnings", [])) + platform_warnings
        if post is not None:
            from bootforge.post.report import post_json
            doc["post"] = post_json(post)
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(result.render_text(), nl=False)
        if post is not None:
            click.echo("\nSeaBIOS's POST on this machine (its devices): `bootforge load` of it without a kernel "
                       "has the whole report")
            for r in post.option_roms:
                where = f"{r.segment:04x}:0003" if r.address is not None else "does not run"
                click.echo(f"  {r.device:<22} {where}  {r.words or r.reason}")
    sys.exit(0 if passed(result.checks) else 1)


def _post_report(machine, as_json, svg_out):
    from bootforge.fileio import write_atomic
    from bootforge.post.report import post_json, post_svg, post_text
    from bootforge.post.seabios import run_post
    result = run_post(machine)
    if svg_out:
        write_atomic(svg_out, post_svg(result).encode())
    if as_json:
        json.dump(post_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(post_text(result), nl=False)
    # SeaBIOS boots on without a device's ROM that did not run (no id match, bad checksum, no
    # room): its verdict, in its words where it has them, and exit 1.
    failed = [r for r in result.option_roms if r.slot is not None and r.device != "VGA" and not r.runs
              and r.file is not None]
    for r in failed:
        click.echo(f"bootforge: {r.device} ROM {r.file} does not run: {r.words or r.reason}", err=True)
    sys.exit(1 if failed else 0)
