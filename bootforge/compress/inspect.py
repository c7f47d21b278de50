"""`bootforge inspect` of a raw UEFI-compressed stream (what `bootforge extract --raw` or
EDK2's EfiCompress writes): the header, the variant that decodes it and what is inside.

The stream has no magic (UEFI spec, "Compression Algorithm Specification": a u32
compressed size and a u32 original size, then the bit stream), so it is recognised by
its header agreeing with the file's length; an option ROM pads the stream to 512 bytes.
"""

import struct
from dataclasses import dataclass, field

from bootforge.compress import HEADER_SIZE, decompress
from bootforge.errors import FormatError
from bootforge.report import Report
from bootforge.text import human_size

ROM_BLOCK = 512     # option-ROM images pad the stream to a 512-byte block (EfiRom)


def looks_like_stream(data):
    """The header's compressed size ends the data (or its last 512-byte block)."""
    if len(data) < HEADER_SIZE + 1:
        return False
    compressed, original = struct.unpack_from("<II", data)
    end = HEADER_SIZE + compressed
    return compressed > 0 and original > 0 and end <= len(data) < end + ROM_BLOCK


@dataclass
class CompressedStreamReport(Report):
    compressed_size: int = 0
    original_size: int = 0
    variant: str | None = None           # "efi" or "tiano": the one whose decoder takes it
    decoded_format: str | None = None    # what bootforge finds inside, when it decodes
    errors: dict = field(default_factory=dict)

    def to_json(self):
        return {"file": str(self.path), "format": self.format, "compressed_size": self.compressed_size,
                "original_size": self.original_size, "variant": self.variant,
                "decoded_format": self.decoded_format, "errors": self.errors, "problems": list(self.problems)}

    def render_text(self):
        out = [f"{self.path}: UEFI compressed stream",
               f"  compressed size  {self.compressed_size} bytes (+{HEADER_SIZE}-byte header)",
               f"  original size    {self.original_size} bytes ({human_size(self.original_size)})"]
        if self.variant:
            out.append(f"  decodes as       {self.variant} (EDK2 {'EfiDecompress' if self.variant == 'efi' else 'TianoDecompress'})")
            out.append(f"  contents         {self.decoded_format or 'nothing bootforge recognises'}"
                       "  (bootforge decompress --format " + self.variant + " to get them)")
        for name, err in self.errors.items():
            out.append(f"  {name}: {err}")
        out += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(out)


def inspect_stream(path, data, sniff_contents):
    """The report of a compressed stream; *sniff_contents(bytes)* names the decoded format."""
    if len(data) < HEADER_SIZE:     # `--format efi-compressed` takes a file looks_like_stream would not
        raise FormatError(f"{len(data)} bytes: a UEFI compressed stream's header has {HEADER_SIZE}",
                          path=path, offset=len(data))
    compressed, original = struct.unpack_from("<II", data)
    report = CompressedStreamReport(path, "efi-compressed", compressed_size=compressed, original_size=original)
    for name in ("efi", "tiano"):
        try:
            inner = decompress(data, name)
        except FormatError as exc:
            report.errors[name] = str(exc)
            continue
        report.variant, report.errors = name, {}
        report.decoded_format = sniff_contents(inner)
        break
    else:
        report.problems.append("neither the EFI nor the Tiano decoder takes the stream")
    return report
