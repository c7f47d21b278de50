"""`bootforge inspect` for memory maps: every file format of the registry, chosen with
--format (raw maps have no magic) or by its sniffer when no other reader claimed
the file (dmesg text, JSON, lsefimmap). DTBs have their own report (dtb_report)."""

from bootforge.memmap.formats import registry
from bootforge.memmap.formats.json import map_to_json
from bootforge.memmap.formats.table import write_table
from bootforge.memmap.verify import verify_map
from bootforge.report import Report


def inspect_map(format_name, path, data):
    """The MemoryMapReport of *data* read as memory-map format *format_name*."""
    memory_map = registry()[format_name].read(path, data, {})
    checks = verify_map(memory_map)
    problems = [c.line() for c in checks if not c.ok and not c.warning]
    return MemoryMapReport(path=str(path), format=format_name, problems=problems,
                           memory_map=memory_map, doc=map_to_json(memory_map))


def sniff(data, path=None):
    """The name of the first inspectable memory-map format whose sniffer claims *data*, or None."""
    for name, f in registry().items():
        if f.read is not None and not f.directory and f.sniff is not None and f.sniff(data[:4096], path):
            return name
    return None


def inspectable(name):
    f = registry().get(name)
    return f is not None and f.read is not None and not f.directory


class MemoryMapReport(Report):
    def __init__(self, *, memory_map, doc, **kw):
        super().__init__(**kw)
        self.memory_map, self.doc = memory_map, doc

    def to_json(self):
        return self.doc

    def render_text(self):
        text = write_table(self.memory_map, {}).decode().rstrip("\n")
        return "\n".join([text] + [f"Problem: {p}" for p in self.problems])
