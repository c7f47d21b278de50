"""`bootforge inspect` of boot information on its own: the bytes `bootforge load --mbi-out`
writes (what the loader hands the kernel in EBX), without the dump around them.

- mb2-info: a Multiboot2 information structure (total_size, reserved 0, tags to an end tag),
  decoded by bootforge.multiboot.mbi2 as in a dump.
- mb1-info: a multiboot_info structure (88 bytes, or 116 with the framebuffer fields). Its
  pointers (cmdline, mods_addr, mmap_addr...) are guest addresses: what they point to is
  not in the file, which is normal for the kind (warnings, not defects).
"""

from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.multiboot.dump import _tag_line
from bootforge.multiboot.mbi1 import decode_mb1_info
from bootforge.multiboot.mbi2 import decode_mb2_info
from bootforge.report import DocumentReport
from bootforge.text import field_text

# Where the file is read as the MBI (its pointers are guest addresses: nothing else is here).
_MBI_ADDRESS = 0


class _OnlyTheInfo:
    """Guest memory holding only the structure itself (bootforge.multiboot.dump.Memory's reads)."""

    def __init__(self, data):
        self.data = data

    def read(self, addr, length):
        return self.data[:length] if addr == _MBI_ADDRESS and length <= len(self.data) else None

    def string(self, addr):
        return None, None


def inspect_mb2_info(path, data):
    try:
        info = decode_mb2_info(data)
    except FormatError as exc:
        raise exc.located(path=path) from None
    problems = []
    if info["total_size"] != len(data):
        problems.append(f"total_size {info['total_size']:#x} but the file holds {len(data):#x} bytes")
    return InfoReport(path=str(path), format="mb2-info", problems=problems,
                      doc={"protocol": "multiboot2", "multiboot2": info, "warnings": []})


def inspect_mb1_info(path, data):
    if len(data) < fmt.MBI1_SIZE_WITHOUT_FRAMEBUFFER:
        raise FormatError(f"{len(data)} bytes: a multiboot_info has at least {fmt.MBI1_SIZE_WITHOUT_FRAMEBUFFER}",
                          path=path, offset=len(data))
    flags = int.from_bytes(data[:4], "little")
    if flags & fmt.MbiFlag.FRAMEBUFFER and len(data) < fmt.MBI1_SIZE:
        raise FormatError(f"flags {flags:#x} set the framebuffer bit but the file ends at {len(data)} bytes, "
                          f"before the framebuffer fields ({fmt.MBI1_SIZE})", path=path, offset=len(data))
    # Loaders that never set the framebuffer bit write 88 bytes: the rest reads as absent.
    padded = bytes(data) + bytes(max(0, fmt.MBI1_SIZE - len(data)))
    try:
        info, outside = decode_mb1_info(_OnlyTheInfo(padded), _MBI_ADDRESS)
    except FormatError as exc:
        raise exc.located(path=path) from None
    warnings = [w.replace("is not in the dump", "lies outside this file (a guest address)")
                .replace("is not a NUL-terminated string in the dump", "lies outside this file (a guest address)")
                for w in outside]
    return InfoReport(path=str(path), format="mb1-info", problems=[],
                      doc={"protocol": "multiboot1", "multiboot1": info, "warnings": warnings})


class InfoReport(DocumentReport):
    def render_text(self):
        d = self.doc
        if d["protocol"] == "multiboot2":
            m = d["multiboot2"]
            out = [f"{self.path}: Multiboot2 information, total_size {m['total_size']:#x}, {len(m['tags'])} tags"]
            out += ["  " + _tag_line(t) for t in m["tags"]]
        else:
            m = d["multiboot1"]
            out = [f"{self.path}: Multiboot1 information, flags {m['flags']:#x}: {', '.join(m['flags_set'])}"]
            for k, v in m.items():
                if k in ("flags", "flags_set", "modules", "mmap"):
                    continue
                if isinstance(v, dict):
                    out.append(f"  {k}: " + ", ".join(f"{kk} {field_text(kk, vv)}" for kk, vv in v.items()))
                elif v is not None:
                    out.append(f"  {k}: {field_text(k, v)}")
        out += [f"  warning: {w}" for w in d["warnings"]]
        out += [f"  problem: {p}" for p in self.problems]
        return "\n".join(out)
