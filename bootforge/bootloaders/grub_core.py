"""GRUB i386-pc core images built in this process, as grub-mkimage -O i386-pc(-eltorito) lays
them out (formats/grub_core.py), with Python's LZMA encoder instead of grub-mkimage's.

Why: on a BIOS-only ISO, grub-mkimage was most of `bootforge build` (a process of its own
spending ~80 ms of CPU in the LZMA SDK's normal mode over ~380 KB); liblzma's fast mode
compresses the same bytes in ~20 ms, releasing the GIL, and the core grows by ~5%.

What GRUB runs is unchanged: the bytes lzma_decompress.img decompresses (kernel.img's sections,
the module area with the same modules in the same order, the early configuration, the prefix)
are grub-mkimage's bytes exactly (tests/test_image_grub_core.py decompresses both). Only the
compressed stream differs, and liblzma ends a raw LZMA1 stream with an end marker that GRUB's
decoder never reaches (startup_raw.S decodes the uncompressed size, no more).

Anything this does not model returns None and the caller runs grub-mkimage: another platform,
a module name with a path or suffix, a module or file missing from the directory (grub-mkimage
says which), a kernel.img of another shape, an image over grub-mkimage's size limits (its
better compression may still fit).
"""

import lzma
import struct
from pathlib import Path

from bootforge.align import align_up
from bootforge.formats import grub_core as g
from bootforge.formats.mbr import GRUB_CORE_SEGMENT, GRUB_DISKBOOT_BLOCKLIST, GrubBlocklist
from bootforge.formats.multiboot import (ELF_MAGIC, ELFCLASS32, ELFDATA2LSB, EM_386, SHF_ALLOC, SHF_EXECINSTR,
                                         SHT_PROGBITS, Elf32Ehdr, Elf32Shdr)

FORMATS = ("i386-pc", "i386-pc-eltorito")
# liblzma's fast mode (hash chain over 4-byte matches, nice length 32: about preset 1) with
# compress_kernel_lzma's dictionary and literal/position bits. Measured on the 384 KB payload
# of a bench ISO (dump kernel, 29 modules): 20 ms, 159 KB; the SDK's normal mode as
# grub-mkimage runs it: 88 ms, 150 KB. The options are fixed, so the bytes are reproducible.
LZMA_FILTERS = [{"id": lzma.FILTER_LZMA1, "dict_size": g.LZMA_DICT, "lc": g.LZMA_LC, "lp": g.LZMA_LP,
                 "pb": g.LZMA_PB, "mode": lzma.MODE_FAST, "mf": lzma.MF_HC4, "nice_len": 32, "depth": 0}]


def read_moddep(directory):
    """{module: [dependencies, as listed]} of *directory*/moddep.lst; a module listed twice
    keeps its last line (util/resolve.c read_dep_list puts each line first and finds the first)."""
    deps = {}
    for line in (Path(directory) / "moddep.lst").read_text().splitlines():
        name, sep, rest = line.partition(":")
        if sep:
            deps[name] = rest.split()
    return deps


def resolve(deps, names):
    """The module names in grub-mkimage's order (util/resolve.c add_module): for each name, its
    dependencies first, last-listed first (read_dep_list builds each list front to back by
    prepending), then the module itself, each once. None for a cycle (add_module would recurse
    without end)."""
    order, added, active = [], set(), set()

    def add(name):
        if name in added:
            return True
        if name in active:
            return False
        active.add(name)
        for dep in reversed(deps.get(name, ())):
            if not add(dep):
                return False
        active.discard(name)
        added.add(name)
        order.append(name)
        return True
    for name in names:
        if not add(name):
            return None
    return order


def kernel_sections(data):
    """(kernel bytes, end of its bss from LINK_ADDR) of an i386-pc kernel.img: its PROGBITS
    sections with SHF_ALLOC, code first then data, each at its address - LINK_ADDR, the gaps
    zeros (grub-mkimagexx.c locate_sections for a target that is not relocatable). The image
    ends with the last of them: Debian's grub-mkimage 2.06 puts the module area right after
    .data, not after .bss (observed: "mimg" at 0x74a8 of the payload, .data ending at
    0xfc80 + 0x828 - 0x9000). None for another ELF shape."""
    if len(data) < Elf32Ehdr.sizeof() or data[:4] != ELF_MAGIC:
        return None
    e = Elf32Ehdr.parse(data)
    if (e.ident.ei_class != ELFCLASS32 or e.ident.ei_data != ELFDATA2LSB or e.e_machine != EM_386
            or e.e_shentsize != Elf32Shdr.sizeof() or e.e_shoff + e.e_shnum * e.e_shentsize > len(data)):
        return None
    sections = [Elf32Shdr.parse(data[e.e_shoff + i * e.e_shentsize:]) for i in range(e.e_shnum)]
    code = [s for s in sections if s.sh_type == SHT_PROGBITS and s.sh_flags & (SHF_ALLOC | SHF_EXECINSTR)
            == SHF_ALLOC | SHF_EXECINSTR]
    rest = [s for s in sections if s.sh_type == SHT_PROGBITS and s.sh_flags & (SHF_ALLOC | SHF_EXECINSTR)
            == SHF_ALLOC]
    if not code or code[0].sh_addr != g.LINK_ADDR:      # mkimage: "miscompiled" (ld.gold)
        return None
    size = 0
    placed = code + rest
    for s in placed:
        if s.sh_addr < g.LINK_ADDR or s.sh_offset + s.sh_size > len(data):
            return None
        size = s.sh_addr - g.LINK_ADDR + s.sh_size
    out = bytearray(max(s.sh_addr - g.LINK_ADDR + s.sh_size for s in placed))
    for s in placed:
        at = s.sh_addr - g.LINK_ADDR
        out[at:at + s.sh_size] = data[s.sh_offset:s.sh_offset + s.sh_size]
    end = max((s.sh_addr + s.sh_size - g.LINK_ADDR for s in sections if s.sh_flags & SHF_ALLOC), default=size)
    return bytes(out[:size]), end


def payload(directory, modules, config, prefix):
    """The bytes lzma_decompress.img decompresses (the module doc), or None (not modelled)."""
    if any("/" in m or m.endswith(".mod") for m in modules):
        return None
    try:
        order = resolve(read_moddep(directory), modules)
        if order is None:
            return None
        kernel = kernel_sections(Path(directory, "kernel.img").read_bytes())
        objects = [(g.GrubObjectType.ELF, Path(directory, f"{m}.mod").read_bytes()) for m in order]
    except (OSError, UnicodeDecodeError):
        return None
    if kernel is None:
        return None
    kernel, end = kernel
    if g.LINK_ADDR + end > g.KERNEL_LIMIT:
        return None
    objects.append((g.GrubObjectType.CONFIG, config.encode() + b"\0"))
    objects.append((g.GrubObjectType.PREFIX, prefix.encode() + b"\0"))
    info, header = g.GrubModuleInfo32.sizeof(), g.GrubModuleHeader.sizeof()
    total = info + sum(header + align_up(len(b), g.OBJECT_ALIGN) for _, b in objects)
    parts = [kernel, g.GrubModuleInfo32.build(dict(offset=info, size=total))]
    for kind, b in objects:
        # Every object's size is ALIGN_ADDR'd before its header takes it (mod_size, config_size,
        # prefix_size in grub_install_generate_image); the padding is zeros (out_img is memset).
        parts.append(struct.pack(g.GRUB_MODULE_HEADER_STRUCT, kind, header + align_up(len(b), g.OBJECT_ALIGN)))
        parts.append(b.ljust(align_up(len(b), g.OBJECT_ALIGN), b"\0"))
    return b"".join(parts)


def core_image(fmt, directory, modules, config, prefix):
    """The core image grub-mkimage -O *fmt* -d *directory* -p *prefix* -c CONFIG *modules* makes
    (CONFIG holding *config*), compressed by liblzma instead, or None when not modelled."""
    if fmt not in FORMATS:
        return None
    raw = payload(directory, modules, config, prefix)
    if raw is None:
        return None
    try:
        decompressor = bytearray(Path(directory, "lzma_decompress.img").read_bytes())
        diskboot = bytearray(Path(directory, "diskboot.img").read_bytes())
        cdboot = Path(directory, "cdboot.img").read_bytes() if fmt == "i386-pc-eltorito" else b""
    except OSError:
        return None
    if (len(decompressor) > g.MAX_DECOMPRESSOR or len(decompressor) < g.DECOMPRESSOR_UNCOMPRESSED_SIZE + 4
            or len(diskboot) != g.DISKBOOT_SIZE):
        return None
    stream = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
    decompressor[g.DECOMPRESSOR_COMPRESSED_SIZE:g.DECOMPRESSOR_COMPRESSED_SIZE + 4] = len(stream).to_bytes(4, "little")
    decompressor[g.DECOMPRESSOR_UNCOMPRESSED_SIZE:g.DECOMPRESSOR_UNCOMPRESSED_SIZE + 4] = \
        len(raw).to_bytes(4, "little")
    size = len(decompressor) + len(stream)
    sectors = -(-size // g.DISKBOOT_SIZE)
    if g.LINK_ADDR + size > g.CORE_LIMIT or sectors > g.MAX_SECTORS:
        return None
    block = GrubBlocklist.parse(diskboot[GRUB_DISKBOOT_BLOCKLIST:])
    if block.segment != GRUB_CORE_SEGMENT:          # mkimage asserts it (diskboot.S fills it)
        return None
    block.length = sectors
    diskboot[GRUB_DISKBOOT_BLOCKLIST:GRUB_DISKBOOT_BLOCKLIST + GrubBlocklist.sizeof()] = GrubBlocklist.build(block)
    return b"".join((cdboot, diskboot, decompressor, stream))
