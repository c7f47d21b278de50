"""DTS text as `dtc -I dtb -O dts` (dtc 1.6) prints it.

dtc has no type information for a DTB's property values, so it guesses:
a NUL-terminated run of printable characters with no more NULs than
other bytes is a string list, a length that is a multiple of 4 is cells
(<0x%02x ...>), anything else bytes ([%02x ...]). The same guess here
makes the two outputs comparable line for line.
"""

import struct

_STRING_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
                   0x5C: "\\\\", 0x22: '\\"', 0: "\\0"}
_STRINGISH = bytes(range(0x20, 0x7F)) + bytes([0, 7, 8, 9, 10, 11, 12, 13])
# Printable characters that print as themselves (no backslash escape).
_PLAIN = bytes(b for b in range(0x20, 0x7F) if b not in (0x5C, 0x22))


def guess_kind(value):
    """"string", "cells", "bytes" or "empty": dtc's guess_value_type() for an unannotated value."""
    if not value:
        return "empty"
    nul = value.count(0)
    if value[-1] == 0 and nul <= len(value) - nul and not value.translate(None, _STRINGISH):
        return "string"
    if len(value) % 4 == 0:
        return "cells"
    return "bytes"


def _escape(raw):
    if not raw.translate(None, _PLAIN):
        return raw.decode("ascii")
    return "".join(_STRING_ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in raw)


def format_value(value):
    """The text after the property name: ";" or " = ...;"."""
    kind = guess_kind(value)
    if kind == "empty":
        return ";"
    if kind == "string":
        return ' = "' + _escape(value[:-1]) + '";'
    if kind == "cells":
        cells = struct.unpack(f">{len(value) // 4}I", value)
        return " = <" + " ".join(["0x%02x" % c for c in cells]) + ">;"
    return " = [" + " ".join(["%02x" % b for b in value]) + "];"


def to_dts(tree):
    """The whole tree as dtc's DTS text (ends with a newline)."""
    lines = ["/dts-v1/;", ""]
    for address, size in tree.reservations:
        lines.append(f"/memreserve/\t0x{address:016x} 0x{size:016x};")
    # Iterative: ("open", node, depth) / ("close", None, depth) / ("gap", ...) items.
    work = [("open", tree.root, 0)]
    while work:
        action, node, depth = work.pop()
        indent = "\t" * depth
        if action == "close":
            lines.append(f"{indent}}};")
            continue
        if action == "gap":
            lines.append("")
            continue
        lines.append(f"{indent}{node.name or '/'} {{")
        for prop in node.properties:
            lines.append(f"{indent}\t{prop.name}{format_value(prop.value)}")
        work.append(("close", None, depth))
        for child in reversed(node.children):
            work.append(("open", child, depth + 1))
            work.append(("gap", None, depth))
    return "\n".join(lines) + "\n"
