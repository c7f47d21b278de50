"""Device trees: header and structure walk, DTS text, the memory map read from
/memory and /reserved-memory, and the rebuild (fdt/).

Seeds: tests/data/*.dtb, QEMU's DTBs, and DTBs of installed kernels when present."""

from common import attempt, files, instrumented, main

with instrumented():
    from bootforge.fdt.build import build_dtb
    from bootforge.fdt.parse import parse_dtb
    from bootforge.inspect import inspect_data

FAMILY = "fdt"


def seeds():
    return files("tests/data/*.dtb", "/usr/share/qemu/*.dtb", "/usr/lib/linux-image-*/**/*.dtb", limit=400)


def target(data):
    report = attempt(inspect_data, "fuzz.dtb", data, "dtb")
    if report is not None:
        report.render_text()
        report.to_json()
    tree = parse_dtb(data, "fuzz.dtb")
    again = build_dtb(tree)
    # The rebuild must read back to the same tree (a mismatch is a bug, not bad input).
    if build_dtb(parse_dtb(again, "rebuilt.dtb")) != again:
        raise AssertionError("a rebuilt DTB does not rebuild to the same bytes")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
