"""`bootforge verify`: boot the kernel of a load recipe under the real loader in QEMU and
compare what the loader handed over with `bootforge load`'s prediction."""

import json
import sys

import click

from bootforge.machines import platform_syntax


class VerifyCommand(click.Command):
    """`verify --help` lists the loaders it boots from the policy registry (bootforge.loader.policies:
    verified, boot_medium), imported only when help is asked for."""

    def format_epilog(self, ctx, formatter):
        from bootforge.loader.policies import POLICIES
        from bootforge.verify.run import image_linux_loaders, verifiable_loaders, verify_medium
        with formatter.section("Loaders verify boots (--loader)"):
            formatter.write_dl([(name, f"{POLICIES.get(name).summary} ({verify_medium(name)})")
                                for name in verifiable_loaders()])
        with formatter.section("Linux loaders verify boots from an image's entry"):
            formatter.write_text("RECIPE is a bootable image or an [image] recipe with a Linux entry; on OVMF a "
                                 "bare UKI or bzImage boots as QEMU -kernel.")
            formatter.write_dl([(name, POLICIES.get(name).summary) for name in image_linux_loaders()])


@click.command("verify", cls=VerifyCommand)
@click.argument("recipe", metavar="RECIPE|KERNEL", type=click.Path(dir_okay=False))
@click.option("--platform", help=f"Override the recipe's platform (a machine: {platform_syntax()}; "
              "<mem> as QEMU's -m: 256M, 1G, a bare number is MiB).")
@click.option("--loader", help="Override the recipe's loader (one verify boots: listed below).")
@click.option("--entry", help="An image's entry (index or title; default the first Multiboot entry): "
              "booted from a snapshot copy with the loader's default set to it (the image is not changed).")
@click.option("--firmware", type=click.Choice(["bios", "uefi"]), help="Which firmware boots the image "
              "(default: the platform's, else the first the image supports).")
@click.option("--cmdline", help="Without a recipe: the kernel's command line.")
@click.option("--module", "modules", multiple=True, metavar="FILE[=STRING]",
              help="Without a recipe: a module and its string (repeat for more, in order).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the boot medium and QEMU's logs in DIR.")
@click.option("--timeout", type=click.FloatRange(min=1), help="Seconds to wait for the kernel's entry "
              "(default 60 on SeaBIOS, 120 on OVMF).")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def verify_command(recipe, platform, loader, entry, firmware, cmdline, modules, as_json, keep, timeout, quiet):
    """Boot RECIPE's kernel (a [load] or [image] recipe, a bootable image, or KERNEL with
    --platform, --loader and optionally --cmdline and --module FILE[=STRING]: what `load`
    takes), unmodified, under the real loader in QEMU; stop at its entry
    through QEMU's gdbstub and compare the boot information, modules and memory map
    with `bootforge load`'s prediction.

    Exit status 0 when every predicted field matches (or the loader refuses with the
    predicted words), 1 on any mismatch or when the entry is not reached in time,
    2 when it cannot run (bad recipe, a platform QEMU cannot be, QEMU/OVMF/a loader
    missing: the Debian package is named).
    """
    from bootforge.verify.run import verify

    def progress(text):
        click.echo(f"verify: {text}", err=True)

    # A machine with devices and no kernel: the PXE probe through its iPXE ROM (bootforge/verify/ipxe_probe.py).
    from bootforge.post.load import post_request
    machine = post_request(recipe, platform, (), None)
    if machine is not None:
        from bootforge.post.load import recipe_options
        from bootforge.verify.ipxe_probe import verify_probe
        outcome = recipe_options(recipe).get("ipxe_outcome", "boot")
        if not quiet:
            progress(f"booting the PXE probe on {machine.memory_bytes >> 20} MiB with {len(machine.devices)} "
                     f"device(s), ipxe_outcome {outcome}")
        report = verify_probe(machine, outcome=outcome, timeout=timeout or 120, keep=keep)
    else:
        report = verify(recipe, platform, loader, keep=keep, timeout=timeout,
                        progress=None if quiet else progress, entry=entry, firmware=firmware, cmdline=cmdline,
                        modules=modules)
    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(report.render_text(), nl=False)
    sys.exit(0 if report.ok else 1)
