"""DTB edits made in place, byte for byte as libfdt (dtc 1.6 libfdt/fdt_rw.c) makes them.

QEMU's boot code and OpenSBI edit the machine's DTB with libfdt inside a buffer larger
than the tree, and the kernel gets that buffer. Where an edit lands is libfdt's rule,
not the device-tree's: a new property goes first in its node (fdt_add_property_
inserts right after FDT_BEGIN_NODE), a new subnode goes after the parent's properties
and before its existing children (fdt_add_subnode_namelen), a new name is appended to
the strings block unless the block already holds it, suffix matches included
(fdt_find_add_string_), every insertion memmove()s the rest of the blob up
(fdt_splice_: the alignment padding of a new property keeps the bytes that were
there), a deleted property's bytes are spliced out (the blob's old end keeps stale
bytes), fdt_nop_node() overwrites a node with FDT_NOP tokens, fdt_open_into() of a
blob already in order changes only totalsize, and fdt_pack() cuts totalsize to the
end of the data. `Fdt` does exactly that on a bytearray, so a prediction built from
the machine's own DTB is the loader's DTB byte for byte.
"""

import struct

from bootforge.align import align_up
from bootforge.errors import FormatError
from bootforge.formats.fdt import FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_NOP, FDT_PROP

_U32 = struct.Struct(">I")
# Header field offsets (formats/fdt.py FdtHeader).
TOTALSIZE, OFF_STRUCT, OFF_STRINGS, OFF_RSVMAP, VERSION = 4, 8, 12, 16, 20
SIZE_STRINGS, SIZE_STRUCT = 32, 36


class Fdt:
    """A DTB in a buffer of *buffer_size* bytes (default: its totalsize), edited in place."""

    def __init__(self, blob, buffer_size=None):
        total = _U32.unpack_from(blob, TOTALSIZE)[0]
        size = max(buffer_size or total, len(blob))
        self.buf = bytearray(blob) + bytearray(size - len(blob))
        # 1 for each byte whose value differs per boot (a random property's value, or a stale copy of
        # one that a splice left in alignment padding): moved with the bytes by every edit.
        self.random = bytearray(size)

    RANDOM, CHOSEN = 1, 2       # marks: differs per boot / the loader's own choice (an address it picked)

    def mark_random(self, start, length, kind=RANDOM):
        self.random[start:start + length] = bytes([kind]) * length

    def random_spans(self, kind=RANDOM):
        """[(offset, length)] of the bytes within totalsize marked *kind* (random by default)."""
        spans, at, total = [], 0, self.totalsize
        while at < total:
            at = self.random.find(kind, at, total)
            if at < 0:
                break
            end = at
            while end < total and self.random[end] == kind:
                end += 1
            spans.append((at, end - at))
            at = end
        return spans

    def add_mem_rsv(self, address, size):
        """fdt_add_mem_rsv(): a reservation entry before the terminating one (the blocks after move)."""
        rsv = self._get(OFF_RSVMAP)
        n = 0
        while struct.unpack_from(">QQ", self.buf, rsv + 16 * n) != (0, 0):
            n += 1
        at = rsv + 16 * n
        self._splice(at, 0, 16)
        self._set(OFF_STRUCT, self._get(OFF_STRUCT) + 16)
        self._set(OFF_STRINGS, self._get(OFF_STRINGS) + 16)
        self._write(at, struct.pack(">QQ", address, size))
        return at

    def _write(self, at, data):
        self.buf[at:at + len(data)] = data
        self.random[at:at + len(data)] = bytes(len(data))

    # Header.
    def _get(self, at):
        return _U32.unpack_from(self.buf, at)[0]

    def _set(self, at, value):
        _U32.pack_into(self.buf, at, value)

    @property
    def totalsize(self):
        return self._get(TOTALSIZE)

    def blob(self):
        """The DTB as the kernel reads it: its first totalsize bytes."""
        return bytes(self.buf[:self.totalsize])

    def _data_size(self):
        # fdt_data_size_(): the end of the last block.
        return max(self._get(OFF_RSVMAP), self._get(OFF_STRUCT) + self._get(SIZE_STRUCT),
                   self._get(OFF_STRINGS) + self._get(SIZE_STRINGS))

    # Tokens.
    def next_tag(self, offset):
        """(tag, offset of the next tag), as fdt_next_tag()."""
        base = self._get(OFF_STRUCT)
        tag = self._get(base + offset)
        at = offset + 4
        if tag == FDT_BEGIN_NODE:
            nul = self.buf.index(0, base + at)
            at = nul - base + 1
        elif tag == FDT_PROP:
            length = self._get(base + at)
            at += 8 + length
        elif tag not in (FDT_END, FDT_END_NODE, FDT_NOP):
            raise FormatError(f"libfdt: bad tag {tag:#x} at structure offset {offset:#x}")
        return tag, align_up(at, 4)

    def _name(self, offset):
        base = self._get(OFF_STRUCT) + offset + 4
        return self.buf[base:self.buf.index(0, base)].decode("latin-1")

    def _prop_name(self, offset):
        nameoff = self._get(self._get(OFF_STRUCT) + offset + 8)
        start = self._get(OFF_STRINGS) + nameoff
        return self.buf[start:self.buf.index(0, start)].decode("latin-1")

    def subnodes(self, node):
        """[(name, offset)] of *node*'s children (NOPs skipped)."""
        tag, at = self.next_tag(node)
        depth, out = 0, []
        while True:
            offset = at
            tag, at = self.next_tag(offset)
            if tag == FDT_BEGIN_NODE:
                if depth == 0:
                    out.append((self._name(offset), offset))
                depth += 1
            elif tag == FDT_END_NODE:
                if depth == 0:
                    return out
                depth -= 1
            elif tag == FDT_END:
                return out

    def path_offset(self, path):
        node = 0
        for part in [p for p in path.split("/") if p]:
            found = [o for n, o in self.subnodes(node) if n == part or n.split("@")[0] == part]
            if not found:
                return None
            node = found[0]
        return node

    def nodes(self):
        """Offsets of every node, in structure order (fdt_next_node)."""
        out, at = [], 0
        while True:
            tag, nxt = self.next_tag(at)
            if tag == FDT_BEGIN_NODE:
                out.append(at)
            elif tag == FDT_END:
                return out
            at = nxt

    def properties(self, node):
        """[(name, offset)] of *node*'s properties."""
        tag, at = self.next_tag(node)
        out = []
        while True:
            offset = at
            tag, at = self.next_tag(offset)
            if tag == FDT_PROP:
                out.append((self._prop_name(offset), offset))
            elif tag != FDT_NOP:
                return out

    def getprop(self, node, name):
        for n, offset in self.properties(node):
            if n == name:
                base = self._get(OFF_STRUCT) + offset
                return bytes(self.buf[base + 12:base + 12 + self._get(base + 4)])
        return None

    def value_span(self, node, name):
        """(buffer offset, length) of property *name*'s value in *node*, or None."""
        for n, offset in self.properties(node):
            if n == name:
                base = self._get(OFF_STRUCT) + offset
                return base + 12, self._get(base + 4)
        return None

    def node_by_compatible(self, compatible):
        want = compatible.encode("latin-1")
        for node in self.nodes():
            value = self.getprop(node, "compatible") or b""
            if want in value.rstrip(b"\0").split(b"\0"):
                return node
        return None

    # Edits (fdt_rw.c).
    def _splice(self, at, oldlen, newlen):
        dsize = self._data_size()
        if dsize - oldlen + newlen > self.totalsize:
            raise FormatError(f"libfdt: no space ({dsize - oldlen + newlen:#x} > totalsize {self.totalsize:#x})")
        self.buf[at + newlen:dsize - oldlen + newlen] = self.buf[at + oldlen:dsize]
        self.random[at + newlen:dsize - oldlen + newlen] = self.random[at + oldlen:dsize]

    def _splice_struct(self, offset, oldlen, newlen):
        self._splice(self._get(OFF_STRUCT) + offset, oldlen, newlen)
        self._set(SIZE_STRUCT, self._get(SIZE_STRUCT) + newlen - oldlen)
        self._set(OFF_STRINGS, self._get(OFF_STRINGS) + newlen - oldlen)

    def _find_add_string(self, name):
        raw = name.encode("latin-1") + b"\0"
        start, size = self._get(OFF_STRINGS), self._get(SIZE_STRINGS)
        found = bytes(self.buf[start:start + size]).find(raw)
        if found >= 0:
            return found
        self._splice(start + size, 0, len(raw))
        self._write(start + size, raw)
        self._set(SIZE_STRINGS, size + len(raw))
        return size

    def setprop(self, node, name, value):
        value = bytes(value)
        base_struct = self._get(OFF_STRUCT)
        for n, offset in self.properties(node):
            if n == name:
                old = self._get(base_struct + offset + 4)
                self._splice_struct(offset + 12, align_up(old, 4), align_up(len(value), 4))
                self._set(base_struct + offset + 4, len(value))
                self._write(base_struct + offset + 12, value)
                return
        nameoff = self._find_add_string(name)
        _tag, first = self.next_tag(node)
        self._splice_struct(first, 0, 12 + align_up(len(value), 4))
        at = self._get(OFF_STRUCT) + first
        self._write(at, struct.pack(">III", FDT_PROP, len(value), nameoff) + value)

    def delprop(self, node, name):
        for n, offset in self.properties(node):
            if n == name:
                length = self._get(self._get(OFF_STRUCT) + offset + 4)
                self._splice_struct(offset, 12 + align_up(length, 4), 0)
                return True
        return False

    def add_subnode(self, parent, name):
        _tag, at = self.next_tag(parent)
        while True:
            offset = at
            tag, at = self.next_tag(offset)
            if tag not in (FDT_PROP, FDT_NOP):
                break
        raw = name.encode("latin-1")
        nodelen = 4 + align_up(len(raw) + 1, 4) + 4
        self._splice_struct(offset, 0, nodelen)
        at = self._get(OFF_STRUCT) + offset
        self._write(at, _U32.pack(FDT_BEGIN_NODE) + raw.ljust(align_up(len(raw) + 1, 4), b"\0")
                    + _U32.pack(FDT_END_NODE))
        return offset

    def node_end(self, node):
        """The offset just after *node*'s FDT_END_NODE (fdt_next_subnode's walk)."""
        depth, at = 0, node
        while True:
            tag, at = self.next_tag(at)
            if tag == FDT_BEGIN_NODE:
                depth += 1
            elif tag == FDT_END_NODE:
                depth -= 1
                if depth == 0:
                    return at
            elif tag == FDT_END:
                raise FormatError("libfdt: node without FDT_END_NODE")

    def del_node(self, node):
        """fdt_del_node(): the node's bytes spliced out of the structure block."""
        self._splice_struct(node, self.node_end(node) - node, 0)

    def strings(self):
        start = self._get(OFF_STRINGS)
        return bytes(self.buf[start:start + self._get(SIZE_STRINGS)])

    def forget_strings(self, size):
        """Undo appends to the strings block: keep its first *size* bytes and zero the buffer
        past the data (for rebuilding the state before an edit; not a libfdt operation)."""
        self._set(SIZE_STRINGS, size)
        end = self._data_size()
        self.buf[end:] = bytes(len(self.buf) - end)
        self.random[end:] = bytes(len(self.random) - end)

    def nop_node(self, node):
        depth, at = 0, node
        base = self._get(OFF_STRUCT)
        while True:
            tag, nxt = self.next_tag(at)
            depth += tag == FDT_BEGIN_NODE
            depth -= tag == FDT_END_NODE
            for word in range(at, nxt, 4):
                self._write(base + word, _U32.pack(FDT_NOP))
            at = nxt
            if depth == 0:
                return

    def open_into(self, bufsize):
        """fdt_open_into(fdt, fdt, bufsize) of a blob whose blocks are in order: version 17, totalsize."""
        if bufsize > len(self.buf):
            self.random += bytearray(bufsize - len(self.buf))
            self.buf += bytearray(bufsize - len(self.buf))
        self._set(VERSION, 17)
        self._set(TOTALSIZE, bufsize)

    def pack(self):
        self._set(TOTALSIZE, self._data_size())
