"""`bootforge inspect --format e820-bin|efi-bin|mb1-mmap|...` for raw memory maps."""

from bootforge.report import Report


def _inspect(format_name):
    def reader(path, data):
        from bootforge.memmap.io import FORMATS, map_to_json
        from bootforge.memmap.verify import verify_map
        memory_map = FORMATS[format_name][0](path, data, {})
        checks = verify_map(memory_map)
        problems = [c.line() for c in checks if not c.ok and not c.warning]
        return MemoryMapReport(path=str(path), format=format_name, problems=problems,
                               memory_map=memory_map, doc=map_to_json(memory_map))
    return reader


inspect_e820_bin = _inspect("e820-bin")
inspect_efi_bin = _inspect("efi-bin")
inspect_mb1_mmap = _inspect("mb1-mmap")
inspect_mb2_mmap = _inspect("mb2-mmap")
inspect_mb2_efi_mmap = _inspect("mb2-efi-mmap")


class MemoryMapReport(Report):
    def __init__(self, *, memory_map, doc, **kw):
        super().__init__(**kw)
        self.memory_map, self.doc = memory_map, doc

    def to_json(self):
        return self.doc

    def render_text(self):
        from bootforge.memmap.io import write_table
        text = write_table(self.memory_map, {}).decode().rstrip("\n")
        return "\n".join([text] + [f"Problem: {p}" for p in self.problems])
