"""Patch PCI ids, the device list, indicator bits and checksums of an existing ROM.

Only bytes of structures that were read and validated change: PCIR fields, a
PCI 3.0 device list (only when asked for, and only within the span firmware
already reads as the list), checksum bytes. Every changed byte range is
reported, and every change is checked against the spans of those structures
before anything is written.

Checksums: every legacy image whose bytes change gets its checksum
re-balanced on a byte that holds no code or data (bootforge.rom.checksum) --
but only when it summed to 0 before: re-balancing a sum that was already
wrong would hide a corrupted byte, so that needs --fix-checksums
(ChecksumAlreadyBad, exit 1). EFI images are re-balanced only when they summed
to 0 before (UEFI checks no sum, iPXE keeps one).
"""

from bootforge.errors import BuildError
from bootforge.formats import optionrom as fmt
from bootforge.rom.build import editable_pcir, put_pcir
from bootforge.rom.checksum import find_checksum_byte, fix_all_sub_headers, fix_checksum, jump_target
from bootforge.rom.model import checksum8, class_name, parse_rom


# Bytes 0-0x1B of a legacy image: signature, size, entry, reserved, iPXE's
# UNDI/iPXE pointers, PCIR and $PnP pointers.
LEGACY_HEADER_SIZE = 0x1C


class ChecksumAlreadyBad(BuildError):
    """An image to be changed did not sum to 0 before: the command exits 1 (a defect in the input)."""


def patch_rom(data: bytes, path, *, image_index=None, vendor_id=None, device_id=None, device_list=None,
              class_code=None, last=None, fix_checksums=False, checksum_offset=None):
    """Return (patched bytes, list of change descriptions).

    *device_id* sets the PCIR device id only; a PCI 3.0 device list stays as it is
    unless *device_list* (a list of ids) replaces it."""
    rom = parse_rom(data, path)
    count = len(rom.images)
    if rom.unreadable is not None:
        if image_index is None:
            raise BuildError(f"{rom.unreadable}: patching every image would leave that one as it is; "
                             "give --image N to patch a readable one")
        rom.image(image_index)      # the unreadable one is an error naming why
    if image_index is not None and not 0 <= image_index < count:
        raise BuildError(f"--image {image_index}: the ROM has {count} image(s) (0-{count - 1})")
    targets = [image_index] if image_index is not None else list(range(count))
    last_target = image_index if image_index is not None else count - 1
    out = bytearray(data)
    changes = []
    taken, skipped = [], []     # images given the --device-list, and why others were not
    for image in rom.images:
        i = image.index
        where = f"image {i} at {image.offset:#x}"
        buf = bytearray(image.data)
        before = bytes(buf)
        was_balanced = checksum8(buf[:image.size]) == 0
        allowed = []            # (start, end, what): the spans this image may change
        if i in targets:
            allowed += _set_pcir(buf, image, vendor_id=vendor_id, device_id=device_id, class_code=class_code,
                                 last=last if i == last_target else None)
            if class_code is not None and image.pcir is not None and image.pcir.class_code == class_code:
                changes.append(f"{where}: class_code {class_code:#08x} ({class_name(class_code)}) unchanged")
            if device_list is not None:
                try:
                    span, old = _replace_device_list(buf, image, device_list)
                except BuildError as exc:
                    if image_index is not None:
                        raise
                    # Without --image the list goes to every image that can take one (an iPXE
                    # combined ROM's EFI image has a PCI 2.x PCIR): the others are named.
                    skipped.append(f"{where}: --device-list skipped: {exc.message.removeprefix(f'image {i}: ')}")
                else:
                    taken.append(i)
                    allowed.append(span)
                    if old != list(device_list):
                        changes.append(f"{where}: device_list {_ids(old)} -> {_ids(device_list)}")
        if fix_checksums and not image.is_efi:
            fix_all_sub_headers(buf, image)
            allowed += _sub_header_checksum_bytes(image)
        changed = bytes(buf) != before
        if changed and not was_balanced and not image.is_efi and not fix_checksums:
            raise ChecksumAlreadyBad(
                f"{where}: its checksum was already bad before patching (sum over {image.size} bytes is "
                f"{image.checksum:#04x}, not 0); re-balancing it would hide a corrupted byte. Give "
                "--fix-checksums to re-balance it anyway", path=path)
        if changed or (fix_checksums and not was_balanced):
            offset = checksum_offset if i in targets else None
            if image.is_efi and not was_balanced and not fix_checksums:
                changes.append(f"{where}: EFI image had no valid checksum; left without one")
            elif image.is_efi and offset is None and find_checksum_byte(bytes(buf), image.size) is None:
                changes.append(f"{where}: no free byte for a checksum in this EFI image; left unbalanced "
                               "(UEFI checks none)")
            else:
                at = fix_checksum(buf, image.size, offset, where=where)
                allowed.append((at, at + 1, "image checksum byte"))
                changes.append(f"{where}: checksum byte at file offset {image.offset + at:#x} set to {buf[at]:#04x}")
        if bytes(buf) != before:
            for field, old, new in _pcir_diff(image, bytes(buf), path):
                changes.append(f"{where}: {field} {old} -> {new}")
            ranges = changed_ranges(before, bytes(buf))
            _check_within(ranges, allowed, where)
            changes.append(f"{where}: bytes changed (ROM offsets): "
                           + ", ".join(_range_text(image.offset + s, image.offset + e) for s, e in ranges))
            out[image.offset:image.offset + len(buf)] = buf
    if device_list is not None and not taken:
        raise BuildError("--device-list: no image can take a device list: " + "; ".join(skipped))
    changes += skipped
    parse_rom(bytes(out), path)  # what we write must read back
    return bytes(out), changes


def _set_pcir(buf, image, **fields):
    """Write the PCIR fields given (None: unchanged); return the span the PCIR occupies."""
    if all(v is None for v in fields.values()):
        return []
    written = put_pcir(buf, image, editable_pcir(image, "patch"), **fields)
    at = image.pcir_offset
    return [(at, at + min(written, image.pcir.length), "PCIR")]


def device_list_span(image):
    """(start, end) within the image of the PCI 3.0 device list and its 0 terminator, or
    raise BuildError saying why bootforge will not write there.

    Firmware reads u16 ids from PCIR + offset up to a 0. A pointer into code reads
    code as ids; bootforge writes a list only when it overlaps none of the other
    structures, the init entry, or the checksum byte, lies inside the bytes
    firmware sums, and holds no 0xFFFF (what config space returns for an absent
    device, never a device id)."""
    pcir = image.pcir
    where = f"image {image.index}"
    if pcir is None:
        raise BuildError(f"{where}: has no PCI data structure, so no device list")
    if pcir.revision < 3 or pcir.device_list_offset == 0:
        raise BuildError(f"{where}: PCI {'2.x' if pcir.revision < 3 else '3.0 without a list'} data "
                         "structure has no device list to replace")
    start = image.pcir_offset + pcir.device_list_offset
    end = start + 2 * (len(image.device_list) + 1)
    limit = min(image.size, len(image.data))
    if end > limit:
        raise BuildError(f"{where}: device list at image offsets {start:#x}-{end - 1:#x} runs past the {limit:#x} bytes "
                         "firmware sums; bootforge will not write there")
    if 0xFFFF in image.device_list:
        raise BuildError(f"{where}: device list at image offset {start:#x} holds 0xffff, which is no device id: the "
                         "pointer leads into code or data, not a list; bootforge will not write there")
    for other_start, other_end, what in _other_structures(image):
        if start < other_end and other_start < end:
            raise BuildError(f"{where}: device list at image offsets {start:#x}-{end - 1:#x} overlaps the {what} at "
                             f"{other_start:#x}-{other_end - 1:#x}: the pointer does not lead to a list "
                             "of its own; bootforge will not write there")
    return start, end


def _other_structures(image):
    """Spans of what else an image holds at known places: headers, their checksums, entries."""
    spans = [(0, fmt.EFI_HEADER_SIZE if image.is_efi else LEGACY_HEADER_SIZE, "ROM header"),
             (image.pcir_offset, image.pcir_offset + image.pcir.length, "PCIR")]
    for pnp in image.pnp:
        spans.append((pnp.offset, pnp.offset + pnp.fields.length * 16, "$PnP header"))
    for sub in (image.undi, image.ipxe):
        if sub is not None:
            spans.append((sub.offset, sub.offset + sub.fields.length, f"{sub.name} header"))
    if image.is_efi:
        at = image.header.efi_image_offset
        spans.append((at, len(image.data), "EFI image"))
    else:
        target = jump_target(image.data)
        if target is not None:
            spans.append((target, target + 1, "init entry"))
        for pnp in image.pnp:
            for name in ("bcv", "bev"):
                entry = getattr(pnp.fields, name, 0)
                if entry:
                    spans.append((entry, entry + 1, f"$PnP {name.upper()} entry"))
    checksum_at = find_checksum_byte(image.data, image.size)
    if checksum_at is not None:
        spans.append((checksum_at, checksum_at + 1, "checksum byte"))
    return spans


def _replace_device_list(buf, image, ids):
    """Write *ids* over the validated list span (0-terminated, the rest zeroed); return (span, old ids)."""
    start, end = device_list_span(image)
    room = (end - start) // 2 - 1
    if not ids:
        raise BuildError("--device-list needs at least one id")
    if len(ids) > room:
        raise BuildError(f"image {image.index}: its device list holds {room} id(s); {len(ids)} do not fit "
                         "without moving payload bytes")
    words = list(ids) + [0] * (room + 1 - len(ids))
    buf[start:end] = b"".join(w.to_bytes(2, "little") for w in words)
    return (start, end, "device list"), list(image.device_list)


def _sub_header_checksum_bytes(image):
    spans = [(p.offset + 9, p.offset + 10, "$PnP checksum") for p in image.pnp]
    spans += [(s.offset + 5, s.offset + 6, f"{s.name} checksum") for s in (image.undi, image.ipxe) if s is not None]
    return spans


def changed_ranges(before: bytes, after: bytes, block=64):
    """[(start, end)] half-open runs of differing bytes (blocks compared first: ROMs are
    hundreds of KiB and a patch changes a few bytes)."""
    ranges = []
    start = None
    for base in range(0, len(before), block):
        if before[base:base + block] == after[base:base + block]:
            if start is not None:
                ranges.append((start, base))
                start = None
            continue
        for i in range(base, min(base + block, len(before))):
            if before[i] != after[i] and start is None:
                start = i
            elif before[i] == after[i] and start is not None:
                ranges.append((start, i))
                start = None
    if start is not None:
        ranges.append((start, len(before)))
    return ranges


def _check_within(ranges, allowed, where):
    """The guard: every changed byte lies in a span this patch validated and meant to change."""
    for s, e in ranges:
        for i in range(s, e):
            if not any(a <= i < b for a, b, _ in allowed):  # noqa: B023 (a few bytes per patch)
                raise BuildError(f"{where}: internal error: byte {i:#x} would change outside every "
                                 "structure bootforge validated; nothing written")


def _range_text(start, end):
    return f"{start:#x}" if end - start == 1 else f"{start:#x}-{end - 1:#x}"


def _ids(ids):
    return "[" + ", ".join(f"{d:#06x}" for d in ids) + "]"


def _pcir_diff(image, new_bytes, path):
    if image.pcir is None:
        return
    new = fmt.PciDataStructure.parse(new_bytes[image.pcir_offset:])
    for field in ("vendor_id", "device_id", "class_code", "indicator"):
        old_v, new_v = getattr(image.pcir, field), getattr(new, field)
        if old_v != new_v and field == "class_code":
            yield field, f"{old_v:#08x} ({class_name(old_v)})", f"{new_v:#08x} ({class_name(new_v)})"
        elif old_v != new_v:
            yield field, f"{old_v:#x}", f"{new_v:#x}"
