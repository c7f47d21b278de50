"""Text helpers every report shares: sizes in binary units and aligned tables."""


def human_size(size):
    """"639 KiB", "3 GiB", "23.9 GiB": the largest unit, exact when it divides."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            if size % (1 << shift) == 0:
                return f"{size >> shift} {unit}"
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def named(number, label, fmt="d"):
    """"3 (i386)": a number with its name beside it (the number stays: scripts grep for it)."""
    return f"{number:{fmt}} ({label})" if label is not None else f"{number:{fmt}}"


def table(rows, widths, sep=" "):
    """Rows of cells as lines, each cell left-aligned to its width (negative: right-aligned)."""
    out = []
    for row in rows:
        cells = [f"{c:>{-w}}" if w < 0 else f"{c:<{w}}" for c, w in zip(row, widths)]
        out.append(sep.join(cells).rstrip())
    return out
