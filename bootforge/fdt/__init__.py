"""Flattened device trees: parse a DTB, build one, print it as dtc does.

- tree: DeviceTree, FdtNode, FdtProperty (the model).
- parse: parse_dtb(), defensive against lying headers and deep nesting.
- build: build_dtb(), byte-identical to the input when the tree is unchanged.
- dts: to_dts(), the text `dtc -I dtb -O dts` prints.
(The `bootforge inspect` report of a DTB is bootforge.memmap.dtb_report: it shows
the memory map, and fdt sits below memmap.)
"""

from bootforge.fdt.tree import DeviceTree, FdtNode, FdtProperty  # noqa: F401
from bootforge.fdt.parse import parse_dtb, MAX_DEPTH  # noqa: F401
from bootforge.fdt.build import build_dtb  # noqa: F401
from bootforge.fdt.dts import to_dts  # noqa: F401
