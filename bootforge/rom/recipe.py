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

from bootforge.errors import BootforgeError, BuildError, RecipeError
from bootforge.rom import build as b
from bootforge.schema import REQUIRED, Field, recipe_file, validate
from bootforge.rom.checksum import fix_checksum
from bootforge.rom.model import MAX_DEVICE_LIST, parse_rom

# Every key of [rom] and [[rom.images]], declared once (bootforge.schema.Field): validation and
# `bootforge build --help` read these; the builders use values that passed them.
BYTE = Field("", int, None, "", min=0, max=0xFF)
DEVICE_ID = Field("", int, None, "", min=1, max=0xFFFF)
PCI_ID_FIELDS = (
    Field("vendor_id", int, None, "PCI vendor id (16 bits)", min=0, max=0xFFFF),
    Field("device_ids", list, None, "PCI device ids (nonzero, 16 bits); more than one needs pci_version 3.0",
          min=1, max_length=MAX_DEVICE_LIST, items=DEVICE_ID),
    Field("class_code", int, None, "PCI class code, 24 bits (default 0x020000, network)", min=0, max=0xFFFFFF),
    Field("code_revision", int, None, "PCIR code revision (16 bits, default 0)", min=0, max=0xFFFF),
)
ROM_FIELDS = (
    Field("vendor_id", int, REQUIRED, "PCI vendor id (16 bits)", min=0, max=0xFFFF),
    Field("device_ids", list, REQUIRED, "PCI device ids (nonzero, 16 bits); more than one needs pci_version 3.0",
          min=1, max_length=MAX_DEVICE_LIST, items=DEVICE_ID),
    *PCI_ID_FIELDS[2:],
    Field("pci_version", str, "3.0", "PCI data structure revision", choices=("3.0", "2.3")),
    Field("padding", int, 0xFF, "padding byte (as iPXE)", min=0, max=0xFF),
    Field("total_size", int, None, "pad the chain to this many bytes (flash size); error if it does not fit",
          min=0, max=1 << 24),
    Field("output", str, None, "output path, relative to the recipe", text="path"),
    Field("images", list, REQUIRED, "[[rom.images]] tables, in chain order", min=1, max_length=64),
)
ENTRY = "a symbol of the stub or an offset into its code"
IMAGE_TYPE = Field("type", str, REQUIRED, "what the image is built from", choices=("stub", "rom-image", "efi"))
IMAGE_FIELDS = {
    "stub": (IMAGE_TYPE,
             Field("stub", str, REQUIRED, "16-bit code: an ELF linked at 0 (.text) or a flat binary", text="path"),
             Field("init", (int, str), REQUIRED, f"init entry (offset 3 jumps there): {ENTRY}", min=0, max=0xFFFF),
             Field("bev", (int, str), None, f"$PnP bootstrap entry vector: {ENTRY}", min=0, max=0xFFFF),
             Field("bcv", (int, str), None, f"$PnP boot connection vector: {ENTRY}", min=0, max=0xFFFF),
             Field("manufacturer", str, None, "$PnP manufacturer string", text="ascii", max_length=255),
             Field("product", str, None, "$PnP product string", text="ascii", max_length=255),
             Field("device_type", list, None, "$PnP device type: 3 bytes (default from class_code)",
                   length=3, items=BYTE),
             Field("device_indicators", int, None, "$PnP device indicators byte (default 0xf4 with a BEV, "
                   "else 0x34)", min=0, max=0xFF),
             Field("pnp_device_id", int, None, "$PnP device id (32 bits)", min=0, max=0xFFFFFFFF),
             *PCI_ID_FIELDS),
    "rom-image": (IMAGE_TYPE,
                  Field("file", str, REQUIRED, "a ROM file to take the image from", text="path"),
                  Field("index", int, 0, "which image of that ROM (from 0)", min=0, max=63),
                  *PCI_ID_FIELDS),
    "efi": (IMAGE_TYPE,
            Field("file", str, REQUIRED, "a PE/COFF EFI driver, or a ROM holding an EFI image", text="path"),
            Field("index", int, 0, "which image of that ROM (from 0)", min=0, max=63),
            Field("compress", str, "none", "EFI-compress the driver", choices=("none", "efi")),
            Field("secureboot_private_key", str, None, "RSA key signing the driver (Authenticode) before it is "
                  "compressed: what PciBusDxe's LoadImage verifies with Secure Boot on", text="path"),
            Field("secureboot_certificate", str, None, "the X.509 certificate of secureboot_private_key",
                  text="path"),
            Field("secureboot_key_passphrase_file", str, None, "file whose first line decrypts "
                  "secureboot_private_key", text="path"),
            *PCI_ID_FIELDS),
}
# The keys whose values name files, read relative to the recipe.
FILE_KEYS = ("stub", "file")


def _ids(table, defaults=None):
    """ChainIds from validated values (ROM_FIELDS / PCI_ID_FIELDS): an image's own or the [rom]'s."""
    d = defaults
    vendor = table.get("vendor_id") if table.get("vendor_id") is not None else (d.vendor_id if d else None)
    devices = table.get("device_ids") or (d.device_ids if d else None)
    version = table.get("pci_version", "3.0") if d is None else ("3.0" if d.pci30 else "2.3")
    if len(devices) > 1 and version != "3.0":
        raise RecipeError(f"{len(devices)} device ids need pci_version = \"3.0\" (PCI 2.3 has no device list)")
    return b.ChainIds(vendor_id=vendor, device_ids=devices,
                      class_code=_given(table, "class_code", d.class_code if d else 0x020000),
                      code_revision=_given(table, "code_revision", d.code_revision if d else 0),
                      pci30=version == "3.0")


def _given(table, key, default):
    return table[key] if table.get(key) is not None else default


def validate_rom_table(table):
    """[rom] and every [[rom.images]] table against the declarations: (rom values, [image values]).
    Images are named as `patch --image`, JSON and `extract` count them: from 0."""
    rom = validate(table, ROM_FIELDS, "rom")
    images = []
    for n, spec in enumerate(rom["images"]):
        where = f"rom.images {n}"
        if not isinstance(spec, dict):
            raise RecipeError(f"[{where}] must be a table ([[rom.images]]), not {spec!r}")
        IMAGE_TYPE.check(spec.get("type"), where)
        images.append(validate(spec, IMAGE_FIELDS[spec["type"]], where))
    return rom, images


def build_rom_recipe(recipe_path: Path, recipe: dict):
    """Build the ROM a recipe describes; return (bytes, summary dict)."""
    table, specs = validate_rom_table(recipe["rom"])
    base_dir = recipe_path.parent
    ids = _ids(table)
    padding = table["padding"]

    built = []
    for n, spec in enumerate(specs):
        where = f"rom.images {n}"
        for key in FILE_KEYS:
            if key in spec:
                recipe_file(base_dir, spec[key], where, key)
        try:
            image_ids = _ids(spec, ids)
            built.append(_build_one(spec["type"], spec, image_ids, padding, base_dir, n == len(specs) - 1))
        except BootforgeError as exc:
            if not exc.message.startswith(f"[{where}]"):
                exc.message = f"[{where}] {exc.message}"
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
