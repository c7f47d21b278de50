"""dtc 1.6's checks (dgibson/dtc checks.c), with dtc's names, order, prerequisites and words.

Each check walks the live tree depth first and reports lines exactly as dtc
prints them on stderr:

    board.dts:12.3-20: Warning (reg_format): /soc/uart@1000:reg: property has invalid length ...
    board.dts:10.13-14.4: ERROR (duplicate_label): /a: Duplicate label 'x' on /a and /b

The fixups dtc implements as checks are here too, because they run in the
checks' order: explicit phandles, phandle and path references (phandles are
allocated in this walk: that is dtc's allocation order), /omit-if-no-ref/.
Checks that look at one property walk only the nodes that have it (same
order, same messages); the others walk every node.
"""

import struct

from bootforge.fdt.dts_tree import (
    LABEL, REF_PATH, REF_PHANDLE, delete_node, fill_fullpaths, from_device_tree, get_node_by_path, get_node_by_ref,
)

UNCHECKED, PREREQ, PASSED, FAILED = range(4)

LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
UPPERCASE = LOWERCASE.upper()
DIGITS = "0123456789"
NODECHARS = frozenset(LOWERCASE + UPPERCASE + DIGITS + ",._+-@")
PROPCHARS = frozenset(LOWERCASE + UPPERCASE + DIGITS + ",._+*#?-")
STRICTCHARS = frozenset(LOWERCASE + UPPERCASE + DIGITS + ",-")


def _span(text, chars):
    """strspn"""
    if chars.issuperset(text):
        return len(text)
    for i, ch in enumerate(text):
        if ch not in chars:
            return i
    return len(text)


def _cstr(val):
    """A property value as C's %s reads it: up to the first NUL."""
    b = bytes(val)
    nul = b.find(b"\0")
    return (b if nul < 0 else b[:nul]).decode("latin-1")


def _is_one_string(val):
    """dtc's data_is_one_string."""
    n = len(val)
    if n == 0:
        return False
    return bytes(val).find(b"\0") == n - 1


def _cell(val, n=0):
    return int.from_bytes(val[4 * n:4 * n + 4], "big")


def _signed(v):
    return v - (1 << 32) if v & 0x80000000 else v


class Check:
    __slots__ = ("name", "fn", "data", "warn", "error", "prereqs", "status", "prop", "select")

    def __init__(self, name, fn, data, warn, error, prereqs=(), prop=None, select=None):
        self.name, self.fn, self.data = name, fn, data
        self.warn, self.error = warn, error
        self.prereqs = list(prereqs)
        self.status = UNCHECKED
        self.prop = prop        # the one property the check looks at (walk only nodes having it)
        # The only nodes the check can say anything about, in walk order (a cheaper walk).
        self.select = select


class Checker:
    """One run of dtc's process_checks over a DtInfo."""

    def __init__(self, dti, options=(), quiet=0):
        self.dti = dti
        self.quiet = quiet
        self.messages = []
        self._nodes = None
        self._index = None
        self.table = _make_table()
        by_name = {c.name: c for c in self.table}
        for opt in options:                 # ("W" or "E", "name" / "no-name")
            kind, arg = opt
            name, enable = arg, True
            if arg.startswith(("no-", "no_")):
                name, enable = arg[3:], False
            c = by_name.get(name)
            if c is None:
                raise ValueError(f'Unrecognized check name "{name}"')
            warn, error = kind == "W", kind == "E"
            if enable:
                self._enable(c, warn, error)
            else:
                self._disable(c, warn, error)

    def _enable(self, c, warn, error):
        if (warn and not c.warn) or (error and not c.error):
            for p in c.prereqs:
                self._enable(p, warn, error)
        c.warn = c.warn or warn
        c.error = c.error or error

    def _disable(self, c, warn, error):
        if (warn and c.warn) or (error and c.error):
            for cc in self.table:
                if c in cc.prereqs:
                    self._disable(cc, warn, error)
        c.warn = c.warn and not warn
        c.error = c.error and not error

    # -- walking

    def nodes(self):
        if self._nodes is None:
            self._nodes = self.dti.live_nodes()
            for n in self._nodes:
                if n.pmap is None:
                    n.index_props()
        return self._nodes

    def having(self, name):
        """Live nodes with a live property *name*, in walk order."""
        if self._index is None:
            index = {}
            for n in self.nodes():
                seen = set()
                for p in n.props:
                    if not p.deleted and p.name not in seen:
                        seen.add(p.name)
                        index.setdefault(p.name, []).append(n)
            self._index = index
        return self._index.get(name, ())

    def invalidate(self):
        self._nodes = None
        self._index = None

    # -- messages

    def msg(self, c, node, prop, text):
        if not ((c.warn and self.quiet < 1) or (c.error and self.quiet < 2)):
            return
        pos = None
        if prop is not None and prop.pos is not None:
            pos = prop.pos
        elif node is not None and node.pos:
            pos = node.pos[0]
        if pos is not None:
            where = self.dti.srcpos(pos)
        elif self.dti.outname == "-":
            where = "<stdout>"
        else:
            where = self.dti.outname
        line = f"{where}: {'ERROR' if c.error else 'Warning'} ({c.name}): "
        if node is not None:
            line += f"{node.fullpath}:{prop.name}: " if prop is not None else f"{node.fullpath}: "
        line += text
        self.messages.append(line)
        if prop is None and pos is not None:
            for other in node.pos[1:]:
                self.messages.append(f"  also defined at {self.dti.srcpos(other)}")

    def fail(self, c, node, text):
        c.status = FAILED
        self.msg(c, node, None, text)

    def fail_prop(self, c, node, prop, text):
        c.status = FAILED
        self.msg(c, node, prop, text)

    # -- running

    def run_check(self, c):
        error = False
        if c.status == UNCHECKED:
            for p in c.prereqs:
                # dtc: error = error || run_check(prq): after an error, later ones do not run.
                error = error or self.run_check(p)
                if p.status != PASSED:
                    c.status = PREREQ
                    self.msg(c, None, None, f"Failed prerequisite '{p.name}'")
            if c.status == UNCHECKED:
                if c.fn is not None:
                    if c.select is not None:
                        for node in c.select(self):
                            c.fn(self, c, node)
                    elif c.prop is not None:
                        for node in list(self.having(c.prop)):
                            c.fn(self, c, node)
                    elif c.fn is _fixup_omit_unused_nodes:
                        self._walk_live(c)
                    else:
                        for node in self.nodes():
                            c.fn(self, c, node)
                if c.status == UNCHECKED:
                    c.status = PASSED
        if c.status != PASSED and c.error:
            error = True
        return error

    def _walk_live(self, c):
        if not any(n.omit_if_unused for n in self.nodes()):
            return                          # nothing to omit: the walk would change nothing
        stack = [self.dti.root]
        while stack:
            n = stack.pop()
            c.fn(self, c, n)
            stack.extend(ch for ch in reversed(n.children) if not ch.deleted)
        self.invalidate()

    def run(self):
        """All enabled checks; True when an error-level check failed (dtc then refuses)."""
        error = False
        for c in self.table:
            if c.warn or c.error:
                # dtc's process_checks: error = error || run_check(c), so the first failed
                # error-level check ends the checks (what -f then writes is unresolved).
                error = error or self.run_check(c)
        return error


# -- check functions: (checker, check, node)

def _check_is_string(k, c, node):
    prop = node.get_prop(c.data)
    if prop is not None and not _is_one_string(prop.val):
        k.fail_prop(c, node, prop, "property is not a string")


def _check_is_string_list(k, c, node, propname=None):
    prop = node.get_prop(propname or c.data)
    if prop is None:
        return
    val = bytes(prop.val)
    rem = len(val)
    at = 0
    while rem > 0:
        nul = val.find(b"\0", at)
        if nul < 0:
            k.fail_prop(c, node, prop, "property is not a string list")
            break
        rem -= nul - at + 1
        at = nul + 1


def _check_is_cell(k, c, node):
    prop = node.get_prop(c.data)
    if prop is not None and len(prop.val) != 4:
        k.fail_prop(c, node, prop, "property is not a single cell")


def _check_duplicate_node_names(k, c, node):
    live = [ch for ch in node.children if not ch.deleted]
    if len(live) < 2:
        return
    seen = {}
    for ch in live:
        seen[ch.name] = seen.get(ch.name, 0) + 1
    if len(seen) == len(live):
        return
    for i, ch in enumerate(live):
        for ch2 in live[i + 1:]:
            if ch.name == ch2.name:
                k.fail(c, ch2, "Duplicate node name")


def _check_duplicate_property_names(k, c, node):
    live = [p for p in node.props if not p.deleted]
    if len({p.name for p in live}) == len(live):
        return
    for i, p in enumerate(live):
        for p2 in live[i + 1:]:
            if p.name == p2.name:
                k.fail_prop(c, node, p, "Duplicate property name")


def _check_node_name_chars(k, c, node):
    n = _span(node.name, c.data)
    if n < len(node.name):
        k.fail(c, node, f"Bad character '{node.name[n]}' in node name")


def _check_node_name_chars_strict(k, c, node):
    n = _span(node.name, c.data)
    if n < node.basenamelen:
        k.fail(c, node, f"Character '{node.name[n]}' not recommended in node name")


def _check_node_name_format(k, c, node):
    if "@" in node.unitname():
        k.fail(c, node, "multiple '@' characters in node name")


def _check_node_name_vs_property_name(k, c, node):
    if node.parent is not None and node.parent.get_prop(node.name) is not None:
        k.fail(c, node, "node name and property name conflict")


def _check_unit_address_vs_reg(k, c, node):
    unitname = node.unitname()
    if node.get_subnode("__overlay__") is not None:
        return
    prop = node.get_prop("reg")
    if prop is None:
        prop = node.get_prop("ranges")
        if prop is not None and not len(prop.val):
            prop = None
    if prop is not None:
        if not unitname:
            k.fail(c, node, "node has a reg or ranges property, but no unit name")
    elif unitname:
        k.fail(c, node, "node has a unit name, but no reg or ranges property")


def _check_property_name_chars(k, c, node):
    for prop in node.props:
        if prop.deleted:
            continue
        n = _span(prop.name, c.data)
        if n < len(prop.name):
            k.fail_prop(c, node, prop, f"Bad character '{prop.name[n]}' in property name")


def _check_property_name_chars_strict(k, c, node):
    for prop in node.props:
        if prop.deleted:
            continue
        name = prop.name
        n = _span(name, c.data)
        if n == len(name) or name == "device_type":
            continue
        if name[n] == "#" and (n == 0 or name[n - 1] == ","):
            name = name[n + 1:]
            n = _span(name, c.data)
        if n < len(name):
            k.fail_prop(c, node, prop, f"Character '{name[n]}' not recommended in property name")


def _desc(node, prop, mark):
    return (("value of " if mark is not None else "") + (f"'{prop.name}' in " if prop is not None else "")
            + node.fullpath)


def _label_index(k):
    """First holder (walk order) of each label: on a node, on a property, inside a value."""
    nodes, props, marks = {}, {}, {}
    for n in k.nodes():
        for label, deleted in n.labels:
            if not deleted:
                nodes.setdefault(label, n)
        for p in n.props:
            if p.deleted:
                continue
            for label, deleted in p.labels:
                if not deleted:
                    props.setdefault(label, (n, p))
            for m in p.markers:
                if m[1] == LABEL:
                    marks.setdefault(m[2], (n, p, m))
    return nodes, props, marks


def _check_duplicate_label(k, c, label, node, prop, mark, index):
    nodes, props, marks = index
    other = nodes.get(label)
    otherprop = othermark = None
    if other is None:
        found = props.get(label)
        if found is not None:
            other, otherprop = found
    if other is None:
        found = marks.get(label)
        if found is not None:
            other, otherprop, othermark = found
    if other is None:
        return
    if other is not node or otherprop is not prop or othermark is not mark:
        k.fail(c, node, f"Duplicate label '{label}' on {_desc(node, prop, mark)} and "
                        f"{_desc(other, otherprop, othermark)}")


def _check_duplicate_label_node(k, c, node):
    if not (node.labels or any(p.labels or p.markers for p in node.props)):
        return
    index = getattr(k, "_labels", None)
    if index is None:
        index = k._labels = _label_index(k)
    for label, deleted in node.labels:
        if not deleted:
            _check_duplicate_label(k, c, label, node, None, None, index)
    for prop in node.props:
        if prop.deleted:
            continue
        for label, deleted in prop.labels:
            if not deleted:
                _check_duplicate_label(k, c, label, node, prop, None, index)
        for m in prop.markers:
            if m[1] == LABEL:
                _check_duplicate_label(k, c, m[2], node, prop, m, index)


def _check_phandle_prop(k, c, node, propname):
    prop = node.get_prop(propname)
    if prop is None:
        return 0
    if len(prop.val) != 4:
        k.fail_prop(c, node, prop, f"bad length ({len(prop.val)}) {prop.name} property")
        return 0
    for m in prop.markers:
        if m[1] == REF_PHANDLE:
            if node is not get_node_by_ref(k.dti.root, m[2]):
                k.fail(c, node, f"{prop.name} is a reference to another node")
            return 0
    phandle = _cell(prop.val)
    if phandle == 0 or phandle == 0xFFFFFFFF:
        k.fail_prop(c, node, prop, f"bad value (0x{phandle:x}) in {prop.name} property")
        return 0
    return phandle


def _check_explicit_phandles(k, c, node):
    if node.get_prop("phandle") is None and node.get_prop("linux,phandle") is None:
        return
    phandle = _check_phandle_prop(k, c, node, "phandle")
    linux_phandle = _check_phandle_prop(k, c, node, "linux,phandle")
    if not phandle and not linux_phandle:
        return
    if linux_phandle and phandle and phandle != linux_phandle:
        k.fail(c, node, "mismatching 'phandle' and 'linux,phandle' properties")
    if linux_phandle and not phandle:
        phandle = linux_phandle
    other = k.dti.node_by_phandle(phandle)
    if other is not None and other is not node:
        k.fail(c, node, f"duplicated phandle 0x{phandle:x} (seen before at {other.fullpath})")
        return
    k.dti.set_phandle(node, phandle)


def _check_name_properties(k, c, node):
    for i, prop in enumerate(node.props):
        if prop.name == "name":
            break
    else:
        return
    base = node.name[:node.basenamelen].encode("latin-1")
    if len(prop.val) != node.basenamelen + 1 or bytes(prop.val[:node.basenamelen]) != base:
        k.fail(c, node, f'"name" property is incorrect ("{_cstr(prop.val)}" instead of base node name)')
    else:
        del node.props[i]
        node.pmap = None
        k.invalidate()


def _fixup_phandle_references(k, c, node):
    dti = k.dti
    for prop in node.props:
        if prop.deleted or not prop.markers:
            continue
        for m in prop.markers:
            if m[1] != REF_PHANDLE:
                continue
            refnode = get_node_by_ref(dti.root, m[2]) if m[2][0] == "/" else k.label_node(m[2])
            if refnode is None:
                if not dti.plugin:
                    k.fail(c, node, f'Reference to non-existent node or label "{m[2]}"\n')
                else:
                    prop.val = _patch(prop.val, m[0], 0xFFFFFFFF)
                continue
            phandle = dti.node_phandle(refnode)
            prop.val = _patch(prop.val, m[0], phandle)
            refnode.is_referenced = True


def _patch(val, offset, cell):
    if not isinstance(val, bytearray):
        val = bytearray(val)
    val[offset:offset + 4] = cell.to_bytes(4, "big")
    return val


def _fixup_path_references(k, c, node):
    dti = k.dti
    for prop in node.props:
        if prop.deleted or not prop.markers:
            continue
        markers = prop.markers
        for idx, m in enumerate(markers):
            if m[1] != REF_PATH:
                continue
            refnode = get_node_by_ref(dti.root, m[2]) if m[2][0] == "/" else k.label_node(m[2])
            if refnode is None:
                k.fail(c, node, f'Reference to non-existent node or label "{m[2]}"\n')
                continue
            path = refnode.fullpath.encode("latin-1") + b"\0"
            val = bytearray(prop.val)
            val[m[0]:m[0]] = path
            prop.val = val
            for later in markers[idx + 1:]:
                later[0] += len(path)
            refnode.is_referenced = True


def _fixup_omit_unused_nodes(k, c, node):
    if k.dti.generate_symbols and node.labels:
        return
    if node.omit_if_unused and not node.is_referenced:
        delete_node(node)


def _check_names_is_string_list(k, c, node):
    for prop in node.props:
        if not prop.deleted and prop.name.endswith("-names"):
            _check_is_string_list(k, c, node, prop.name)


def _check_alias_paths(k, c, node):
    if node.name != "aliases":
        return
    for prop in node.props:
        if prop.deleted or prop.name in ("phandle", "linux,phandle"):
            continue
        if not len(prop.val) or get_node_by_path(k.dti.root, _cstr(prop.val)) is None:
            k.fail_prop(c, node, prop, f"aliases property is not a valid node ({_cstr(prop.val) if len(prop.val) else '(null)'})")
            continue
        if _span(prop.name, _ALIAS_CHARS) != len(prop.name):
            k.fail(c, node, "aliases property name must include only lowercase and '-'")


_ALIAS_CHARS = frozenset(LOWERCASE + DIGITS + "-")


def _fixup_addr_size_cells(k, c, node):
    node.addr_cells = -1
    node.size_cells = -1
    prop = node.get_prop("#address-cells")
    if prop is not None:
        node.addr_cells = _signed(_cell(prop.val))
    prop = node.get_prop("#size-cells")
    if prop is not None:
        node.size_cells = _signed(_cell(prop.val))


def _addr_cells(n):
    return 2 if n.addr_cells == -1 else n.addr_cells


def _size_cells(n):
    return 1 if n.size_cells == -1 else n.size_cells


def _multiple(length, divisor):
    return length == 0 if divisor == 0 else length % divisor == 0


def _check_reg_format(k, c, node):
    prop = node.get_prop("reg")
    if prop is None:
        return
    if node.parent is None:
        k.fail(c, node, 'Root node has a "reg" property')
        return
    if not len(prop.val):
        k.fail_prop(c, node, prop, "property is empty")
    ac, sc = _addr_cells(node.parent), _size_cells(node.parent)
    if not _multiple(len(prop.val), (ac + sc) * 4):
        k.fail_prop(c, node, prop, f"property has invalid length ({len(prop.val)} bytes) "
                                   f"(#address-cells == {ac}, #size-cells == {sc})")


def _check_ranges_format(k, c, node):
    ranges = c.data
    prop = node.get_prop(ranges)
    if prop is None:
        return
    if node.parent is None:
        k.fail_prop(c, node, prop, f'Root node has a "{ranges}" property')
        return
    pac, psc = _addr_cells(node.parent), _size_cells(node.parent)
    cac, csc = _addr_cells(node), _size_cells(node)
    if not len(prop.val):
        if pac != cac:
            k.fail_prop(c, node, prop, f'empty "{ranges}" property but its #address-cells ({cac}) differs '
                                       f"from {node.parent.fullpath} ({pac})")
        if psc != csc:
            k.fail_prop(c, node, prop, f'empty "{ranges}" property but its #size-cells ({csc}) differs '
                                       f"from {node.parent.fullpath} ({psc})")
    elif not _multiple(len(prop.val), (pac + cac + csc) * 4):
        k.fail_prop(c, node, prop, f'"{ranges}" property has invalid length ({len(prop.val)} bytes) '
                                   f"(parent #address-cells == {pac}, child #address-cells == {cac}, "
                                   f"#size-cells == {csc})")


PCI_BUS, SIMPLE_BUS, I2C_BUS, SPI_BUS, GRAPH_PORT, GRAPH_PORTS = ("PCI", "simple-bus", "i2c-bus", "spi-bus",
                                                                  "graph-port", "graph-ports")


def _base(node):
    return node.name[:node.basenamelen]


def _check_pci_bridge(k, c, node):
    prop = node.get_prop("device_type")
    if prop is None or _cstr(prop.val) != "pci":
        return
    node.bus = PCI_BUS
    if _base(node) not in ("pci", "pcie"):
        k.fail(c, node, 'node name is not "pci" or "pcie"')
    if node.get_prop("ranges") is None:
        k.fail(c, node, "missing ranges for PCI bridge (or not a bridge)")
    if _addr_cells(node) != 3:
        k.fail(c, node, "incorrect #address-cells for PCI bridge")
    if _size_cells(node) != 2:
        k.fail(c, node, "incorrect #size-cells for PCI bridge")
    prop = node.get_prop("bus-range")
    if prop is None:
        return
    if len(prop.val) != 8:
        k.fail_prop(c, node, prop, "value must be 2 cells")
        return
    if _cell(prop.val, 0) > _cell(prop.val, 1):
        k.fail_prop(c, node, prop, "1st cell must be less than or equal to 2nd cell")
    if _cell(prop.val, 1) > 0xFF:
        k.fail_prop(c, node, prop, "maximum bus number must be less than 256")


def _cells_at(val, n):
    """Cell n of a value as dtc reads it (past the end: bytes dtc would read from the heap; 0 here)."""
    raw = bytes(val[4 * n:4 * n + 4])
    return int.from_bytes(raw.ljust(4, b"\0"), "big")


def _check_pci_device_bus_num(k, c, node):
    if node.parent is None or node.parent.bus != PCI_BUS:
        return
    prop = node.get_prop("reg")
    if prop is None:
        return
    bus_num = (_cells_at(prop.val, 0) & 0x00FF0000) >> 16
    prop = node.parent.get_prop("bus-range")
    if prop is None:
        min_bus = max_bus = 0
    else:
        min_bus = max_bus = _cells_at(prop.val, 0)
    if bus_num < min_bus or bus_num > max_bus:
        k.fail_prop(c, node, prop, f"PCI bus number {bus_num} out of range, expected ({min_bus} - {max_bus})")


def _check_pci_device_reg(k, c, node):
    if node.parent is None or node.parent.bus != PCI_BUS:
        return
    prop = node.get_prop("reg")
    if prop is None:
        return
    unitname = node.unitname()
    if _cells_at(prop.val, 1) or _cells_at(prop.val, 2):
        k.fail_prop(c, node, prop, "PCI reg config space address cells 2 and 3 must be 0")
    reg = _cells_at(prop.val, 0)
    dev = (reg & 0xF800) >> 11
    func = (reg & 0x700) >> 8
    if reg & 0xFF000000:
        k.fail_prop(c, node, prop, "PCI reg address is not configuration space")
    if reg & 0x000000FF:
        k.fail_prop(c, node, prop, "PCI reg config space address register number must be 0")
    if func == 0 and unitname == f"{dev:x}":
        return
    unit_addr = f"{dev:x},{func:x}"[:4]     # char unit_addr[5]
    if unitname == unit_addr:
        return
    k.fail(c, node, f'PCI unit address format error, expected "{unit_addr}"')


def _is_compatible(node, compat):
    prop = node.get_prop("compatible")
    if prop is None:
        return False
    return compat.encode() in bytes(prop.val).split(b"\0")


def _check_simple_bus_bridge(k, c, node):
    if _is_compatible(node, "simple-bus"):
        node.bus = SIMPLE_BUS


def _check_simple_bus_reg(k, c, node):
    if node.parent is None or node.parent.bus != SIMPLE_BUS:
        return
    unitname = node.unitname()
    prop = node.get_prop("reg")
    cells = None
    if prop is not None:
        cells = (prop.val, 0)
    else:
        prop = node.get_prop("ranges")
        if prop is not None and len(prop.val):
            cells = (prop.val, _addr_cells(node))
    if cells is None:
        if node.parent.parent is not None and node.bus != SIMPLE_BUS:
            k.fail(c, node, "missing or empty reg/ranges property")
        return
    val, at = cells
    reg = 0
    for i in range(_addr_cells(node.parent)):
        reg = ((reg << 32) | _cells_at(val, at + i)) & ((1 << 64) - 1)
    unit_addr = f"{reg:x}"
    if unitname != unit_addr:
        k.fail(c, node, f'simple-bus unit address format error, expected "{unit_addr}"')


def _check_i2c_bus_bridge(k, c, node):
    base = _base(node)
    if base in ("i2c-bus", "i2c-arb"):
        node.bus = I2C_BUS
    elif base == "i2c":
        for child in node.children:
            if child.deleted:
                continue
            # dtc compares the child's name with the parent's base-name length (checks.c).
            if node.basenamelen == 7 and child.name[:7] == "i2c-bus":
                return
        node.bus = I2C_BUS
    else:
        return
    if not node.children:
        return
    if _addr_cells(node) != 1:
        k.fail(c, node, "incorrect #address-cells for I2C bus")
    if _size_cells(node) != 0:
        k.fail(c, node, "incorrect #size-cells for I2C bus")


def _check_i2c_bus_reg(k, c, node):
    if node.parent is None or node.parent.bus != I2C_BUS:
        return
    unitname = node.unitname()
    prop = node.get_prop("reg")
    if prop is None:
        k.fail(c, node, "missing or empty reg property")
        return
    reg = _cells_at(prop.val, 0) & ~(1 << 30)
    unit_addr = f"{reg:x}"
    if unitname != unit_addr:
        k.fail(c, node, f'I2C bus unit address format error, expected "{unit_addr}"')
    length = len(prop.val)
    i = 0
    while length > 0:
        reg = _cells_at(prop.val, i) & ~(1 << 30) & 0xFFFFFFFF
        i += 1
        if reg & (1 << 31) and (reg & ~(1 << 31)) > 0x3FF:
            k.fail_prop(c, node, prop, f'I2C address must be less than 10-bits, got "0x{reg:x}"')
        elif reg > 0x7F:
            k.fail_prop(c, node, prop, f'I2C address must be less than 7-bits, got "0x{reg:x}". Set '
                                       "I2C_TEN_BIT_ADDRESS for 10 bit addresses or fix the property")
        length -= 4


def _check_spi_bus_bridge(k, c, node):
    spi_addr_cells = 1
    if _base(node) == "spi":
        node.bus = SPI_BUS
    else:
        if _addr_cells(node) != 1 or _size_cells(node) != 0:
            return
        for child in node.children:
            if child.deleted:
                continue
            if any(not p.deleted and p.name[:4] == "spi-" for p in child.props):
                node.bus = SPI_BUS
                break
        if node.bus == SPI_BUS and node.get_prop("reg") is not None:
            k.fail(c, node, "node name for SPI buses should be 'spi'")
    if node.bus != SPI_BUS or not node.children:
        return
    if node.get_prop("spi-slave") is not None:
        spi_addr_cells = 0
    if _addr_cells(node) != spi_addr_cells:
        k.fail(c, node, "incorrect #address-cells for SPI bus")
    if _size_cells(node) != 0:
        k.fail(c, node, "incorrect #size-cells for SPI bus")


def _check_spi_bus_reg(k, c, node):
    if node.parent is None or node.parent.bus != SPI_BUS:
        return
    if node.parent.get_prop("spi-slave") is not None:
        return
    unitname = node.unitname()
    prop = node.get_prop("reg")
    if prop is None:
        k.fail(c, node, "missing or empty reg property")
        return
    unit_addr = f"{_cells_at(prop.val, 0):x}"
    if unitname != unit_addr:
        k.fail(c, node, f'SPI bus unit address format error, expected "{unit_addr}"')


_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _check_unit_address_format(k, c, node):
    if node.parent is not None and node.parent.bus is not None:
        return
    unitname = node.unitname()
    if not unitname:
        return
    if unitname.startswith("0x"):
        k.fail(c, node, 'unit name should not have leading "0x"')
        unitname = unitname[2:]
    if unitname[:1] == "0" and unitname[1:2] in _HEXDIGITS and unitname[1:2]:
        k.fail(c, node, "unit name should not have leading 0s")


def _check_avoid_default_addr_size(k, c, node):
    if node.parent is None:
        return
    if node.get_prop("reg") is None and node.get_prop("ranges") is None:
        return
    if node.parent.addr_cells == -1:
        k.fail(c, node, "Relying on default #address-cells value")
    if node.parent.size_cells == -1:
        k.fail(c, node, "Relying on default #size-cells value")


def _check_avoid_unnecessary_addr_size(k, c, node):
    if node.parent is None or node.addr_cells < 0 or node.size_cells < 0:
        return
    live = [ch for ch in node.children if not ch.deleted]
    # dtc tests node->children, which still lists deleted children.
    if node.get_prop("ranges") is not None or not node.children:
        return
    if not any(ch.get_prop("reg") is not None for ch in live):
        k.fail(c, node, 'unnecessary #address-cells/#size-cells without "ranges" or child "reg" property')


def _is_disabled(node):
    prop = node.get_prop("status")
    return prop is not None and _cstr(prop.val) == "disabled"


def _unique_unit_address(k, c, node, disable_check):
    if node.addr_cells < 0 or node.size_cells < 0:
        return
    live = [ch for ch in node.children if not ch.deleted]
    if not live:
        return
    addrs = [ch.unitname() for ch in live]
    nonempty = [a for a in addrs if a]
    if len(set(nonempty)) == len(nonempty):
        return
    for ia, a in enumerate(live):
        addr_a = addrs[ia]
        if not addr_a:
            continue
        if disable_check and _is_disabled(a):
            continue
        for ib in range(ia):
            b = live[ib]
            if disable_check and _is_disabled(b):
                continue
            if addrs[ib] == addr_a:
                k.fail(c, b, f"duplicate unit-address (also used in node {a.fullpath})")


def _check_unique_unit_address(k, c, node):
    _unique_unit_address(k, c, node, False)


def _check_unique_unit_address_if_enabled(k, c, node):
    _unique_unit_address(k, c, node, True)


def _check_obsolete_chosen_interrupt_controller(k, c, node):
    if node is not k.dti.root:
        return
    chosen = get_node_by_path(k.dti.root, "/chosen")
    if chosen is None:
        return
    prop = chosen.get_prop("interrupt-controller")
    if prop is not None:
        k.fail_prop(c, node, prop, '/chosen has obsolete "interrupt-controller" property')


def _check_chosen_node_is_root(k, c, node):
    if node.name == "chosen" and node.parent is not k.dti.root:
        k.fail(c, node, "chosen node must be at root node")


def _check_chosen_node_bootargs(k, c, node):
    if node.name != "chosen":
        return
    prop = node.get_prop("bootargs")
    if prop is not None and not _is_one_string(prop.val):
        k.fail_prop(c, node, prop, "property is not a string")


def _check_chosen_node_stdout_path(k, c, node):
    if node.name != "chosen":
        return
    prop = node.get_prop("stdout-path")
    if prop is None:
        prop = node.get_prop("linux,stdout-path")
        if prop is None:
            return
        k.fail_prop(c, node, prop, "Use 'stdout-path' instead")
    if not _is_one_string(prop.val):
        k.fail_prop(c, node, prop, "property is not a string")


def _check_property_phandle_args(k, c, node, prop, cell_name, optional):
    dti = k.dti
    length = len(prop.val)
    if length % 4:
        k.fail_prop(c, node, prop, f"property size ({length}) is invalid, expected multiple of 4")
        return
    ncells = length // 4
    cells = struct.unpack(f">{ncells}I", bytes(prop.val))
    phandle_offsets = None
    cell = 0
    while cell < ncells:
        phandle = cells[cell]
        if phandle == 0 or phandle == 0xFFFFFFFF:
            if dti.plugin:
                break
            cell += 1
            continue
        if prop.typed:
            if phandle_offsets is None:
                phandle_offsets = {m[0] for m in prop.markers if m[1] == REF_PHANDLE}
            if cell * 4 not in phandle_offsets:
                k.fail_prop(c, node, prop, f"cell {cell} is not a phandle reference")
        provider = dti.node_by_phandle(phandle)
        if provider is None:
            k.fail_prop(c, node, prop, f"Could not get phandle node for (cell {cell})")
            break
        cellprop = provider.get_prop(cell_name)
        if cellprop is not None:
            cellsize = _signed(_cells_at(cellprop.val, 0))
        elif optional:
            cellsize = 0
        else:
            k.fail(c, node, f"Missing property '{cell_name}' in node {provider.fullpath} or bad phandle "
                            f"(referred from {prop.name}[{cell}])")
            break
        if length < (cell + cellsize + 1) * 4:
            k.fail_prop(c, node, prop, f"property size ({length}) too small for cell size {cellsize}")
        if cellsize < 0:        # dtc would loop forever here (cell += 0) or walk backwards
            break
        cell += cellsize + 1


def _check_provider_cells_property(k, c, node):
    prop_name, cell_name, optional = c.data
    prop = node.get_prop(prop_name)
    if prop is not None:
        _check_property_phandle_args(k, c, node, prop, cell_name, optional)


def _is_gpio(name):
    if "gpio" not in name:
        return False
    if name.endswith(",nr-gpios"):
        return False
    return name.endswith("-gpios") or name == "gpios" or name.endswith("-gpio") or name == "gpio"


def _check_gpios_property(k, c, node):
    if node.get_prop("gpio-hog") is not None:
        return
    for prop in node.props:
        if not prop.deleted and _is_gpio(prop.name):
            _check_property_phandle_args(k, c, node, prop, "#gpio-cells", False)


def _check_deprecated_gpio_property(k, c, node):
    for prop in node.props:
        if not prop.deleted and _is_gpio(prop.name) and prop.name.endswith("gpio"):
            k.fail_prop(c, node, prop, "'[*-]gpio' is deprecated, use '[*-]gpios' instead")


def _is_interrupt_provider(node):
    return node.get_prop("interrupt-controller") is not None or node.get_prop("interrupt-map") is not None


def _check_interrupt_provider(k, c, node):
    if not _is_interrupt_provider(node):
        return
    if node.get_prop("#interrupt-cells") is None:
        k.fail(c, node, "Missing #interrupt-cells in interrupt provider")
    if node.get_prop("#address-cells") is None:
        k.fail(c, node, "Missing #address-cells in interrupt provider")


def _check_interrupts_property(k, c, node):
    dti = k.dti
    irq_prop = node.get_prop("interrupts")
    if irq_prop is None:
        return
    if len(irq_prop.val) % 4:
        k.fail_prop(c, node, irq_prop, f"size ({len(irq_prop.val)}) is invalid, expected multiple of 4")
    irq_node = None
    parent = node
    prop = None
    while parent is not None and prop is None:
        if parent is not node and _is_interrupt_provider(parent):
            irq_node = parent
            break
        prop = parent.get_prop("interrupt-parent")
        if prop is not None:
            phandle = _cells_at(prop.val, 0)
            if phandle == 0 or phandle == 0xFFFFFFFF:
                if dti.plugin:
                    return
                k.fail_prop(c, parent, prop, "Invalid phandle")
                continue
            irq_node = dti.node_by_phandle(phandle)
            if irq_node is None:
                k.fail_prop(c, parent, prop, "Bad phandle")
                return
            if not _is_interrupt_provider(irq_node):
                k.fail(c, irq_node, "Missing interrupt-controller or interrupt-map property")
            break
        parent = parent.parent
    if irq_node is None:
        k.fail(c, node, "Missing interrupt-parent")
        return
    prop = irq_node.get_prop("#interrupt-cells")
    if prop is None:
        return
    irq_cells = _signed(_cells_at(prop.val, 0))
    if not _multiple(len(irq_prop.val), irq_cells * 4):
        k.fail_prop(c, node, prop, f"size is ({len(irq_prop.val)}), expected multiple of {irq_cells * 4}")


def _check_graph_nodes(k, c, node):
    for child in node.children:
        if child.deleted:
            continue
        if not (_base(child) == "endpoint" or child.get_prop("remote-endpoint") is not None):
            continue
        node.bus = GRAPH_PORT
        # The root has no parent to be a port's device (dtc 1.6.1's check_graph_nodes reads
        # node->parent there and dies of SIGSEGV on `/ { endpoint { }; };`).
        if node.parent is not None and node.parent.bus is None and (
                node.parent.name == "ports" or node.get_prop("reg") is not None):
            node.parent.bus = GRAPH_PORTS
        break


def _check_graph_child_address(k, c, node):
    if node.bus != GRAPH_PORTS and node.bus != GRAPH_PORT:
        return
    cnt = 0
    live = [ch for ch in node.children if not ch.deleted]
    for child in live:
        prop = child.get_prop("reg")
        if prop is not None and _cells_at(prop.val, 0) != 0:
            return
        cnt += 1
    if cnt == 1 and node.addr_cells != -1:
        k.fail(c, node, f"graph node has single child node '{node.children[0].name}', "
                        "#address-cells/#size-cells are not necessary")


def _check_graph_reg(k, c, node):
    unitname = node.unitname()
    prop = node.get_prop("reg")
    if prop is None:
        return
    if len(prop.val) != 4:
        k.fail(c, node, "graph node malformed 'reg' property")
        return
    unit_addr = f"{_cell(prop.val):x}"
    if unitname != unit_addr:
        k.fail(c, node, f'graph node unit address error, expected "{unit_addr}"')
    if node.parent.addr_cells != 1:
        k.fail_prop_or_node(c, node, node.get_prop("#address-cells"),
                            f"graph node '#address-cells' is {node.parent.addr_cells}, must be 1")
    if node.parent.size_cells != 0:
        k.fail_prop_or_node(c, node, node.get_prop("#size-cells"),
                            f"graph node '#size-cells' is {node.parent.size_cells}, must be 0")


def _fail_prop_or_node(self, c, node, prop, text):
    c.status = FAILED
    self.msg(c, node, prop, text)


Checker.fail_prop_or_node = _fail_prop_or_node


def _check_graph_port(k, c, node):
    if node.bus != GRAPH_PORT:
        return
    if _base(node) != "port":
        k.fail(c, node, "graph port node name should be 'port'")
    _check_graph_reg(k, c, node)


def _remote_endpoint(k, c, endpoint):
    prop = endpoint.get_prop("remote-endpoint")
    if prop is None:
        return None
    phandle = _cells_at(prop.val, 0)
    if phandle == 0 or phandle == 0xFFFFFFFF:
        return None
    node = k.dti.node_by_phandle(phandle)
    if node is None:
        k.fail_prop(c, endpoint, prop, "graph phandle is not valid")
    return node


def _check_graph_endpoint(k, c, node):
    if node.parent is None or node.parent.bus != GRAPH_PORT:
        return
    if _base(node) != "endpoint":
        k.fail(c, node, "graph endpoint node name should be 'endpoint'")
    _check_graph_reg(k, c, node)
    remote = _remote_endpoint(k, c, node)
    if remote is None:
        return
    if _remote_endpoint(k, c, remote) is not node:
        k.fail(c, node, f"graph connection to node '{remote.fullpath}' is not bidirectional")


_PROVIDERS = (
    ("clocks", "clocks", "#clock-cells", False), ("cooling_device", "cooling-device", "#cooling-cells", False),
    ("dmas", "dmas", "#dma-cells", False), ("hwlocks", "hwlocks", "#hwlock-cells", False),
    ("interrupts_extended", "interrupts-extended", "#interrupt-cells", False),
    ("io_channels", "io-channels", "#io-channel-cells", False), ("iommus", "iommus", "#iommu-cells", False),
    ("mboxes", "mboxes", "#mbox-cells", False), ("msi_parent", "msi-parent", "#msi-cells", True),
    ("mux_controls", "mux-controls", "#mux-control-cells", False), ("phys", "phys", "#phy-cells", False),
    ("power_domains", "power-domains", "#power-domain-cells", False), ("pwms", "pwms", "#pwm-cells", False),
    ("resets", "resets", "#reset-cells", False), ("sound_dai", "sound-dai", "#sound-dai-cells", False),
    ("thermal_sensors", "thermal-sensors", "#thermal-sensor-cells", False),
)


def _bad_prop_names(k):
    """Nodes with a property name outside dtc's PROPCHARS (each distinct name tested once)."""
    k.having("")
    if all(PROPCHARS.issuperset(name) for name in k._index):
        return []
    return k.nodes()


def _bad_node_names(k):
    if all(NODECHARS.issuperset(n.name) for n in k.nodes()):
        return []
    return k.nodes()


def _names_props(k):
    k.having("")
    holders = set()
    for name, nodes in k._index.items():
        if name.endswith("-names"):
            holders.update(map(id, nodes))
    return [n for n in k.nodes() if id(n) in holders] if holders else []


def _named(name):
    return lambda k: [n for n in k.nodes() if n.name == name]


def _with_unit(k):
    return [n for n in k.nodes() if "@" in n.name]


def _on_bus(*buses):
    return lambda k: [n for n in k.nodes() if n.parent is not None and n.parent.bus in buses]


def _bus(*buses):
    return lambda k: [n for n in k.nodes() if n.bus in buses]


def _providers(k):
    return [n for n in k.nodes() if _is_interrupt_provider(n)]


def _gpio_users(k):
    return [n for n in k.nodes() if any("gpio" in p.name for p in n.props)]


def _graph_parents(k):
    return [n for n in k.nodes()
            if any(not c.deleted and (c.name[:c.basenamelen] == "endpoint" or c.get_prop("remote-endpoint"))
                   for c in n.children)]


def _make_table():
    """dtc's check_table, in its order, with its levels (W: warning, E: error, -: off)."""
    def W(name, fn, data=None, *pre, prop=None, select=None):
        return Check(name, fn, data, True, False, pre, prop, select)

    def E(name, fn, data=None, *pre, prop=None, select=None):
        return Check(name, fn, data, False, True, pre, prop, select)

    def C(name, fn, data=None, *pre, prop=None, select=None):
        return Check(name, fn, data, False, False, pre, prop, select)

    duplicate_node_names = E("duplicate_node_names", _check_duplicate_node_names)
    duplicate_property_names = E("duplicate_property_names", _check_duplicate_property_names)
    node_name_chars = E("node_name_chars", _check_node_name_chars, NODECHARS, select=_bad_node_names)
    node_name_format = E("node_name_format", _check_node_name_format, None, node_name_chars)
    property_name_chars = E("property_name_chars", _check_property_name_chars, PROPCHARS, select=_bad_prop_names)
    name_is_string = E("name_is_string", _check_is_string, "name", prop="name")
    name_properties = E("name_properties", _check_name_properties, None, name_is_string, prop="name")
    node_name_vs_property_name = W("node_name_vs_property_name", _check_node_name_vs_property_name, None,
                                   node_name_chars)
    duplicate_label = E("duplicate_label", _check_duplicate_label_node)
    explicit_phandles = E("explicit_phandles", _check_explicit_phandles)
    phandle_references = E("phandle_references", _fixup_phandle_references, None, duplicate_node_names,
                           explicit_phandles)
    path_references = E("path_references", _fixup_path_references, None, duplicate_node_names)
    omit_unused_nodes = E("omit_unused_nodes", _fixup_omit_unused_nodes, None, phandle_references,
                          path_references)
    address_cells_is_cell = W("address_cells_is_cell", _check_is_cell, "#address-cells", prop="#address-cells")
    size_cells_is_cell = W("size_cells_is_cell", _check_is_cell, "#size-cells", prop="#size-cells")
    device_type_is_string = W("device_type_is_string", _check_is_string, "device_type", prop="device_type")
    model_is_string = W("model_is_string", _check_is_string, "model", prop="model")
    status_is_string = W("status_is_string", _check_is_string, "status", prop="status")
    label_is_string = W("label_is_string", _check_is_string, "label", prop="label")
    compatible_is_string_list = W("compatible_is_string_list", _check_is_string_list, "compatible",
                                  prop="compatible")
    names_is_string_list = W("names_is_string_list", _check_names_is_string_list, select=_names_props)
    property_name_chars_strict = C("property_name_chars_strict", _check_property_name_chars_strict, STRICTCHARS)
    node_name_chars_strict = C("node_name_chars_strict", _check_node_name_chars_strict, STRICTCHARS)
    addr_size_cells = W("addr_size_cells", _fixup_addr_size_cells, None, address_cells_is_cell,
                        size_cells_is_cell)
    reg_format = W("reg_format", _check_reg_format, None, addr_size_cells, prop="reg")
    ranges_format = W("ranges_format", _check_ranges_format, "ranges", addr_size_cells, prop="ranges")
    dma_ranges_format = W("dma_ranges_format", _check_ranges_format, "dma-ranges", addr_size_cells,
                          prop="dma-ranges")
    unit_address_vs_reg = W("unit_address_vs_reg", _check_unit_address_vs_reg)
    pci_bridge = W("pci_bridge", _check_pci_bridge, None, device_type_is_string, addr_size_cells,
                   prop="device_type")
    unit_address_format = W("unit_address_format", _check_unit_address_format, None, node_name_format,
                            pci_bridge, None, select=_with_unit)
    simple_bus_bridge = W("simple_bus_bridge", _check_simple_bus_bridge, None, addr_size_cells,
                          compatible_is_string_list, prop="compatible")
    unit_address_format.prereqs[2] = simple_bus_bridge
    pci_device_reg = W("pci_device_reg", _check_pci_device_reg, None, reg_format, pci_bridge, prop="reg")
    pci_device_bus_num = W("pci_device_bus_num", _check_pci_device_bus_num, None, reg_format, pci_bridge,
                           prop="reg")
    simple_bus_reg = W("simple_bus_reg", _check_simple_bus_reg, None, reg_format, simple_bus_bridge,
                       select=_on_bus(SIMPLE_BUS))
    i2c_bus_bridge = W("i2c_bus_bridge", _check_i2c_bus_bridge, None, addr_size_cells)
    i2c_bus_reg = W("i2c_bus_reg", _check_i2c_bus_reg, None, reg_format, i2c_bus_bridge, select=_on_bus(I2C_BUS))
    spi_bus_bridge = W("spi_bus_bridge", _check_spi_bus_bridge, None, addr_size_cells)
    spi_bus_reg = W("spi_bus_reg", _check_spi_bus_reg, None, reg_format, spi_bus_bridge, select=_on_bus(SPI_BUS))
    avoid_default_addr_size = W("avoid_default_addr_size", _check_avoid_default_addr_size, None,
                                addr_size_cells)
    avoid_unnecessary_addr_size = W("avoid_unnecessary_addr_size", _check_avoid_unnecessary_addr_size, None,
                                    avoid_default_addr_size)
    unique_unit_address = W("unique_unit_address", _check_unique_unit_address, None, avoid_default_addr_size)
    unique_unit_address_if_enabled = C("unique_unit_address_if_enabled", _check_unique_unit_address_if_enabled,
                                       None, avoid_default_addr_size)
    obsolete_chosen = W("obsolete_chosen_interrupt_controller", _check_obsolete_chosen_interrupt_controller,
                        select=lambda k: [k.dti.root])
    chosen_node_is_root = W("chosen_node_is_root", _check_chosen_node_is_root, select=_named("chosen"))
    chosen_node_bootargs = W("chosen_node_bootargs", _check_chosen_node_bootargs, select=_named("chosen"))
    chosen_node_stdout_path = W("chosen_node_stdout_path", _check_chosen_node_stdout_path, select=_named("chosen"))
    providers = []
    for name, prop_name, cell_name, optional in _PROVIDERS:
        is_cell = W(f"{name}_is_cell", _check_is_cell, cell_name, prop=cell_name)
        prop_check = W(f"{name}_property", _check_provider_cells_property, (prop_name, cell_name, optional),
                       is_cell, phandle_references, prop=prop_name)
        providers += [prop_check, is_cell]
    deprecated_gpio_property = C("deprecated_gpio_property", _check_deprecated_gpio_property, select=_gpio_users)
    gpios_property = W("gpios_property", _check_gpios_property, None, phandle_references, select=_gpio_users)
    # dtc declares interrupts_property with &phandle_references as its data, not a prerequisite.
    interrupts_property = W("interrupts_property", _check_interrupts_property, None, prop="interrupts")
    interrupt_provider = W("interrupt_provider", _check_interrupt_provider, select=_providers)
    alias_paths = W("alias_paths", _check_alias_paths, select=_named("aliases"))
    graph_nodes = W("graph_nodes", _check_graph_nodes, select=_graph_parents)
    graph_child_address = W("graph_child_address", _check_graph_child_address, None, graph_nodes,
                            select=_bus(GRAPH_PORT, GRAPH_PORTS))
    graph_port = W("graph_port", _check_graph_port, None, graph_nodes, select=_bus(GRAPH_PORT))
    graph_endpoint = W("graph_endpoint", _check_graph_endpoint, None, graph_nodes, select=_on_bus(GRAPH_PORT))
    always_fail = C("always_fail", None)
    return [
        duplicate_node_names, duplicate_property_names, node_name_chars, node_name_format, property_name_chars,
        name_is_string, name_properties, node_name_vs_property_name, duplicate_label, explicit_phandles,
        phandle_references, path_references, omit_unused_nodes, address_cells_is_cell, size_cells_is_cell,
        device_type_is_string, model_is_string, status_is_string, label_is_string, compatible_is_string_list,
        names_is_string_list, property_name_chars_strict, node_name_chars_strict, addr_size_cells, reg_format,
        ranges_format, dma_ranges_format, unit_address_vs_reg, unit_address_format, pci_bridge, pci_device_reg,
        pci_device_bus_num, simple_bus_bridge, simple_bus_reg, i2c_bus_bridge, i2c_bus_reg, spi_bus_bridge,
        spi_bus_reg, avoid_default_addr_size, avoid_unnecessary_addr_size, unique_unit_address,
        unique_unit_address_if_enabled, obsolete_chosen, chosen_node_is_root, chosen_node_bootargs,
        chosen_node_stdout_path, *providers, deprecated_gpio_property, gpios_property, interrupts_property,
        interrupt_provider, alias_paths, graph_nodes, graph_child_address, graph_port, graph_endpoint,
        always_fail,
    ]


def run_checks(dti, options=(), quiet=0, force=False):
    """dtc's process_checks: (messages, failed). *failed*: an error-level check failed and
    dtc would refuse to write output (unless -f)."""
    k = Checker(dti, options, quiet)
    k.label_node = _label_finder(k.nodes())
    try:
        failed = k.run()
    finally:
        for n in k.nodes():             # later steps (-@, fixups) edit properties freely
            n.pmap = None
    return k.messages, failed


def _label_finder(nodes):
    """get_node_by_label with an index built once (the tree's labels do not change while the
    reference fixups run; the walk order decides between equal labels, as in dtc)."""
    index = {}
    for n in nodes:
        for label, deleted in n.labels:
            if not deleted:
                index.setdefault(label, n)
    return index.get


def check_device_tree(tree, name):
    """dtc's checks on a parsed DTB (as `dtc -I dtb` runs them): (warning lines, error lines),
    each line as dtc prints it, *name* standing where dtc names its output file."""
    dti = from_device_tree(tree)
    dti.outname = name
    fill_fullpaths(dti.root)
    messages, _ = run_checks(dti)
    errors = [m.rstrip("\n") for m in messages if " ERROR (" in m]
    warnings = [m.rstrip("\n") for m in messages if " ERROR (" not in m]
    return warnings, errors
