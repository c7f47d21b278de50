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
- Numbering: a table of named values whose members carry the label tools print.
"""

import struct

from construct import Const, ConstructError, FormatField, Padded, Pass, Renamed

from bootforge.errors import FormatError


class Member(int):
    """One value of a Numbering: an int (it compares, hashes, packs and prints as the
    number) that also carries its name, its label and the table's other columns."""


class _NumberingType(type):
    """Iterating a Numbering yields its members; calling it with a value returns the member
    (ValueError for a value the table does not list), as for an IntEnum."""

    def __iter__(cls):
        return iter(cls._members)

    def __len__(cls):
        return len(cls._members)

    def __call__(cls, value):
        try:
            return cls._by_value[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a {cls.__name__}") from None


class Numbering(metaclass=_NumberingType):
    """One numbering (tag types, memory types, flags...) and the label printed for each value.

    A member is declared `NAME = value` (label: _default_label(), the name in
    lower case) or `NAME = value, "label"`; a table with more columns names
    them in `_columns` (`NAME = value, label, column2, ...`). `Cls.NAME` is the
    member, an int subclass: as fast as an int in sets, dicts and comparisons
    (an IntEnum is not: its class attributes and comparisons go through Python
    code, which halved the speed of memmap's sanitize). `label_of(value)` is
    what text and JSON print; unknown values get *default*.

    Not an enum.IntEnum: creating one costs about a millisecond per class, which
    `bootforge inspect` paid at every start for ~20 tables (measured: importing
    formats.multiboot went from 4 ms to 22 ms).
    """

    _columns = ("label",)
    _members = ()
    _by_value = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        members, by_value = [], {}
        for name, spec in list(vars(cls).items()):
            if name.startswith("_") or isinstance(spec, bool) or not isinstance(spec, (int, tuple)):
                continue
            value, *extra = spec if isinstance(spec, tuple) else (spec,)
            member = Member(value)
            member.name = name
            member.value = int(value)
            for column, cell in zip(cls._columns, extra + [None] * (len(cls._columns) - len(extra))):
                setattr(member, column, cell)
            if member.label is None:
                member.label = cls._default_label(member)
            setattr(cls, name, member)
            members.append(member)
            by_value.setdefault(int(value), member)
        cls._members = tuple(members)
        cls._by_value = by_value

    def _default_label(self):
        return self.name.lower()

    @classmethod
    def label_of(cls, value, default="unknown"):
        member = cls._by_value.get(value)
        return member.label if member is not None else default

    @classmethod
    def labels(cls):
        """{value: label} of every member (a view of the table, not a second one)."""
        return {int(m): m.label for m in cls._members}

    @classmethod
    def by_label(cls):
        """{label: member}: the inverse, for readers of text forms."""
        return {m.label: m for m in cls._members}


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


def field_offset(layout, name):
    """The offset of field *name* in a Struct whose fields before it have fixed sizes."""
    at = 0
    for sub in layout.subcons:
        if sub.name == name:
            return at
        at += sub.sizeof()
    raise KeyError(name)


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


__all__ = ["Member", "Numbering", "flag_labels", "parse", "struct_format", "unpack"]
