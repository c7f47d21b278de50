"""What every inspector returns: a Report that renders as text or JSON."""

from dataclasses import dataclass, field


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

    @property
    def exit_status(self) -> int:
        return 1 if self.problems else 0
