"""Assemble a PCI option ROM chain from a recipe.

Three kinds of image, in chain order:
- "stub": a legacy x86 image generated around a headerless 16-bit routine
  (stubs/hello-rom.S): bootforge writes 55 AA, the size byte, a near jump to
  the init entry, the PCIR, a $PnP header with its strings and BEV/BCV, pads
  to 512 bytes and sets the checksum byte it reserved (byte 6);
- "rom-image": image N of an existing ROM, re-headed (ids, indicator,
  checksum) without changing any payload byte;
- "efi": an EFI driver from a PE/COFF file (or from an EFI image of a ROM),
  laid out as EfiRom and iPXE's efirom do: EFI header, PCIR at 0x1C, device
  list, one reserved checksum byte, the PE image, padding to 512.
"""

import io
from dataclasses import dataclass
from pathlib import Path

from construct import Container

from bootforge.align import align_up
from bootforge.compress import compress
from bootforge.errors import BuildError, RecipeError
from bootforge.fileio import read_input
from bootforge.formats import optionrom as fmt
from bootforge.pe import read_pe_facts
from bootforge.pe.driver import refusal as driver_refusal
from bootforge.rom.model import parse_rom

MAX_LEGACY_BLOCKS = 255  # the size byte
MAX_IMAGE_BLOCKS = 0xFFFF  # PCIR image length


@dataclass
class ChainIds:
    """PCI identity written into each image's PCIR."""
    vendor_id: int
    device_ids: list
    class_code: int
    code_revision: int
    pci30: bool

    @property
    def device_id(self):
        return self.device_ids[0]


def build_pcir(ids: ChainIds, image_blocks: int, code_type: int, device_list_offset: int):
    return fmt.PciDataStructure.build(dict(
        vendor_id=ids.vendor_id, device_id=ids.device_id,
        device_list_offset=device_list_offset if ids.pci30 else 0,
        length=fmt.PCIR_LENGTH_30 if ids.pci30 else fmt.PCIR_LENGTH_23,
        revision=fmt.PCIR_REVISION_30 if ids.pci30 else 0, class_code=ids.class_code, image_length=image_blocks,
        code_revision=ids.code_revision, code_type=code_type, indicator=0,
        max_runtime_length=image_blocks if ids.pci30 and code_type == fmt.RomCodeType.X86 else 0,
        pci30=dict(config_utility_offset=0, dmtf_clp_offset=0) if ids.pci30 else None))


def device_list_bytes(ids: ChainIds):
    if not ids.pci30:
        return b""
    return b"".join(d.to_bytes(2, "little") for d in ids.device_ids) + b"\0\0"


def _pad_to_blocks(image: bytearray, padding: int):
    image.extend(bytes([padding]) * (align_up(len(image), fmt.BLOCK) - len(image)))


# -- legacy image generated around a stub -----------------------------------

@dataclass
class StubCode:
    code: bytes
    symbols: dict


def load_stub(path: Path) -> StubCode:
    """The stub's code and entry symbols: an ELF linked at 0 (its .text), or a flat binary."""
    data = read_input(path)
    if data[:4] != b"\x7fELF":
        return StubCode(data, {})
    # Function-level import: pyelftools (~60 ms) only for stubs given as ELF files.
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        text = elf.get_section_by_name(".text")
        if text is None:
            raise BuildError(f"{path}: stub ELF has no .text section")
        symtab = elf.get_section_by_name(".symtab")
        symbols = {}
        if symtab is not None:
            for sym in symtab.iter_symbols():
                if sym.name and sym["st_info"]["type"] in ("STT_NOTYPE", "STT_FUNC"):
                    symbols[sym.name] = sym["st_value"] - text["sh_addr"]
        return StubCode(text.data(), symbols)
    except ELFError as exc:
        raise BuildError(f"{path}: not a usable ELF stub: {exc}") from None


def _entry(spec, key, stub, required):
    """Entry offset (into the stub code) from the recipe: a symbol name or an integer."""
    value = spec.get(key)
    if value is None:
        if required:
            raise RecipeError(f"image needs {key!r} (a symbol of the stub or an offset)")
        return None
    if isinstance(value, str):
        if value not in stub.symbols:
            known = ", ".join(sorted(stub.symbols)) or "none"
            raise RecipeError(f"{key} = {value!r}: no such symbol in the stub (symbols: {known})")
        return stub.symbols[value]
    if not 0 <= value < len(stub.code):
        raise RecipeError(f"{key} = {value:#x} is outside the stub's {len(stub.code)} bytes of code")
    return value


def build_stub_image(spec, ids: ChainIds, padding: int, base_dir: Path) -> bytearray:
    stub = load_stub(base_dir / spec["stub"])
    init = _entry(spec, "init", stub, True)
    bev = _entry(spec, "bev", stub, False)
    bcv = _entry(spec, "bcv", stub, False)

    pcir_at = 0x1C
    pcir_len = fmt.PCIR_LENGTH_30 if ids.pci30 else fmt.PCIR_LENGTH_23
    devlist = device_list_bytes(ids)
    pnp_at = align_up(pcir_at + pcir_len + len(devlist), 16)
    strings_at = pnp_at + fmt.PNP_HEADER_SIZE
    strings = bytearray()
    offsets = {}
    for key in ("manufacturer", "product"):
        if spec.get(key):
            offsets[key] = strings_at + len(strings)
            strings += spec[key].encode("ascii") + b"\0"
    code_at = align_up(strings_at + len(strings), 16)

    image = bytearray(code_at)
    image[code_at:] = stub.code
    _pad_to_blocks(image, padding)
    blocks = len(image) // fmt.BLOCK
    if blocks > MAX_LEGACY_BLOCKS:
        raise BuildError(f"legacy image of {blocks} blocks ({len(image)} bytes) exceeds the "
                         f"{MAX_LEGACY_BLOCKS} blocks its size byte can hold")
    image[0:2] = fmt.ROM_SIGNATURE
    image[2] = blocks
    jump = code_at + init - 6
    image[3:6] = b"\xE9" + jump.to_bytes(2, "little")
    image[6] = 0  # the checksum byte, reserved here
    image[0x18:0x1A] = pcir_at.to_bytes(2, "little")
    image[0x1A:0x1C] = pnp_at.to_bytes(2, "little")
    image[pcir_at:pcir_at + pcir_len] = build_pcir(ids, blocks, fmt.RomCodeType.X86, pcir_len)
    image[pcir_at + pcir_len:pcir_at + pcir_len + len(devlist)] = devlist
    device_type = spec.get("device_type", [ids.class_code >> 16, (ids.class_code >> 8) & 0xFF,
                                           ids.class_code & 0xFF])
    image[pnp_at:pnp_at + fmt.PNP_HEADER_SIZE] = fmt.PnpExpansionHeader.build(dict(
        revision=1, length=fmt.PNP_HEADER_SIZE // 16, next_offset=0, reserved=0, checksum=0,
        device_id=spec.get("pnp_device_id", 0),
        manufacturer_offset=offsets.get("manufacturer", 0), product_offset=offsets.get("product", 0),
        device_type=bytes(device_type), device_indicators=spec.get("device_indicators", 0xF4 if bev is not None else 0x34),
        bcv=code_at + bcv if bcv is not None else 0, bdv=0,
        bev=code_at + bev if bev is not None else 0, reserved2=0, static_resource_offset=0))
    image[strings_at:strings_at + len(strings)] = strings
    image[pnp_at + 9] = (-sum(image[pnp_at:pnp_at + fmt.PNP_HEADER_SIZE])) & 0xFF
    return image


# -- an image taken from an existing ROM -------------------------------------

def load_rom_image(spec, base_dir: Path):
    path = base_dir / spec["file"]
    rom = parse_rom(read_input(path), str(path))
    index = spec.get("index", 0)
    if not 0 <= index < len(rom.images):
        raise RecipeError(f"{path}: has {len(rom.images)} image(s), no image index {index}")
    return rom.images[index]


def editable_pcir(parsed, purpose):
    """A copy of *parsed*'s PCIR to change and write back with put_pcir (the parsed view stays
    as it was read). Refused when the image has none, or when it is not 4-aligned: UEFI
    PciBusDxe stops at such an image. *purpose* ends "has no PCI data structure to ..."."""
    if parsed.pcir is None:
        raise BuildError(f"image {parsed.index}: has no PCI data structure to {purpose}")
    if parsed.pcir_offset & 3:
        raise BuildError(f"image {parsed.index}: PCIR offset {parsed.pcir_offset:#x} is not 4-aligned; "
                         "UEFI PciBusDxe would stop at this image")
    return Container(parsed.pcir)


def put_pcir(image: bytearray, parsed, pcir, *, vendor_id=None, device_id=None, class_code=None,
             code_revision=None, last=None):
    """Set the fields given in *pcir* (None: unchanged; *last*: the LAST_IMAGE indicator bit)
    and write it over *parsed*'s PCIR in *image*; returns how many bytes were written."""
    if vendor_id is not None:
        pcir.vendor_id = vendor_id
    if device_id is not None:
        pcir.device_id = device_id
    if class_code is not None:
        pcir.class_code = class_code
    if code_revision is not None:
        pcir.code_revision = code_revision
    if last is not None:
        pcir.indicator = (pcir.indicator | fmt.LAST_IMAGE) if last else (pcir.indicator & ~fmt.LAST_IMAGE)
    built = fmt.PciDataStructure.build(pcir)
    at = parsed.pcir_offset
    image[at:at + len(built)] = built
    return len(built)


def rehead(image: bytearray, parsed, *, vendor_id=None, device_ids=None, class_code=None,
           code_revision=None, last=None):
    """Rewrite PCIR fields of one image in place; payload bytes stay as they are."""
    pcir = editable_pcir(parsed, "re-head")
    if device_ids and (len(device_ids) > 1 or parsed.device_list):
        _rewrite_device_list(image, parsed, device_ids)
    put_pcir(image, parsed, pcir, vendor_id=vendor_id, device_id=device_ids[0] if device_ids else None,
             class_code=class_code, code_revision=code_revision, last=last)


def _rewrite_device_list(image, parsed, device_ids):
    pcir = parsed.pcir
    if pcir.revision < fmt.PCIR_REVISION_30 or pcir.device_list_offset == 0:
        raise BuildError(f"image {parsed.index}: PCI {('2.3' if pcir.revision < fmt.PCIR_REVISION_30 else '3.0 without a list')} "
                         f"data structure has no device list for {len(device_ids)} device ids")
    room = len(parsed.device_list)
    if len(device_ids) > room:
        raise BuildError(f"image {parsed.index}: its device list holds {room} id(s); "
                         f"{len(device_ids)} do not fit without moving payload bytes")
    at = parsed.pcir_offset + pcir.device_list_offset
    for i in range(room):
        dev = device_ids[i] if i < len(device_ids) else 0
        image[at + 2 * i:at + 2 * i + 2] = dev.to_bytes(2, "little")


# -- EFI image from a PE/COFF driver ------------------------------------------

def load_efi_payload(spec, base_dir: Path) -> bytes:
    """The PE image: a PE file, or the (decompressed) payload of an EFI image in a ROM."""
    path = base_dir / spec["file"]
    data = read_input(path)
    if data[:2] == fmt.ROM_SIGNATURE:
        image = load_rom_image(spec, base_dir)
        if not image.is_efi:
            raise RecipeError(f"{path}: image {image.index} is not an EFI image")
        if image.header.compression:
            if image.decompressed is None or not image.decompressed.ok:
                raise BuildError(f"{path}: image {image.index}: EFI payload does not decompress")
            return image.decompressed.data
        return bytes(image.data[image.header.efi_image_offset:])
    return data


def _efi_image_offset(ids: ChainIds):
    """Where the PE goes in an EFI image: after the PCIR, the device list and the checksum byte."""
    pcir_len = fmt.PCIR_LENGTH_30 if ids.pci30 else fmt.PCIR_LENGTH_23
    return align_up(0x1C + pcir_len + len(device_list_bytes(ids)) + 1, 8)


def _signed_driver(sign, pe_bytes, path, ids, compression):
    """The driver signed. Uncompressed, PciBusDxe hands LoadImage everything from the EFI image
    offset to the end of the initialization size, the ROM's padding included, and OVMF hashes up
    to that size less the certificate table's: the table must end the image exactly. So the PE
    gets zero bytes after its sections (hashed as trailing data) until the signed PE ends on a
    512-byte block (the signature's size does not depend on what is signed)."""
    signed = sign(pe_bytes, path)
    if compression == "efi":
        return signed          # the decompressed buffer is exactly the PE
    at = _efi_image_offset(ids)
    extra = 0
    while (at + len(signed) + extra) % fmt.BLOCK:
        extra += 8
    if extra:
        signed = sign(pe_bytes + bytes(extra), path)
    if (at + len(signed)) % fmt.BLOCK:
        raise BuildError(f"{path}: the signed driver does not end on a 512-byte block; give compress = \"efi\"")
    return signed


def build_efi_image(spec, ids: ChainIds, padding: int, base_dir: Path) -> bytearray:
    pe_bytes = load_efi_payload(spec, base_dir)
    pe = read_pe_facts(pe_bytes)
    why = driver_refusal(pe.subsystem)      # the rule `inspect` states for a bare driver (bootforge/pe/driver.py)
    if why is not None:
        raise BuildError(f"{spec['file']}: {why}")
    compression = spec.get("compress", "none")
    if compression not in ("none", "efi"):
        raise RecipeError(f"compress = {compression!r}: use \"efi\" or \"none\"")
    if any(k.startswith("secureboot_") for k in spec):
        # Function-level import: cryptography and asn1crypto only for a signed driver. The
        # signature goes in the PE itself, before compression: PciBusDxe decompresses the image
        # and LoadImage() verifies that buffer (PciOptionRomSupport.c, DxeImageVerificationLib).
        from bootforge.pe.sign import recipe_signer
        sign = recipe_signer(spec, lambda value, key: base_dir / value, "rom.images")
        if sign is not None:
            pe_bytes = _signed_driver(sign, pe_bytes, spec["file"], ids, compression)
    payload = pe_bytes
    if compression == "efi":
        payload = compress(pe_bytes, "efi")

    pcir_at = 0x1C
    pcir_len = fmt.PCIR_LENGTH_30 if ids.pci30 else fmt.PCIR_LENGTH_23
    devlist = device_list_bytes(ids)
    checksum_at = pcir_at + pcir_len + len(devlist)
    pe_at = align_up(checksum_at + 1, 8)
    image = bytearray(pe_at) + payload
    _pad_to_blocks(image, padding)
    blocks = len(image) // fmt.BLOCK
    if blocks > MAX_IMAGE_BLOCKS:
        raise BuildError(f"EFI image of {len(image)} bytes exceeds the 16-bit image length")
    image[0:fmt.EFI_HEADER_SIZE] = fmt.EfiRomHeader.build(dict(
        initialization_size=blocks, subsystem=pe.subsystem, machine=pe.machine,
        compression=fmt.EfiRomCompression.EFI if compression == "efi" else fmt.EfiRomCompression.NONE,
        reserved=bytes(8),
        efi_image_offset=pe_at, pcir_offset=pcir_at))
    image[pcir_at:pcir_at + pcir_len] = build_pcir(ids, blocks, fmt.RomCodeType.EFI, pcir_len)
    image[pcir_at + pcir_len:checksum_at] = devlist
    return image, checksum_at


# -- the chain ----------------------------------------------------------------

def assemble_chain(images, padding: int, total_size=None) -> bytes:
    """Concatenate finished images and pad to the flash size, if one is given."""
    out = bytearray()
    for data in images:
        out += data
    if total_size is not None:
        if len(out) > total_size:
            raise BuildError(f"the chain is {len(out)} bytes and does not fit the {total_size}-byte ROM "
                             f"({len(out) - total_size} bytes over)")
        out += bytes([padding]) * (total_size - len(out))
    return bytes(out)
