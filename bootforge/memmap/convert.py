"""Conversions between map families and views, as the real converters do them.

efi_to_e820   the Linux EFI stub's setup_e820() (default) or Xen's
              efi_arch_process_memory_map() (convention="xen")
fdt_to_map    /memory, /reserved-memory and the reservation block of a DTB
map_to_fdt    the reverse: a minimal DTB describing a map
"""

from bootforge.fdt.tree import DeviceTree, FdtNode, FdtProperty
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EfiMemoryAttribute, EfiMemoryType
from bootforge.memmap.model import (
    E820_TYPE_NAMES, FLAG_MEMRESERVE, FLAG_NO_MAP, FLAG_REUSABLE, MemoryMap,
    MemoryMapError, MemoryRange, type_number,
)
from bootforge.memmap.ops import sanitize

T = EfiMemoryType
# EFI type -> E820 type in the Linux stub (x86-stub.c setup_e820); types
# missing here are skipped, leaving a hole. The OS-owned types and
# unaccepted memory are decided below.
_LINUX_STUB_FIXED = {int(efi): int(e820) for efi, e820 in (
    (T.RESERVED, E820Type.RESERVED), (T.RUNTIME_SERVICES_CODE, E820Type.RESERVED),
    (T.RUNTIME_SERVICES_DATA, E820Type.RESERVED), (T.MMIO, E820Type.RESERVED),
    (T.MMIO_PORT_SPACE, E820Type.RESERVED), (T.PAL_CODE, E820Type.RESERVED),
    (T.UNUSABLE, E820Type.UNUSABLE), (T.ACPI_RECLAIM, E820Type.ACPI), (T.ACPI_NVS, E820Type.NVS),
    (T.PERSISTENT, E820Type.PMEM))}
# Loader code/data, boot services code/data, conventional: the OS's after ExitBootServices.
_EFI_OS_OWNED = frozenset(map(int, (T.LOADER_CODE, T.LOADER_DATA, T.BOOT_SERVICES_CODE, T.BOOT_SERVICES_DATA,
                                     T.CONVENTIONAL)))
_EFI_BOOT_SERVICES = frozenset(map(int, (T.BOOT_SERVICES_CODE, T.BOOT_SERVICES_DATA)))
# Xen and add_efi_memmap: the non-RAM types they keep; everything else is reserved.
_EFI_KEPT_TYPES = {int(efi): int(e820) for efi, e820 in (
    (T.UNUSABLE, E820Type.UNUSABLE), (T.ACPI_RECLAIM, E820Type.ACPI), (T.ACPI_NVS, E820Type.NVS))}
# The per-descriptor functions below run for every descriptor of a map: plain ints
# in locals-cheap module globals (see memmap/ops.py NOMERGE_TYPES).
_UNACCEPTED, _PERSISTENT = int(T.UNACCEPTED), int(T.PERSISTENT)
_SP, _WB = int(EfiMemoryAttribute.SP), int(EfiMemoryAttribute.WB)
_RAM, _RESERVED, _UNUSABLE = int(E820Type.RAM), int(E820Type.RESERVED), int(E820Type.UNUSABLE)
_SOFT_RESERVED, _PMEM = int(E820Type.SOFT_RESERVED), int(E820Type.PMEM)
EFI_CONVENTIONS = ("linux", "xen", "add-efi-memmap")


def linux_stub_e820_type(efi_type, attribute, *, soft_reserve=True, unaccepted_memory=True):
    """The E820 type the Linux EFI stub gives a descriptor, or None when it skips it."""
    if efi_type in _EFI_OS_OWNED:
        if soft_reserve and attribute & _SP:
            return _SOFT_RESERVED
        return _RAM
    if efi_type == _UNACCEPTED:
        return _RAM if unaccepted_memory else None
    return _LINUX_STUB_FIXED.get(efi_type)


def xen_e820_type(efi_type, attribute, *, map_bs=False):
    """The E820 type Xen's efi_arch_process_memory_map() gives a descriptor."""
    if efi_type in _EFI_BOOT_SERVICES and map_bs:
        return _RESERVED
    if efi_type in _EFI_OS_OWNED:
        return _RAM if attribute & _WB else _UNUSABLE
    return _EFI_KEPT_TYPES.get(efi_type, _RESERVED)


def add_efi_memmap_e820_type(efi_type, attribute, *, soft_reserve=True):
    """The E820 type Linux's do_add_efi_memmap() (the add_efi_memmap parameter) gives a descriptor."""
    if efi_type in _EFI_OS_OWNED:
        if soft_reserve and attribute & _SP:
            return _SOFT_RESERVED
        return _RAM if attribute & _WB else _RESERVED
    if efi_type == _PERSISTENT:
        return _PMEM
    return _EFI_KEPT_TYPES.get(efi_type, _RESERVED)


def efi_to_e820(memory_map, convention="linux", *, soft_reserve=True, unaccepted_memory=True,
                map_bs=False):
    """The E820 map a firmware-to-kernel converter derives from an EFI map.

    convention="linux": the EFI stub's table (soft_reserve / unaccepted_memory
    are the kernel's CONFIG and command-line switches, on by default in
    distribution kernels); descriptors are taken in order and merged only
    with the previous entry when contiguous and of the same type; no sort.
    convention="xen": Xen's table (RAM needs the WB attribute; map_bs keeps
    boot-services memory reserved), zero-length descriptors skipped, same
    merge rule.
    convention="add-efi-memmap": the kernel's own pass over the EFI map
    (arch/x86/platform/efi/efi.c do_add_efi_memmap): RAM needs WB, anything
    unknown is reserved, every descriptor is added, then e820__update_table().
    """
    if memory_map.family != "efi":
        raise MemoryMapError("efi_to_e820 needs an EFI map")
    if convention not in EFI_CONVENTIONS:
        raise MemoryMapError(f"unknown EFI conversion convention {convention!r} ({', '.join(EFI_CONVENTIONS)})")
    if convention == "add-efi-memmap":
        added = [MemoryRange(r.start, r.size, add_efi_memmap_e820_type(r.type, r.attributes or 0,
                                                                        soft_reserve=soft_reserve))
                 for r in memory_map.ranges]
        result = sanitize(memory_map.replace(added, family="e820"))
        result.facts["converted_from"] = "efi (add-efi-memmap convention)"
        return result
    out = []
    prev = None
    for r in memory_map.ranges:
        attribute = r.attributes or 0
        if convention == "linux":
            e820_type = linux_stub_e820_type(r.type, attribute, soft_reserve=soft_reserve,
                                             unaccepted_memory=unaccepted_memory)
            if e820_type is None:
                continue
        else:
            if r.size == 0:
                continue
            e820_type = xen_e820_type(r.type, attribute, map_bs=map_bs)
        if prev is not None and prev.type == e820_type and prev.start + prev.size == r.start:
            prev.size += r.size
            continue
        prev = MemoryRange(r.start, r.size, e820_type)
        out.append(prev)
    result = memory_map.replace(out, family="e820")
    result.facts["converted_from"] = f"efi ({convention} convention)"
    return result


# ---- FDT ----------------------------------------------------------------

def _cells(value, count):
    """The first *count* cells of *value* as one number (0 for zero cells)."""
    return int.from_bytes(value[:4 * count], "big") if count else 0


def _reg_pairs(where, value, address_cells, size_cells, warnings):
    """The (address, size) pairs of a reg-like property, as Linux's early_init_dt_scan_memory()
    walks it: whole pairs only; a trailing partial pair is reported in *warnings* and ignored."""
    stride = 4 * (address_cells + size_cells)
    if stride == 0:
        warnings.append(f"{where}: #address-cells and #size-cells are both 0: no ranges read")
        return []
    extra = len(value) % stride
    if extra:
        warnings.append(f"{where}: {len(value)} bytes is not a whole number of ({address_cells}+{size_cells})"
                        f"-cell pairs: the last {extra} bytes are ignored (dtc warns, Linux reads whole pairs)")
    pairs = []
    for i in range(0, len(value) - extra, stride):
        address = int.from_bytes(value[i:i + 4 * address_cells], "big")
        size = int.from_bytes(value[i + 4 * address_cells:i + stride], "big")
        pairs.append((address, size))
    return pairs


def _available(node):
    """Linux's of_fdt_device_is_available(): no status, or "okay"/"ok"."""
    status = node.string("status")
    return status is None or status in ("okay", "ok")


# What Linux's early scan assumes when the root lacks them (drivers/of/of_private.h
# OF_ROOT_NODE_ADDR_CELLS_DEFAULT / _SIZE_CELLS_DEFAULT, every architecture with DTBs
# but SPARC); the devicetree specification and dtc say 2 address cells.
ROOT_DEFAULT_CELLS = {"#address-cells": 1, "#size-cells": 1}


# Linux's OF_MAX_ADDR_CELLS (drivers/of/address.c): no address or size is wider.
MAX_CELLS = 4


def _root_cells_read(node, where, warnings):
    """(#address-cells, #size-cells) the root gives its children, or None when they cannot be
    read (reported in *warnings*). A missing one takes Linux's default (dtc warns
    "Relying on default #...-cells value")."""
    cells = []
    for name, default in ROOT_DEFAULT_CELLS.items():
        raw = node.prop(name)
        if raw is None:
            warnings.append(f"{where}: no {name}: Linux's default {default} is used")
            cells.append(default)
        elif len(raw) != 4:
            warnings.append(f"{where}: {name} of {len(raw)} bytes is not one cell: its children's "
                            "reg is not read")
            return None
        else:
            n = int.from_bytes(raw, "big")
            if n > MAX_CELLS:
                warnings.append(f"{where}: {name} = <{n}> is over {MAX_CELLS} (Linux's OF_MAX_ADDR_CELLS): "
                                "its children's reg is not read")
                return None
            cells.append(n)
    return tuple(cells)


# Linux's words when /reserved-memory's cells differ from the root's or it has no
# ranges (drivers/of/of_reserved_mem.c, __reserved_mem_check_root()): the whole
# node is ignored, none of its children reserves anything.
RESERVED_MEMORY_UNSUPPORTED = "Reserved memory: unsupported node format, ignoring"


def fdt_to_map(tree):
    """The E820-family map a DTB describes.

    /memory nodes (device_type "memory", status okay; linux,usable-memory
    over reg, as Linux reads them) give RAM; /reserved-memory children
    with `reg` give reserved ranges labelled with the node name and flagged
    no-map / reusable; the reservation block gives reserved ranges flagged
    memreserve. A child named after an E820 type ("acpi@...", as map_to_fdt
    writes) gets that type back. Children with only `size` are dynamic: they
    have no address until Linux allocates them, and are listed in
    facts["dynamic"]. Ranges are in the order above, unsanitized.

    A property that cannot be read as Linux reads it (a partial reg pair,
    cells over 4) is reported in facts["warnings"] and the rest is kept; a
    /reserved-memory node Linux ignores (cells unlike the root's, no ranges)
    is ignored too, its reason in facts["reserved_memory_ignored"].
    """
    warnings = []
    cells = _root_cells_read(tree.root, "/", warnings)
    ac, sc = cells or (None, None)
    ranges = []
    for child in tree.root.children:
        if child.string("device_type") != "memory" or not _available(child):
            continue
        # Linux (early_init_dt_scan_memory) prefers linux,usable-memory over reg.
        name = "linux,usable-memory" if child.prop("linux,usable-memory") else "reg"
        reg = child.prop(name)
        if reg is not None and cells is not None:
            for address, size in _reg_pairs(f"/{child.name} {name}", reg, ac, sc, warnings):
                ranges.append(MemoryRange(address, size, E820Type.RAM, label=child.name))
    dynamic = []
    reserved = tree.root.child("reserved-memory")
    ignored = None
    if reserved is not None:
        own = (reserved.cell("#address-cells"), reserved.cell("#size-cells"))
        if cells is None or own != (ac, sc) or reserved.prop("ranges") is None:
            # The one sentence every command reading this tree prints (memmap show/convert on
            # stderr and in JSON "warnings", inspect and memmap verify as their failing check).
            why = (f"its #address-cells/#size-cells {own} differ from the root's {(ac, sc)}" if own != (ac, sc)
                   else "it has no ranges property")
            regions = sum(1 for c in reserved.children if _available(c))
            ignored = (f"/reserved-memory: {why}, so Linux ignores the node (\"{RESERVED_MEMORY_UNSUPPORTED}\", "
                       f"Linux fdt_scan_reserved_mem): none of its {regions} region(s) is reserved")
    if reserved is not None and ignored is None:
        for child in reserved.children:
            if not _available(child):
                continue
            where = f"/reserved-memory/{child.name}"
            flags = frozenset(f for f in (FLAG_NO_MAP, FLAG_REUSABLE) if child.has(f))
            base = child.name.split("@", 1)[0]
            try:
                typ = type_number("e820", base) if base != "ram" else E820Type.RESERVED
            except KeyError:
                typ = E820Type.RESERVED
            reg = child.prop("reg")
            if reg is not None:
                for address, size in _reg_pairs(f"{where} reg", reg, ac, sc, warnings):
                    ranges.append(MemoryRange(address, size, typ, label=child.name, flags=flags))
            elif child.prop("size") is not None:
                entry = {"name": child.name, "size": _cells(child.prop("size"), sc),
                         "flags": sorted(flags)}
                if child.prop("alignment") is not None:
                    entry["alignment"] = _cells(child.prop("alignment"), sc)
                if child.prop("alloc-ranges") is not None:
                    entry["alloc-ranges"] = _reg_pairs(f"{where} alloc-ranges", child.prop("alloc-ranges"),
                                                       ac, sc, warnings)
                dynamic.append(entry)
    for address, size in tree.reservations:
        ranges.append(MemoryRange(address, size, E820Type.RESERVED, flags=frozenset({FLAG_MEMRESERVE})))
    result = MemoryMap(family="e820", ranges=ranges, source="fdt")
    result.facts["address_cells"], result.facts["size_cells"] = ac, sc
    if reserved is not None:
        result.facts["reserved_memory_cells"] = (reserved.cell("#address-cells"), reserved.cell("#size-cells"))
        result.facts["reserved_memory_ranges_empty"] = reserved.prop("ranges") == b""
        if ignored is not None:
            result.facts["reserved_memory_ignored"] = ignored
    result.facts["dynamic"] = dynamic
    result.facts["warnings"] = warnings
    return result


def _encode_cells(value, cells, what):
    if value >= 1 << (32 * cells):
        raise MemoryMapError(f"{what} {value:#x} does not fit in {cells} cell(s)")
    return value.to_bytes(4 * cells, "big")


def map_to_fdt(memory_map, address_cells=2, size_cells=2):
    """A minimal DeviceTree describing an E820-family map.

    RAM ranges become the reg of one /memory node; ranges flagged memreserve
    go to the reservation block; every other range becomes a
    /reserved-memory child named "<type>@<address>" (so fdt_to_map gets the
    type back) with its flags, and no-map for anything that is not marked
    reusable (firmware memory a kernel must not map).
    """
    if memory_map.family != "e820":
        raise MemoryMapError("map_to_fdt needs an E820-family map (convert EFI maps first)")
    root = FdtNode("", [FdtProperty("#address-cells", address_cells.to_bytes(4, "big")),
                        FdtProperty("#size-cells", size_cells.to_bytes(4, "big"))])

    def reg(pairs):
        return b"".join(_encode_cells(a, address_cells, "address") + _encode_cells(s, size_cells, "size")
                        for a, s in pairs)

    ram = [(r.start, r.size) for r in memory_map.ranges if r.type == E820Type.RAM and r.size]
    if ram:
        root.children.append(FdtNode(f"memory@{ram[0][0]:x}", [
            FdtProperty("device_type", b"memory\0"), FdtProperty("reg", reg(ram))]))
    others = [r for r in memory_map.ranges
              if r.type != E820Type.RAM and r.size and FLAG_MEMRESERVE not in r.flags]
    if others:
        node = FdtNode("reserved-memory", [
            FdtProperty("#address-cells", address_cells.to_bytes(4, "big")),
            FdtProperty("#size-cells", size_cells.to_bytes(4, "big")),
            FdtProperty("ranges", b"")])
        seen = set()
        for r in others:
            base = r.label.split("@", 1)[0] if r.label else E820_TYPE_NAMES.get(r.type, f"e820-type-{r.type}")
            name = f"{base}@{r.start:x}"
            while name in seen:         # unit names must be unique among siblings
                name += "-dup"
            seen.add(name)
            props = [FdtProperty("reg", reg([(r.start, r.size)]))]
            flags = r.flags or frozenset({FLAG_NO_MAP})
            props += [FdtProperty(f, b"") for f in (FLAG_NO_MAP, FLAG_REUSABLE) if f in flags]
            node.children.append(FdtNode(name, props))
        root.children.append(node)
    reservations = [(r.start, r.size) for r in memory_map.ranges if FLAG_MEMRESERVE in r.flags]
    return DeviceTree(root=root, reservations=reservations)

