"""Patch PCI ids, indicator bits and checksums of an existing ROM.

Only PCIR fields and checksum bytes change. Every image whose bytes change
gets its checksum re-balanced on a byte that holds no code or data
(bootforge.rom.checksum); EFI images are re-balanced only when they summed
to 0 before (UEFI checks no sum, iPXE keeps one).
"""

from bootforge.errors import BuildError
from bootforge.rom.build import rehead
from bootforge.rom.checksum import find_checksum_byte, fix_all_sub_headers, fix_checksum
from bootforge.rom.model import checksum8, parse_rom


def patch_rom(data: bytes, path, *, image_index=None, vendor_id=None, device_id=None, class_code=None,
              last=None, fix_checksums=False, checksum_offset=None):
    """Return (patched bytes, list of change descriptions)."""
    rom = parse_rom(data, path)
    count = len(rom.images)
    if image_index is not None and not 0 <= image_index < count:
        raise BuildError(f"--image {image_index}: the ROM has {count} image(s) (0-{count - 1})")
    targets = [image_index] if image_index is not None else list(range(count))
    last_target = image_index if image_index is not None else count - 1
    out = bytearray(data)
    changes = []
    for image in rom.images:
        i = image.index
        buf = bytearray(image.data)
        before = bytes(buf)
        was_balanced = checksum8(buf[:image.size]) == 0
        if i in targets:
            rehead(buf, image, vendor_id=vendor_id, device_ids=[device_id] if device_id is not None else None,
                   class_code=class_code, last=last if i == last_target else None)
        if fix_checksums and not image.is_efi:
            fix_all_sub_headers(buf, image)
        changed = bytes(buf) != before
        if changed or (fix_checksums and not was_balanced):
            where = f"image {i} at {image.offset:#x}"
            offset = checksum_offset if i in targets else None
            if image.is_efi and not was_balanced and not fix_checksums:
                changes.append(f"{where}: EFI image had no valid checksum; left without one")
            elif image.is_efi and offset is None and find_checksum_byte(bytes(buf), image.size) is None:
                changes.append(f"{where}: no free byte for a checksum in this EFI image; left unbalanced "
                               "(UEFI checks none)")
            else:
                at = fix_checksum(buf, image.size, offset, where=where)
                changes.append(f"{where}: checksum byte {at:#x} set to {buf[at]:#04x}")
        if bytes(buf) != before:
            for field, old, new in _pcir_diff(image, bytes(buf), path):
                changes.append(f"image {i} at {image.offset:#x}: {field} {old} -> {new}")
            out[image.offset:image.offset + len(buf)] = buf
    parse_rom(bytes(out), path)  # what we write must read back
    return bytes(out), changes


def _pcir_diff(image, new_bytes, path):
    new = parse_rom(new_bytes, path).images[0]
    for field in ("vendor_id", "device_id", "class_code", "indicator"):
        old_v, new_v = getattr(image.pcir, field), getattr(new.pcir, field)
        if old_v != new_v:
            yield field, f"{old_v:#x}", f"{new_v:#x}"
