"""QEMU's device-tree machines, each declared once, with the DTB the machine itself makes.

    qemu-virt-aarch64:<mem>   qemu-system-aarch64 -M virt -cpu cortex-a57 (RAM at 0x40000000)
    qemu-virt-arm:<mem>       qemu-system-arm -M virt -cpu cortex-a15 (RAM at 0x40000000)
    qemu-virt-riscv64:<mem>   qemu-system-riscv64 -M virt, OpenSBI fw_dynamic (RAM at 0x80000000)
    a .dtb file               a board: its /memory is the RAM, no QEMU behind it

The machine's DTB is never written by hand: `-machine virt,dumpdtb=F` makes QEMU write
it, once per QEMU version, machine and memory size, into a cache directory
($BOOTFORGE_CACHE, else $XDG_CACHE_HOME/bootforge, else ~/.cache/bootforge; never in the
repository). QEMU 7.2 dumps at the end of its own boot-time edits (hw/arm/boot.c
arm_load_dtb: the /memory node, /chosen edits and /psci; hw/riscv/boot.c
riscv_load_fdt after fdt_pack), so the dump is made without -kernel/-initrd/-append
on ARM (the policy redoes what load_dtb does for a kernel) and, on RISC-V, where
hw/riscv/virt.c create_fdt() writes bootargs while it builds the tree, with the
command line and a placeholder kernel (the placeholder's bytes do not enter the DTB).

This module is the machine declarations of issue "bootloaders and machines": one
`Machine` each in MACHINES; it moves into the machine registry when that lands.
"""

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootforge.errors import RecipeError, ToolError
from bootforge.fdt.parse import parse_dtb

MIB = 1 << 20
GIB = 1 << 30
DUMPDTB_TIMEOUT = 60


@dataclass(frozen=True)
class Machine:
    name: str                   # platform name before ":<mem>"
    arch: str                   # aarch64, arm, riscv64
    binary: str                 # QEMU binary
    machine: str                # -M
    cpu: str | None             # -cpu (None: the machine's default)
    ram_base: int
    firmware: str               # what runs before the kernel: "qemu-bootloader" or "opensbi-fw_dynamic"
    uart: tuple                 # (kind, MMIO base) of the console the dump kernel writes to
    boot_registers: tuple       # the registers that carry the boot arguments (gdb register names)
    gdb_registers: tuple        # the order of registers in a gdbstub `g` reply (QEMU gdb-xml)
    dump_kernel: str            # the dump kernel's Image (build/stubs/...)
    min_mem: int = 128 * MIB
    cmdline_in_machine_dtb: bool = False    # virt writes bootargs while building the tree (RISC-V)

    def qemu_args(self, mem):
        return [self.binary, "-M", self.machine, *(["-cpu", self.cpu] if self.cpu else []), "-m", f"{mem // MIB}M"]


AARCH64_GDB = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "cpsr")          # gdb-xml/aarch64-core.xml
ARM_GDB = tuple(f"r{i}" for i in range(13)) + ("sp", "lr", "pc") + ("cpsr",)      # gdb-xml/arm-core.xml (+ f0-f7, fps)
RISCV64_GDB = ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", *(f"a{i}" for i in range(8)),
               *(f"s{i}" for i in range(2, 12)), "t3", "t4", "t5", "t6", "pc")   # gdb-xml/riscv-64bit-cpu.xml

MACHINES = {m.name: m for m in (
    Machine("qemu-virt-aarch64", "aarch64", "qemu-system-aarch64", "virt", "cortex-a57", 0x40000000,
            "qemu-bootloader", ("pl011", 0x09000000), ("x0", "x1", "x2", "x3"), AARCH64_GDB,
            "build/stubs/dtdump-aarch64.Image"),
    Machine("qemu-virt-arm", "arm", "qemu-system-arm", "virt", "cortex-a15", 0x40000000,
            "qemu-bootloader", ("pl011", 0x09000000), ("r0", "r1", "r2"), ARM_GDB,
            "build/stubs/dtdump-arm.Image"),
    Machine("qemu-virt-riscv64", "riscv64", "qemu-system-riscv64", "virt", None, 0x80000000,
            "opensbi-fw_dynamic", ("ns16550", 0x10000000), ("a0", "a1"), RISCV64_GDB,
            "build/stubs/dtdump-riscv64.Image", cmdline_in_machine_dtb=True),
)}


@dataclass
class DtBoard:
    """What a device-tree platform gives a loader: the machine (None for a board DTB), the
    RAM, and the DTB the machine hands its boot loader (bytes, before any boot edit)."""
    name: str
    machine: Machine | None
    memory_bytes: int
    ram_base: int
    dtb: bytes
    dtb_source: str                         # "qemu dumpdtb (QEMU 7.2.x, cached at ...)" or the file
    cmdline: str | None = None              # the command line the machine DTB was made with (RISC-V)
    user_dtb: tuple | None = None           # (path, bytes) given with --dtb / [load] dtb (QEMU -dtb)
    facts: dict = field(default_factory=dict)


def cache_dir():
    base = os.environ.get("BOOTFORGE_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bootforge"


def qemu_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{binary} does not run ({exc}); install qemu-system-arm / qemu-system-misc") from None
    m = re.search(r"version (\S+)", out)
    if not m:
        raise ToolError(f"{binary} --version printed no version")
    return m.group(1)


def placeholder_kernel():
    """The stand-in kernel QEMU needs before -append is allowed (its bytes never enter the DTB)."""
    return bytes.fromhex("6f000000") * 16


def machine_dtb(machine, mem, cmdline=None, bios=None):
    """(DTB bytes, where they came from) of *machine* with *mem* bytes of RAM, from QEMU's
    dumpdtb, cached per QEMU version. *bios*: a firmware file run with -bios (QEMU builds a
    different tree when firmware is loaded: observed without gpio-keys and the PL061)."""
    version = qemu_version(machine.binary)
    key = f"{machine.name}-{mem // MIB}M"
    if bios is not None:
        key += "-bios-" + hashlib.sha256(Path(bios).read_bytes()).hexdigest()[:16]
    if machine.cmdline_in_machine_dtb and cmdline:
        key += "-cmdline-" + hashlib.sha256(cmdline.encode()).hexdigest()[:16]
    path = cache_dir() / "qemu-dtb" / version / f"{key}.dtb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / "dump.dtb"
            argv = machine.qemu_args(mem)
            argv[2] = f"{machine.machine},dumpdtb={out}"
            argv += ["-display", "none", "-nographic", "-monitor", "none", "-serial", "none"]
            if bios is not None:
                argv += ["-bios", str(bios), "-nic", "none"]
            if machine.cmdline_in_machine_dtb and cmdline:
                kernel = Path(tmp) / "placeholder"
                kernel.write_bytes(placeholder_kernel())
                argv += ["-kernel", str(kernel), "-append", cmdline]
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=DUMPDTB_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ToolError(f"{machine.binary} dumpdtb: {exc}") from None
            if not out.exists():
                raise ToolError(f"{machine.binary} wrote no DTB: {proc.stderr.strip()[:200]}")
            os.replace(out, path)
    return path.read_bytes(), f"QEMU {version} -machine {machine.machine},dumpdtb (cached at {path})"


def parse_mem(text, where):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([MG]?)i?B?\s*", str(text), re.I)
    if not m:
        raise RecipeError(f"{where}: cannot read the memory size {text!r} (like 512M, 2G)")
    unit = GIB if m.group(2).upper() == "G" else MIB
    return int(float(m.group(1)) * unit)


def virt_board(spec, cmdline=None):
    """The DtBoard of a `qemu-virt-<arch>:<mem>` platform string, or None for another name."""
    name, _, arg = spec.partition(":")
    machine = MACHINES.get(name)
    if machine is None:
        return None
    if not arg:
        raise RecipeError(f"{name} needs a memory size: {name}:512M")
    mem = parse_mem(arg, spec)
    if mem < machine.min_mem or mem % MIB:
        raise RecipeError(f"{name}: give at least {machine.min_mem // MIB} MiB in whole MiB, not {arg!r}")
    dtb, source = machine_dtb(machine, mem, cmdline)
    return DtBoard(f"{name}:{mem // MIB}M", machine, mem, machine.ram_base, dtb, source,
                   cmdline=cmdline if machine.cmdline_in_machine_dtb else None)


def file_board(path):
    """A user's board DTB as the platform: RAM from its first /memory node."""
    data = Path(path).read_bytes()
    tree = parse_dtb(data, path)
    memory = [n for n in tree.root.children if n.name == "memory" or n.name.startswith("memory@")]
    if not memory or not memory[0].prop("reg"):
        raise RecipeError(f"{path}: the board DTB has no /memory node with reg (its RAM is unknown)")
    acells = tree.root.cell("#address-cells", 2)
    scells = tree.root.cell("#size-cells", 1)
    reg = memory[0].prop("reg")
    if len(reg) < 4 * (acells + scells):
        raise RecipeError(f"{path}: /{memory[0].name} reg is shorter than one (address, size) pair")
    base = int.from_bytes(reg[:4 * acells], "big")
    size = int.from_bytes(reg[4 * acells:4 * (acells + scells)], "big")
    return DtBoard(str(path), None, size, base, data, f"the board DTB {path}")


def is_dtb_file(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\xd0\x0d\xfe\xed"
    except OSError:
        return False
