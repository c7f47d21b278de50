"""The Multiboot boot information bytes a loader hands over.

Multiboot1: the 116-byte multiboot_info (GRUB allocates 120 with the struct's
8-byte alignment; QEMU and Syslinux fill 88); the blocks it points to are
described by LoadResult.regions. Multiboot2: the whole tag list, each tag
padded to 8 bytes, in the order the loader writes them.
"""

import struct

MB1_FLAG = {"mem": 1 << 0, "boot_device": 1 << 1, "cmdline": 1 << 2, "mods": 1 << 3, "elf_shdr": 1 << 5,
            "mmap": 1 << 6, "drives": 1 << 7, "config": 1 << 8, "loader": 1 << 9, "apm": 1 << 10,
            "vbe": 1 << 11, "framebuffer": 1 << 12}


def mb1_info(flags=0, mem_lower=0, mem_upper=0, boot_device=0, cmdline=0, mods_count=0, mods_addr=0,
             elf=(0, 0, 0, 0), mmap_length=0, mmap_addr=0, loader=0, apm=0, vbe=(0, 0, 0, 0, 0, 0),
             framebuffer=b""):
    """The 116 bytes of a multiboot_info."""
    raw = struct.pack("<IIIIIIIIIIIIIIIIII", flags, mem_lower, mem_upper, boot_device, cmdline, mods_count,
                      mods_addr, *elf, mmap_length, mmap_addr, 0, 0, 0, loader, apm)
    raw += struct.pack("<IIHHHH", *vbe) if len(vbe) == 6 else bytes(16)
    raw += framebuffer.ljust(28, b"\0")[:28]
    assert len(raw) == 116
    return raw


def mb1_mmap(entries):
    """Size-prefixed entries (size 20) as GRUB, QEMU, Syslinux and iPXE write them."""
    return b"".join(struct.pack("<IQQI", 20, a, s, t) for a, s, t in entries)


def mb1_modules(mods):
    return b"".join(struct.pack("<IIII", m["start"], m["end"], m["cmdline_addr"], 0) for m in mods)


def mb2_tag(ttype, body):
    size = 8 + len(body)
    return struct.pack("<II", ttype, size) + body + bytes(-size % 8)


def mb2_string(ttype, text):
    return mb2_tag(ttype, text.encode() + b"\0")


def mb2_mmap(entries):
    return mb2_tag(6, struct.pack("<II", 24, 0) + b"".join(struct.pack("<QQII", a, s, t, 0)
                                                           for a, s, t in entries))


def mb2_info(tags):
    body = b"".join(tags) + mb2_tag(0, b"")
    return struct.pack("<II", 8 + len(body), 0) + body


def mb2_tag_sizes(info):
    """[(type, size)] of an MB2 info blob (for reports and tests)."""
    pos, out = 8, []
    total = struct.unpack_from("<I", info)[0]
    while pos + 8 <= total:
        t, s = struct.unpack_from("<II", info, pos)
        out.append((t, s))
        if t == 0:
            break
        pos += s + (-s % 8)
    return out
