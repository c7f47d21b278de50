"""The memory maps in a capture of the Multiboot dump kernel (stubs/mbdump.S):
MB2 tag 6 or the MB1 mmap (mbdump), or MB2 tag 17 (mbdump-efi).

The dump is decoded by bootforge.multiboot.dump (memmap may use multiboot;
multiboot never imports memmap); the bodies are read by the multiboot
family's readers.
"""

from bootforge.errors import FormatError
from bootforge.formats.multiboot import MB2_TAG_HEADER_SIZE, Mb2Tag
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.multiboot import read_mb1_mmap, read_mb2_efi_mmap, read_mb2_mmap
from bootforge.multiboot.dump import DUMP_BANNER, Memory, decode_dump, parse_dump


def mbdump_bodies(path, data):
    """((e820-like body, its reader name), EFI tag 17 body or None) from a BFMBDUMP capture."""
    doc, _problems = decode_dump(data)
    _eax, _ebx, regions, _complete = parse_dump(data)
    if doc.get("protocol") == "multiboot2":
        mbi = next(r for r in regions if r.name == "mbi")
        bodies = {t["type"]: mbi.data[t["position"] + MB2_TAG_HEADER_SIZE:t["position"] + t["size"]]
                  for t in doc["multiboot2"]["tags"] if t["type"] in (Mb2Tag.MMAP, Mb2Tag.EFI_MMAP)}
        return (bodies.get(Mb2Tag.MMAP), "mb2-mmap"), bodies.get(Mb2Tag.EFI_MMAP)
    if doc.get("protocol") == "multiboot1":
        info = doc["multiboot1"]
        if "mmap_addr" not in info:
            return (None, None), None
        return (Memory(regions).read(info["mmap_addr"], info["mmap_length"]), "mb1-mmap"), None
    return (None, None), None


_BODY_READERS = {"mb1-mmap": read_mb1_mmap, "mb2-mmap": read_mb2_mmap}


def read_mbdump(path, data, options):
    """The memory map a Multiboot loader passed: MB2 tag 6 or the MB1 mmap."""
    (body, fmt), _efi = mbdump_bodies(path, data)
    if body is None:
        raise FormatError("the dump has no memory map (no MB2 tag 6, no MB1 mmap)", path=path)
    m = _BODY_READERS[fmt](path, body, options)
    m.source = "mbdump"
    return m


def read_mbdump_efi(path, data, options):
    """The EFI memory map a Multiboot2 loader passed in tag 17."""
    _e820, body = mbdump_bodies(path, data)
    if body is None:
        raise FormatError("the dump has no MB2 EFI memory map (tag 17)", path=path)
    m = read_mb2_efi_mmap(path, body, options)
    m.source = "mbdump-efi"
    return m


FORMATS = [
    MapFormat("mbdump", "a Multiboot dump capture (its MB2 tag 6 or MB1 mmap)", read_mbdump,
              sniff=lambda head, path: head.startswith(DUMP_BANNER), family="e820"),
    MapFormat("mbdump-efi", "a Multiboot dump capture (its MB2 tag 17)", read_mbdump_efi, family="efi"),
]
