"""One Verdict: what a firmware, a loader or an invariant says about an input.

Every judgement bootforge makes has this shape: ROM firmware verdicts
(bootforge.rom.firmware: would SeaBIOS run this image?), kernel loader
verdicts (bootforge.multiboot.verdicts: would GRUB load this kernel?),
memory-map checks (bootforge.memmap.verify) and placement checks
(bootforge.memmap.placement, the loader policies).

- subject: who or what judges: a firmware ("seabios", "uefi"), a loader
  verdict ("grub-mb2", "qemu-mb1"), or a check's name ("placement-no-overlap").
- ok: whether the input passes (the firmware runs it, the loader loads it,
  the invariant holds).
- reason: bootforge's sentence saying why, shown to the user.
- severity: "error" (a failed verdict fails: exit 1, or a refusal) or
  "warning" (normal for the kind of input: reported, never fails).
- words: the firmware's or loader's own message where it has one (SeaBIOS's
  dprintf text, grub_error's text, Limine's panic string), else None.
  `bootforge verify` compares these with what the real loader printed.
- facts: anything else the subject establishes (the PCI ids SeaBIOS matched,
  a GRUB module the load requires), JSON-ready values.

JSON (to_json) is the same for all of them:
    {"subject": str, "ok": bool, "severity": "error"|"warning",
     "reason": str, "words": str|null, "facts": {...}}
"""

from dataclasses import dataclass, field

SEVERITIES = ("error", "warning")

# The words a verdict's status is shown with, by kind of judge (status_word()).
CHECK_WORDS = ("ok", "FAIL", "warn")                  # invariants: memmap verify, placement checks


@dataclass(frozen=True)
class Verdict:
    subject: str
    ok: bool
    reason: str
    severity: str = "error"
    words: str | None = None
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def fails(self):
        """True when this verdict makes the whole judgement fail (not ok, and not a warning)."""
        return not self.ok and self.severity == "error"

    @property
    def warning(self):
        return self.severity == "warning"

    def with_reason(self, reason, **facts):
        """The same verdict with another reason (and more facts): for notes a caller adds."""
        return Verdict(self.subject, self.ok, reason, self.severity, self.words, {**self.facts, **facts})

    def to_json(self):
        return {"subject": self.subject, "ok": self.ok, "severity": self.severity, "reason": self.reason,
                "words": self.words, "facts": dict(self.facts)}

    def status_word(self, words=CHECK_WORDS):
        """(yes, no, warning) -> the word for this verdict: "ok"/"FAIL"/"warn" for checks,
        a registry's own verbs for firmware and loaders ("runs"/"does not run")."""
        yes, no, warn = words
        if self.ok:
            return yes
        return warn if self.warning else no

    def line(self, words=CHECK_WORDS):
        """The one-line text rendering: `STATUS subject: reason`."""
        return f"{self.status_word(words):<4} {self.subject}: {self.reason}"


def check(name, ok, reason, *, warning=False, words=None, **facts):
    """A Verdict for an invariant check (memory maps, placements): subject = the check's name."""
    return Verdict(name, bool(ok), reason, "warning" if warning else "error", words, facts)


def passed(verdicts):
    """True when no verdict in *verdicts* fails (warnings do not)."""
    return not any(v.fails for v in verdicts)
