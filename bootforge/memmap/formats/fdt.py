"""Device trees as memory maps: /memory, /reserved-memory and the reservation block.

The conversion rules are bootforge.memmap.convert's (fdt_to_map, map_to_fdt).
"""

from bootforge.errors import FormatError
from bootforge.fdt.build import build_dtb
from bootforge.fdt.parse import parse_dtb
from bootforge.formats.fdt import FDT_MAGIC
from bootforge.memmap.convert import fdt_to_map, map_to_fdt
from bootforge.memmap.formats import MapFormat

_MAGIC = FDT_MAGIC.to_bytes(4, "big")


def read_fdt(path, data, options):
    try:
        return fdt_to_map(parse_dtb(data, path))
    except FormatError as exc:
        raise exc.located(path=path) from None


def write_fdt(memory_map, options):
    return build_dtb(map_to_fdt(memory_map))


FORMATS = [
    MapFormat("fdt", "a flattened device tree (DTB)", read_fdt, write_fdt,
              sniff=lambda head, path: head[:4] == _MAGIC, family="e820"),
]
