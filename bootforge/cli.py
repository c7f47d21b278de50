"""The command line: a thin click group.

Each subcommand lives in bootforge/commands/<name>.py and is imported only
when it runs, so `bootforge inspect` never pays for what `bootforge load`
needs. A BootforgeError becomes one line on stderr and exit status 2.

When the reader of standard output goes away (`bootforge inspect ... | head`),
bootforge stops quietly with status 141 = 128 + SIGPIPE, what a shell reports
for cat or grep killed the same way: never 1, which means "defects found".
"""

import importlib
import os
import sys

import click

from bootforge import __version__
from bootforge.errors import BootforgeError

# 128 + SIGPIPE: the status of a program killed by a closed pipe (see the docstring).
EXIT_BROKEN_PIPE = 141

# name -> "module:attribute" of a click command.
COMMANDS = {
    "inspect": "bootforge.commands.inspect:inspect_command",
    "build": "bootforge.commands.build:build_command",
    "patch": "bootforge.commands.patch:patch_command",
    "extract": "bootforge.commands.extract:extract_command",
    "compress": "bootforge.commands.compress:compress_command",
    "decompress": "bootforge.commands.compress:decompress_command",
    "memmap": "bootforge.commands.memmap:memmap_group",
    "load": "bootforge.commands.load:load_command",
    "verify": "bootforge.commands.verify:verify_command",
    "fdt": "bootforge.commands.fdt:fdt_group",
    "sign": "bootforge.commands.sign:sign_command",
    "secureboot": "bootforge.commands.secureboot:secureboot_group",
}

SHORT_HELP = {
    "inspect": "Decode ROMs, kernels, DTBs, boot information and memory maps.",
    "build": "Build an option ROM, a Multiboot kernel, a UKI or a bootable ISO/disk image from a TOML recipe.",
    "patch": "Change ids, indicator bits and checksums of an option ROM.",
    "extract": "Write one image of an option ROM (an EFI driver decompressed) to a file.",
    "compress": "Compress with the UEFI (EFI/Tiano) compression format.",
    "decompress": "Decompress the UEFI (EFI/Tiano) compression format.",
    "memmap": "Convert, verify and draw memory maps.",
    "load": "Simulate firmware and a boot loader placing a kernel and modules.",
    "verify": "Boot a kernel under the real loader in QEMU and compare with load's prediction.",
    "fdt": "Device-tree blobs: apply overlays as fdtoverlay does.",
    "sign": "Sign a PE image (UKI, EFI loader, EFI driver) with Authenticode for Secure Boot.",
    "secureboot": "Secure Boot key stores: an OVMF VARS file with your PK, KEK and db.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self.get_command(ctx, name) is not None)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real bug inside the command, not an absent command
                raise
            return None

    def format_commands(self, ctx, formatter):
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        raw_args = [*ctx._protected_args, *ctx.args]    # Group.invoke empties both before it runs
        try:
            return super().invoke(ctx)
        except BootforgeError as exc:
            file_arg, as_json = self._command_arguments(ctx, raw_args)
            exc.located(path=file_arg)
            click.echo(f"bootforge: error: {exc}", err=True)
            if as_json:
                _echo_json_error(exc.path, exc.offset, exc.message)
            ctx.exit(2)
        except click.ClickException as exc:
            # A usage error (bad option value, missing argument): click prints it and exits 2;
            # with --json, stdout still gets the error document.
            if self._command_arguments(ctx, raw_args)[1]:
                _echo_json_error(None, None, exc.format_message())
            raise
        except BrokenPipeError:
            _stdout_closed()
        except KeyboardInterrupt:
            # click's own main would turn this into "Aborted!" and exit 1, which bootforge
            # uses for "defects found"; 130 is what a shell reports for SIGINT.
            click.echo("bootforge: interrupted", err=True)
            ctx.exit(130)


    def _command_arguments(self, ctx, raw_args):
        """(the command's one input file or None, whether --json was given), read from the command
        line again without running anything (resilient parsing): errors raised without a file name
        get the one the command was given, and --json gets its error document on stdout."""
        try:
            group, args, params = self, list(raw_args), {}
            while isinstance(group, click.Group):
                _, command, args = group.resolve_command(ctx, args)
                sub = command.make_context(command.name, list(args), parent=ctx, resilient_parsing=True)
                params, args, group = sub.params, [*sub._protected_args, *sub.args], command
        except (click.ClickException, AttributeError, TypeError):
            return None, False
        files = [p for p in group.params if isinstance(p, click.Argument)]
        value = params.get(files[0].name) if files else None
        if isinstance(value, tuple):
            value = value[0] if len(value) == 1 else None
        return value, bool(params.get("as_json"))


def _echo_json_error(path, offset, message):
    """The error document every --json command prints on stdout when it fails (exit 2)."""
    import json

    json.dump({"error": {"file": None if path is None else str(path), "offset": offset, "message": message}},
              sys.stdout, indent=2)
    sys.stdout.write("\n")


def _stdout_closed():
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again; exit 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(EXIT_BROKEN_PIPE)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bootforge")
def cli():
    """bootforge: build, inspect and simulate boot images."""


def main(argv=None):
    try:
        try:
            cli.main(args=argv, prog_name="bootforge")
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # a closed pipe shows here when the last write was buffered
    except BrokenPipeError:
        _stdout_closed()
    except KeyboardInterrupt:
        click.echo("bootforge: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
