"""Multiboot 2 boot information: the tags a loader passed, decoded and bounds-checked.

Layouts and names in bootforge/formats/multiboot.py (Mb2Tag). Used by the
dump decoder (bootforge.multiboot.dump) and the memory-map readers of dumps.
"""

import struct

from bootforge.errors import FormatError, LimitError
from bootforge.formats import multiboot as fmt, parse, struct_format
from bootforge.formats.efi_memmap import (
    EFI_DESCRIPTOR_MIN_SIZE, MB2_EFI_MMAP_HEADER_STRUCT, EfiMemoryType, descriptor_struct,
)
from bootforge.multiboot.mbi1 import decode_vbe
from bootforge.report import to_plain

MAX_INFO_TAGS = 4096
T = fmt.Mb2Tag
MBI2_FIXED_STRUCT = struct_format(fmt.Multiboot2InfoFixed)
MBI2_TAG_HEADER_STRUCT = struct_format(fmt.Multiboot2InfoTagHeader)
# Smallest size of each tag that carries fields (header included).
MIN_TAG_SIZE = {T.MODULE: 16, T.BASIC_MEMINFO: 16, T.BOOTDEV: 20, T.MMAP: 16, T.VBE: 784, T.FRAMEBUFFER: 31,
                T.ELF_SECTIONS: 20, T.APM: 28, T.EFI32: 12, T.EFI64: 16, T.SMBIOS: 16, T.EFI_MMAP: 16,
                T.EFI32_IH: 12, T.EFI64_IH: 16, T.LOAD_BASE_ADDR: 12}


def _efi_spec_name(number):
    try:
        return EfiMemoryType(number).spec_name
    except ValueError:
        return "unknown"


def decode_mb2_info(mbi, base_offset=0):
    """Decode MB2 boot information bytes *mbi* (starting at total_size); FormatError on lies."""
    if len(mbi) < 8:
        raise FormatError("Multiboot2 information shorter than its 8-byte header", offset=base_offset)
    total, _reserved = struct.unpack_from(MBI2_FIXED_STRUCT, mbi)
    if total > len(mbi):
        raise FormatError(f"MBI total_size {total:#x} exceeds the {len(mbi):#x} bytes dumped",
                          offset=base_offset)
    if total < 16:
        raise FormatError(f"MBI total_size {total} is below 16 (header and end tag)", offset=base_offset)
    pos = 8
    tags = []
    while True:
        if len(tags) >= MAX_INFO_TAGS:
            raise LimitError(f"more than {MAX_INFO_TAGS} information tags", offset=base_offset + pos)
        if pos + 8 > total:
            raise FormatError("MBI tags run past total_size without an end tag", offset=base_offset + pos)
        ttype, size = struct.unpack_from(MBI2_TAG_HEADER_STRUCT, mbi, pos)
        if size < 8 or pos + size > total:
            raise FormatError(f"MBI tag type {ttype} of size {size} at {pos:#x} does not fit in "
                              f"total_size {total:#x}", offset=base_offset + pos)
        tags.append(decode_info_tag(ttype, mbi[pos:pos + size], base_offset + pos))
        tags[-1]["position"] = pos
        if ttype == T.END:
            break
        pos += size + (-size % 8)
    return {"total_size": total, "tags": tags}


def decode_info_tag(ttype, raw, offset):
    size = len(raw)
    minimum = MIN_TAG_SIZE.get(ttype, fmt.MB2_TAG_HEADER_SIZE)
    if size < minimum:
        raise FormatError(f"MBI tag type {ttype} has size {size}, below its minimum {minimum}",
                          offset=offset)
    if ttype == T.MMAP:
        esize, _version = struct.unpack_from(fmt.MB2_MMAP_HEADER_STRUCT, raw, fmt.MB2_TAG_HEADER_SIZE)
        if esize < fmt.MB2_MMAP_ENTRY_SIZE:
            raise FormatError(f"mmap entry_size {esize} is below 24", offset=offset + fmt.MB2_TAG_HEADER_SIZE)
    if ttype == T.EFI_MMAP:
        dsize, _version = struct.unpack_from(MB2_EFI_MMAP_HEADER_STRUCT, raw, fmt.MB2_TAG_HEADER_SIZE)
        if dsize < EFI_DESCRIPTOR_MIN_SIZE:
            raise FormatError(f"EFI mmap descr_size {dsize} is below 40", offset=offset + fmt.MB2_TAG_HEADER_SIZE)
    padded = raw + bytes(-size % 8)
    parsed = parse(fmt.Multiboot2InfoTag, padded, what=f"MBI tag type {ttype}", base=offset)
    tag = {"type": ttype, "name": T.label_of(ttype), "size": size}
    body = parsed.body
    if ttype in (T.CMDLINE, T.BOOT_LOADER_NAME):
        tag["string"] = body.string.decode("utf-8", "replace")
    elif ttype == T.MODULE:
        tag.update(mod_start=body.mod_start, mod_end=body.mod_end,
                   mod_size=body.mod_end - body.mod_start, string=body.string.decode("utf-8", "replace"))
    elif ttype == T.MMAP:
        tag.update(entry_size=body.entry_size, entry_version=body.entry_version,
                   entries=[{"base_addr": e.base_addr, "length": e.length, "type": e.type}
                            for e in body.entries])
    elif ttype == T.FRAMEBUFFER:
        tag.update({k: v for k, v in to_plain(body).items() if k != "color_info"})
        ci = body.color_info
        if body.framebuffer_type == fmt.FramebufferType.INDEXED and len(ci) >= 2:
            # As many colours as the count says and the tag holds (GRUB sizes the tag by the count).
            n = min(int.from_bytes(ci[:2], "little"), (len(ci) - 2) // 3)
            palette = parse(fmt.Multiboot2Palette, n.to_bytes(2, "little") + ci[2:2 + 3 * n],
                            what="framebuffer palette")
            tag["palette"] = [[c.red, c.green, c.blue] for c in palette.colors]
        elif body.framebuffer_type == fmt.FramebufferType.RGB and len(ci) >= 6:
            tag.update(to_plain(parse(fmt.FramebufferRgb, ci, what="framebuffer colour info")))
    elif ttype == T.ELF_SECTIONS:
        tag.update(num=body.num, entsize=body.entsize, shndx=body.shndx,
                   sections_size=len(body.sections))
    elif ttype == T.EFI_MMAP:
        d = body.descr_size
        whole = body.map[:len(body.map) - len(body.map) % d]
        descs = [{"type": t, "type_name": _efi_spec_name(t), "physical_start": phys,
                  "number_of_pages": pages, "attribute": attr}
                 for t, phys, _virt, pages, attr in descriptor_struct(d).iter_unpack(whole)]
        tag.update(descr_size=d, descr_vers=body.descr_vers, descriptors=descs)
    elif ttype == T.VBE:
        tag.update(vbe_mode=body.vbe_mode, vbe_interface_seg=body.vbe_interface_seg,
                   vbe_interface_off=body.vbe_interface_off, vbe_interface_len=body.vbe_interface_len)
        tag.update(decode_vbe(body.vbe_control_info, body.vbe_mode_info))
    elif ttype in (T.ACPI_OLD, T.ACPI_NEW):
        tag["rsdp"] = body.rsdp.hex()
        tag["signature"] = body.rsdp[:8].decode("latin-1")
    else:
        tag.update(to_plain(body))
        if tag.get("payload") == "":
            del tag["payload"]
    return tag
