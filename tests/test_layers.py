"""Imports run one way (issue 10 item 5, docs/architecture.md "Layers").

Every module of the package is parsed with `ast` (nothing is imported), and
each `import`/`from ... import` is classified as module-level (anywhere but
inside a function: top, class body, if/try at the top) or function-level
(inside a def). String targets "bootforge.x.y:name" (bootforge/inspect.py's
FORMATS rows, cli.py's COMMANDS) are imports done later by importlib and
count as function-level.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bootforge"

# The layer of each part of the package, lowest first. A part imports parts of
# its own layer or of a lower one, never of a higher one (module-level and
# function-level alike). A part is a subpackage or a top-level module of
# bootforge ("bootforge" is the package's own __init__.py).
LAYERS = [
    # shared helpers: alignment, errors (BootforgeError and its kinds), atomic output, reports, text,
    # registries, recipe schemas, the one Verdict shape
    {"bootforge", "align", "errors", "fileio", "report", "text", "registry", "schema", "verdict"},
    {"formats"},                                    # byte layouts and numberings
    {"compress", "fdt", "pe"},                      # one format each
    {"rom", "multiboot", "memmap", "uki",           # memmap may use multiboot, never the reverse
     "fdtboot",                                     # device-tree platforms' images and loaders
     "secureboot"},                                 # Secure Boot databases, OVMF varstore, image verdicts
    {"bootloaders", "machines"},                    # each bootloader and each machine declared once
    {"loader"},                                     # `bootforge load`'s policies
    {"post"},                                       # firmware's POST (SeaBIOS option ROMs, PMM): uses loader's platforms
    {"image"},                                      # bootable images: entries read by the bootloaders' parsers
    {"qemu"},                                       # what runs QEMU; media built with image's loader tools
    {"verify"},                                     # boots (qemu) and compares with load's prediction
    {"inspect"},                                    # format detection, lazily every reader
    {"commands", "cli", "__main__"},                # the CLI
]
LAYER_OF = {part: i for i, parts in enumerate(LAYERS) for part in parts}

# formats/ imports nothing of bootforge but these (and formats itself).
FORMATS_MAY_IMPORT = {"errors", "formats"}

# Function-level imports outside the CLI (commands/, cli.py: lazy by design, a thin
# CLI) must say why in a comment just above them, starting "Function-level import".
LAZY_BY_DESIGN = {"commands", "cli"}

TARGET = re.compile(r"^bootforge(?:\.\w+)+:\w+$")


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module):
    """The layer part of a dotted module name: its subpackage or top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bootforge"


def _is_package_module(name):
    """Whether bootforge.<name...> is a module or package on disk (for `from bootforge.x import y`)."""
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


class _Imports(ast.NodeVisitor):
    def __init__(self, module, is_package):
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found = []         # (target module, line, function-level?)
        self.statements = []    # lines of import statements inside functions (any module)

    def _add(self, target, node, lazy=None):
        if target == "bootforge" or target.startswith("bootforge."):
            self.found.append((target, node.lineno, self.depth > 0 if lazy is None else lazy))

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Import(self, node):
        if self.depth:
            self.statements.append(node.lineno)
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):
        if self.depth:
            self.statements.append(node.lineno)
        if node.level:
            base = self.package.split(".")
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            # `from bootforge import errors` imports bootforge.errors; `from x import name` imports x.
            self._add(sub if _is_package_module(sub) else module, node)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and TARGET.match(node.value):
            self._add(node.value.partition(":")[0], node, lazy=True)


def _scan():
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        source = path.read_text()
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(source, str(path)))
        modules[name] = (path, source.splitlines(), visitor.found, visitor.statements)
    return modules


MODULES = _scan()


def _where(module, line):
    return f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{line}"


def test_every_part_has_a_layer():
    parts = {_part(m) for m in MODULES}
    assert parts - set(LAYER_OF) == set(), "add the new subpackage or module to LAYERS (and docs/architecture.md)"
    assert set(LAYER_OF) - parts == set(), "LAYERS names a part that no longer exists"


def test_the_scan_sees_imports_of_both_kinds():
    # The scan must see what it checks: bootforge/inspect.py imports image.sniff at the top and
    # the memory-map registry inside format_names() (if this fails, the parser broke, not the layers).
    found = {(t, lazy) for t, _, lazy in MODULES["bootforge.inspect"][2]}
    assert ("bootforge.image.sniff", False) in found
    assert ("bootforge.memmap.formats", True) in found
    assert ("bootforge.rom.inspect", True) in found       # a FORMATS row's "module:function"


def test_formats_imports_nothing_of_bootforge_but_errors():
    bad = [f"{_where(m, line)} imports {t}"
           for m, (_, _, found, _) in MODULES.items() if _part(m) == "formats"
           for t, line, _ in found if _part(t) not in FORMATS_MAY_IMPORT]
    assert bad == []


@pytest.mark.parametrize("lazy", [False, True], ids=["module-level", "function-level"])
def test_no_part_imports_a_higher_layer(lazy):
    bad = [f"{_where(m, line)}: {_part(m)} (layer {LAYER_OF[_part(m)]}) imports {t} "
           f"(layer {LAYER_OF[_part(t)]})"
           for m, (_, _, found, _) in MODULES.items()
           for t, line, is_lazy in found
           if is_lazy == lazy and LAYER_OF[_part(t)] > LAYER_OF[_part(m)]]
    assert bad == []


def _module_level_graph():
    graph = {}
    for m, (_, _, found, _) in MODULES.items():
        for t, _, lazy in found:
            a, b = _part(m), _part(t)
            if not lazy and a != b:
                graph.setdefault(a, set()).add(b)
    return graph


def _cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_subpackages_at_module_level():
    graph = _module_level_graph()
    cycles = _cycles(graph)
    detail = [f"{_where(m, line)}: {_part(m)} -> {_part(t)}"
              for c in cycles for m, (_, _, found, _) in MODULES.items() for t, line, lazy in found
              if not lazy and _part(m) in c and _part(t) in c and _part(m) != _part(t)]
    assert cycles == [], detail


def test_function_level_imports_say_why():
    # Standard-library imports inside functions follow the same rule.
    bad = []
    for m, (_, lines, _, statements) in MODULES.items():
        if _part(m) in LAZY_BY_DESIGN:
            continue
        for line in statements:
            above = "\n".join(lines[max(0, line - 4):line - 1])
            if "Function-level import" not in above:
                bad.append(f"{_where(m, line)}: {lines[line - 1].strip()}")
    assert bad == []
