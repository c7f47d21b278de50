"""The DTB a device-tree machine itself makes, and a board's DTB file as a platform.

The machines (qemu-virt-aarch64, qemu-virt-arm, qemu-virt-riscv64) are declared in the
machine registry (bootforge/machines/qemu_virt.py); a .dtb file is a board: its /memory
is the RAM, no QEMU behind it.

The machine's DTB is never written by hand: `-machine virt,dumpdtb=F` makes QEMU write
it, once per QEMU version, machine and memory size, into a cache directory
($BOOTFORGE_CACHE, else $XDG_CACHE_HOME/bootforge, else ~/.cache/bootforge; never in the
repository). QEMU 7.2 dumps at the end of its own boot-time edits (hw/arm/boot.c
arm_load_dtb: the /memory node, /chosen edits and /psci; hw/riscv/boot.c
riscv_load_fdt after fdt_pack), so the dump is made without -kernel/-initrd/-append
on ARM (the policy redoes what load_dtb does for a kernel) and, on RISC-V, where
hw/riscv/virt.c create_fdt() writes bootargs while it builds the tree, with the
command line and a placeholder kernel (the placeholder's bytes do not enter the DTB).
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
DUMPDTB_TIMEOUT = 60
DUMPDTB_TB_MIB = 8          # the TCG code buffer of a dumpdtb run (it translates nothing)


@dataclass
class DtBoard:
    """What a device-tree platform gives a loader: the machine (None for a board DTB), the
    RAM, and the DTB the machine hands its boot loader (bytes, before any boot edit)."""
    name: str
    machine: object | None                  # a bootforge.machines.Machine (dtb="dumpdtb")
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
            # TCG reserves its code buffer (1 GiB by default in QEMU 7.2) before the machine is built;
            # dumpdtb runs no guest code, and without this the dump fails under a capped address space
            # ("allocate 1073741824 bytes for jit buffer: Cannot allocate memory", RLIMIT_AS 1 GiB).
            # The tree is the same but for its per-run rng-seed and kaslr-seed (observed, dtc -O dts).
            argv += ["-accel", f"tcg,tb-size={DUMPDTB_TB_MIB}"]
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


def virt_board(machine, mem, cmdline=None):
    """The DtBoard of a device-tree *machine* of the registry with *mem* bytes of RAM."""
    if mem < machine.min_memory or mem % MIB:
        raise RecipeError(f"{machine.name}: give at least {machine.min_memory // MIB} MiB in whole MiB, "
                          f"not {mem:#x} bytes")
    dtb, source = machine_dtb(machine, mem, cmdline)
    return DtBoard(f"{machine.name}:{mem // MIB}M", machine, mem, machine.ram_base, dtb, source,
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
