"""Byte layouts, declared once with Construct, and the numberings they carry.

Every module here declares layouts (Construct Structs) and numberings
(Numbering subclasses: one table per numbering, whose members are both the
names code uses and the names text and JSON print). Nothing here imports
bootforge except errors; the logic that walks these layouts lives in the
packages above (compress, fdt, pe, rom, multiboot, memmap).

Three helpers every reader uses:
- parse(): the one place untrusted bytes meet Construct; construct's and
  struct's errors become a FormatError naming the offset.
- struct_format(): the `struct` format of a fixed-size Struct, for the hot
  loops that walk thousands of entries with struct.iter_unpack; derived
  from the declaration so the layout is written once.
- Numbering: an IntEnum whose members carry the label tools print.
"""

import struct
from enum import IntEnum

from construct import Const, ConstructError, FormatField, Padded, Pass, Renamed, Struct

from bootforge.errors import FormatError


class Numbering(IntEnum):
    """One numbering (tag types, memory types, flags...) and the label printed for each value.

    A member is declared `NAME = value` (label: the name in lower case) or
    `NAME = value, "label"`. `label_of(value)` is what text and JSON print;
    unknown values get *default*.
    """

    def __new__(cls, value, label=None):
        member = int.__new__(cls, value)
        member._value_ = value
        member._label = label
        return member

    @property
    def label(self):
        return self._label if self._label is not None else self._default_label()

    def _default_label(self):
        return self.name.lower()

    @classmethod
    def label_of(cls, value, default="unknown"):
        try:
            return cls(value).label
        except ValueError:
            return default

    @classmethod
    def labels(cls):
        """{value: label} of every member (a view of the table, not a second one)."""
        return {int(m): m.label for m in cls}

    @classmethod
    def by_label(cls):
        """{label: member}: the inverse, for readers of text forms."""
        return {m.label: m for m in cls}


def flag_labels(numbering, flags):
    """Labels of the single-bit members of *numbering* set in *flags*, lowest bit first."""
    return [m.label for m in sorted(numbering, key=int) if flags & m]


def struct_format(layout, byteorder=None):
    """The `struct` format string of a fixed-size Struct of integer fields and padding.

    Used where a hot loop needs struct.iter_unpack: the format comes from the
    Construct declaration, so the layout is written once. Raises TypeError
    for a field it cannot express (so a declaration change is caught at import).
    """
    codes = []
    order = byteorder
    for sub in layout.subcons:
        while isinstance(sub, (Renamed, Const)):
            sub = sub.subcon
        if isinstance(sub, FormatField):
            if order is None:
                order = sub.fmtstr[0]
            elif sub.fmtstr[0] != order:
                raise TypeError(f"{layout}: mixed byte orders")
            codes.append(sub.fmtstr[1:])
        elif isinstance(sub, Padded) and sub.subcon is Pass and isinstance(sub.length, int):
            codes.append(f"{sub.length}x")
        else:
            raise TypeError(f"struct_format: {sub!r} has no struct equivalent")
    fmt = (order or "<") + "".join(codes)
    if struct.calcsize(fmt) != layout.sizeof():
        raise TypeError(f"struct_format: {fmt!r} is {struct.calcsize(fmt)} bytes, the Struct {layout.sizeof()}")
    return fmt


def _one_line(exc):
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


_SIZES = {}      # layout -> its fixed size, or None when it depends on the data


def _fixed_size(layout):
    key = layout        # the layout itself (kept alive, so no id is ever reused)
    if key not in _SIZES:
        try:
            _SIZES[key] = layout.sizeof()
        except ConstructError:
            _SIZES[key] = None
    return _SIZES[key]


def parse(layout, data, offset=0, what=None, path=None, base=0):
    """*layout* parsed from *data* at *offset*; FormatError when the bytes do not fit.

    The one guard between untrusted bytes and Construct: every reader parses
    through here so that a truncated or lying input ends in one line naming
    the offset (base + offset: *base* is where *data* starts in the file),
    never in a construct traceback. A fixed-size layout reads only its bytes.
    """
    size = _fixed_size(layout)
    try:
        if size is not None:
            return layout.parse(data[offset:offset + size])
        return layout.parse(data[offset:] if offset else data)
    except (ConstructError, struct.error, ValueError, OverflowError) as exc:
        raise FormatError(f"{what or 'structure'} truncated or malformed ({_one_line(exc)})",
                          path=path, offset=base + offset) from None


def unpack(fmt, data, offset=0, what=None, path=None):
    """struct.unpack_from with the same guard as parse(); *fmt* is a str or a struct.Struct."""
    try:
        if isinstance(fmt, struct.Struct):
            return fmt.unpack_from(data, offset)
        return struct.unpack_from(fmt, data, offset)
    except struct.error as exc:
        raise FormatError(f"{what or 'structure'} truncated or malformed ({exc})", path=path, offset=offset) from None


__all__ = ["Numbering", "flag_labels", "parse", "struct_format", "unpack", "Struct"]
