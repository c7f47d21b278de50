"""dtc's live tree: the tree a DTS builds before it is flattened (dgibson/dtc livetree.c).

Unlike bootforge.fdt.tree (what a DTB holds), a live node keeps what the
source said about it: labels, deleted nodes and properties (dtc keeps them in
the lists, flagged, and later definitions can revive them), markers in values
(phandle and path references, labels inside values), where each definition
was (srcpos, several for a merged node), and the state dtc's checks leave on
it (phandle, #address-cells, bus). Lists keep dtc's orders: properties and
children in definition order, labels newest first (add_label prepends).
"""

from bootforge.fdt.tree import DeviceTree, FdtNode, FdtProperty

PHANDLE_LEGACY, PHANDLE_EPAPR, PHANDLE_BOTH = 1, 2, 3

# Marker kinds that matter for a DTB (dtc's REF_PHANDLE, REF_PATH, LABEL; type markers only
# matter as "this value has markers", Prop.typed).
REF_PHANDLE, REF_PATH, LABEL = "P", "R", "L"


class Prop:
    __slots__ = ("name", "val", "markers", "typed", "labels", "deleted", "pos")

    def __init__(self, name, val=b"", markers=None, typed=False, pos=None, deleted=False):
        self.name = name
        self.val = val
        self.markers = markers if markers is not None else []
        self.typed = typed
        self.labels = []
        self.deleted = deleted
        self.pos = pos


class Node:
    __slots__ = ("name", "props", "children", "labels", "deleted", "pos", "parent", "fullpath",
                 "basenamelen", "phandle", "omit_if_unused", "is_referenced", "addr_cells", "size_cells",
                 "bus", "merged_away", "pmap")

    def __init__(self, props=None, children=None, pos=None, name=None, deleted=False):
        self.name = name
        self.props = props if props is not None else []
        self.children = children if children is not None else []
        self.labels = []
        self.deleted = deleted
        self.pos = [pos] if pos is not None else []
        self.parent = None
        self.fullpath = None
        self.basenamelen = 0
        self.phandle = 0
        self.omit_if_unused = False
        self.is_referenced = False
        self.addr_cells = 0         # dtc's memset(0) until the addr_size_cells check runs
        self.size_cells = 0
        self.bus = None
        self.merged_away = False
        self.pmap = None            # name -> first live property, while the checks run
        for c in self.children:
            c.parent = self

    def index_props(self):
        pmap = {}
        for p in self.props:
            if not p.deleted and p.name not in pmap:
                pmap[p.name] = p
        self.pmap = pmap

    def live_children(self):
        return [c for c in self.children if not c.deleted]

    def get_prop(self, name):
        """dtc's get_property: the first property of that name that is not deleted."""
        pmap = self.pmap
        if pmap is not None:
            return pmap.get(name)
        for p in self.props:
            if p.name == name and not p.deleted:
                return p
        return None

    def get_subnode(self, name):
        for c in self.children:
            if c.name == name and not c.deleted:
                return c
        return None

    def unitname(self):
        return self.name[self.basenamelen + 1:] if len(self.name) > self.basenamelen else ""


def add_label(labels, label):
    for entry in labels:
        if entry[0] == label:
            entry[1] = False
            return
    labels.insert(0, [label, False])


def live_labels(labels):
    return [entry[0] for entry in labels if not entry[1]]


def delete_labels(labels):
    for entry in labels:
        entry[1] = True


def delete_property(prop):
    prop.deleted = True
    delete_labels(prop.labels)


def delete_node(node):
    """dtc's delete_node: the node, its live children (recursively) and properties, its labels."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.deleted = True
        n.pmap = None
        for c in n.children:
            if not c.deleted:
                stack.append(c)
        for p in n.props:
            if not p.deleted:
                delete_property(p)
        delete_labels(n.labels)


def add_child(parent, child):
    child.parent = parent
    parent.children.append(child)


def merge_nodes(old, new, register=None):
    """dtc's merge_nodes: *new*'s labels, properties and children into *old*. Recursive like
    dtc's; the parser bounds nesting (MAX_NESTING), so the recursion is bounded too."""
    old.deleted = False
    old.pmap = None
    for label, _ in new.labels:
        add_label(old.labels, label)
        if register is not None:
            register(label, old)
    for np in new.props:
        if np.deleted:
            for op in old.props:
                if op.name == np.name:
                    delete_property(op)
                    break
            continue
        for op in old.props:
            if op.name == np.name:
                for label, _ in np.labels:
                    add_label(op.labels, label)
                op.val, op.markers, op.typed = np.val, np.markers, np.typed
                op.deleted = False
                op.pos = np.pos
                break
        else:
            old.props.append(np)
    new.props = []
    for nc in new.children:
        nc.parent = None
        if nc.deleted:
            for oc in old.children:
                if oc.name == nc.name:
                    delete_node(oc)
                    break
            continue
        for oc in old.children:
            if oc.name == nc.name:
                merge_nodes(oc, nc, register)
                break
        else:
            add_child(old, nc)
    new.children = []
    old.pos.extend(new.pos)
    new.merged_away = True
    return old


def get_node_by_path(tree, path):
    """dtc's get_node_by_path: exact unit names, deleted nodes skipped."""
    node = tree
    while True:
        if not path:
            return None if node.deleted else node
        path = path.lstrip("/")
        slash = path.find("/")
        head = path if slash < 0 else path[:slash]
        for c in node.children:
            if not c.deleted and c.name == head:
                break
        else:
            return None
        if slash < 0:
            return c
        node = c
        path = path[slash + 1:]


def get_node_by_label(tree, label):
    """dtc's get_node_by_label: depth first, the node itself before its children."""
    stack = [tree]
    while stack:
        n = stack.pop()
        for name, deleted in n.labels:
            if name == label and not deleted:
                return n
        stack.extend(c for c in reversed(n.children) if not c.deleted)
    return None


def get_node_by_ref(tree, ref):
    if ref == "/":
        return tree
    if ref[0] == "/":
        return get_node_by_path(tree, ref)
    return get_node_by_label(tree, ref)


def fill_fullpaths(root):
    """dtc's fill_fullpaths: full paths and base-name lengths of every live node."""
    stack = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if prefix.endswith("/"):
            node.fullpath = prefix + node.name
        else:
            node.fullpath = prefix + "/" + node.name
        at = node.name.find("@")
        node.basenamelen = at if at >= 0 else len(node.name)
        for c in node.children:
            if not c.deleted:
                stack.append((c, node.fullpath))


class DtInfo:
    """dtc's dt_info: header flags, reservations, the root, boot cpu; and how to print positions."""

    def __init__(self, flags, reservations, root, boot_cpuid, srcpos=None):
        self.plugin = bool(flags & 2)
        self.reservations = reservations
        self.root = root
        self.boot_cpuid = boot_cpuid
        self.srcpos = srcpos or (lambda pos: None)     # pos -> "file:L.C-C" text
        self.outname = "-"
        self.phandle_format = PHANDLE_EPAPR
        self.next_phandle = 1
        self.phandles = {}          # phandle -> nodes that have it (dtc walks the tree instead)
        self.generate_symbols = False
        self.warnings = []          # lines dtc prints on stderr outside the checks

    def live_nodes(self):
        """Every live node, depth first (dtc's check_nodes_props order)."""
        out = []
        stack = [self.root]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(c for c in reversed(n.children) if not c.deleted)
        return out

    def node_by_phandle(self, phandle):
        """dtc's get_node_by_phandle (0 and -1 never match)."""
        if phandle == 0 or phandle == 0xFFFFFFFF:
            return None
        nodes = self.phandles.get(phandle)
        if not nodes:
            return None
        if len(nodes) == 1:
            return nodes[0] if _attached(nodes[0], self.root) else None
        live = [n for n in nodes if _attached(n, self.root)]
        if len(live) <= 1:
            return live[0] if live else None
        order = {id(n): i for i, n in enumerate(self.live_nodes())}
        return min(live, key=lambda n: order.get(id(n), 1 << 60))

    def set_phandle(self, node, phandle):
        node.phandle = phandle
        self.phandles.setdefault(phandle, []).append(node)

    def node_phandle(self, node):
        """dtc's get_node_phandle: allocate the next free phandle and add the property."""
        if node.phandle not in (0, 0xFFFFFFFF):
            return node.phandle
        phandle = self.next_phandle
        while self.node_by_phandle(phandle) is not None:
            phandle += 1
        self.next_phandle = phandle
        self.set_phandle(node, phandle)
        value = phandle.to_bytes(4, "big")
        if node.get_prop("linux,phandle") is None and self.phandle_format & PHANDLE_LEGACY:
            node.props.append(Prop("linux,phandle", value, typed=True))
            node.pmap = None
        if node.get_prop("phandle") is None and self.phandle_format & PHANDLE_EPAPR:
            node.props.append(Prop("phandle", value, typed=True))
            node.pmap = None
        return phandle


def _attached(node, root):
    while node is not root:
        if node.deleted or node.parent is None:
            return False
        node = node.parent
    return not root.deleted


def guess_boot_cpuid(root):
    cpus = get_node_by_path(root, "/cpus")
    if cpus is None or not cpus.children:
        return 0
    reg = cpus.children[0].get_prop("reg")
    if reg is None or len(reg.val) != 4:
        return 0
    return int.from_bytes(reg.val, "big")


def append_to_property(node, name, data):
    node.pmap = None
    p = node.get_prop(name)
    if p is not None:
        p.val = bytes(p.val) + data
    else:
        node.props.append(Prop(name, data, typed=True))


def _build_root_node(root, name):
    an = root.get_subnode(name)
    if an is None:
        an = Node(name=name)
        add_child(root, an)
    return an


def generate_label_tree(dti, name, allocph):
    """dtc's generate_label_tree (-@: __symbols__, -A: aliases)."""
    nodes = dti.live_nodes()
    if not any(n.labels for n in nodes):
        return
    an = _build_root_node(dti.root, name)
    for node in nodes:
        if not node.labels:
            continue
        for label in live_labels(node.labels):
            if an.get_prop(label) is not None:
                dti.warnings.append(f"WARNING: label {label} already exists in /{an.name}")
                continue
            an.props.append(Prop(label, node.fullpath.encode("latin-1") + b"\0", typed=True))
        if allocph:
            dti.node_phandle(node)


def _phandle_refs(dti):
    for node in dti.live_nodes():
        for prop in node.props:
            if prop.deleted:
                continue
            for m in prop.markers:
                if m[1] == REF_PHANDLE:
                    yield node, prop, m


def generate_fixups(dti):
    """dtc's generate_fixups_tree and generate_local_fixups_tree (plugins, or -@)."""
    refs = [(node, prop, m, get_node_by_ref(dti.root, m[2])) for node, prop, m in _phandle_refs(dti)]
    if any(target is None for *_, target in refs):
        fn = _build_root_node(dti.root, "__fixups__")
        for node, prop, m, target in refs:
            if target is None:
                if ":" in node.fullpath or ":" in prop.name:
                    raise ValueError("arguments should not contain ':'")
                append_to_property(fn, m[2], f"{node.fullpath}:{prop.name}:{m[0]}".encode("latin-1") + b"\0")
    if any(target is not None for *_, target in refs):
        lfn = _build_root_node(dti.root, "__local_fixups__")
        for node, prop, m, target in refs:
            if target is None:
                continue
            path = []
            n = node
            while n.parent is not None:
                path.append(n.name)
                n = n.parent
            wn = lfn
            for part in reversed(path):
                nwn = wn.get_subnode(part)
                if nwn is None:
                    nwn = Node(name=part)
                    add_child(wn, nwn)
                wn = nwn
            append_to_property(wn, prop.name, m[0].to_bytes(4, "big"))


def sort_tree(dti):
    """dtc's sort_tree (-s): reservations, then every node's properties and children by name."""
    dti.reservations.sort()
    stack = [dti.root]
    while stack:
        n = stack.pop()
        n.props.sort(key=lambda p: p.name.encode("latin-1"))
        n.children.sort(key=lambda c: c.name.encode("latin-1"))
        stack.extend(n.children)


def to_device_tree(dti):
    """The DeviceTree (bootforge.fdt.tree) that dtc would flatten: live nodes and properties only."""
    def convert(node):
        out = FdtNode(node.name, [FdtProperty(p.name, bytes(p.val)) for p in node.props if not p.deleted])
        return out

    root = convert(dti.root)
    stack = [(dti.root, root)]
    while stack:
        live, fdt = stack.pop()
        for c in live.children:
            if c.deleted:
                continue
            fc = convert(c)
            fdt.children.append(fc)
            stack.append((c, fc))
    return DeviceTree(root=root, reservations=[(a, s) for a, s in dti.reservations],
                      boot_cpuid_phys=dti.boot_cpuid & 0xFFFFFFFF)


def from_device_tree(tree):
    """The live tree dtc builds from a DTB (flattree.c dt_from_blob): no labels, markers or
    positions; /dts-v1/ flags only."""
    def convert(fnode):
        return Node([Prop(p.name, p.value) for p in fnode.properties], name=fnode.name)

    root = convert(tree.root)
    stack = [(tree.root, root)]
    while stack:
        fnode, live = stack.pop()
        for fc in fnode.children:
            lc = convert(fc)
            add_child(live, lc)
            stack.append((fc, lc))
    return DtInfo(1, list(tree.reservations), root, tree.boot_cpuid_phys)
