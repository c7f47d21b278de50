"""Parse a DTB into a DeviceTree, trusting no field of it.

Every offset and length is checked against totalsize and the block it
belongs to before it is used; nesting is bounded; the walk is iterative, so
a hostile blob gives one FormatError or LimitError with the offset of the
problem, never a traceback, a hang or an allocation sized by a field.
"""

import struct

from bootforge.errors import FormatError, LimitError
from bootforge.fdt.tree import DeviceTree, FdtLayout, FdtNode, FdtProperty
from bootforge.formats.fdt import (
    FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_HEADER_FIELDS, FDT_HEADER_SIZE, FDT_HEADER_SIZE_V16,
    FDT_HEADER_STRUCT, FDT_LAST_COMP_VERSION, FDT_MAGIC, FDT_NOP, FDT_PROP, FDT_PROP_HEADER_STRUCT,
    FDT_RESERVE_ENTRY_STRUCT, FDT_VERSION,
)

# Real trees are under 16 levels deep; Linux's unflattener stops at 64.
MAX_DEPTH = 256

_HEADER = struct.Struct(FDT_HEADER_STRUCT)
_U32 = struct.Struct(">I")
_PROP = struct.Struct(FDT_PROP_HEADER_STRUCT)
_RESERVE = struct.Struct(FDT_RESERVE_ENTRY_STRUCT)


def parse_header(data, path=None):
    """The ten header fields as a dict, after checking magic, version and sizes."""
    if len(data) < FDT_HEADER_SIZE_V16:
        raise FormatError(f"{len(data)} bytes is too short for an FDT header", path=path, offset=0)
    padded = bytes(data[:FDT_HEADER_SIZE]).ljust(FDT_HEADER_SIZE, b"\0")
    header = dict(zip(FDT_HEADER_FIELDS, _HEADER.unpack(padded)))
    if header["magic"] != FDT_MAGIC:
        raise FormatError(f"bad FDT magic {header['magic']:#010x} (want 0xd00dfeed)", path=path, offset=0)
    if header["version"] < FDT_LAST_COMP_VERSION or header["last_comp_version"] > FDT_VERSION:
        raise FormatError(f"FDT version {header['version']} (last compatible "
                          f"{header['last_comp_version']}) is not supported (16 or 17)",
                          path=path, offset=0x14)
    header_size = FDT_HEADER_SIZE if header["version"] >= FDT_VERSION else FDT_HEADER_SIZE_V16
    if header["version"] < FDT_VERSION:
        header["size_dt_struct"] = None
    total = header["totalsize"]
    if total < header_size:
        raise FormatError(f"totalsize {total:#x} is smaller than the header", path=path, offset=4)
    if total > len(data):
        raise FormatError(f"totalsize {total:#x} is past the end of the {len(data):#x}-byte file",
                          path=path, offset=4)
    header["header_size"] = header_size
    return header


def _check_blocks(h, path):
    total = h["totalsize"]
    hs = h["header_size"]
    rsv = h["off_mem_rsvmap"]
    st, ss = h["off_dt_struct"], h["size_dt_struct"]
    sg, sgs = h["off_dt_strings"], h["size_dt_strings"]
    if rsv % 8:
        raise FormatError(f"memory reservation block at {rsv:#x} is not 8-byte aligned", path=path, offset=0x10)
    if st % 4:
        raise FormatError(f"structure block at {st:#x} is not 4-byte aligned", path=path, offset=0x08)
    for name, off, field_at in (("memory reservation block", rsv, 0x10), ("structure block", st, 0x08),
                                ("strings block", sg, 0x0C)):
        if off < hs or off > total:
            raise FormatError(f"{name} offset {off:#x} is outside [{hs:#x}, totalsize {total:#x}]",
                              path=path, offset=field_at)
    if ss is None:
        ss = total - st
        h["size_dt_struct"] = ss
    if st + ss > total:
        raise FormatError(f"structure block [{st:#x}, {st + ss:#x}) runs past totalsize {total:#x}",
                          path=path, offset=0x24)
    if sg + sgs > total:
        raise FormatError(f"strings block [{sg:#x}, {sg + sgs:#x}) runs past totalsize {total:#x}",
                          path=path, offset=0x20)
    if ss and sgs and st < sg + sgs and sg < st + ss and h["version"] >= FDT_VERSION:
        raise FormatError(f"structure block [{st:#x}, {st + ss:#x}) overlaps strings block "
                          f"[{sg:#x}, {sg + sgs:#x})", path=path, offset=0x08)


def _check_no_overlap_with_reservations(h, rsv_end, path):
    """The structure and strings blocks lie outside the memory reservation block."""
    for name, off, size in (("structure block", h["off_dt_struct"], h["size_dt_struct"]),
                            ("strings block", h["off_dt_strings"], h["size_dt_strings"])):
        if size and h["off_mem_rsvmap"] < off + size and off < rsv_end:
            raise FormatError(f"{name} overlaps the memory reservation block", path=path, offset=off)


def _parse_reservations(data, h, path):
    rsv = h["off_mem_rsvmap"]
    # The block ends at the next block that starts after it, or at totalsize.
    limit = min([o for o in (h["off_dt_struct"], h["off_dt_strings"]) if o > rsv] + [h["totalsize"]])
    out = []
    offset = rsv
    while True:
        if offset + _RESERVE.size > limit:
            raise FormatError("memory reservation block is not terminated by a (0, 0) entry "
                              f"before {limit:#x}", path=path, offset=offset)
        address, size = _RESERVE.unpack_from(data, offset)
        if address == 0 and size == 0:
            return out, offset + _RESERVE.size
        out.append((address, size))
        offset += _RESERVE.size


def parse_dtb(data, path=None):
    """Parse the DTB in *data* (bytes) into a DeviceTree.

    :param data: the blob; bytes past its totalsize are ignored.
    :param path: the file name, for error messages.
    :raises FormatError: anything the blob claims that cannot be true (the
        offset names the field or token at fault).
    :raises LimitError: nesting deeper than MAX_DEPTH.

    Example::

        tree = parse_dtb(open("virt.dtb", "rb").read())
        tree.node("/memory@40000000").prop("reg")
    """
    h = parse_header(data, path)
    # Only the blob is copied: a FIT's external data (a mapped file, bootforge/inspect.py
    # MAPPED_FORMATS) follows it, tens of MiB that the tree never reads.
    data = data if isinstance(data, bytes) else bytes(data[:h["totalsize"]])
    _check_blocks(h, path)
    reservations, rsv_end = _parse_reservations(data, h, path)
    _check_no_overlap_with_reservations(h, rsv_end, path)

    strings_start = h["off_dt_strings"]
    strings_end = strings_start + h["size_dt_strings"]
    struct_start = h["off_dt_struct"]
    struct_end = struct_start + h["size_dt_struct"]
    name_cache = {}

    def prop_name(nameoff, at):
        cached = name_cache.get(nameoff)
        if cached is not None:
            return cached
        if nameoff >= h["size_dt_strings"]:
            raise FormatError(f"property name offset {nameoff:#x} is past the strings block "
                              f"({h['size_dt_strings']:#x} bytes)", path=path, offset=at)
        begin = strings_start + nameoff
        nul = data.find(b"\0", begin, strings_end)
        if nul < 0:
            raise FormatError("property name runs off the end of the strings block",
                              path=path, offset=begin)
        name = data[begin:nul].decode("latin-1")
        name_cache[nameoff] = name
        return name

    pos = struct_start
    stack = []
    root = None
    nops = []
    padding = {}
    u32 = _U32.unpack_from
    while True:
        if pos + 4 > struct_end:
            raise FormatError("structure block ends without FDT_END", path=path, offset=pos)
        token = u32(data, pos)[0]
        at = pos
        pos += 4
        if token == FDT_PROP:
            if not stack:
                raise FormatError("property outside any node", path=path, offset=at)
            if pos + 8 > struct_end:
                raise FormatError("property header runs off the structure block", path=path, offset=at)
            length, nameoff = _PROP.unpack_from(data, pos)
            pos += 8
            if length > struct_end - pos:
                raise FormatError(f"property length {length:#x} runs off the structure block",
                                  path=path, offset=at + 4)
            node = stack[-1]
            if node.children:
                raise FormatError("property after a subnode", path=path, offset=at)
            node.properties.append(FdtProperty(prop_name(nameoff, at + 8), data[pos:pos + length], nameoff))
            pad_at = pos + length
            pos += (length + 3) & ~3
            if pos > pad_at and any(data[pad_at:pos]):
                padding[pad_at - struct_start] = data[pad_at:pos]
        elif token == FDT_BEGIN_NODE:
            if root is not None and not stack:
                raise FormatError("a second root node", path=path, offset=at)
            nul = data.find(b"\0", pos, struct_end)
            if nul < 0:
                raise FormatError("node name runs off the structure block", path=path, offset=pos)
            node = FdtNode(data[pos:nul].decode("latin-1"))
            pos = (nul + 1 + 3) & ~3
            if pos > nul + 1 and any(data[nul + 1:pos]):
                padding[nul + 1 - struct_start] = data[nul + 1:pos]
            if stack:
                if len(stack) >= MAX_DEPTH:
                    raise LimitError(f"nodes nested deeper than {MAX_DEPTH} levels", path=path, offset=at)
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif token == FDT_END_NODE:
            if not stack:
                raise FormatError("FDT_END_NODE without a node", path=path, offset=at)
            stack.pop()
        elif token == FDT_NOP:
            nops.append(at - struct_start)
        elif token == FDT_END:
            if stack:
                raise FormatError(f"FDT_END inside {len(stack)} open node(s)", path=path, offset=at)
            if root is None:
                raise FormatError("structure block has no root node", path=path, offset=at)
            break
        else:
            raise FormatError(f"unknown structure token {token:#x}", path=path, offset=at)
        if pos > struct_end:
            raise FormatError("token runs off the structure block", path=path, offset=at)

    layout = FdtLayout(off_mem_rsvmap=h["off_mem_rsvmap"], off_dt_struct=struct_start,
                       off_dt_strings=strings_start, totalsize=h["totalsize"],
                       strings=data[strings_start:strings_end], nop_offsets=tuple(nops),
                       # Version 16 has no size_dt_struct: the block ends after FDT_END.
                       struct_size=h["size_dt_struct"] if h["version"] >= FDT_VERSION else pos - struct_start,
                       padding=padding)
    return DeviceTree(root=root, reservations=reservations, boot_cpuid_phys=h["boot_cpuid_phys"],
                      version=h["version"], last_comp_version=h["last_comp_version"], layout=layout)
