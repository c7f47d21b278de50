"""Rounding to an alignment: the one pair of helpers byte layouts, builders and allocators share."""


def align_up(value, alignment):
    """*value* rounded up to a multiple of *alignment*; an alignment of 0 or 1 leaves it as it is
    (a PE header's SectionAlignment or FileAlignment of 0, an ELF section's sh_addralign of 0)."""
    return -(-value // alignment) * alignment if alignment > 1 else value


def align_down(value, alignment):
    """*value* rounded down to a multiple of *alignment* (0 or 1: unchanged)."""
    return value // alignment * alignment if alignment > 1 else value
