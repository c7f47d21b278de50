"""Platforms: the firmware memory map a loader starts from.

qemu-pc-seabios:<mem>, qemu-pc-seabios-i386:<mem>, qemu-q35-ovmf:<mem>
    A machine of the registry (bootforge.machines: QEMU binary, machine, CPU, firmware, and the
    memory map its firmware reports for <mem>, QEMU's -m: a bare number is MiB).
qemu-virt-aarch64:<mem>, qemu-virt-arm:<mem>, qemu-virt-riscv64:<mem>
    A device-tree machine of the registry: firmware "fdt", the map its DTB (QEMU's dumpdtb) describes.
a .dtb file
    A board: its DTB's /memory is the RAM, no QEMU behind it.
r820-efi
    A server-like EFI map (seed 004's Dell PowerEdge R820): boot-services
    data over the first 640 KiB and 200+ descriptors (bootforge/data/platforms/).
a path
    Any map file bootforge memmap reads (E820 text/sysfs/binary, an EFI map,
    JSON, or a Multiboot dump whose EFI map tag 17 is taken when present).
"""

import json
import re
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from bootforge.errors import BootforgeError, RecipeError
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EfiMemoryAttribute, EfiMemoryType
from bootforge.machines import MACHINES, Machine, platform_syntax
# SeaBIOS's and QEMU's pc facts live with the machines; these names stay for their callers.
from bootforge.machines.qemu_x86 import QEMU_PC_LOWMEM_GB_ALIGNED, QEMU_PC_LOWMEM_SPLIT, SEABIOS_EBDA  # noqa: F401
from bootforge.memmap import io
from bootforge.memmap.io import map_to_json
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.memmap.formats.lsefimmap import parse_lsefimmap as _parse_lsefimmap
from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot.machines import file_board, is_dtb_file, virt_board
from bootforge.memmap.convert import fdt_to_map
from bootforge.schema import parse_size

MIB = 1 << 20
GIB = 1 << 30
MAX_PLATFORM_PATH = 4096            # PATH_MAX on Linux
# Built-in platform profiles: package data (pyproject package-data), read through
# importlib.resources so an installed bootforge finds them wherever it runs.
PLATFORM_DIR = files("bootforge").joinpath("data", "platforms")


# The pc machines by name (for callers that ask whether a platform is one).
QEMU_PC_MODELS = {m.name: m for m in MACHINES.values() if m.machine == "pc"}


@dataclass
class Platform:
    name: str
    firmware: str                   # "bios", "uefi" or "fdt" (SeaBIOS, OVMF: only in text)
    memory_map: MemoryMap           # E820 for BIOS, EFI for EFI firmware
    int12_kib: int | None = None    # BIOS: INT 12h (and the BDA word at 0x413)
    ebda: int | None = None
    memory_bytes: int | None = None
    grub_heap_included: bool = False    # EFI map printed by GRUB itself (its heap already allocated)
    qemu: Machine | None = None     # the machine this platform models (None: a map file or a board DTB)
    devicetree: object = None           # firmware "fdt": the bootforge.fdtboot.machines.DtBoard (machine DTB)

    @property
    def qemu_command(self):
        return self.qemu.command(self.memory_bytes) if self.qemu is not None else None

    def to_json(self):
        return {"name": self.name, "firmware": self.firmware, "int12_kib": self.int12_kib,
                "ebda": self.ebda, "memory_bytes": self.memory_bytes,
                "qemu": self.qemu.to_json(self.memory_bytes) if self.qemu is not None else None}


def memory_size(text, where="platform"):
    """The bytes of a platform's `:<mem>`: QEMU's -m syntax, where a bare number is MiB
    (QEMU's qemu-options.hx: "-m [size=]megs"); '256M', '3.5G', '5G', '1024' (MiB). Every other
    size in bootforge is schema.parse_size's, where a bare number is bytes."""
    text = str(text)
    bare = text.strip().replace(".", "", 1).isdigit()
    try:
        return parse_size(text + "M" if bare else text, where)
    except RecipeError:
        raise RecipeError(f"{where}: cannot read the memory size {text!r} (like 256M, 3.5G, 5G; "
                          f"a bare number is MiB, as QEMU's -m)") from None


def machine_platform(machine, ram):
    """The Platform of *machine* (bootforge.machines) with *ram* bytes: the map its firmware reports."""
    got = machine.memory_map(ram, machine.name)
    return Platform(f"{machine.name}:{ram // MIB}M", machine.firmware,
                    got.memory_map, int12_kib=got.int12_kib, ebda=got.ebda, memory_bytes=ram, qemu=machine)


def qemu_pc_seabios(ram, name="qemu-pc-seabios"):
    """The Platform of QEMU's pc machine with SeaBIOS (*name*: which binary) with *ram* bytes."""
    return machine_platform(MACHINES[name], ram)


def qemu_q35_ovmf(ram):
    """The Platform of QEMU's q35 machine with OVMF with *ram* bytes."""
    return machine_platform(MACHINES["qemu-q35-ovmf"], ram)


def r820_efi():
    """Seed 004's server: boot-services data over the first 640 KiB, 200+ descriptors."""
    with as_file(PLATFORM_DIR.joinpath("r820-efi.json")) as path:
        return from_file(path, name="r820-efi")


def build_r820_map():
    """The EFI map of bootforge/data/platforms/r820-efi.json (regenerate: python -m bootforge.loader.platforms).

    A synthetic map shaped after seed 004's Dell PowerEdge R820 and small servers
    with 200+ descriptors: the first 640 KiB is boot-services code/data (nothing
    conventional below 1 MiB, so AllocateMaxAddress(1 MiB) fails), low RAM is
    fragmented into conventional, boot-services, loader and runtime pieces
    (runtime ones with EFI_MEMORY_RUNTIME), ACPI tables and NVS below the 32-bit
    MMIO window, MMIO with RUNTIME, and 30 GiB of RAM above 4 GiB.
    """
    T, A = EfiMemoryType, EfiMemoryAttribute
    wb = A.UC | A.WC | A.WT | A.WB          # 0xF
    rt = A.RUNTIME
    mmio = rt | A.UC
    conv, bs_code, bs_data = T.CONVENTIONAL, T.BOOT_SERVICES_CODE, T.BOOT_SERVICES_DATA
    e = [(bs_data, 0, 0x1000, wb), (bs_code, 0x1000, 0x3F000, wb), (bs_data, 0x40000, 0x5F000, wb),
         (T.RESERVED, 0x9F000, 0x1000, 0), (T.RESERVED, 0xE0000, 0x20000, 0)]
    at = 0x100000
    kinds = [(conv, wb), (bs_data, wb), (conv, wb), (bs_code, wb), (T.LOADER_DATA, wb), (conv, wb), (bs_data, wb),
             (T.RUNTIME_SERVICES_DATA, wb | rt), (conv, wb), (T.RUNTIME_SERVICES_CODE, wb | rt)]
    i = 0
    while len(e) < 220:
        typ, attr = kinds[i % len(kinds)]
        pages = 1 + (i * 2654435761) % 4096 if typ == conv else 1 + (i * 40503) % 96
        e.append((typ, at, pages * 4096, attr))
        at += pages * 4096
        i += 1
    e.append((conv, at, 0x78000000 - at, wb))
    e += [(T.ACPI_RECLAIM, 0x78000000, 0x100000, wb), (T.ACPI_NVS, 0x78100000, 0x400000, wb),
          (T.RESERVED, 0x78500000, 0x7B00000, 0),
          (T.MMIO, 0x80000000, 0x10000000, mmio), (T.MMIO, 0xFEC00000, 0x1000, mmio),
          (T.MMIO, 0xFED00000, 0x100000, mmio), (T.MMIO, 0xFF000000, 0x1000000, mmio),
          (conv, 1 << 32, 30 << 30, wb)]
    return MemoryMap("efi", [MemoryRange(a, s, t, at_) for t, a, s, at_ in e], source="r820-efi")


def write_r820():
    doc = {"comment": "synthetic server EFI map after seed 004 (Dell PowerEdge R820): "
                      "bootforge.loader.platforms.build_r820_map()", **map_to_json(build_r820_map())}
    Path(str(PLATFORM_DIR.joinpath("r820-efi.json"))).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    write_r820()


def parse_lsefimmap(text, where="lsefimmap"):
    """An EFI MemoryMap from GRUB's `lsefimmap` table (the reader is the memmap format's)."""
    return _parse_lsefimmap(text, where, error=RecipeError)


def from_file(path, name=None, read_map=None):
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"platform map file {path} does not exist")
    fmt = io.guess_format(path)
    if fmt == "lsefimmap":
        return Platform(name or str(path), "uefi", parse_lsefimmap(path.read_text("latin-1"), str(path)),
                        grub_heap_included=True)
    if fmt is None:
        raise RecipeError(f"{path}: cannot tell which memory-map format this is")
    if fmt == "mbdump":
        try:
            m = io.read_map(path, "mbdump-efi")
        except BootforgeError:
            m = io.read_map(path, "mbdump")
    else:
        m = io.read_map(path, fmt)
    firmware = "uefi" if m.family == "efi" else "bios"
    int12 = None
    if firmware == "bios":
        low = next((r for r in m.ranges if r.start == 0 and r.type == E820Type.RAM), None)
        int12 = min(low.size, 0xA0000) // 1024 if low else 0
    return Platform(name or str(path), firmware, m, int12_kib=int12,
                    ebda=int12 * 1024 if int12 else None)


def device_tree_platform(spec, base=None, cmdline=None):
    """A device-tree platform: a device-tree machine of the registry (bootforge/machines/qemu_virt.py)
    or a board DTB file; None for any other name. Its memory map is the one its DTB describes."""
    name, _, arg = spec.partition(":")
    machine = MACHINES.get(name)
    if machine is not None and machine.device_tree:
        if not arg:
            raise RecipeError(f"{name} needs a memory size: {name}:512M")
        board = virt_board(machine, memory_size(arg, spec), cmdline)
    else:
        path = Path(spec) if base is None or Path(spec).is_absolute() else Path(base) / spec
        if len(spec) > MAX_PLATFORM_PATH or "\0" in spec or not is_dtb_file(path):
            return None
        board = file_board(path)
    memory_map = fdt_to_map(parse_dtb(board.dtb, board.name))
    return Platform(board.name, "fdt", memory_map, memory_bytes=board.memory_bytes, qemu=board.machine,
                    devicetree=board)


def resolve(spec, base=None):
    """A Platform from a recipe's or the command line's platform string."""
    if not isinstance(spec, str) or not spec:
        raise RecipeError("platform must be a string such as qemu-pc-seabios:256M")
    name, _, arg = spec.partition(":")
    board = device_tree_platform(spec, base)
    if board is not None:
        return board
    if name in MACHINES:
        if not arg:
            raise RecipeError(f"{name} needs a memory size: {name}:256M")
        return machine_platform(MACHINES[name], memory_size(arg, spec))
    if name == "r820-efi" and not arg:
        return r820_efi()
    if "\0" in spec or len(spec.encode("utf-8", "surrogateescape")) > MAX_PLATFORM_PATH:
        # Not a name nor a path the system can open (NUL byte, ENAMETOOLONG): say so, not OSError.
        shown = spec if len(spec) <= 60 else spec[:60] + "..."
        raise RecipeError(f"platform {shown!r} is neither a known platform nor a usable path "
                          f"({'a NUL byte' if chr(0) in spec else f'longer than {MAX_PLATFORM_PATH} bytes'})")
    # Built-in profiles are looked up by name in the package's listing, never by building a
    # path from the user's string (a 300-byte name is ENAMETOOLONG for stat, seen by fuzzing).
    builtin = next((p for p in PLATFORM_DIR.iterdir()
                    if p.name in (f"{spec}.json", f"{spec}.lsefimmap")), None)
    if builtin is not None:
        with as_file(builtin) as path:
            return from_file(path, name=spec)
    path = Path(spec)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    try:
        exists = path.exists()
    except OSError as exc:      # a component longer than NAME_MAX (ENAMETOOLONG) and the like
        raise RecipeError(f"platform map file {str(path)[:60]!r}...: {exc.strerror}") from None
    if exists:
        return from_file(path)
    if "/" in spec or Path(spec).suffix:
        # Written as a file (a directory or an extension), not a platform name: the file is missing.
        raise RecipeError(f"platform map file {path}: No such file or directory")
    known = platform_syntax() + ", r820-efi, " + ", ".join(sorted(p.name.rsplit(".", 1)[0] for p in PLATFORM_DIR.iterdir()
                                                                   if not p.name.startswith("r820-efi.")))
    raise RecipeError(f"unknown platform {spec!r} (known: {known.rstrip(', ')}, or a map file)")
