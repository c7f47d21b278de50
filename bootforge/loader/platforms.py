"""Platforms: the firmware memory map a loader starts from.

qemu-pc-seabios:<mem>
    qemu-system-x86_64's pc machine (i440fx, default CPU qemu64) with SeaBIOS, for any -m. Derived from real
    captures (tests/data/memmap-qemu-seabios-m256.txt, -m4096, and the
    fidelity matrix's dumps at 128M..5G), parametric in the memory size:
    QEMU puts min(ram, lowmem) below 4 GiB, where lowmem is 3 GiB once ram
    >= 3.5 GiB (pc_init1's gigabyte alignment) and the rest at 4 GiB;
    SeaBIOS lists [0, 0x9fc00) RAM, its 1 KiB EBDA at 0x9fc00 and the BIOS
    area [0xf0000, 1 MiB) reserved, RAM from 1 MiB to 128 KiB below the
    end of low RAM, those 128 KiB reserved (its high tables), the 256 KiB
    flash at 4 GiB - 256 KiB reserved, RAM above 4 GiB, and QEMU's reserved
    [0xfd00000000, 1 TiB) (the AMD HyperTransport hole; the default CPU
    model reports AuthenticAMD). INT 12h says 639 KiB.
qemu-pc-seabios-i386:<mem>
    The same machine under qemu-system-i386, whose default CPU qemu32 reports
    GenuineIntel: no HyperTransport hole, so one reserved entry fewer (observed:
    QEMU's -kernel hands the dump kernel 6 entries where qemu-system-x86_64
    hands 7; tests/data/mb-qemu-i386-256M-mb1.dump).
r820-efi
    A server-like EFI map (seed 004's Dell PowerEdge R820): boot-services
    data over the first 640 KiB and 200+ descriptors (bootforge/data/platforms/).
qemu-q35-ovmf:<mem>
    OVMF 2022.11's EFI map under QEMU q35 for any -m >= 128M, derived from
    GRUB lsefimmap captures at 256M..5G: the first 21 MiB fixed, OVMF's
    allocations at the top of low RAM moving with it, conventional memory
    between, q35's 2 GiB low-memory split from 2.75 GiB on, RAM above 4 GiB.
    (bootforge/data/platforms/qemu-q35-ovmf-512M.lsefimmap is the template.)
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
SEABIOS_HIGH_TABLES = 0x20000
SEABIOS_EBDA = 0x9FC00
QEMU_PC_LOWMEM_SPLIT = 0xE0000000     # ram >= this: only 3 GiB below 4 GiB
QEMU_PC_LOWMEM_GB_ALIGNED = 0xC0000000
QEMU_AMD_HT_HOLE = (0xFD00000000, 0x300000000)
MAX_PLATFORM_PATH = 4096            # PATH_MAX on Linux
# Built-in platform profiles: package data (pyproject package-data), read through
# importlib.resources so an installed bootforge finds them wherever it runs.
PLATFORM_DIR = files("bootforge").joinpath("data", "platforms")


@dataclass(frozen=True)
class QemuModel:
    """The QEMU invocation a platform stands for (binary, machine, CPU model and its vendor)."""
    binary: str
    machine: str
    cpu: str
    vendor: str                     # CPUID vendor of the CPU model (QEMU target/i386/cpu.c)
    firmware_args: tuple = ()

    def command(self, memory_bytes):
        return " ".join([self.binary, "-machine", self.machine, "-cpu", self.cpu,
                         "-m", f"{memory_bytes // MIB}M", *self.firmware_args])

    def to_json(self, memory_bytes):
        return {"binary": self.binary, "machine": self.machine, "cpu": self.cpu, "cpu_vendor": self.vendor,
                "command": self.command(memory_bytes)}


OVMF_PFLASH = ("-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
               "-drive", "if=pflash,format=raw,file=OVMF_VARS_4M.fd")
# One row per QEMU pc model: the default CPU of each binary (qemu64 is AMD, qemu32 Intel).
QEMU_PC_MODELS = {
    "qemu-pc-seabios": QemuModel("qemu-system-x86_64", "pc", "qemu64", "AuthenticAMD"),
    "qemu-pc-seabios-i386": QemuModel("qemu-system-i386", "pc", "qemu32", "GenuineIntel"),
}
QEMU_Q35_OVMF = QemuModel("qemu-system-x86_64", "q35", "qemu64", "AuthenticAMD", OVMF_PFLASH)


@dataclass
class Platform:
    name: str
    firmware: str                   # "bios" or "efi"
    memory_map: MemoryMap           # E820 for BIOS, EFI for EFI firmware
    int12_kib: int | None = None    # BIOS: INT 12h (and the BDA word at 0x413)
    ebda: int | None = None
    memory_bytes: int | None = None
    grub_heap_included: bool = False    # EFI map printed by GRUB itself (its heap already allocated)
    qemu: QemuModel | None = None       # the QEMU invocation this platform models (None: a map file)
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


def qemu_pc_seabios(ram, name="qemu-pc-seabios"):
    """The E820 map SeaBIOS reports under QEMU's pc machine with *ram* bytes; *name* picks
    the QEMU binary (QEMU_PC_MODELS): only an AMD CPU model gets the HyperTransport hole
    (QEMU 7.2 hw/i386/pc.c reserves it for IS_AMD_CPU)."""
    model = QEMU_PC_MODELS[name]
    if ram < 16 * MIB:
        raise RecipeError(f"{name} needs at least 16 MiB of RAM, not {ram:#x} bytes")
    if ram % MIB:
        raise RecipeError(f"{name}: QEMU rounds -m to whole MiB; give a multiple of 1M")
    below = QEMU_PC_LOWMEM_GB_ALIGNED if ram >= QEMU_PC_LOWMEM_SPLIT else ram
    above = ram - below
    ram_, reserved = E820Type.RAM, E820Type.RESERVED
    e = [(0, SEABIOS_EBDA, ram_), (SEABIOS_EBDA, 0xA0000 - SEABIOS_EBDA, reserved), (0xF0000, 0x10000, reserved),
         (MIB, below - SEABIOS_HIGH_TABLES - MIB, ram_),
         (below - SEABIOS_HIGH_TABLES, SEABIOS_HIGH_TABLES, reserved), (0xFFFC0000, 0x40000, reserved)]
    if above:
        e.append((1 << 32, above, ram_))
    if model.vendor == "AuthenticAMD":
        e.append((*QEMU_AMD_HT_HOLE, reserved))
    m = MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in e], source=name)
    return Platform(f"{name}:{ram // MIB}M", "bios", m, int12_kib=SEABIOS_EBDA // 1024,
                    ebda=SEABIOS_EBDA, memory_bytes=ram, qemu=model)


# q35 with OVMF: derived from GRUB's lsefimmap on OVMF 2022.11 at 256M, 512M, 1G, 2G, 3G, 5G
# (tests/data/load-ovmf-q35-*.lsefimmap, bootforge/data/platforms/qemu-q35-ovmf-512M.lsefimmap).
OVMF_TEMPLATE = "qemu-q35-ovmf-512M.lsefimmap"
OVMF_TEMPLATE_LOWMEM = 512 * MIB
OVMF_TEMPLATE_HIGH = "qemu-q35-ovmf-3072M.lsefimmap"
OVMF_FIXED_BELOW = 0x1500000        # [0, 21 MiB): identical for every -m
OVMF_PCI_HOLE = 0xB0000000          # q35: MMCONFIG from 2.75 GiB; entries there and above stay put
Q35_LOWMEM_SPLIT = 0xB0000000       # ram >= this: only 2 GiB below 4 GiB (pc_q35_init)
Q35_LOWMEM = 0x80000000


def qemu_q35_ovmf(ram):
    """OVMF's EFI map under QEMU q35 with *ram* bytes, as an EFI application sees it before it
    allocates anything of its own: the first 21 MiB are the same for every size, everything
    OVMF allocates at the top of low RAM moves with it, conventional memory fills the gap, and
    RAM above 4 GiB (ram >= 2.75 GiB: only 2 GiB below 4 GiB) is one conventional range."""
    if ram < 128 * MIB or ram % MIB:
        raise RecipeError("qemu-q35-ovmf needs at least 128 MiB, in whole MiB")
    lowmem = Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram
    # With RAM above 4 GiB OVMF allocates a little more at the top of low RAM (observed: 3G, 5G).
    name, base_low = (OVMF_TEMPLATE_HIGH, Q35_LOWMEM) if ram > lowmem else (OVMF_TEMPLATE, OVMF_TEMPLATE_LOWMEM)
    template = parse_lsefimmap(PLATFORM_DIR.joinpath(name).read_text(), name)
    shift = lowmem - base_low
    low = [r for r in template.ranges if r.start < OVMF_FIXED_BELOW]
    # GRUB's heap (loader code) and the conventional run below it are one conventional range here.
    movable = [r for r in template.ranges if OVMF_FIXED_BELOW <= r.start < OVMF_PCI_HOLE]
    first_fixed_top = next(r for r in movable
                           if r.type not in (EfiMemoryType.LOADER_CODE, EfiMemoryType.CONVENTIONAL)).start
    top = [MemoryRange(r.start + shift, r.size, r.type, r.attributes) for r in movable if r.start >= first_fixed_top]
    wb = next(r.attributes for r in low if r.type == EfiMemoryType.CONVENTIONAL)
    gap = MemoryRange(OVMF_FIXED_BELOW, first_fixed_top + shift - OVMF_FIXED_BELOW, EfiMemoryType.CONVENTIONAL, wb)
    high = [r for r in template.ranges if OVMF_PCI_HOLE <= r.start < 1 << 32]
    above = [MemoryRange(1 << 32, ram - lowmem, EfiMemoryType.CONVENTIONAL, wb)] if ram > lowmem else []
    ranges = [MemoryRange(r.start, r.size, r.type, r.attributes) for r in low] + [gap] + top + above + high
    return Platform(f"qemu-q35-ovmf:{ram // MIB}M", "efi", MemoryMap("efi", ranges, source="qemu-q35-ovmf"),
                    memory_bytes=ram, qemu=QEMU_Q35_OVMF)


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
        return Platform(name or str(path), "efi", parse_lsefimmap(path.read_text("latin-1"), str(path)),
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
    firmware = "efi" if m.family == "efi" else "bios"
    int12 = None
    if firmware == "bios":
        low = next((r for r in m.ranges if r.start == 0 and r.type == E820Type.RAM), None)
        int12 = min(low.size, 0xA0000) // 1024 if low else 0
    return Platform(name or str(path), firmware, m, int12_kib=int12,
                    ebda=int12 * 1024 if int12 else None)


def device_tree_platform(spec, base=None, cmdline=None):
    """A device-tree platform (bootforge/fdtboot/machines.py): a QEMU virt machine or a board DTB
    file; None for any other name. Its memory map is the one its DTB describes."""
    board = virt_board(spec, cmdline)
    if board is None:
        path = Path(spec) if base is None or Path(spec).is_absolute() else Path(base) / spec
        if len(spec) > MAX_PLATFORM_PATH or "\0" in spec or not is_dtb_file(path):
            return None
        board = file_board(path)
    memory_map = fdt_to_map(parse_dtb(board.dtb, board.name))
    qemu = None
    if board.machine is not None:
        m = board.machine
        qemu = QemuModel(m.binary, m.machine, m.cpu or "(default)", m.arch)
    return Platform(board.name, "fdt", memory_map, memory_bytes=board.memory_bytes, qemu=qemu, devicetree=board)


def resolve(spec, base=None):
    """A Platform from a recipe's or the command line's platform string."""
    if not isinstance(spec, str) or not spec:
        raise RecipeError("platform must be a string such as qemu-pc-seabios:256M")
    name, _, arg = spec.partition(":")
    board = device_tree_platform(spec, base)
    if board is not None:
        return board
    if name in QEMU_PC_MODELS:
        if not arg:
            raise RecipeError(f"{name} needs a memory size: {name}:256M")
        return qemu_pc_seabios(memory_size(arg, spec), name)
    if name == "r820-efi" and not arg:
        return r820_efi()
    if name == "qemu-q35-ovmf" and arg:
        return qemu_q35_ovmf(memory_size(arg, spec))
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
    known = "qemu-pc-seabios:<mem>, qemu-pc-seabios-i386:<mem>, qemu-q35-ovmf:<mem>, r820-efi, " + ", ".join(sorted(p.name.rsplit(".", 1)[0] for p in PLATFORM_DIR.iterdir()
                                                                   if not p.name.startswith("r820-efi.")))
    raise RecipeError(f"unknown platform {spec!r} (known: {known.rstrip(', ')}, or a map file)")
