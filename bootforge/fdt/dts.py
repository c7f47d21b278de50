"""DTS text as `dtc -I dtb -O dts` (dtc 1.6) prints it.

dtc has no type information for a DTB's property values, so it guesses:
a NUL-terminated run of printable characters with no more NULs than
other bytes is a string list, a length that is a multiple of 4 is cells
(<0x%02x ...>), anything else bytes ([%02x ...]). The same guess here
makes the two outputs comparable line for line.
"""

import struct

from bootforge.errors import FormatError, LimitError
from bootforge.fdt.parse import (MAX_DEPTH, _check_blocks, _check_no_overlap_with_reservations, _parse_reservations,
                                parse_header)
from bootforge.formats.fdt import FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_NOP, FDT_PROP

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


_PLAIN_OR_NUL = _PLAIN + b"\0"


def _escape(raw):
    if not raw.translate(None, _PLAIN):
        return raw.decode("ascii")
    if not raw.translate(None, _PLAIN_OR_NUL):      # a string list: "a\0b"
        return raw.decode("ascii").replace("\0", "\\0")
    return "".join(_STRING_ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in raw)


# "0x%02x " repeated, one % for a whole cell list (much faster than a join per cell).
_CELL_FORMATS = {}


def _cells_text(value):
    n = len(value) >> 2
    fmt = _CELL_FORMATS.get(n)
    if fmt is None:
        fmt = _CELL_FORMATS[n] = ("0x%02x " * n)[:-1]
    return fmt % struct.unpack(f">{n}I", value)


def format_value(value):
    """The text after the property name: ";" or " = ...;"."""
    kind = guess_kind(value)
    if kind == "empty":
        return ";"
    if kind == "string":
        return ' = "' + _escape(value[:-1]) + '";'
    if kind == "cells":
        return " = <" + _cells_text(value) + ">;"
    return " = [" + bytes(value).hex(" ") + "];"


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


def dtb_to_dts(data, path=None):
    """The DTS text of the DTB *data*, straight from the blob (no tree is built): what
    `dtc -I dtb -O dts` prints, and `bootforge inspect -O dts`. The blob is checked as
    bootforge.fdt.parse.parse_dtb checks it (same errors, same offsets)."""
    data = bytes(data)
    h = parse_header(data, path)
    _check_blocks(h, path)
    reservations, rsv_end = _parse_reservations(data, h, path)
    _check_no_overlap_with_reservations(h, rsv_end, path)
    strings_start = h["off_dt_strings"]
    strings_size = h["size_dt_strings"]
    strings_end = strings_start + strings_size
    struct_start = h["off_dt_struct"]
    struct_end = struct_start + h["size_dt_struct"]
    names = {}
    lines = ["/dts-v1/;", ""]
    lines += [f"/memreserve/\t0x{a:016x} 0x{s:016x};" for a, s in reservations]
    append = lines.append
    u32 = struct.Struct(">I").unpack_from
    prop_header = struct.Struct(">II").unpack_from
    find = data.find
    # Each distinct value is formatted once: a tree repeats its values (QEMU's DTBs: 951 values,
    # 371 distinct; "okay", <0x01>, compatible strings), and a lookup costs less than dtc's guess.
    texts = {}
    text_of = texts.get
    indents = ["\t" * i for i in range(MAX_DEPTH + 2)]
    has_children = []           # per open node: a subnode was seen (properties must come first)
    depth = 0
    seen_root = False
    pos = struct_start
    while True:
        if pos + 4 > struct_end:
            raise FormatError("structure block ends without FDT_END", path=path, offset=pos)
        token = u32(data, pos)[0]
        at = pos
        pos += 4
        if token == FDT_PROP:
            if not depth:
                raise FormatError("property outside any node", path=path, offset=at)
            if pos + 8 > struct_end:
                raise FormatError("property header runs off the structure block", path=path, offset=at)
            length, nameoff = prop_header(data, pos)
            pos += 8
            if length > struct_end - pos:
                raise FormatError(f"property length {length:#x} runs off the structure block",
                                  path=path, offset=at + 4)
            if has_children[-1]:
                raise FormatError("property after a subnode", path=path, offset=at)
            name = names.get(nameoff)
            if name is None:
                if nameoff >= strings_size:
                    raise FormatError(f"property name offset {nameoff:#x} is past the strings block "
                                      f"({strings_size:#x} bytes)", path=path, offset=at + 8)
                nul = find(b"\0", strings_start + nameoff, strings_end)
                if nul < 0:
                    raise FormatError("property name runs off the end of the strings block",
                                      path=path, offset=strings_start + nameoff)
                name = names[nameoff] = data[strings_start + nameoff:nul].decode("latin-1")
            value = data[pos:pos + length]
            text = text_of(value)
            if text is None:
                text = texts[value] = format_value(value)
            append(indents[depth] + name + text)
            pos += (length + 3) & ~3
        elif token == FDT_BEGIN_NODE:
            if seen_root and not depth:
                raise FormatError("a second root node", path=path, offset=at)
            nul = find(b"\0", pos, struct_end)
            if nul < 0:
                raise FormatError("node name runs off the structure block", path=path, offset=pos)
            name = data[pos:nul].decode("latin-1")
            pos = (nul + 4) & ~3
            if depth:
                if depth >= MAX_DEPTH:
                    raise LimitError(f"nodes nested deeper than {MAX_DEPTH} levels", path=path, offset=at)
                has_children[-1] = True
                append("")
            seen_root = True
            append(indents[depth] + (name or "/") + " {")
            has_children.append(False)
            depth += 1
        elif token == FDT_END_NODE:
            if not depth:
                raise FormatError("FDT_END_NODE without a node", path=path, offset=at)
            depth -= 1
            has_children.pop()
            append(indents[depth] + "};")
        elif token == FDT_NOP:
            pass
        elif token == FDT_END:
            if depth:
                raise FormatError(f"FDT_END inside {depth} open node(s)", path=path, offset=at)
            if not seen_root:
                raise FormatError("structure block has no root node", path=path, offset=at)
            break
        else:
            raise FormatError(f"unknown structure token {token:#x}", path=path, offset=at)
        if pos > struct_end:
            raise FormatError("token runs off the structure block", path=path, offset=at)
    return "\n".join(lines) + "\n"
