"""What every inspector returns: a Report that renders as text or JSON."""

from dataclasses import dataclass, field


def to_plain(obj):
    """A construct Container (or list of them) as JSON-able dicts and lists; bytes as hex."""
    if hasattr(obj, "items"):
        return {k: to_plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


@dataclass
class Report:
    """The decoded view of one input file.

    Subclasses fill `data` (the JSON document, without "file"/"format"/"problems")
    and implement render_text(). `problems` lists defects in a file that is
    otherwise readable (bad checksum, missing last-image bit): exit status 1.
    """

    path: str
    format: str
    problems: list = field(default_factory=list)

    def to_json(self) -> dict:
        raise NotImplementedError

    def render_text(self) -> str:
        raise NotImplementedError

    def render_bytes(self) -> bytes:
        """The text as the bytes written to stdout (UTF-8); a report whose text carries the
        input's own bytes (a DTB's names, as dtc prints them) overrides this."""
        return self.render_text().encode()

    @property
    def exit_status(self) -> int:
        return 1 if self.problems else 0


@dataclass
class DocumentReport(Report):
    """A Report whose JSON document the reader builds once (`doc`); subclasses render its text."""

    doc: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return self.doc
