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

from dataclasses import dataclass

from bootforge.errors import RecipeError

REQUIRED = object()

# What a type is called in messages and help.
_TYPE_WORDS = {int: "integer", str: "string", bool: "boolean", float: "number", list: "array", dict: "table"}


@dataclass(frozen=True)
class Field:
    name: str
    type: type                      # int, str, bool, list, dict
    default: object = REQUIRED      # REQUIRED: the key must be given; None: optional, no value
    meaning: str = ""
    min: int | None = None          # integers: inclusive bounds
    max: int | None = None
    choices: tuple | None = None    # strings: the accepted values

    @property
    def required(self):
        return self.default is REQUIRED

    def type_words(self):
        word = _TYPE_WORDS.get(self.type, self.type.__name__)
        if self.type is int and self.min == 0 and self.max is None:
            return "non-negative integer"
        return word

    def check(self, value, where):
        """*value* if it fits this field, else RecipeError naming [where] and the key."""
        if self.choices is not None and value not in self.choices:
            raise RecipeError(f"[{where}] {self.name} must be one of {', '.join(map(str, self.choices))}, "
                              f"not {value!r}")
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if ok and self.type is int:
            ok = (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
        if not ok:
            article = "an" if self.type_words()[0] in "aeiou" else "a"
            bounds = ""
            if self.type is int and self.max is not None:
                bounds = f" in [{self.min if self.min is not None else '-inf'}, {self.max:#x}]"
            raise RecipeError(f"[{where}] {self.name} must be {article} {self.type_words()}{bounds}, not {value!r}")
        return value

    def describe(self):
        """One line: `name (type, default X): meaning`."""
        return f"{self.name} ({self.kind()}): {self.meaning}"

    def kind(self):
        """What values it takes and its default: `non-negative integer, default 0x2000`."""
        parts = [self.type_words()]
        if self.choices is not None:
            parts = ["one of " + "|".join(map(str, self.choices))]
        if self.max is not None:
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


def defaults(fields):
    """{name: default} of the fields that have one."""
    return {f.name: f.default for f in fields if not f.required and f.default is not None}


def describe(fields, indent=""):
    """Help text: one line per field."""
    return "\n".join(indent + f.describe() for f in fields)
