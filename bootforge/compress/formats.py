"""Constants of the UEFI compression format ("EFI" and "Tiano" variants).

UEFI specification, "Compression Algorithm Specification"; EDK2
EfiCompress.c / TianoCompress.c / Decompress.c. The stream is an 8-byte
header (u32 compressed size, u32 original size, little-endian) and an
MSB-first bitstream of blocks. Each block:

    16 bits   number of C codes in the block (0 means 65536 to EDK2's decoder)
    T-set     code lengths of the "extra" alphabet (NT symbols, count in TBIT bits)
    C-set     code lengths of the char/length alphabet, written with T codes
    P-set     code lengths of the position alphabet (NP symbols, count in PBIT bits)
    codes     C code; when C >= 256 a match: P code then P-1 extra bits

The two variants differ only in the window (so NP) and in PBIT.
"""

from dataclasses import dataclass

HEADER_SIZE = 8

THRESHOLD = 3                      # shortest match
MAX_MATCH = 256                    # longest match
NC = 256 + MAX_MATCH + 1 - THRESHOLD + 1   # 510: 256 literals + lengths 3..256
MATCH_BASE = 256 - THRESHOLD       # C symbol = length + MATCH_BASE
CBIT = 9                           # width of the C-set count
NT = 19                            # T alphabet: 0..2 zero runs, 3..18 lengths 1..16
TBIT = 5
T_SPECIAL = 3                      # after T length #3 comes a 2-bit count of zero lengths
MAX_CODE_LEN = 16                  # decoders build 16-bit tables
MAX_BLOCK_CODES = 0xFFFF           # what the 16-bit block size field can say

# C-length zero runs written as T symbols: T0 one zero, T1 3..18 zeros (4 bits),
# T2 20..531 zeros (9 bits).
T_RUN_SHORT_MIN, T_RUN_SHORT_BITS = 3, 4
T_RUN_LONG_MIN, T_RUN_LONG_BITS = 20, CBIT
T_ZERO, T_ZERO_SHORT, T_ZERO_LONG = 0, 1, 2     # the T symbols of those runs
T_LENGTH_BASE = 2                               # T symbol of C length n >= 1 is n + 2
LENGTH_ESCAPE = 7               # a 3-bit T/P length of 7 continues in unary: "111", one 1 per extra


@dataclass(frozen=True)
class Variant:
    """One flavour of the format: its window and the width of its P-set count."""

    name: str
    window_bits: int
    pbit: int

    @property
    def np(self):
        """Number of position symbols: p encodes distance values of p bits."""
        return self.window_bits + 1

    @property
    def max_distance(self):
        """Largest match distance (bytes back from the current position)."""
        return 1 << self.window_bits


EFI = Variant("efi", window_bits=13, pbit=4)
TIANO = Variant("tiano", window_bits=19, pbit=5)
VARIANTS = {v.name: v for v in (EFI, TIANO)}


def variant(fmt):
    """Return the Variant called *fmt* ("efi" or "tiano"); ValueError otherwise."""
    if isinstance(fmt, Variant):
        return fmt
    try:
        return VARIANTS[fmt]
    except (KeyError, TypeError):
        raise ValueError(f"unknown compression format {fmt!r} (known: efi, tiano)") from None
