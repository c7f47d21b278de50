"""Declared schemas for recipe tables: one Field per key (type, range, default,
meaning) that validation, defaults and help text all read (after systemd's
ukify ConfigItem table: the declaration is the only place a key is described).

    FIELDS = (
        Field("trampoline_size", int, 0x2000, "bytes of Xen's real-mode trampoline", min=0),
        Field("ipxe_outcome", str, "boot", "how iPXE ends", choices=("boot", "san-boot")),
    )
    values = validate(table, FIELDS, "load.options")     # defaults filled in
    help = describe(FIELDS)                               # one line per key

Errors are RecipeError naming the table and key ("[load.options] x must be ...").
"""

import re
from dataclasses import dataclass
from pathlib import Path

from bootforge.errors import RecipeError

REQUIRED = object()
PATH_MAX = 4096         # Linux: a longer path is ENAMETOOLONG before any file is looked at
NAME_MAX = 255

# Sizes: a bare number is bytes; a unit is written out (K, M, G, T: binary, with or without "iB").
SIZE_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.I)


def parse_size(value, where, key="size", *, example='"64M"'):
    """Bytes from a size: an integer, or a string of digits (bytes) or digits with a unit
    ("64K", "256M", "3.5G", "1GiB"); RecipeError "[where] key must be ..." otherwise, and for a
    size that is not a whole, non-negative number of bytes (a Field's min/max bound it further)."""
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        # Exact in integers ("3.5G" is 35 << 30 over 10): a fraction of a byte is refused.
        whole, _, decimals = m.group(1).partition(".")
        scaled = int(whole + decimals) << SIZE_UNITS[m.group(2).upper()]
        if scaled % 10 ** len(decimals) == 0:
            size = scaled // 10 ** len(decimals)
    if size is None or size < 0:
        raise RecipeError(f"[{where}] {key} must be a number of bytes or like {example}, not {value!r}")
    return size


# What a type is called in messages and help.
_TYPE_WORDS = {int: "integer", str: "string", bool: "boolean", float: "number", list: "array", dict: "table"}


@dataclass(frozen=True)
class Field:
    name: str
    type: object                    # int, str, bool, list, dict, or a tuple of them (int or str: a symbol)
    default: object = REQUIRED      # REQUIRED: the key must be given; None: optional, no value
    meaning: str = ""
    min: int | None = None          # integers: inclusive bounds
    max: int | None = None
    choices: tuple | None = None    # strings: the accepted values
    text: str | None = None         # strings: "path" (no NUL, <= PATH_MAX), "ascii", "hex" (bytes as hex),
                                    # "size" (parse_size: the value checked is the number of bytes)
    max_length: int | None = None   # strings: characters; lists: entries
    length: int | None = None       # lists: exactly this many entries
    items: object = None            # lists: the Field every entry is checked against (its name unused)

    @property
    def required(self):
        return self.default is REQUIRED

    def _types(self):
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def type_words(self):
        words = []
        for t in self._types():
            word = _TYPE_WORDS.get(t, t.__name__)
            if t is int and self.min == 0 and self.max is None:
                word = "non-negative integer"
            if self.text == "size":
                word = {int: "number of bytes", str: 'size string ("64M")'}.get(t, word)
            if t is str and self.text == "path":
                word = "path (a string)"
            elif t is str and self.text in ("ascii", "hex"):
                word = f"{'ASCII' if self.text == 'ascii' else 'hex'} string"
            if t is list and self.items is not None:
                n = f"{self.length} " if self.length is not None else ""
                word = f"array of {n}{self.items.type_words()}s"
            words.append(word)
        return " or ".join(words)

    def _fail(self, value, where, extra=""):
        words = self.type_words()
        article = "an" if words[0] in "aeiouAEIOU" else "a"
        bounds = ""
        if int in self._types() and self.max is not None and list not in self._types():
            bounds = f" in [{self.min if self.min is not None else '-inf'}, {self.max:#x}]"
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise RecipeError(f"[{where}] {self.name} must be {article} {words}{bounds}{extra}, not {shown}")

    def check(self, value, where):
        """*value* if it fits this field (a size: its bytes), else RecipeError naming [where] and
        the key."""
        if self.text == "size":
            size = parse_size(value, where, self.name)
            if (self.min is not None and size < self.min) or (self.max is not None and size > self.max):
                self._fail(value, where)
            return size
        if self.choices is not None and (not isinstance(value, (str, int)) or value not in self.choices):
            raise RecipeError(f"[{where}] {self.name} must be one of {', '.join(map(str, self.choices))}, "
                              f"not {value!r}")
        types = self._types()
        ok = any(isinstance(value, t) and not (t is not bool and isinstance(value, bool)) for t in types)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if ok and isinstance(value, int) and not isinstance(value, bool) and int in types:
            ok = (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
        if not ok:
            self._fail(value, where)
        if isinstance(value, str):
            self._check_text(value, where)
        if isinstance(value, list):
            if self.length is not None and len(value) != self.length:
                self._fail(value, where, f" (exactly {self.length})")
            if self.max_length is not None and len(value) > self.max_length:
                self._fail(value, where, f" (at most {self.max_length})")
            if self.min is not None and list in types and len(value) < self.min:
                self._fail(value, where, f" (at least {self.min})")
            if self.items is not None:
                for i, item in enumerate(value):
                    try:
                        self.items.check(item, where)
                    except RecipeError:
                        self._fail(value, where, f" (entry {i} is {item!r})")
        return value

    def _check_text(self, value, where):
        if self.max_length is not None and len(value) > self.max_length:
            self._fail(value, where, f" of at most {self.max_length} characters")
        if self.text == "path":
            if "\0" in value:
                self._fail(value, where, " without a NUL byte")
            raw = value.encode("utf-8", "surrogateescape")
            if len(raw) > PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
                self._fail(value, where, f" the system can open (at most {PATH_MAX} bytes, "
                                         f"{NAME_MAX} per name)")
        elif self.text == "ascii" and not value.isascii():
            self._fail(value, where, " (firmware prints these bytes as they are)")
        elif self.text == "hex":
            try:
                bytes.fromhex(value)
            except ValueError:
                self._fail(value, where, " (pairs of hex digits)")

    def describe(self):
        """One line: `name (type, default X): meaning`."""
        return f"{self.name} ({self.kind()}): {self.meaning}"

    def kind(self):
        """What values it takes and its default: `non-negative integer, default 0x2000`."""
        parts = [self.type_words()]
        if self.choices is not None:
            parts = ["one of " + "|".join(map(str, self.choices))]
        if self.max is not None and list not in self._types():
            parts.append(f"<= {self.max:#x}")
        if self.required:
            parts.append("required")
        elif self.default is not None:
            default = f"{self.default:#x}" if self.type is int and self.default >= 0x1000 else repr(self.default)
            parts.append(f"default {default}")
        return ", ".join(parts)


def validate(table, fields, where, *, known_note=""):
    """A dict of every field's value from *table* (defaults filled in); RecipeError on an
    unknown key, a missing required key or a value of the wrong type or range."""
    if not isinstance(table, dict):
        raise RecipeError(f"[{where}] must be a table")
    by_name = {f.name: f for f in fields}
    unknown = sorted(set(table) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise RecipeError(f"[{where}] unknown key(s): {', '.join(unknown)} (known{known_note}: {known})")
    values = {}
    for f in fields:
        if f.name in table:
            values[f.name] = f.check(table[f.name], where)
        elif f.required:
            raise RecipeError(f"[{where}] {f.name} is required")
        elif f.default is not None:
            values[f.name] = f.default
    return values


def recipe_file(base, value, where, key):
    """The file a recipe's path value names (relative to the recipe's directory *base*), checked
    to be a readable regular file: a missing one names the table and key it came from."""
    path = Path(base) / value
    try:
        ok = path.is_file()
    except OSError as exc:
        raise RecipeError(f"[{where}] {key} = {value!r}: {exc.strerror}") from None
    if not ok:
        what = "is not a regular file" if path.exists() else "does not exist"
        raise RecipeError(f"[{where}] {key} = {value!r}: {path} {what}")
    return path


def defaults(fields):
    """{name: default} of the fields that have one."""
    return {f.name: f.default for f in fields if not f.required and f.default is not None}


def describe(fields, indent=""):
    """Help text: one line per field."""
    return "\n".join(indent + f.describe() for f in fields)
