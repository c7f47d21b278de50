"""The exception tree: everything bootforge raises on purpose is a BootforgeError.

The CLI turns a BootforgeError into one line on stderr and exit status 2;
anything else escaping is a bug in bootforge.
"""


class BootforgeError(Exception):
    """Base of every error bootforge reports to its user."""

    def __init__(self, message, *, path=None, offset=None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset

    def located(self, path=None, offset=None):
        """Fill in the file and offset when the raiser did not know them."""
        if self.path is None:
            self.path = path
        if self.offset is None:
            self.offset = offset
        return self

    def __str__(self):
        parts = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.offset is not None:
            parts.append(f"offset {self.offset:#x}")
        parts.append(self.message)
        return ": ".join(parts)


class FormatError(BootforgeError):
    """Input bytes that cannot be what they claim: truncated, bad magic, lying lengths."""


class LimitError(FormatError):
    """A field asks for more than bootforge will allocate or walk (absurd sizes, loops)."""


class RecipeError(BootforgeError):
    """Your recipe is wrong: malformed, or asks for something impossible (a loader on the
    wrong firmware, an unknown key or option)."""


class LoaderRefusal(BootforgeError):
    """The real loader (or firmware) would refuse this input; *words* are its own message
    where it has one (GRUB's grub_error text, QEMU's, Syslinux's, Limine's panic string).

    Exit status 2 like every BootforgeError: nothing was placed. *loader* names the
    policy or verdict that refused (the vocabulary of bootforge.loader.policies)."""

    def __init__(self, message, *, loader=None, words=None, path=None, offset=None):
        super().__init__(message, path=path, offset=offset)
        self.loader = loader
        self.words = message if words is None else words


class MemoryMapError(BootforgeError):
    """An operation on a memory map that cannot be done (carving outside usable memory...)."""


class BuildError(BootforgeError):
    """A build that would produce something real firmware refuses."""


class ToolError(BootforgeError):
    """An external program bootforge relies on is missing or failed."""
