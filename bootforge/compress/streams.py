"""gzip and xz files, decompressed one way with one limit for inspect, load, verify and build.

`unpack(data)` is the one place a kernel (or any file bootforge reads through a wrapper) is
decompressed: a gzip (RFC 1952, 1f 8b) or xz (fd 37 7a 58 5a 00) stream whole, never more than
MAX_DECOMPRESSED bytes (a larger output is a LimitError before it is allocated: a gzip bomb
is refused by every command alike). Whether a given loader sees those bytes or the file as
given is that loader's verdict's declaration (`reads`: bootforge.multiboot.verdicts.loader_bytes
picks between the two).
"""

import lzma
import zlib

from bootforge.errors import FormatError, LimitError

MAX_DECOMPRESSED = 256 << 20
MAGICS = (("gzip", b"\x1f\x8b"), ("xz", b"\xfd7zXZ\x00"))


def stream_kind(data):
    """"gzip", "xz" or None, by the file's first bytes."""
    return next((kind for kind, magic in MAGICS if data[:len(magic)] == magic), None)


def decompress(data, kind):
    """Whole gzip/xz stream *data*; FormatError when truncated or corrupt, LimitError when huge."""
    try:
        if kind == "gzip":
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(data, MAX_DECOMPRESSED)
            if d.unconsumed_tail:
                raise LimitError(f"{kind} stream decompresses to more than {MAX_DECOMPRESSED} bytes")
        else:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            out = d.decompress(data, MAX_DECOMPRESSED)
            if not d.eof and not d.needs_input:
                raise LimitError(f"{kind} stream decompresses to more than {MAX_DECOMPRESSED} bytes")
    except (zlib.error, lzma.LZMAError, EOFError) as exc:
        raise FormatError(f"corrupt {kind} stream: {exc}", offset=0) from None
    if not d.eof:
        raise FormatError(f"truncated {kind} stream ({len(out)} bytes decompressed before the end)",
                          offset=len(data))
    return out


def unpack(data):
    """(kind, bytes): a gzip or xz file decompressed (kind "gzip"/"xz"), any other file as it is
    (kind None)."""
    kind = stream_kind(data)
    return kind, (decompress(data, kind) if kind else data)
