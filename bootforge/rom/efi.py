"""EFI images stored compressed (EFI ROM header CompressionType 1).

The firmware decompresses the payload itself (EDK2's UEFI decompressor,
13-bit window), so inspect does the same: it reports the compressed and
declared sizes, whether the stream decodes cleanly to the declared size, and
the PE facts of what came out.
"""

from dataclasses import dataclass

from bootforge.compress import decompress, read_sizes
from bootforge.errors import FormatError
from bootforge.pe import read_pe_facts


@dataclass
class Decompressed:
    compressed_size: int | None     # from the stream header (u32 at +0)
    original_size: int | None       # from the stream header (u32 at +4)
    data: bytes | None
    error: str | None

    @property
    def ok(self):
        return self.error is None

    def to_json(self):
        return {"compressed_size": self.compressed_size, "original_size": self.original_size,
                "decompressed_ok": self.ok, "decompress_error": self.error}

    def text_lines(self):
        lines = ["EFI compressed payload",
                 f"  {'Compressed size':<26}{self.compressed_size if self.compressed_size is not None else '?'}",
                 f"  {'Original size':<26}{self.original_size if self.original_size is not None else '?'}"]
        verdict = ("decodes to the declared size" if self.ok else f"does not decode: {self.error}")
        lines.append(f"  {'Decompression':<26}{verdict}")
        return lines


def decompress_image(image):
    """Decompress the payload of a compressed EFI ROM image; fill image.decompressed and image.pe."""
    at = image.header.efi_image_offset
    stream = bytes(image.data[at:])
    base = image.offset + at
    try:
        compressed_size, original_size = read_sizes(stream)
    except FormatError as exc:
        image.decompressed = Decompressed(None, None, None, _where(exc, base))
        return
    try:
        data = decompress(stream, "efi")
    except FormatError as exc:
        image.decompressed = Decompressed(compressed_size, original_size, None, _where(exc, base))
        return
    image.decompressed = Decompressed(compressed_size, original_size, data, None)
    try:
        image.pe = read_pe_facts(data)
    except FormatError as exc:
        image.pe_error = f"decompressed payload: {exc}"


def _where(exc, base):
    """The stream's own offset, translated to the ROM file's."""
    if exc.offset is not None:
        return f"at ROM offset {base + exc.offset:#x}: {exc.message}"
    return exc.message
