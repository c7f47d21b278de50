"""Build a DTB from a DeviceTree.

A tree that came from parse_dtb keeps its layout (block offsets, strings
block, NOP positions, totalsize): if nothing changed, the rebuild is the
input byte for byte. A new tree (or layout=None) gets dtc's layout: header,
reservation block at 0x28, structure block, strings block with dtc's
suffix-sharing string table, totalsize = end of the strings.
"""

import struct

from bootforge.errors import BuildError
from bootforge.formats.fdt import (
    FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_HEADER_SIZE, FDT_HEADER_SIZE_V16, FDT_HEADER_STRUCT,
    FDT_LAST_COMP_VERSION, FDT_MAGIC, FDT_NOP, FDT_PROP, FDT_PROP_HEADER_STRUCT, FDT_RESERVE_ENTRY_STRUCT,
    FDT_VERSION,
)

_U32 = struct.Struct(">I")
_PROP = struct.Struct(FDT_PROP_HEADER_STRUCT)
_RESERVE = struct.Struct(FDT_RESERVE_ENTRY_STRUCT)


class _StringTable:
    """dtc's stringtable_insert / libfdt's fdt_find_string_: reuse any suffix match."""

    def __init__(self, initial=b""):
        self.data = bytearray(initial)
        self.cache = {}

    def offset(self, name, hint=None):
        raw = name.encode("latin-1") + b"\0"
        if hint is not None and self.data[hint:hint + len(raw)] == raw:
            return hint
        found = self.cache.get(raw)
        if found is None:
            found = self.data.find(raw)
            if found < 0:
                found = len(self.data)
                self.data += raw
            self.cache[raw] = found
        return found


def _struct_block(root, strings, nop_offsets=(), keep_nameoffs=False, padding=None):
    out = bytearray()
    padding = padding or {}

    def pad(used):
        # Alignment padding after *used* bytes: zeros, or what the input had there.
        n = -used % 4
        if not n:
            return b""
        kept = padding.get(len(out) + used)
        return kept if kept is not None and len(kept) == n else b"\0" * n
    nops = set(nop_offsets)
    pack_u32 = _U32.pack

    def emit(chunk):
        while nops and len(out) in nops:
            nops.discard(len(out))
            out.extend(pack_u32(FDT_NOP))
        out.extend(chunk)

    # Iterative walk: ("open", node) then its properties and children, ("close", None).
    work = [("open", root)]
    while work:
        action, node = work.pop()
        if action == "close":
            emit(pack_u32(FDT_END_NODE))
            continue
        name = node.name.encode("latin-1") + b"\0"
        emit(b"")   # flush NOPs first, so pad() sees this token's own offset
        emit(pack_u32(FDT_BEGIN_NODE) + name + pad(4 + len(name)))
        for prop in node.properties:
            hint = prop.nameoff if keep_nameoffs else None
            nameoff = strings.offset(prop.name, hint)
            value = bytes(prop.value)
            emit(b"")
            emit(pack_u32(FDT_PROP) + _PROP.pack(len(value), nameoff) + value
                 + pad(12 + len(value)))
        work.append(("close", None))
        work.extend(("open", child) for child in reversed(node.children))
    emit(pack_u32(FDT_END))
    return bytes(out)


def _reservation_block(reservations):
    return b"".join(_RESERVE.pack(a, s) for a, s in reservations) + _RESERVE.pack(0, 0)


def build_dtb(tree, *, fresh_layout=False):
    """The DTB bytes of *tree* (a DeviceTree).

    :param fresh_layout: ignore any layout remembered from parsing and lay
        the blocks out as dtc does.
    :raises BuildError: a value or name that cannot be encoded.
    """
    rsv = _reservation_block(tree.reservations)
    layout = None if fresh_layout else tree.layout
    if layout is not None:
        strings = _StringTable(layout.strings)
        struct_block = _struct_block(tree.root, strings, layout.nop_offsets, keep_nameoffs=True,
                                     padding=layout.padding)
        strings_block = bytes(strings.data)
        fits = (layout.off_mem_rsvmap + len(rsv) <= min(layout.off_dt_struct, layout.off_dt_strings)
                or layout.off_mem_rsvmap > max(layout.off_dt_struct, layout.off_dt_strings))
        struct_size = len(struct_block)
        if layout.struct_size is not None and layout.struct_size >= struct_size:
            struct_size = layout.struct_size
        blocks = sorted([(layout.off_mem_rsvmap, len(rsv)), (layout.off_dt_struct, struct_size),
                         (layout.off_dt_strings, len(strings_block))])
        fits = fits and all(a + n <= b for (a, n), (b, _) in zip(blocks, blocks[1:]))
        fits = fits and blocks[-1][0] + blocks[-1][1] <= layout.totalsize
        if fits:
            blob = bytearray(layout.totalsize)
            blob[layout.off_mem_rsvmap:layout.off_mem_rsvmap + len(rsv)] = rsv
            blob[layout.off_dt_struct:layout.off_dt_struct + len(struct_block)] = struct_block
            blob[layout.off_dt_strings:layout.off_dt_strings + len(strings_block)] = strings_block
            header = (FDT_MAGIC, layout.totalsize, layout.off_dt_struct, layout.off_dt_strings,
                      layout.off_mem_rsvmap, tree.version, tree.last_comp_version,
                      tree.boot_cpuid_phys, len(strings_block), struct_size)
            packed = struct.pack(FDT_HEADER_STRUCT, *header)
            # Version 16 headers end before size_dt_struct (36 bytes).
            size = FDT_HEADER_SIZE if tree.version >= FDT_VERSION else FDT_HEADER_SIZE_V16
            blob[:size] = packed[:size]
            return bytes(blob)
    # dtc's layout.
    strings = _StringTable()
    try:
        struct_block = _struct_block(tree.root, strings)
    except UnicodeEncodeError as exc:
        raise BuildError(f"name not encodable in a DTB: {exc.object!r}") from None
    strings_block = bytes(strings.data)
    off_rsv = FDT_HEADER_SIZE
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(struct_block)
    total = off_strings + len(strings_block)
    header = struct.pack(FDT_HEADER_STRUCT, FDT_MAGIC, total, off_struct, off_strings, off_rsv,
                         FDT_VERSION, FDT_LAST_COMP_VERSION, tree.boot_cpuid_phys, len(strings_block), len(struct_block))
    return header + rsv + struct_block + strings_block
