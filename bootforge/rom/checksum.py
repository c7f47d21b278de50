"""Where an image's checksum byte lives, and setting it.

Any byte can balance an 8-bit sum, but only a byte that holds no code or data
may be changed: EDK2 EfiRom -b overwrote the last byte of iPXE's compressed
payload that way (Red Hat bz1926561). bootforge takes, in order:
1. byte 6 when bytes 3-5 are a 3-byte near jump (E9 rel16) or a 2-byte short
   jump plus one byte (EB rel8 xx) whose target lies past the 0x1C-byte
   header: the convention of iPXE, SeaBIOS's buildrom.py and bootforge;
2. for an EFI image, the first byte after the PCIR (and its device list) when
   the PE image starts later: iPXE's efirom and bootforge keep it there;
3. the last byte, when the image ends in at least 32 identical 0x00 or 0xFF
   bytes: padding that nothing reads.
Otherwise it refuses and the user names the byte (--checksum-offset).
"""

from bootforge.errors import BuildError
from bootforge.formats import optionrom as fmt
from bootforge.rom.model import checksum8

HEADER_END = 0x1C
MIN_PADDING_RUN = 32


def jump_target(image: bytes):
    """Target of the init entry at offset 3, or None when it is not a jump."""
    op = image[3]
    if op == 0xE9:
        return (6 + int.from_bytes(image[4:6], "little", signed=True)) & 0xFFFF
    if op == 0xEB:
        return (5 + int.from_bytes(image[4:5], "little", signed=True)) & 0xFFFF
    return None


def _efi_gap(image: bytes):
    """First byte between the EFI header structures and the PE image, or None."""
    if int.from_bytes(image[4:8], "little") != fmt.EFI_ROM_SIGNATURE:
        return None
    pcir_at = int.from_bytes(image[0x18:0x1A], "little")
    pe_at = int.from_bytes(image[0x16:0x18], "little")
    if image[pcir_at:pcir_at + 4] != fmt.PCIR_SIGNATURE:
        return None
    end = pcir_at + int.from_bytes(image[pcir_at + 0x0A:pcir_at + 0x0C], "little")
    list_at = int.from_bytes(image[pcir_at + 8:pcir_at + 10], "little")
    if image[pcir_at + 0x0C] >= fmt.PCIR_REVISION_30 and list_at:
        at = pcir_at + list_at
        while at + 2 <= pe_at and image[at:at + 2] != b"\0\0":
            at += 2
        end = max(end, at + 2)
    return end if end < pe_at else None


def find_checksum_byte(image: bytes, size: int):
    """Offset of the byte that can be changed to fix the sum over image[:size], or None."""
    target = jump_target(image)
    if target is not None and target >= HEADER_END:
        return 6
    gap = _efi_gap(image)
    if gap is not None:
        return gap
    tail = image[size - MIN_PADDING_RUN:size]
    if len(tail) == MIN_PADDING_RUN and tail[0] in (0x00, 0xFF) and tail.count(tail[0]) == len(tail):
        return size - 1
    return None


def fix_checksum(image: bytearray, size: int, offset=None, where="image"):
    """Make the 8-bit sum over image[:size] zero by changing the checksum byte; return its offset."""
    if offset is None:
        offset = find_checksum_byte(bytes(image), size)
        if offset is None:
            raise BuildError(
                f"{where}: cannot tell which byte holds no code or data to carry the checksum "
                f"(the init entry at offset 3 is not a jump past the header and the image does not "
                f"end in padding); name one with --checksum-offset")
    if not 0 <= offset < size:
        raise BuildError(f"{where}: checksum offset {offset:#x} is outside the {size}-byte image")
    image[offset] = (image[offset] - checksum8(image[:size])) & 0xFF
    return offset


def fix_sub_header(image: bytearray, at: int, length: int, checksum_field: int):
    """Balance a $PnP / UNDI / iPXE header: its own checksum field over its length."""
    image[at + checksum_field] = 0
    image[at + checksum_field] = (-checksum8(image[at:at + length])) & 0xFF


def fix_all_sub_headers(image: bytearray, parsed):
    """Fix the sub-header checksums of a parsed legacy image (bootforge.rom.model.RomImage)."""
    for pnp in parsed.pnp:
        fix_sub_header(image, pnp.offset, pnp.fields.length * 16, 9)
    for sub in (parsed.undi, parsed.ipxe):
        if sub is not None:
            fix_sub_header(image, sub.offset, sub.fields.length, 5)


