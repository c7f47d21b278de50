"""The Multiboot boot information bytes a loader hands over.

Multiboot1: the 116-byte multiboot_info (GRUB allocates 120 with the struct's
8-byte alignment; QEMU and Syslinux fill 88); the blocks it points to are
described by LoadResult.regions. Multiboot2: the whole tag list, each tag
padded to 8 bytes, in the order the loader writes them.

Every byte layout is the Construct declaration in bootforge.formats.multiboot
(Multiboot1Info, Multiboot1Module, Multiboot1MmapEntryFixed, Multiboot2Info*,
Multiboot2InfoTagBody); the per-entry loops use struct formats derived from
those declarations (formats.struct_format).
"""

import struct

from bootforge.formats import struct_format
from bootforge.formats.multiboot import (
    MB1_MMAP_SIZE_FIELD, MB1_MMAP_ENTRY_STRUCT, MB2_MMAP_ENTRY_SIZE, MB2_MMAP_ENTRY_STRUCT,
    MB2_MMAP_ENTRY_VERSION, MB2_TAG_HEADER_SIZE, Mb2Tag, Multiboot1ElfSections, Multiboot1Info,
    Multiboot1Module, Multiboot2InfoFixed, Multiboot2InfoTagBody, Multiboot2InfoTagHeader,
    Multiboot2MmapHeader,
)

MB1_MODULE_STRUCT = struct_format(Multiboot1Module)
MB2_TAG_HEADER_STRUCT = struct_format(Multiboot2InfoTagHeader)
FRAMEBUFFER_FIELDS = ("framebuffer_addr", "framebuffer_pitch", "framebuffer_width", "framebuffer_height",
                      "framebuffer_bpp", "framebuffer_type")
VBE_FIELDS = ("vbe_control_info", "vbe_mode_info", "vbe_mode", "vbe_interface_seg", "vbe_interface_off",
              "vbe_interface_len")
FRAMEBUFFER_OFFSET = 88         # Multiboot1Info: framebuffer_addr (MBI1_SIZE_WITHOUT_FRAMEBUFFER)


def mb1_info(flags=0, mem_lower=0, mem_upper=0, boot_device=0, cmdline=0, mods_count=0, mods_addr=0,
             elf=(0, 0, 0, 0), mmap_length=0, mmap_addr=0, loader=0, apm=0, vbe=(0, 0, 0, 0, 0, 0),
             framebuffer=None):
    """The 116 bytes of a multiboot_info (Multiboot1Info).

    *elf*: (num, size, addr, shndx) of the section headers; *vbe*: the six VBE
    fields in order; *framebuffer*: a dict of Multiboot1Info's framebuffer_*
    fields (color_info optional), or the 26-28 raw bytes at offset 88, or None.
    """
    fields = dict(flags=int(flags), mem_lower=mem_lower, mem_upper=mem_upper, boot_device=boot_device,
                  cmdline=cmdline, mods_count=mods_count, mods_addr=mods_addr,
                  syms=Multiboot1ElfSections.build(dict(zip(("num", "size", "addr", "shndx"), elf))),
                  mmap_length=mmap_length, mmap_addr=mmap_addr, drives_length=0, drives_addr=0,
                  config_table=0, boot_loader_name=loader, apm_table=apm,
                  **dict(zip(VBE_FIELDS, vbe)), **dict.fromkeys(FRAMEBUFFER_FIELDS, 0), color_info_pad=bytes(2), color_info=bytes(4))
    if isinstance(framebuffer, dict):
        fields.update(framebuffer)
    raw = Multiboot1Info.build(fields)
    if isinstance(framebuffer, (bytes, bytearray)) and framebuffer:
        tail = bytes(framebuffer).ljust(len(raw) - FRAMEBUFFER_OFFSET, b"\0")[:len(raw) - FRAMEBUFFER_OFFSET]
        raw = raw[:FRAMEBUFFER_OFFSET] + tail
    return raw


def mb1_mmap(entries):
    """Size-prefixed entries (size 20) as GRUB, QEMU, Syslinux and iPXE write them."""
    return b"".join(struct.pack(MB1_MMAP_ENTRY_STRUCT, MB1_MMAP_SIZE_FIELD, a, s, t) for a, s, t in entries)


def mb1_modules(mods):
    return b"".join(struct.pack(MB1_MODULE_STRUCT, m["start"], m["end"], m["cmdline_addr"], 0) for m in mods)


def mb1_structures(res, kernel, loader_name):
    """What an MB1 info points to, as the loader writes it: {name: (address, bytes)} with the
    dump decoder's names (cmdline, mods, module N string, mmap, boot_loader_name,
    elf_section_headers), from *res*'s regions, modules, mmap and command line."""
    r, out = res.regions, {}
    if res.cmdline is not None and r.get("cmdline"):
        out["cmdline"] = (r["cmdline"], res.cmdline.encode() + b"\0")
    if res.modules and r.get("mods"):
        out["mods"] = (r["mods"], mb1_modules(res.modules))
        for i, m in enumerate(res.modules):
            out[f"module {i} string"] = (m["cmdline_addr"], m["cmdline"].encode() + b"\0")
    if res.mmap and r.get("mmap") is not None:
        out["mmap"] = (r["mmap"], mb1_mmap(res.mmap))
    if loader_name and r.get("loader"):
        out["boot_loader_name"] = (r["loader"], loader_name.encode() + b"\0")
    if r.get("shdr") and kernel is not None and kernel.shnum:
        placed = {int(p.name.split()[-1]): p.start for p in res.placements if p.name.startswith("ELF section ")
                  and p.name.split()[-1].isdigit()}
        out["elf_section_headers"] = (r["shdr"], kernel.section_headers(placed))
    return out


def mb2_tag(ttype, body):
    """One info tag: header (type, size without padding), *body*, padding to 8 bytes."""
    size = MB2_TAG_HEADER_SIZE + len(body)
    return struct.pack(MB2_TAG_HEADER_STRUCT, int(ttype), size) + body + bytes(-size % 8)


def mb2_tag_of(ttype, **fields):
    """An info tag built from its declared body (Multiboot2InfoTagBody[ttype]) and *fields*."""
    return mb2_tag(ttype, Multiboot2InfoTagBody.build(fields, type=ttype))


def mb2_string(ttype, text):
    """A string tag (Mb2Tag.CMDLINE, Mb2Tag.BOOT_LOADER_NAME)."""
    return mb2_tag_of(ttype, string=text.encode())


def mb2_module(start, end, string):
    return mb2_tag_of(Mb2Tag.MODULE, mod_start=start, mod_end=end, string=string.encode())


def mb2_mmap(entries):
    header = Multiboot2MmapHeader.build(dict(entry_size=MB2_MMAP_ENTRY_SIZE, entry_version=MB2_MMAP_ENTRY_VERSION))
    return mb2_tag(Mb2Tag.MMAP, header + b"".join(struct.pack(MB2_MMAP_ENTRY_STRUCT, a, s, t, 0)
                                                  for a, s, t in entries))


def mb2_info(tags):
    body = b"".join(tags) + mb2_tag(Mb2Tag.END, b"")
    return Multiboot2InfoFixed.build(dict(total_size=Multiboot2InfoFixed.sizeof() + len(body), reserved=0)) + body


def mb2_tag_sizes(info):
    """[(type, size)] of an MB2 info blob (for reports and tests)."""
    pos, out = Multiboot2InfoFixed.sizeof(), []
    total = Multiboot2InfoFixed.parse(info[:Multiboot2InfoFixed.sizeof()]).total_size
    while pos + MB2_TAG_HEADER_SIZE <= total:
        t, s = struct.unpack_from(MB2_TAG_HEADER_STRUCT, info, pos)
        out.append((t, s))
        if t == Mb2Tag.END:
            break
        pos += s + (-s % 8)
    return out
