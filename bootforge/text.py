"""Text helpers every report shares: sizes in binary units, numbers with their names."""


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

