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



# Fields that are dimensions and counts, not addresses or bit patterns: printed in decimal
# wherever a field is printed by its name (Multiboot header tags and video fields, boot
# information tags), as the specifications and GRUB's `videoinfo` state them (1024x768x32).
DECIMAL_FIELDS = frozenset({
    "width", "height", "depth", "mode_type",
    "framebuffer_width", "framebuffer_height", "framebuffer_bpp", "framebuffer_pitch", "framebuffer_type",
    "red_field_position", "red_mask_size", "green_field_position", "green_mask_size",
    "blue_field_position", "blue_mask_size", "num", "entsize", "shndx", "size",
    "mem_lower", "mem_upper", "mods_count",     # KiB and a count (Multiboot 1 3.3)
})


def field_text(key, value):
    """A named field's value as text: decimal for DECIMAL_FIELDS, else 0x-hex for an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    return str(value) if key in DECIMAL_FIELDS else f"{value:#x}"
