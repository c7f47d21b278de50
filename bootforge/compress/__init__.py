"""UEFI compression ("EFI" and "Tiano" variants) in pure Python.

The format EDK2's EfiCompress/TianoCompress write and UEFI firmware
decompresses (option ROM images with CompressionType 1, firmware volume
sections): LZ77 with Huffman-coded blocks. See formats.py for the layout.

Example::

    >>> from bootforge.compress import compress, decompress, read_sizes
    >>> packed = compress(b"hello hello hello", "efi")
    >>> read_sizes(packed)[1]
    17
    >>> decompress(packed, "efi")
    b'hello hello hello'
"""

from bootforge.compress import decoder
from bootforge.compress.decoder import DEFAULT_MAX_SIZE
from bootforge.compress.formats import HEADER_SIZE, VARIANTS, variant
from bootforge.errors import LimitError

FORMATS = tuple(VARIANTS)
MAX_ORIGINAL_SIZE = 0xFFFFFFFF      # the header's u32


def compress(data, fmt="efi"):
    """Compress *data* in format *fmt* ("efi" or "tiano"); return header + bitstream.

    The output decodes with EDK2's EfiDecompress / TianoDecompress (and UEFI
    firmware) and is smaller than what EDK2's compressor writes.

    :param data: bytes-like input.
    :param fmt: "efi" (8 KiB window) or "tiano" (512 KiB window).
    :raises ValueError: unknown *fmt*.
    :raises LimitError: input larger than the header's 32-bit size field.
    """
    chosen = variant(fmt)
    if len(data) > MAX_ORIGINAL_SIZE:
        raise LimitError(f"input of {len(data)} bytes does not fit the format's 32-bit size field")
    # Function-level import: the encoder (heapq, the Huffman and block writers) only to compress;
    # readers of kernels and ROMs import this package for its decoder and streams.
    from bootforge.compress import encoder
    return encoder.compress(data, chosen)


def decompress(data, fmt="efi", max_size=DEFAULT_MAX_SIZE):
    """Decompress a stream written in format *fmt*; return exactly the original bytes.

    Bytes after the declared compressed size (ROM padding) are ignored.

    :param data: header + bitstream (bytes-like).
    :param fmt: "efi" or "tiano": the variant the stream was written in.
    :param max_size: refuse streams declaring a larger original size.
    :raises ValueError: unknown *fmt*.
    :raises LimitError: declared original size over *max_size* (offset 4).
    :raises FormatError: anything malformed; ``offset`` is the byte offset in
        *data* where decoding stopped.
    """
    return decoder.decompress(data, variant(fmt), max_size)


def read_sizes(data):
    """Return (compressed_size, original_size) declared by the header of *data*.

    :raises FormatError: fewer than 8 bytes.
    """
    return decoder.read_sizes(data)


__all__ = ["compress", "decompress", "read_sizes", "FORMATS", "DEFAULT_MAX_SIZE", "HEADER_SIZE"]
