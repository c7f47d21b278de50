import sys

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import read_input


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON document: an object for one file, a list for several.")
@click.option("--format", "format_name", metavar="NAME",
              help="Read the files as this format instead of detecting it (needed for formats without magic).")
def inspect_command(files, as_json, format_name):
    """Decode every header of FILES, check every checksum, and say what real loaders will do.

    Exit status: 0 all fine, 1 defects found, 2 unusable input.
    """
    from bootforge.image.inspect import inspect_if_image
    from bootforge.inspect import inspect_data

    status = 0
    documents = []
    for path in files:
        try:
            # Bootable images (ISO, partitioned disks) are read by offset, not loaded whole.
            report = inspect_if_image(path, format_name) or inspect_data(path, read_input(path), format_name)
        except BootforgeError as exc:
            exc.located(path=path)
            click.echo(f"bootforge: error: {exc}", err=True)
            status = 2
            if as_json:
                # Every file named gets its entry, in order: a failed one carries its error.
                documents.append({"file": str(path), "error": exc.message,
                                  **({"offset": exc.offset} if exc.offset is not None else {})})
            continue
        status = max(status, report.exit_status)
        if as_json:
            documents.append({"file": str(path), "format": report.format, **report.to_json(),
                              "problems": list(report.problems)})
        else:
            if len(files) > 1:
                click.echo(f"==> {path} <==")
            click.echo(report.render_text())
    if as_json and documents:
        import json

        doc = documents[0] if len(files) == 1 else documents
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    sys.exit(status)
