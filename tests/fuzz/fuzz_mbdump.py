"""The Multiboot dump reader (multiboot/dump.py) behind `inspect` of a BFMBDUMP capture
and `memmap --from mbdump/mbdump-efi`.

Seeds: the captures of real loaders in tests/data/mb-*.dump."""

from common import attempt, files, instrumented, main

with instrumented():
    from bootforge.inspect import inspect_data
    from bootforge.memmap.formats import registry

FAMILY = "mbdump"


def seeds():
    return files("tests/data/mb-*.dump")


def target(data):
    report = attempt(inspect_data, "fuzz.dump", data, "mbdump")
    if report is not None:
        report.render_text()
        report.to_json()
    for name in ("mbdump", "mbdump-efi"):  # memmap --from mbdump / mbdump-efi
        attempt(registry()[name].read, "fuzz.dump", data, {})


if __name__ == "__main__":
    main(FAMILY, seeds, target)
