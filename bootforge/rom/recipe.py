"""The [rom] recipe: validate it, build each image, chain them.

    [rom]
    vendor_id = 0x8086
    device_ids = [0x100e, 0x100f]     # several: PCI 3.0 device list
    class_code = 0x020000
    code_revision = 1
    pci_version = "3.0"               # or "2.3"
    padding = 0xff
    total_size = 65536                # optional flash size
    [[rom.images]]
    type = "stub"                     # or "rom-image", "efi"
    ...
"""

from pathlib import Path

from bootforge.errors import BuildError, RecipeError
from bootforge.rom import build as b
from bootforge.rom.checksum import fix_checksum
from bootforge.rom.model import parse_rom

# One table declares every key: name -> (type, required, meaning).
ROM_KEYS = {
    "vendor_id": (int, True, "PCI vendor id"),
    "device_ids": (list, True, "PCI device ids; more than one needs pci_version 3.0"),
    "class_code": (int, False, "PCI class code, 24 bits (default 0x020000, network)"),
    "code_revision": (int, False, "code revision (default 0)"),
    "pci_version": (str, False, "\"3.0\" (default) or \"2.3\""),
    "padding": (int, False, "padding byte (default 0xff, as iPXE)"),
    "total_size": (int, False, "pad the chain to this many bytes; error if it does not fit"),
    "output": (str, False, "output path, relative to the recipe"),
    "images": (list, True, "the images in chain order"),
}
IMAGE_KEYS = {
    "stub": {"type", "stub", "init", "bev", "bcv", "manufacturer", "product", "device_type",
             "device_indicators", "pnp_device_id", "vendor_id", "device_ids", "class_code",
             "code_revision"},
    "rom-image": {"type", "file", "index", "vendor_id", "device_ids", "class_code", "code_revision"},
    "efi": {"type", "file", "index", "compress", "vendor_id", "device_ids", "class_code", "code_revision"},
}
REQUIRED_IMAGE_KEYS = {"stub": {"stub", "init"}, "rom-image": {"file"}, "efi": {"file"}}


def _check_keys(table, allowed, where):
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")


def _ids(table, defaults=None):
    d = defaults
    vendor = table.get("vendor_id", d.vendor_id if d else None)
    devices = table.get("device_ids", d.device_ids if d else None)
    version = table.get("pci_version", "3.0") if d is None else ("3.0" if d.pci30 else "2.3")
    if version not in ("3.0", "2.3"):
        raise RecipeError(f"pci_version = {version!r}: use \"3.0\" or \"2.3\"")
    if not isinstance(devices, list) or not devices or not all(isinstance(x, int) for x in devices):
        raise RecipeError("device_ids must be a non-empty list of integers")
    for name, value, bits in (("vendor_id", vendor, 16), ("class_code", table.get("class_code", 0), 24)):
        if not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise RecipeError(f"{name} = {value!r} is not a {bits}-bit integer")
    for dev in devices:
        if not 0 < dev < 0x10000:
            raise RecipeError(f"device id {dev!r} is not a nonzero 16-bit integer (0 ends a device list)")
    if len(devices) > 1 and version != "3.0":
        raise RecipeError(f"{len(devices)} device ids need pci_version = \"3.0\" (PCI 2.3 has no device list)")
    return b.ChainIds(vendor_id=vendor, device_ids=devices,
                      class_code=table.get("class_code", d.class_code if d else 0x020000),
                      code_revision=table.get("code_revision", d.code_revision if d else 0),
                      pci30=version == "3.0")


def build_rom_recipe(recipe_path: Path, recipe: dict):
    """Build the ROM a recipe describes; return (bytes, summary dict)."""
    table = recipe["rom"]
    if not isinstance(table, dict):
        raise RecipeError("[rom] must be a table")
    _check_keys(table, ROM_KEYS, "[rom]")
    for key, (kind, required, _) in ROM_KEYS.items():
        if required and key not in table:
            raise RecipeError(f"[rom] needs {key} ({ROM_KEYS[key][2]})")
        if key in table and not isinstance(table[key], kind):
            raise RecipeError(f"[rom] {key} must be a {kind.__name__}")
    base_dir = recipe_path.parent
    ids = _ids(table)
    padding = table.get("padding", 0xFF)
    if not 0 <= padding <= 0xFF:
        raise RecipeError(f"padding = {padding} is not a byte")
    specs = table["images"]
    if not specs:
        raise RecipeError("[rom] images is empty")

    built = []
    for n, spec in enumerate(specs):
        where = f"[[rom.images]] #{n + 1}"
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in IMAGE_KEYS:
            raise RecipeError(f"{where}: type must be one of {', '.join(IMAGE_KEYS)}")
        _check_keys(spec, IMAGE_KEYS[kind], where)
        missing = REQUIRED_IMAGE_KEYS[kind] - set(spec)
        if missing:
            raise RecipeError(f"{where}: needs {', '.join(sorted(missing))}")
        image_ids = _ids(spec, ids)
        try:
            built.append(_build_one(kind, spec, image_ids, padding, base_dir, n == len(specs) - 1))
        except (RecipeError, BuildError) as exc:
            exc.message = f"{where}: {exc.message}"
            raise
    data = b.assemble_chain([img for img, _ in built], padding, table.get("total_size"))
    rom = parse_rom(data, "built ROM")
    if not rom.images[-1].last or len(rom.images) != len(specs):
        raise BuildError("the built chain does not end in an image with the last-image bit")
    summary = {"format": "option-rom", "size": len(data),
               "images": [{"index": i.index, "offset": i.offset, "size": i.size,
                           "image_length": i.image_length, "code_type": i.code_type,
                           "checksum_offset": off, "checksum_ok": i.checksum_ok}
                          for i, (_, off) in zip(rom.images, built)]}
    return data, summary


def _build_one(kind, spec, ids, padding, base_dir, last):
    """One finished image (indicator and checksum set) and its checksum byte offset."""
    if kind == "stub":
        image = b.build_stub_image(spec, ids, padding, base_dir)
        checksum_at = 6
    elif kind == "efi":
        image, checksum_at = b.build_efi_image(spec, ids, padding, base_dir)
    else:
        parsed = b.load_rom_image(spec, base_dir)
        image = bytearray(parsed.data)
        if not parsed.is_efi and parsed.size > len(image):
            raise BuildError(f"image {parsed.index}: size byte covers more than its image length")
        b.rehead(image, parsed, vendor_id=ids.vendor_id,
                 device_ids=ids.device_ids if "device_ids" in spec or parsed.device_list else [ids.device_id],
                 class_code=spec.get("class_code"), code_revision=spec.get("code_revision"))
        checksum_at = None
    parsed = parse_rom(bytes(image), "image").images[0]
    if not parsed.is_efi and parsed.size_blocks > b.MAX_LEGACY_BLOCKS:
        raise BuildError(f"legacy image over {b.MAX_LEGACY_BLOCKS} blocks")
    b.rehead(image, parsed, last=last)
    size = parsed.size
    if kind == "rom-image" and parsed.is_efi and not parsed.checksum_ok:
        return image, None  # UEFI checks no sum: leave an image that had none as it was
    checksum_at = fix_checksum(image, size, checksum_at, where=f"image of type {kind}")
    return image, checksum_at
