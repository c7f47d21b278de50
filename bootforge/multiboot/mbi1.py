"""Multiboot 1 boot information: decoding the MBI and what its pointers reach, and the
walk of the MB1 memory map (entries chained by their size field).

Layouts and names in bootforge/formats/multiboot.py. Used by the dump decoder
(bootforge.multiboot.dump) and by the mb1-mmap memory-map reader
(bootforge.memmap.formats.multiboot).
"""

import struct

from bootforge.errors import FormatError, LimitError
from bootforge.formats import flag_labels, multiboot as fmt, parse
from bootforge.report import to_plain

F = fmt.MbiFlag
MODULE_SIZE = fmt.Multiboot1Module.sizeof()
MAX_MMAP_ENTRIES = 4096
MAX_MODULES = 1024
MBI1_MODS_COUNT_OFFSET = 20     # Multiboot1Info.mods_count
_MB1_MMAP_ENTRY = struct.Struct(fmt.MB1_MMAP_ENTRY_STRUCT)


def walk_mb1_mmap(table, limit=None):
    """(offset, size, base_addr, length, type) of each entry of an MB1 mmap buffer.

    The next entry starts at entry + size + 4 (the spec; GRUB and QEMU write
    size 20). FormatError (offset in *table*) for an entry that does not fit
    or a size below 20; LimitError past *limit* entries.
    """
    pos, n, count = 0, len(table), 0
    while pos < n:
        if pos + _MB1_MMAP_ENTRY.size > n:
            raise FormatError("truncated Multiboot1 mmap entry", offset=pos)
        size, addr, length, mtype = _MB1_MMAP_ENTRY.unpack_from(table, pos)
        if size < fmt.MB1_MMAP_SIZE_FIELD:
            raise FormatError(f"mmap entry size {size} is under 20", offset=pos)
        if pos + 4 + size > n:
            raise FormatError(f"mmap entry size {size} runs past the end", offset=pos)
        count += 1
        if limit is not None and count > limit:
            raise LimitError(f"more than {limit} mmap entries", offset=pos)
        yield pos, size, addr, length, mtype
        pos += 4 + size


def decode_mb1_info(mem, mbi_addr, spans_out=None):
    """Decode the MB1 info at *mbi_addr* through *mem*; problems for pointers outside the dump.
    *spans_out*, a list, receives (name, address, length) of every structure read (the MBI,
    strings, tables and, for it, the ELF section header table too)."""
    raw = mem.read(mbi_addr, fmt.MBI1_SIZE)
    if raw is None:
        raise FormatError(f"the MBI at {mbi_addr:#x} is not in the dump")
    info = parse(fmt.Multiboot1Info, raw, what="Multiboot1 information")
    flags = info.flags
    doc = {"flags": flags, "flags_set": flag_labels(F, flags)}
    problems = []
    # Loaders that never set the framebuffer bit (QEMU, Syslinux) write only 88 bytes.
    spans = [("mbi", mbi_addr, fmt.MBI1_SIZE if flags & F.FRAMEBUFFER else fmt.MBI1_SIZE_WITHOUT_FRAMEBUFFER)]

    def need(what, addr, length):
        data = mem.read(addr, length)
        if data is None:
            problems.append(f"{what} at {addr:#x} ({length} bytes) is not in the dump")
        else:
            spans.append((what, addr, length))
        return data

    def string(what, addr):
        s, n = mem.string(addr)
        if s is None:
            problems.append(f"{what} at {addr:#x} is not a NUL-terminated string in the dump")
            return None
        spans.append((what, addr, n))
        return s

    if flags & F.MEM:
        doc.update(mem_lower=info.mem_lower, mem_upper=info.mem_upper)
    if flags & F.BOOT_DEVICE:
        doc["boot_device"] = info.boot_device
    if flags & F.CMDLINE:
        doc["cmdline_addr"] = info.cmdline
        doc["cmdline"] = string("cmdline", info.cmdline)
    if flags & F.MODS:
        doc.update(mods_count=info.mods_count, mods_addr=info.mods_addr, modules=[])
        if info.mods_count > MAX_MODULES:
            raise LimitError(f"mods_count {info.mods_count} (limit {MAX_MODULES})",
                             offset=MBI1_MODS_COUNT_OFFSET)
        table = need("mods", info.mods_addr, MODULE_SIZE * info.mods_count) if info.mods_count else b""
        if table is not None:
            for i in range(info.mods_count):
                m = parse(fmt.Multiboot1Module, table, MODULE_SIZE * i, what=f"module {i}")
                doc["modules"].append({"mod_start": m.mod_start, "mod_end": m.mod_end,
                                       "mod_size": m.mod_end - m.mod_start, "cmdline_addr": m.cmdline,
                                       "string": string(f"module {i} string", m.cmdline)})
    if flags & F.AOUT_SYMS and not flags & F.ELF_SHDR:
        doc["aout_syms"] = to_plain(parse(fmt.Multiboot1AoutSymbols, info.syms, what="a.out symbols"))
    if flags & F.ELF_SHDR:
        doc["elf_sections"] = to_plain(parse(fmt.Multiboot1ElfSections, info.syms, what="ELF sections"))
        if spans_out is not None:
            e = doc["elf_sections"]
            need("elf_section_headers", e["addr"], e["num"] * e["size"])
    if flags & F.MMAP:
        doc.update(mmap_addr=info.mmap_addr, mmap_length=info.mmap_length)
        table = need("mmap", info.mmap_addr, info.mmap_length)
        if table is not None:
            try:
                doc["mmap"] = [{"size": size, "base_addr": addr, "length": length, "type": mtype}
                               for _, size, addr, length, mtype in walk_mb1_mmap(table, MAX_MMAP_ENTRIES)]
            except FormatError as exc:
                # The dump's file offset is filled in by the caller; name the guest address here.
                raise type(exc)(f"mmap entry at {info.mmap_addr + exc.offset:#x}: {exc.message}") from None
    if flags & F.DRIVES:
        doc.update(drives_addr=info.drives_addr, drives_length=info.drives_length)
        need("drives", info.drives_addr, info.drives_length)
    if flags & F.CONFIG_TABLE:
        doc["config_table"] = info.config_table
    if flags & F.BOOT_LOADER_NAME:
        doc["boot_loader_name"] = string("boot_loader_name", info.boot_loader_name)
    if flags & F.APM_TABLE:
        apm = need("apm", info.apm_table, fmt.APM_TABLE_SIZE)
        if apm is not None:
            doc["apm"] = to_plain(parse(fmt.ApmTable, apm, what="APM table"))
    if flags & F.VBE:
        doc["vbe"] = {k: getattr(info, k) for k in ("vbe_control_info", "vbe_mode_info", "vbe_mode",
                                                     "vbe_interface_seg", "vbe_interface_off",
                                                     "vbe_interface_len")}
        ctl = need("vbe_control_info", info.vbe_control_info, fmt.VbeInfoBlock.sizeof())
        mode = need("vbe_mode_info", info.vbe_mode_info, fmt.VbeModeInfoBlock.sizeof())
        doc["vbe"].update(decode_vbe(ctl, mode))
    if flags & F.FRAMEBUFFER:
        doc["framebuffer"] = {k: getattr(info, k) for k in ("framebuffer_addr", "framebuffer_pitch",
                                                             "framebuffer_width", "framebuffer_height",
                                                             "framebuffer_bpp", "framebuffer_type")}
    check_overlaps(spans)
    if spans_out is not None:
        spans_out.extend(spans)
    return doc, problems


def decode_vbe(control, mode):
    """The interesting fields of the VBE controller and mode info blocks (either may be None)."""
    out = {}
    if control is not None:
        c = parse(fmt.VbeInfoBlock, control, what="VBE controller information")
        out["controller"] = {"signature": c.signature.decode("latin-1"), "version": c.version,
                             "total_memory_kib": c.total_memory * 64, "capabilities": c.capabilities}
    if mode is not None:
        m = parse(fmt.VbeModeInfoBlock, mode, what="VBE mode information")
        out["mode_info"] = {k: getattr(m, k) for k in (
            "mode_attributes", "x_resolution", "y_resolution", "bits_per_pixel", "memory_model",
            "bytes_per_scan_line", "phys_base_ptr")}
    return out


def check_overlaps(spans):
    """Structures the MBI points at must not overlap (identical strings may be shared)."""
    ordered = sorted(set(spans), key=lambda s: (s[1], s[2]))
    for (n1, a1, l1), (n2, a2, l2) in zip(ordered, ordered[1:]):
        if a2 < a1 + l1 and not (a1 == a2 and l1 == l2 and "string" in n1 + n2 or
                                 a1 == a2 and l1 == l2 and "cmdline" in n1 + n2):
            raise FormatError(f"MB1 pointers overlap or loop: {n1} [{a1:#x}, {a1 + l1:#x}) overlaps "
                              f"{n2} [{a2:#x}, {a2 + l2:#x})")


