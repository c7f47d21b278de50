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
    """A build or load recipe that is malformed or asks for something impossible."""


class BuildError(BootforgeError):
    """A build that would produce something real firmware refuses."""


class ToolError(BootforgeError):
    """An external program bootforge relies on is missing or failed."""
