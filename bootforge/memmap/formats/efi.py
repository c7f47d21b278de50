"""EFI maps: the raw GetMemoryMap() buffer (descriptors of DescriptorSize bytes).

Layout in bootforge/formats/efi_memmap.py; the Multiboot 2 tag 17 form, which
wraps the same descriptors, is in multiboot.py and shares these walks.
"""

from bootforge.errors import BootforgeError, FormatError, LimitError
from bootforge.formats.efi_memmap import (
    EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_MAX_SIZE, EFI_DESCRIPTOR_MIN_SIZE, EFI_DESCRIPTOR_PAGES_OFFSET,
    EFI_DESCRIPTOR_START_OFFSET, EFI_OEM_TYPES, EFI_OS_LOADER_TYPES, EFI_PAGE_SIZE, descriptor_struct,
)
from bootforge.memmap.formats import MapFormat
from bootforge.memmap.formats.common import check_fits, check_whole, sniffed_stride
from bootforge.memmap.model import U64_LIMIT, MemoryMap, MemoryRange

MAX_EFI_TYPE = 15       # EfiUnacceptedMemoryType, the last UEFI 2.10 defines


def check_descriptor_size(size, path, offset=None):
    if size < EFI_DESCRIPTOR_MIN_SIZE or size % 8:
        raise FormatError(f"EFI descriptor size {size} (must be >= 40 and a multiple of 8)",
                          path=path, offset=offset)
    if size > EFI_DESCRIPTOR_MAX_SIZE:
        raise LimitError(f"EFI descriptor size {size} is over 4096", path=path, offset=offset)


def read_descriptors(data, descriptor_size, path, base):
    """An EFI MemoryMap from descriptors *data* (at file offset *base*) of stride *descriptor_size*."""
    check_descriptor_size(descriptor_size, path, 0 if base else None)
    check_whole(data, descriptor_size, path, "EFI memory map", base)
    ranges = []
    for i, (typ, phys, virt, pages, attr) in enumerate(descriptor_struct(descriptor_size).iter_unpack(data)):
        if pages == 0:
            raise FormatError(f"descriptor {i} has NumberOfPages 0", path=path,
                              offset=base + i * descriptor_size + EFI_DESCRIPTOR_PAGES_OFFSET)
        size = pages * EFI_PAGE_SIZE
        if phys + size > U64_LIMIT:
            raise FormatError(f"descriptor {i} [{phys:#x} + {pages:#x} pages] ends past 2^64",
                              path=path, offset=base + i * descriptor_size + EFI_DESCRIPTOR_START_OFFSET)
        ranges.append(MemoryRange(phys, size, typ, attr, virtual_start=virt))
    return MemoryMap("efi", ranges, descriptor_size=descriptor_size)


def write_descriptors(memory_map, descriptor_size):
    """The descriptors of *memory_map* (whole pages only), each *descriptor_size* bytes."""
    check_descriptor_size(descriptor_size, None)
    # EFI_MEMORY_DESCRIPTOR: u32 Type, u64 PhysicalStart, NumberOfPages and Attribute;
    # the EFI readers accept a descriptor ending at 2^64 exactly.
    check_fits(memory_map, "an EFI memory map", end_limit=U64_LIMIT, attribute_bits=64)
    pack = descriptor_struct(descriptor_size).pack
    out = []
    for r in memory_map.ranges:
        if r.size % EFI_PAGE_SIZE:
            raise BootforgeError(f"range at {r.start:#x} of {r.size:#x} bytes is not whole EFI pages")
        out.append(pack(r.type, r.start, r.virtual_start, r.size // EFI_PAGE_SIZE, r.attributes or 0))
    return b"".join(out)


def _implausible(data, size):
    """The index and why of the first descriptor no firmware writes at stride *size*, or None:
    a type UEFI does not define (0-15, OEM 0x70000000-0x7fffffff, OS 0x80000000 and up), a
    PhysicalStart not on a 4 KiB page (UEFI 2.10 7.2: "must be aligned on a 4 KiB boundary"),
    no pages, or a range past 2^64. Read at the wrong stride, these fields hold other fields."""
    for i, (typ, phys, _virt, pages, _attr) in enumerate(descriptor_struct(size).iter_unpack(data)):
        if not (typ <= MAX_EFI_TYPE or typ in EFI_OEM_TYPES or typ in EFI_OS_LOADER_TYPES):
            return i, f"type {typ:#x}"
        if phys % EFI_PAGE_SIZE or not pages or phys + pages * EFI_PAGE_SIZE > U64_LIMIT:
            return i, f"PhysicalStart {phys:#x} with {pages} pages"
    return None


def descriptor_stride(data, path):
    """The stride of an efi-bin buffer given without --descriptor-size: of 48 (EDK2's) and 40
    (the packed descriptor), the one that divides the length; when both do (multiples of
    240 bytes), the one whose every descriptor is plausible; else refuse to guess."""
    stride = sniffed_stride(data, (EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_MIN_SIZE), _implausible, path,
                            ("descriptor", "descriptors"), "--descriptor-size")
    return EFI_DESCRIPTOR_DEFAULT_SIZE if stride is None else stride   # the whole-number check names it


def read_efi_bin(path, data, options):
    size = options.get("descriptor_size") or descriptor_stride(data, path)
    m = read_descriptors(data, size, path, 0)
    m.source = "efi-bin"
    if not options.get("descriptor_size"):
        m.facts["descriptor_size_sniffed"] = True
    return m


def write_efi_bin(memory_map, options):
    return write_descriptors(memory_map, options.get("descriptor_size") or memory_map.descriptor_size)


FORMATS = [
    MapFormat("efi-bin", "GetMemoryMap()'s buffer (--descriptor-size, else 48 or 40 sniffed)", read_efi_bin,
              write_efi_bin, family="efi", load_output=True),
]
