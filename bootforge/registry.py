"""A registry: the single place that lists the members of one kind (loader policies,
ROM firmware verdicts, kernel loader verdicts...), in registration order.

A member is registered once, under a unique name, by one line in the module
that defines it (a decorator or a register() call); everything that needs the
list (CLI choices, recipe validation, inspect output, the fidelity matrix)
reads the registry instead of keeping its own copy.
"""

from bootforge.errors import RecipeError


class Registry:
    def __init__(self, kind, loader=None, finder=None):
        """*kind* names the members in messages ("loader policy"); *loader*, when
        given, is called once before the first lookup to import the modules that
        register (so a registry can be filled lazily, off the import path);
        *finder*, when given, is called by get() with a name not registered yet,
        before *loader*: it imports the one module that should register it, so a
        lookup by name need not import every member's module."""
        self.kind = kind
        self._members = {}
        self._loader = loader
        self._finder = finder

    def _fill(self):
        if self._loader is not None:
            load, self._loader = self._loader, None
            load()

    def register(self, name, member):
        if name in self._members:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._members[name] = member
        return member

    def order_by(self, key):
        """Re-list the members by *key(name, member)*: the registration order is the import order,
        and a member module imported on its own (by a test, by another module) registers early."""
        self._members = dict(sorted(self._members.items(), key=lambda item: key(*item)))

    def names(self):
        self._fill()
        return tuple(self._members)

    def items(self):
        self._fill()
        return tuple(self._members.items())

    def values(self):
        self._fill()
        return tuple(self._members.values())

    def __contains__(self, name):
        self._fill()
        return name in self._members

    def get(self, name):
        """The member called *name*; RecipeError naming the known ones otherwise."""
        if self._finder is not None and self._loader is not None and name not in self._members:
            self._finder(name)
        if self._finder is None or name not in self._members:
            self._fill()
        try:
            return self._members[name]
        except KeyError:
            raise RecipeError(f"unknown {self.kind} {name!r} (known: {', '.join(self._members)})") from None
