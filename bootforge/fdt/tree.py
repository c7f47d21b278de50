"""The device-tree model: nodes with ordered properties and children."""

from dataclasses import dataclass, field

from bootforge.formats.fdt import FDT_LAST_COMP_VERSION, FDT_VERSION


@dataclass(slots=True)
class FdtProperty:
    """One property; *nameoff* remembers where the DTB kept its name (for identical rebuilds)."""

    name: str
    value: bytes
    nameoff: int | None = None


@dataclass(slots=True)
class FdtNode:
    """A node: its unit name ("memory@40000000"; "" for the root), properties, children."""

    name: str
    properties: list = field(default_factory=list)
    children: list = field(default_factory=list)

    def prop(self, name):
        """The value of property *name* (bytes), or None."""
        for p in self.properties:
            if p.name == name:
                return p.value
        return None

    def has(self, name):
        return any(p.name == name for p in self.properties)

    def child(self, name):
        """The child called *name* (exact unit name), or None."""
        for c in self.children:
            if c.name == name:
                return c
        return None

    def set(self, name, value):
        for p in self.properties:
            if p.name == name:
                p.value = value
                return
        self.properties.append(FdtProperty(name, value))

    def cell(self, name, default=None):
        """A one-cell (u32) property as an int, or *default* when absent or not one cell."""
        value = self.prop(name)
        if value is None or len(value) != 4:
            return default
        return int.from_bytes(value, "big")

    def string(self, name):
        """The first string of a string property, or None."""
        value = self.prop(name)
        if not value:
            return None
        return value.split(b"\0", 1)[0].decode("latin-1")

    def walk(self, path="/"):
        """Yield (path, node) for this node and every descendant, depth first, in order."""
        stack = [(path, self)]
        while stack:
            p, node = stack.pop()
            yield p, node
            base = p.rstrip("/")
            stack.extend((f"{base}/{c.name}", c) for c in reversed(node.children))


@dataclass
class FdtLayout:
    """Where a parsed DTB kept its blocks, so an unchanged tree rebuilds byte for byte."""

    off_mem_rsvmap: int
    off_dt_struct: int
    off_dt_strings: int
    totalsize: int
    strings: bytes
    nop_offsets: tuple = ()     # offsets of FDT_NOP tokens inside the structure block
    struct_size: int | None = None
    # Non-zero alignment padding (libfdt leaves stale bytes there): struct offset -> bytes.
    padding: dict = field(default_factory=dict)


@dataclass
class DeviceTree:
    """A whole DTB: the reservation block, the tree and the header fields that matter."""

    root: FdtNode = field(default_factory=lambda: FdtNode(""))
    reservations: list = field(default_factory=list)    # (address, size)
    boot_cpuid_phys: int = 0
    version: int = FDT_VERSION
    last_comp_version: int = FDT_LAST_COMP_VERSION
    layout: FdtLayout | None = None

    def node(self, path):
        """The node at an absolute *path* ("/reserved-memory/foo@0"), or None."""
        node = self.root
        for part in [p for p in path.split("/") if p]:
            node = node.child(part)
            if node is None:
                return None
        return node

    def node_count(self):
        return sum(1 for _ in self.root.walk())
