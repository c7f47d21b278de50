"""DTS source to DTB bytes, as `dtc -I dts -O dtb` (dtc 1.6) does (dgibson/dtc dtc.c main).

The steps are dtc's, in dtc's order: lex and parse (dts_lexer, dts_parser),
fill full paths, the checks (dts_checks: they also resolve references and
allocate phandles), -@ __symbols__, a plugin's __fixups__ and
__local_fixups__, -s sorting, then the blob (bootforge.fdt.build with dtc's
layout) with -R empty reservations and -p / -S / -a padding.
"""

import gc
import struct
from dataclasses import dataclass, field

from bootforge.errors import BootforgeError
from bootforge.fdt.build import build_dtb
from bootforge.fdt.dts_checks import run_checks
from bootforge.fdt.dts_lexer import DtsError, tokenize
from bootforge.fdt.dts_parser import parse_tokens
from bootforge.fdt.dts_tree import (
    PHANDLE_BOTH, PHANDLE_EPAPR, PHANDLE_LEGACY, fill_fullpaths, generate_fixups, generate_label_tree,
    sort_tree, to_device_tree,
)
from bootforge.formats.fdt import FDT_HEADER_STRUCT

PHANDLE_FORMATS = {"epapr": PHANDLE_EPAPR, "legacy": PHANDLE_LEGACY, "linux": PHANDLE_LEGACY,
                   "both": PHANDLE_BOTH}
# Padding options beyond this are refused: nothing real asks for more, and the blob is built in memory.
MAX_PAD = 256 << 20


class DtsRefused(DtsError):
    """dtc's checks found an error: *messages* are everything dtc printed before refusing."""

    def __init__(self, message, messages):
        super().__init__(message)
        self.messages = messages


@dataclass
class DtcOptions:
    """dtc's options for DTS input and DTB output."""

    symbols: bool = False           # -@
    phandle_format: str = "epapr"   # -H
    boot_cpuid: int | None = None   # -b
    reserve: int = 0                # -R
    pad: int = 0                    # -p
    space: int = 0                  # -S
    align: int = 0                  # -a
    sort: bool = False              # -s
    force: bool = False             # -f
    quiet: int = 0                  # -q (repeatable)
    search_path: list = field(default_factory=list)     # -i
    checks: list = field(default_factory=list)          # -W / -E: [("W", "no-foo"), ...]
    outname: str = "-"              # -o as dtc names it in messages without a position


@dataclass
class Compiled:
    dtb: bytes
    messages: list                  # dtc's stderr lines (warnings)
    tree: object = None             # the DtInfo


def compile_dts(data, name, options=None):
    """Compile DTS *data* (bytes; *name* is its file name for messages and includes).

    :returns: Compiled(dtb, messages).
    :raises DtsError: a syntax or semantic error (one line, dtc's file:line.column and words);
        DtsRefused when an error-level check fails (dtc's "Input tree has errors").
    """
    o = options or DtcOptions()
    if o.pad and o.space:
        raise DtsError("Can't set both -p and -S")
    if o.align and o.align & (o.align - 1):
        raise DtsError(f'Invalid argument "{o.align}" to -a option')
    for value, what in ((o.pad, "-p"), (o.space, "-S"), (o.align, "-a"), (o.reserve * 16, "-R")):
        if value < 0 or value > MAX_PAD:
            raise DtsError(f"{what} {value} is outside 0..{MAX_PAD} (bootforge's limit)")
    # The cyclic collector would walk every token and node again and again while they are
    # built (a third of the time on a large tree); nothing here needs it until the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compile(data, name, o)
    finally:
        if collecting:
            gc.enable()


def _compile(data, name, o):
    lexer = tokenize(name, data, o.search_path)
    dti = parse_tokens(lexer)
    if o.boot_cpuid is not None:
        dti.boot_cpuid = o.boot_cpuid
    dti.outname = o.outname
    dti.phandle_format = PHANDLE_FORMATS[o.phandle_format]
    dti.generate_symbols = o.symbols
    fill_fullpaths(dti.root)
    try:
        messages, failed = run_checks(dti, o.checks, o.quiet)
    except ValueError as exc:
        raise DtsError(str(exc)) from None
    if failed:
        first = next((m for m in messages if ": ERROR (" in m), messages[0] if messages else "")
        if not o.force:
            raise DtsRefused(first.rstrip("\n"), messages + ["ERROR: Input tree has errors, aborting "
                                                             "(use -f to force output)"])
        if o.quiet < 3:
            messages.append("Warning: Input tree has errors, output forced")
    if o.symbols:
        generate_label_tree(dti, "__symbols__", True)
    if dti.plugin:
        try:
            generate_fixups(dti)
        except ValueError as exc:
            raise DtsError(str(exc)) from None
    messages += dti.warnings
    if o.sort:
        sort_tree(dti)
    tree = to_device_tree(dti)
    tree.reservations += [(0, 0)] * o.reserve
    try:
        blob = build_dtb(tree, fresh_layout=True)
    except BootforgeError as exc:
        raise DtsError(exc.message) from None
    blob, warning = _pad(blob, o)
    if warning and o.quiet < 1:
        messages.append(warning)
    return Compiled(blob, messages, dti)


def _pad(blob, o):
    """dtc's dt_to_blob padding: -S to a minimum size, -p extra bytes, -a alignment."""
    total = len(blob)
    padlen = 0
    warning = None
    if o.space > 0:
        padlen = o.space - total
        if padlen < 0:
            padlen = 0
            warning = f"Warning: blob size {total} >= minimum size {o.space}"
    if o.pad > 0:
        padlen = o.pad
    if o.align > 0:
        padlen = ((total + padlen + o.align - 1) & ~(o.align - 1)) - total
    if padlen <= 0:
        return blob, warning
    header = list(struct.unpack_from(FDT_HEADER_STRUCT, blob))
    header[1] = total + padlen
    return struct.pack(FDT_HEADER_STRUCT, *header) + blob[struct.calcsize(FDT_HEADER_STRUCT):] + bytes(padlen), \
        warning


def _recipe_fields():
    # Function-level import: schema is only needed by [dtb] recipes.
    from bootforge.schema import Field
    return (
        Field("source", str, meaning="the DTS file, relative to the recipe", text="path"),
        Field("output", str, None, "the DTB to write (default: the recipe's name with .dtb)", text="path"),
        Field("symbols", bool, False, "add __symbols__ (dtc -@)"),
        Field("phandle_format", str, "epapr", "phandle properties (dtc -H)", choices=tuple(PHANDLE_FORMATS)),
        Field("boot_cpu", int, None, "boot_cpuid_phys (dtc -b)", min=0, max=0xFFFFFFFF),
        Field("reserve", int, 0, "extra empty reservation entries (dtc -R)", min=0, max=MAX_PAD // 16),
        Field("pad", int, 0, "zero bytes after the blob (dtc -p)", min=0, max=MAX_PAD),
        Field("space", int, 0, "minimum blob size (dtc -S)", min=0, max=MAX_PAD),
        Field("align", int, 0, "blob size alignment (dtc -a)", min=0, max=MAX_PAD),
        Field("include", list, [], "directories for /include/ and /incbin/ (dtc -i), relative to the recipe"),
        Field("sort", bool, False, "sort nodes and properties (dtc -s)"),
    )


def build_dtb_recipe(path, table, output):
    """A [dtb] recipe: compile its source with its dtc options; writes *output*."""
    # Function-level import: fileio and schema only for [dtb] recipes.
    from bootforge.fileio import read_input, write_atomic
    from bootforge.schema import validate
    values = validate(table["dtb"], _recipe_fields(), "dtb")
    base = path.parent
    source = base / values["source"]
    opts = DtcOptions(symbols=values["symbols"], phandle_format=values["phandle_format"],
                      boot_cpuid=values.get("boot_cpu"), reserve=values["reserve"], pad=values["pad"],
                      space=values["space"], align=values["align"], sort=values["sort"],
                      search_path=[str(base / d) for d in values["include"]], outname=str(output))
    result = compile_dts(read_input(source), str(source), opts)
    write_atomic(output, result.dtb)
    return {"format": "dtb", "size": len(result.dtb), "source": str(source), "warnings": result.messages}
