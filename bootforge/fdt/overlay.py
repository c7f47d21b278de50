"""Apply device-tree overlays as fdtoverlay (dtc 1.6) does, byte for byte.

fdtoverlay edits the base blob in place with libfdt (dgibson/dtc
libfdt/fdt_overlay.c, fdt_rw.c, fdt_ro.c) and packs it at the end, so the
result depends on where libfdt puts things, not only on the tree: a new
property goes first in its node, a new subnode after the node's
properties (before its first child), a new property name at the end of the
strings block, and a property that grows or is added keeps in its padding
the stale bytes memmove left there. This module therefore runs the same
steps on a bytearray holding the blob, with libfdt's offsets:

1. the overlay's own phandles are raised above the base's largest
   (phandle, linux,phandle, then __local_fixups__),
2. __fixups__ are resolved through the base's __symbols__,
3. each fragment's __overlay__ is merged into its target (target phandle or
   target-path),
4. the overlay's __symbols__ are added to the base's, re-rooted at the target.

A failure is fdtoverlay's message: "Failed to apply 'x.dtbo': FDT_ERR_NOTFOUND".
Both blobs are first checked by bootforge.fdt.parse (every offset and length),
so the walks below stay inside them.
"""

import struct

from bootforge.align import align_up
from bootforge.errors import FormatError
from bootforge.fdt.parse import parse_dtb
from bootforge.formats.fdt import (
    FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_HEADER_SIZE, FDT_HEADER_STRUCT, FDT_NOP, FDT_PROP,
    FDT_RESERVE_ENTRY_STRUCT,
)

# libfdt's error numbers (libfdt.h), printed by name as fdt_strerror does.
ERR_NAMES = {1: "FDT_ERR_NOTFOUND", 2: "FDT_ERR_EXISTS", 3: "FDT_ERR_NOSPACE", 4: "FDT_ERR_BADOFFSET",
             5: "FDT_ERR_BADPATH", 6: "FDT_ERR_BADPHANDLE", 7: "FDT_ERR_BADSTATE", 8: "FDT_ERR_TRUNCATED",
             9: "FDT_ERR_BADMAGIC", 10: "FDT_ERR_BADVERSION", 11: "FDT_ERR_BADSTRUCTURE",
             12: "FDT_ERR_BADLAYOUT", 13: "FDT_ERR_INTERNAL", 14: "FDT_ERR_BADNCELLS", 15: "FDT_ERR_BADVALUE",
             16: "FDT_ERR_BADOVERLAY", 17: "FDT_ERR_NOPHANDLES", 18: "FDT_ERR_BADFLAGS"}
NOTFOUND, EXISTS, BADPATH, BADPHANDLE, INTERNAL, BADVALUE, BADOVERLAY, NOPHANDLES = 1, 2, 5, 6, 13, 15, 16, 17
NOSPACE = 3

_U32 = struct.Struct(">I")
_RESERVE_SIZE = struct.calcsize(FDT_RESERVE_ENTRY_STRUCT)
# fdtoverlay grows its buffer by this much and starts again when libfdt runs out of space.
_BUF_INCREMENT = 65536
_INT_MAX = 0x7FFFFFFF        # fdt_open_into's bufsize is an int
# Offsets of the header fields (libfdt fdt.h).
_TOTALSIZE, _OFF_STRUCT, _OFF_STRINGS, _OFF_RSV, _VERSION, _LAST_COMP, _BOOT, _SIZE_STRINGS, _SIZE_STRUCT = (
    4, 8, 12, 16, 20, 24, 28, 32, 36)


class FdtErr(Exception):
    def __init__(self, code, buffer_bound=True):
        super().__init__(ERR_NAMES.get(code, f"FDT_ERR_{code}"))
        self.code = code
        # NOSPACE from an in-place write past a property's end: no bigger buffer fixes it.
        self.buffer_bound = buffer_bound


class Blob:
    """A DTB in a buffer, edited the way libfdt edits it. Offsets are libfdt's: node and
    property offsets count from the structure block."""

    def __init__(self, data, bufsize=None):
        size = _U32.unpack_from(data, _TOTALSIZE)[0]
        self.buf = bytearray(data[:size])
        if bufsize is not None and bufsize > size:
            self.buf += bytes(bufsize - size)

    # header
    def h(self, off):
        return _U32.unpack_from(self.buf, off)[0]

    def set_h(self, off, value):
        _U32.pack_into(self.buf, off, value)

    def u32(self, off):
        return _U32.unpack_from(self.buf, self.h(_OFF_STRUCT) + off)[0]

    # tags (fdt_next_tag)
    def next_tag(self, offset):
        base = self.h(_OFF_STRUCT)
        tag = _U32.unpack_from(self.buf, base + offset)[0]
        nxt = offset + 4
        if tag == FDT_BEGIN_NODE:
            nul = self.buf.index(0, base + nxt)
            nxt = nul + 1 - base
        elif tag == FDT_PROP:
            length = _U32.unpack_from(self.buf, base + nxt)[0]
            nxt += 8 + length
        return tag, align_up(nxt, 4)

    def node_name(self, node):
        base = self.h(_OFF_STRUCT)
        start = base + node + 4
        return bytes(self.buf[start:self.buf.index(0, start)])

    def _props_start(self, node):
        tag, nxt = self.next_tag(node)
        if tag != FDT_BEGIN_NODE:
            raise FdtErr(4)
        return nxt

    def _next_prop(self, offset):
        while True:
            tag, nxt = self.next_tag(offset)
            if tag == FDT_PROP:
                return offset
            if tag != FDT_NOP:
                return None
            offset = nxt

    def props(self, node):
        """[(offset, name, value)] of *node*'s properties, in order."""
        out = []
        off = self._next_prop(self._props_start(node))
        base = self.h(_OFF_STRUCT)
        strings = self.h(_OFF_STRINGS)
        while off is not None:
            length, nameoff = struct.unpack_from(">II", self.buf, base + off + 4)
            nstart = strings + nameoff
            name = bytes(self.buf[nstart:self.buf.index(0, nstart)])
            out.append((off, name, bytes(self.buf[base + off + 12:base + off + 12 + length])))
            off = self._next_prop(self.next_tag(off)[1])
        return out

    def getprop(self, node, name):
        for off, pname, value in self.props(node):
            if pname == name:
                return off, value
        return None, None

    def subnodes(self, node):
        """Offsets of *node*'s direct subnodes, in order (fdt_for_each_subnode)."""
        out = []
        tag, offset = self.next_tag(node)
        depth = 1
        while True:
            at = offset
            tag, offset = self.next_tag(at)
            if tag == FDT_BEGIN_NODE:
                depth += 1
                if depth == 2:
                    out.append(at)
            elif tag == FDT_END_NODE:
                depth -= 1
                if depth == 0:
                    return out
            elif tag == FDT_END:
                return out

    def all_nodes(self):
        """Every node offset in blob order (fdt_next_node from -1)."""
        out = []
        offset = 0
        while True:
            tag, nxt = self.next_tag(offset)
            if tag == FDT_BEGIN_NODE:
                out.append(offset)
            elif tag == FDT_END:
                return out
            offset = nxt

    def subnode(self, parent, name):
        """fdt_subnode_offset_namelen: exact name, or the base name when *name* has no '@'."""
        for child in self.subnodes(parent):
            cname = self.node_name(child)
            if cname[:len(name)] != name:
                continue
            rest = cname[len(name):]
            if not rest or (b"@" not in name and rest[:1] == b"@"):
                return child
        return None

    def path_offset(self, path):
        """fdt_path_offset (aliases for paths not starting with '/')."""
        end = len(path)
        p = 0
        offset = 0
        if not path.startswith(b"/"):
            q = path.find(b"/")
            q = end if q < 0 else q
            aliases = self.path_offset(b"/aliases") if path != b"/aliases" else None
            if aliases is None or aliases < 0:
                raise FdtErr(BADPATH)
            _, alias = self.getprop(aliases, path[:q])
            if alias is None or not alias.endswith(b"\0"):
                raise FdtErr(BADPATH)
            offset = self.path_offset(alias[:-1])
            p = q
        while p < end:
            while p < end and path[p:p + 1] == b"/":
                p += 1
            if p >= end:
                return offset
            q = path.find(b"/", p)
            q = end if q < 0 else q
            found = self.subnode(offset, path[p:q])
            if found is None:
                raise FdtErr(NOTFOUND)
            offset = found
            p = q
        return offset

    def get_phandle(self, node):
        for name in (b"phandle", b"linux,phandle"):
            _, value = self.getprop(node, name)
            if value is not None and len(value) == 4:
                return _U32.unpack(value)[0]
        return 0

    def node_by_phandle(self, phandle):
        if phandle in (0, 0xFFFFFFFF):
            raise FdtErr(BADPHANDLE)
        for node in self.all_nodes():
            if self.get_phandle(node) == phandle:
                return node
        raise FdtErr(NOTFOUND)

    def path_of(self, target):
        """fdt_get_path."""
        stack = []
        offset = 0
        while True:
            tag, nxt = self.next_tag(offset)
            if tag == FDT_BEGIN_NODE:
                stack.append(self.node_name(offset))
                if offset == target:
                    return b"/" + b"/".join(stack[1:]) if len(stack) > 1 else b"/"
            elif tag == FDT_END_NODE:
                stack.pop()
            elif tag == FDT_END:
                raise FdtErr(4)
            offset = nxt

    # editing (fdt_rw.c)
    def _data_size(self):
        return self.h(_OFF_STRINGS) + self.h(_SIZE_STRINGS)

    def _splice(self, p, oldlen, newlen):
        """fdt_splice_: memmove the rest of the blob; what was under a grown gap stays there."""
        dsize = self._data_size()
        if dsize - oldlen + newlen > self.h(_TOTALSIZE):
            raise FdtErr(NOSPACE)
        tail = bytes(self.buf[p + oldlen:dsize])
        self.buf[p + newlen:p + newlen + len(tail)] = tail

    def _splice_struct(self, p, oldlen, newlen):
        self._splice(self.h(_OFF_STRUCT) + p, oldlen, newlen)
        delta = newlen - oldlen
        self.set_h(_SIZE_STRUCT, self.h(_SIZE_STRUCT) + delta)
        self.set_h(_OFF_STRINGS, self.h(_OFF_STRINGS) + delta)

    def _find_add_string(self, name):
        strtab = self.h(_OFF_STRINGS)
        size = self.h(_SIZE_STRINGS)
        found = bytes(self.buf[strtab:strtab + size]).find(name + b"\0")
        if found >= 0:
            return found
        raw = name + b"\0"
        self._splice(strtab + size, 0, len(raw))
        self.buf[strtab + size:strtab + size + len(raw)] = raw
        self.set_h(_SIZE_STRINGS, size + len(raw))
        return size

    def setprop(self, node, name, value):
        base = self.h(_OFF_STRUCT)
        off, old = self.getprop(node, name)
        if off is not None:
            self._splice_struct(off + 12, align_up(len(old), 4), align_up(len(value), 4))
            _U32.pack_into(self.buf, base + off + 4, len(value))
        else:
            off = self._props_start(node)
            nameoff = self._find_add_string(name)
            self._splice_struct(off, 0, 12 + align_up(len(value), 4))
            struct.pack_into(">III", self.buf, base + off, FDT_PROP, len(value), nameoff)
        self.buf[base + off + 12:base + off + 12 + len(value)] = value

    def setprop_inplace_partial(self, node, name, idx, value):
        off, old = self.getprop(node, name)
        if off is None:
            raise FdtErr(NOTFOUND)
        if idx + len(value) > len(old):
            raise FdtErr(NOSPACE, buffer_bound=False)
        start = self.h(_OFF_STRUCT) + off + 12 + idx
        self.buf[start:start + len(value)] = value

    def add_subnode(self, parent, name):
        if self.subnode(parent, name) is not None:
            raise FdtErr(EXISTS)
        tag, nxt = self.next_tag(parent)
        while True:
            offset = nxt
            tag, nxt = self.next_tag(offset)
            if tag not in (FDT_PROP, FDT_NOP):
                break
        nodelen = 4 + align_up(len(name) + 1, 4) + 4
        self._splice_struct(offset, 0, nodelen)
        start = self.h(_OFF_STRUCT) + offset
        self.buf[start:start + nodelen] = (_U32.pack(FDT_BEGIN_NODE) + name.ljust(align_up(len(name) + 1, 4), b"\0")
                                           + _U32.pack(FDT_END_NODE))
        return offset

    def pack(self):
        """fdt_pack: reservations, structure and strings back to back after the header."""
        rsv_off = self.h(_OFF_RSV)
        n = 0
        while struct.unpack_from(">QQ", self.buf, rsv_off + n * _RESERVE_SIZE) != (0, 0):
            n += 1
        rsv = bytes(self.buf[rsv_off:rsv_off + (n + 1) * _RESERVE_SIZE])
        st, ss = self.h(_OFF_STRUCT), self.h(_SIZE_STRUCT)
        sg, sgs = self.h(_OFF_STRINGS), self.h(_SIZE_STRINGS)
        struct_block, strings = bytes(self.buf[st:st + ss]), bytes(self.buf[sg:sg + sgs])
        at = FDT_HEADER_SIZE
        self.buf[at:at + len(rsv)] = rsv
        self.set_h(_OFF_RSV, at)
        at += len(rsv)
        self.buf[at:at + ss] = struct_block
        self.set_h(_OFF_STRUCT, at)
        at += ss
        self.buf[at:at + sgs] = strings
        self.set_h(_OFF_STRINGS, at)
        at += sgs
        self.set_h(_TOTALSIZE, at)
        return bytes(self.buf[:at])


def _open_into(data, bufsize):
    """fdt_open_into: a copy in a buffer of *bufsize* bytes, version 17, blocks in libfdt's order."""
    h = dict(zip(("magic", "totalsize", "off_dt_struct", "off_dt_strings", "off_mem_rsvmap", "version",
                  "last_comp_version", "boot_cpuid_phys", "size_dt_strings", "size_dt_struct"),
                 struct.unpack_from(FDT_HEADER_STRUCT, bytes(data[:FDT_HEADER_SIZE]).ljust(FDT_HEADER_SIZE, b"\0"))))
    tree = parse_dtb(data)
    rsv_size = (len(tree.reservations) + 1) * _RESERVE_SIZE
    struct_size = h["size_dt_struct"] if h["version"] >= 17 else tree.layout.struct_size
    misordered = (h["off_mem_rsvmap"] < FDT_HEADER_SIZE or h["off_dt_struct"] < h["off_mem_rsvmap"] + rsv_size
                  or h["off_dt_strings"] < h["off_dt_struct"] + struct_size
                  or h["totalsize"] < h["off_dt_strings"] + h["size_dt_strings"])
    if not misordered:
        blob = Blob(data, bufsize)
        blob.set_h(_VERSION, 17)
        blob.set_h(_SIZE_STRUCT, struct_size)
        blob.set_h(_TOTALSIZE, max(bufsize, h["totalsize"]))
        return blob
    rsv = bytes(data[h["off_mem_rsvmap"]:h["off_mem_rsvmap"] + rsv_size])
    st = bytes(data[h["off_dt_struct"]:h["off_dt_struct"] + struct_size])
    sg = bytes(data[h["off_dt_strings"]:h["off_dt_strings"] + h["size_dt_strings"]])
    header = struct.pack(FDT_HEADER_STRUCT, 0xD00DFEED, bufsize, FDT_HEADER_SIZE + rsv_size,
                         FDT_HEADER_SIZE + rsv_size + len(st), FDT_HEADER_SIZE, 17, 16, h["boot_cpuid_phys"],
                         len(sg), len(st))
    packed = header + rsv + st + sg
    blob = Blob(packed[:4] + _U32.pack(len(packed)) + packed[8:], max(bufsize, len(packed)))
    blob.set_h(_TOTALSIZE, max(bufsize, len(packed)))
    return blob


def _target(fdt, fdto, fragment):
    """overlay_get_target: (node offset, target-path or None)."""
    _, val = fdto.getprop(fragment, b"target")
    if val is not None:
        phandle = _U32.unpack(val)[0] if len(val) == 4 else 0xFFFFFFFF
        if phandle == 0xFFFFFFFF:
            raise FdtErr(BADPHANDLE)
        if phandle:
            return fdt.node_by_phandle(phandle), None
    _, path = fdto.getprop(fragment, b"target-path")
    if path is None:
        raise FdtErr(BADOVERLAY)
    return fdt.path_offset(path.split(b"\0", 1)[0]), path.split(b"\0", 1)[0]


def _adjust_phandles(fdto, delta):
    for node in fdto.all_nodes():
        for name in (b"phandle", b"linux,phandle"):
            _, val = fdto.getprop(node, name)
            if val is None:
                continue
            if len(val) != 4:
                raise FdtErr(BADPHANDLE)
            v = _U32.unpack(val)[0]
            if v + delta > 0xFFFFFFFF or v + delta == 0xFFFFFFFF:
                raise FdtErr(NOPHANDLES)
            fdto.setprop_inplace_partial(node, name, 0, _U32.pack(v + delta))


def _update_local_references(fdto, tree_node, fixup_node, delta):
    for _, name, fixup in fdto.props(fixup_node):
        if len(fixup) % 4:
            raise FdtErr(BADOVERLAY)
        _, tree_val = fdto.getprop(tree_node, name)
        if tree_val is None:
            raise FdtErr(BADOVERLAY)
        for (poffset,) in struct.iter_unpack(">I", fixup):
            raw = tree_val[poffset:poffset + 4]
            if len(raw) < 4:
                raise FdtErr(BADOVERLAY)
            new = _U32.pack((_U32.unpack(raw)[0] + delta) & 0xFFFFFFFF)
            fdto.setprop_inplace_partial(tree_node, name, poffset, new)
            _, tree_val = fdto.getprop(tree_node, name)
    for child in fdto.subnodes(fixup_node):
        tree_child = fdto.subnode(tree_node, fdto.node_name(child))
        if tree_child is None:
            raise FdtErr(BADOVERLAY)
        _update_local_references(fdto, tree_child, child, delta)


def _fixup_phandles(fdt, fdto):
    try:
        fixups = fdto.path_offset(b"/__fixups__")
    except FdtErr as exc:
        if exc.code == NOTFOUND:
            return
        raise
    try:
        symbols = fdt.path_offset(b"/__symbols__")
    except FdtErr as exc:
        if exc.code != NOTFOUND:
            raise
        symbols = None
    for _, label, value in fdto.props(fixups):
        rest = value
        while True:
            nul = rest.find(b"\0")
            if nul < 0:
                raise FdtErr(BADOVERLAY)
            entry, rest = rest[:nul], rest[nul + 1:]
            path, sep, tail = entry.partition(b":")
            if not sep or len(path) == len(entry) - 1:
                raise FdtErr(BADOVERLAY)
            name, sep, off = tail.partition(b":")
            if not sep or not name:
                raise FdtErr(BADOVERLAY)
            if not off or not off.isdigit():
                raise FdtErr(BADOVERLAY)
            poffset = int(off) & 0xFFFFFFFF
            if symbols is None:
                raise FdtErr(NOTFOUND)
            _, symbol_path = fdt.getprop(symbols, label)
            if symbol_path is None:
                raise FdtErr(NOTFOUND)
            node = fdt.path_offset(symbol_path.split(b"\0", 1)[0])
            phandle = fdt.get_phandle(node)
            if not phandle:
                raise FdtErr(NOTFOUND)
            try:
                fixup_node = fdto.path_offset(path)
            except FdtErr as exc:
                raise FdtErr(BADOVERLAY if exc.code == NOTFOUND else exc.code) from None
            fdto.setprop_inplace_partial(fixup_node, name, poffset, _U32.pack(phandle))
            if not rest:
                break


def _apply_node(fdt, target, fdto, node):
    for _, name, value in fdto.props(node):
        fdt.setprop(target, name, value)
    for sub in fdto.subnodes(node):
        name = fdto.node_name(sub)
        try:
            nnode = fdt.add_subnode(target, name)
        except FdtErr as exc:
            if exc.code != EXISTS:
                raise
            nnode = fdt.subnode(target, name)
        _apply_node(fdt, nnode, fdto, sub)


def _merge(fdt, fdto):
    for fragment in fdto.subnodes(0):
        overlay = fdto.subnode(fragment, b"__overlay__")
        if overlay is None:
            continue
        target, _ = _target(fdt, fdto, fragment)
        _apply_node(fdt, target, fdto, overlay)


def _symbol_update(fdt, fdto):
    ov_sym = fdto.subnode(0, b"__symbols__")
    if ov_sym is None:
        return
    root_sym = fdt.subnode(0, b"__symbols__")
    if root_sym is None:
        root_sym = fdt.add_subnode(0, b"__symbols__")
    for _, name, path in fdto.props(ov_sym):
        if not path or path.find(b"\0") != len(path) - 1:
            raise FdtErr(BADVALUE)
        if path[:1] != b"/":
            raise FdtErr(BADVALUE)
        s = path.find(b"/", 1)
        if s < 0:
            continue
        frag_name = path[1:s]
        rest = path[s:-1]          # without the NUL
        if rest.startswith(b"/__overlay__/") and len(path) - s > len(b"/__overlay__/"):
            rel = rest[len(b"/__overlay__/"):]
        elif len(path) - s == len(b"/__overlay__/") and rest == b"/__overlay__":
            rel = b""
        else:
            continue
        fragment = fdto.subnode(0, frag_name)
        if fragment is None or fdto.subnode(fragment, b"__overlay__") is None:
            raise FdtErr(BADOVERLAY)
        target, target_path = _target(fdt, fdto, fragment)
        if target_path is None:
            full = fdt.path_of(target)
            length = 1 if full == b"/" else len(full)
        else:
            full = target_path
            length = len(target_path)
        prefix = full if length > 1 else b""
        fdt.setprop(root_sym, name, prefix + b"/" + rel + b"\0")


def _apply_one(base, overlay, bufsize):
    fdt = _open_into(base, bufsize)
    fdto = Blob(overlay)
    delta = max([fdt.get_phandle(n) for n in fdt.all_nodes()] + [0])
    _adjust_phandles(fdto, delta)
    try:
        local = fdto.path_offset(b"/__local_fixups__")
    except FdtErr as exc:
        if exc.code != NOTFOUND:
            raise
        local = None
    if local is not None:
        _update_local_references(fdto, 0, local, delta)
    _fixup_phandles(fdt, fdto)
    _merge(fdt, fdto)
    _symbol_update(fdt, fdto)
    return fdt


def apply_overlays(base, overlays, base_name="base"):
    """The packed DTB fdtoverlay writes for *base* (bytes) and *overlays* [(name, bytes)].

    :raises FormatError: a blob that is not a sound DTB, or fdtoverlay's failure, in its words.
    """
    parse_dtb(base, base_name)
    for name, data in overlays:
        parse_dtb(data, name)
    bufsize = _U32.unpack_from(base, _TOTALSIZE)[0]
    current = bytes(base)
    for name, data in overlays:
        while True:
            try:
                fdt = _apply_one(current, data, bufsize)
                break
            except FdtErr as exc:
                if exc.code == NOSPACE and exc.buffer_bound and bufsize + _BUF_INCREMENT <= _INT_MAX:
                    bufsize += _BUF_INCREMENT
                    continue
                if exc.code == NOSPACE:
                    # fdtoverlay grows its buffer until fdt_open_into's int size goes negative and says
                    # this (dtc 1.6.1, observed: 5.6 s on an overlay whose __fixups__ offset points past
                    # the property); the loop is not replayed.
                    raise FormatError(f"Failed to make temporary copy: {exc} (applying '{name}': "
                                      + ("a write past the end of a property, which no buffer size fixes)"
                                         if not exc.buffer_bound else "no buffer under 2 GiB holds the result)"))
                raise FormatError(f"Failed to apply '{name}': {exc}") from None
        current = bytes(fdt.buf[:fdt.h(_TOTALSIZE)])
    out = Blob(current)
    return out.pack()
