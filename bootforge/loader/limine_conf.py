"""A limine.conf entry as Limine 11.4.1 reads it, for `bootforge load` (recipe keys
limine_conf + entry).

Syntax (Limine's CONFIG.md, v8 and later; common/lib/config.c):
- `#` starts a comment line; blank lines are ignored.
- Global options (`timeout: 0`, `serial: yes`) come before the first entry.
- An entry starts with `/` and its title at the start of a line; `//title` is a
  sub-entry of the entry above (`/+title`: expanded by default). The entry's
  options are the `key: value` lines under it, up to the next entry line; keys are
  case-insensitive.
- `${NAME}=value` defines a macro; `${NAME}` in a value is replaced by it.
- Files are URIs: `boot():/path` (or `boot(N):/path`) is the boot volume.

The Multiboot keys Limine's multiboot1.c/multiboot2.c read: PROTOCOL (multiboot1 or
its alias multiboot, multiboot2), PATH (alias KERNEL_PATH), CMDLINE (alias
KERNEL_CMDLINE), and MODULE_PATH with the MODULE_STRING that follows it (before the
next MODULE_PATH): config_get_tuple(). MODULE_CMDLINE is the Limine protocol's key;
a Multiboot kernel gets '' for it (observed: tests/test_limine_conf.py boots it).
"""

import re
from pathlib import Path, PurePosixPath

from bootforge.errors import RecipeError
from bootforge.fileio import read_input

PROTOCOLS = {"multiboot1": "multiboot1", "multiboot": "multiboot1", "multiboot2": "multiboot2"}
# Limine looks for limine.conf in these directories of the boot volume (root first).
CONF_DIRS = ("boot/limine", "boot", "limine", "EFI/BOOT", "")
URI = re.compile(r"^(?P<res>[a-z]+)\((?P<arg>[^)]*)\):(?P<path>/.*)$")
MACRO_DEF = re.compile(r"^\$\{(?P<name>[A-Za-z0-9_]+)\}=(?P<value>.*)$")
MACRO_USE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
MAX_DEPTH = 64


def read_entries(text, where, strict=True):
    """{title: [(KEY, value)]} of every entry (sub-entries by their own title), in order.
    *strict*: a line that is no option, entry or comment, or an undefined macro, is a
    RecipeError naming it (else it is skipped / left as written, as inspect does)."""
    macros = {}
    entries = {}
    current = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = MACRO_DEF.match(line)
        if m and raw[:1] == "$":
            macros[m.group("name")] = m.group("value").strip()
            continue
        if raw.startswith("/"):
            depth = len(raw) - len(raw.lstrip("/"))
            if depth > MAX_DEPTH:
                raise RecipeError(f"{where}: line {lineno}: entries nested deeper than {MAX_DEPTH}")
            title = raw[depth:].lstrip("+").strip()
            current = entries.setdefault(title, [])
            continue
        key, sep, value = line.partition(":")
        if not sep:
            if not strict:
                continue
            raise RecipeError(f"{where}: line {lineno}: {line!r} is neither `key: value`, an entry (/title) "
                              "nor a comment")

        def expand(m, lineno=lineno):
            name = m.group(1)
            if name not in macros:
                if not strict:
                    return m.group(0)
                raise RecipeError(f"{where}: line {lineno}: macro ${{{name}}} is not defined")
            return macros[name]
        value = MACRO_USE.sub(expand, value.strip())
        if current is not None:
            current.append((key.strip().upper(), value))
    return entries


def _value(options, *keys, index=0):
    seen = 0
    for k, v in options:
        if k in keys:
            if seen == index:
                return v
            seen += 1
    return None


def _modules(options):
    """config_get_tuple(MODULE_PATH, MODULE_STRING): each path with the string after it."""
    out = []
    for i, (k, v) in enumerate(options):
        if k != "MODULE_PATH":
            continue
        string = ""
        for k2, v2 in options[i + 1:]:
            if k2 == "MODULE_PATH":
                break
            if k2 == "MODULE_STRING":
                string = v2
                break
        out.append((v, string))
    return out


def multiboot_entries(text, where="limine.conf"):
    """Every entry of a limine.conf text as Limine's multiboot loaders read it:
    [(title, protocol or None, path or None, cmdline, [(module path, string)], note)]
    (paths are the URIs as written; note says why an entry is not a Multiboot one)."""
    out = []
    for title, options in read_entries(text, where, strict=False).items():
        proto = _value(options, "PROTOCOL")
        mb = PROTOCOLS.get(proto.lower()) if proto else None
        note = "" if mb else (f"protocol {proto} (not Multiboot)" if proto else "no protocol")
        out.append((title, mb, _value(options, "PATH", "KERNEL_PATH"),
                    _value(options, "CMDLINE", "KERNEL_CMDLINE") or "", _modules(options), note))
    return out


def default_root(cfg):
    """The boot volume's root: limine.conf's directory less the directory Limine found it in."""
    parts = Path(cfg).resolve().parent.parts
    for d in CONF_DIRS:
        tail = tuple(d.split("/")) if d else ()
        if tail and tuple(p.lower() for p in parts[-len(tail):]) == tuple(t.lower() for t in tail):
            return Path(*parts[:-len(tail)])
    return Path(cfg).resolve().parent


def resolve_uri(uri, root, where):
    """The file on this machine a Limine URI names (boot():/p -> root/p)."""
    m = URI.match(uri)
    if m is None:
        raise RecipeError(f"{where}: {uri!r} is not a Limine path (like boot():/boot/kernel)")
    if m.group("res") != "boot":
        raise RecipeError(f"{where}: {uri!r}: only boot():/ paths (the boot volume) can be read here, "
                          f"not {m.group('res')}()")
    rel = PurePosixPath(m.group("path")).relative_to("/")
    if ".." in rel.parts:
        raise RecipeError(f"{where}: {uri!r}: '..' in a path")
    return Path(root).joinpath(*rel.parts)


def parse_limine_conf(cfg, entry=None, root=None, protocol=None):
    """(kernel file, name, cmdline, [(file, name, string)], protocol) from a limine.conf entry."""
    cfg = Path(cfg)
    where = str(cfg)
    text = read_input(cfg).decode("utf-8", "replace")
    entries = read_entries(text, where)
    booting = {t: o for t, o in entries.items() if _value(o, "PROTOCOL") is not None}
    if entry is None:
        if not booting:
            raise RecipeError(f"{where}: no entry with a protocol")
        entry = next(iter(booting))
    if entry not in entries:
        raise RecipeError(f"{where}: no entry {entry!r} (found: {', '.join(map(repr, entries)) or 'none'})")
    options = entries[entry]
    proto = _value(options, "PROTOCOL")
    if proto is None or proto.lower() not in PROTOCOLS:
        raise RecipeError(f"{where}: entry {entry!r} has protocol {proto!r}; bootforge load reads "
                          f"{', '.join(PROTOCOLS)} entries")
    proto = PROTOCOLS[proto.lower()]
    if protocol is not None and protocol != proto:
        raise RecipeError(f"{where}: entry {entry!r} is protocol: {proto}, the loader is a {protocol} policy")
    name = _value(options, "PATH", "KERNEL_PATH")
    if name is None:
        raise RecipeError(f"{proto}: Executable path not specified ({where}: entry {entry!r} has no path)")
    cmdline = _value(options, "CMDLINE", "KERNEL_CMDLINE") or ""
    root = default_root(cfg) if root is None else Path(root)
    mods = [(resolve_uri(p, root, where), p, s) for p, s in _modules(options)]
    return resolve_uri(name, root, where), name, cmdline, mods, proto
