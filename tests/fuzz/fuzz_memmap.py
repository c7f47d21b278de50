"""Memory maps: every reader, then every writer on what was read, verify, sanitize and
the SVG picture (memmap/).

The first byte picks the reader (and the E820 entry size / EFI descriptor stride the
options give); the rest is the file. Seeds: the captures in tests/data (dmesg text,
the DTB), and the same maps written by bootforge's writers in every binary format."""

from common import attempt, files, instrumented, main

with instrumented():
    from bootforge.memmap.formats import registry
    from bootforge.memmap.io import prepare_for, read_map, write_map  # noqa: F401
    from bootforge.memmap.ops import sanitize
    from bootforge.memmap.svg import render_svg
    from bootforge.memmap.verify import verify_map

FAMILY = "memmap"
FORMATS = {name: (f.read, f.write, f.family) for name, f in registry().items()}
READERS = ["e820-dmesg", "e820-bin", "efi-bin", "mb1-mmap", "mb2-mmap", "mb2-efi-mmap", "fdt", "json", "smbios",
           "lsefimmap"]
WRITERS = [name for name in FORMATS if name not in ("e820-sysfs",) and FORMATS[name][1] is not None]


def options_for(selector):
    return {"entry_size": 24 if selector & 0x10 else None,
            "descriptor_size": (None, 40, 48, 56)[(selector >> 5) & 3]}


def seeds():
    out = []
    texts = files("tests/data/memmap-*.txt", "tests/data/load-*.lsefimmap")
    for name, data in texts:
        reader = "lsefimmap" if str(name).endswith(".lsefimmap") else "e820-dmesg"
        out.append((name, bytes([READERS.index(reader)]) + data))
    for name, data in files("tests/data/*.dtb"):
        out.append((name, bytes([READERS.index("fdt")]) + data))
    # The same maps written in each binary form by bootforge itself.
    for name, data in texts[:3]:
        try:
            m = FORMATS["e820-dmesg"][0](name, data, {})
        except Exception:  # noqa: BLE001 -- a seed that does not read is simply left out
            continue
        for fmt in READERS[1:]:
            try:
                prepared = prepare_for(m, fmt)
                written = write_map(prepared, fmt, None, {})
            except Exception:  # noqa: BLE001
                continue
            out.append((f"{name}.{fmt}", bytes([READERS.index(fmt)]) + written))
    return out


def target(data):
    if not data:
        return
    selector, body = data[0], data[1:]
    fmt = READERS[selector % len(READERS)]
    options = options_for(selector)
    m = FORMATS[fmt][0]("fuzz.map", body, options)
    verify_map(m)
    render_svg(m, title="fuzz")
    if m.family != "efi":
        attempt(sanitize, m)
    for out_fmt in WRITERS:
        prepared = attempt(prepare_for, m, out_fmt)
        if prepared is not None:
            attempt(write_map, prepared, out_fmt, None, options)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
