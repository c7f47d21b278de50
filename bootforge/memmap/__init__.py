"""Memory maps: one model (MemoryMap) that every reader, writer and check goes through.

- model: MemoryRange, MemoryMap and the unified type vocabulary.
- ops: Linux's e820__update_table sanitize, range update/remove, carve, find_free.
- convert: EFI -> E820 (Linux stub, Xen), E820 -> Multiboot, map <-> FDT.
- formats/: the format registry, one module per family (e820, efi, multiboot, fdt,
  json, smbios, lsefimmap, mbdump, table): reader, writer, sniffer, name.
- io: read_map / write_map / guess_format / prepare_for, dispatching through it.
- verify: the invariants of a verified map as named checks (1-5, 8).
- placement: the placement invariants (6, 7, 9) a loader's decisions must meet.
- svg: a drawing on a broken axis.
- inspect, dtb_report: the `bootforge inspect` reports of raw maps and of DTBs.
"""

from bootforge.memmap.model import MemoryMap, MemoryRange, MemoryMapError  # noqa: F401
from bootforge.memmap.ops import (  # noqa: F401
    carve, find_free, range_remove, range_update, sanitize, sanitize_entries,
)
