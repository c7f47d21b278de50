"""Machines, each declared once (one module per family, one line in MACHINE_MODULES).

A `Machine` is what QEMU is when bootforge runs it and what `bootforge load`
models: the QEMU binary, machine type and CPU model (its CPUID vendor), the
firmware (`bios` or `uefi`; SeaBIOS/OVMF only in text; `fdt` for a device-tree
machine, whose firmware hands the kernel a DTB), its files and their Debian
package, the memory-map builder for a memory size, the serial and debug ports,
the gdbstub's register layout and how a boot medium is attached. A device-tree
machine also declares where its RAM starts, the registers its kernel entry gets
and that its DTB comes from QEMU's `-machine NAME,dumpdtb=` (no E820, no INT 12h).
`load --platform NAME:<mem>` (and the command line it prints), `verify`, the
image tests and the fidelity matrix all read this one declaration.

    MACHINES["qemu-pc-seabios-i386"].command(256 << 20)
    # 'qemu-system-i386 -machine pc -cpu qemu32 -m 256M'
"""

import importlib
from dataclasses import dataclass, field
from typing import Callable

from bootforge.errors import RecipeError

MIB = 1 << 20
FIRMWARES = ("bios", "uefi")
DEVICE_TREE = "fdt"                 # the firmware word of a machine that hands the kernel a DTB

# One module per family of machines, each ending in `MACHINES = (Machine(...), ...)`.
MACHINE_MODULES = (
    "qemu_x86",
    "qemu_virt",
)

# The gdbstub's 'g' reply, as (register names, bytes each) in reply order: QEMU's
# gdb-xml/i386-64bit.xml for qemu-system-x86_64 (64-bit registers whatever the CPU mode),
# gdb-xml/i386-32bit.xml for qemu-system-i386. Names are the 64-bit ones (eax is "rax").
GDB_X86_64 = (("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
               "r14", "r15", "rip"), 8)
GDB_I386 = (("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "rip"), 4)


@dataclass(frozen=True)
class PciDevice:
    """A PCI device model the machine's QEMU offers (-device NAME): its ids, class, the option
    ROM file QEMU gives it by default and whether it has an interrupt pin (SeaBIOS's MP table
    lists one source per pin)."""
    name: str
    vendor_id: int
    device_id: int
    class_code: int
    default_romfile: str | None
    interrupt_pin: bool = True

    @property
    def ids(self):
        return f"{self.vendor_id:04x}:{self.device_id:04x}"


@dataclass(frozen=True)
class MachineMap:
    """What a machine's firmware hands a loader: the memory map and, on BIOS, INT 12h and the EBDA."""
    memory_map: object              # bootforge.memmap.model.MemoryMap
    int12_kib: int | None = None
    ebda: int | None = None


@dataclass(frozen=True)
class Machine:
    name: str                       # `--platform NAME:<mem>`
    title: str                      # in text: "QEMU pc with SeaBIOS"
    firmware: str                   # bios | uefi | fdt
    firmware_title: str             # SeaBIOS, OVMF, OpenSBI (text only)
    binary: str                     # qemu-system-x86_64
    machine: str                    # -machine
    cpu: str                        # -cpu (the binary's default model)
    cpu_vendor: str                 # its CPUID vendor (QEMU target/i386/cpu.c)
    memory_map: Callable            # (bytes of RAM, machine name) -> MachineMap; RecipeError for a size it refuses
    packages: dict                  # binary or firmware file -> Debian package
    firmware_files: tuple = ()      # (code, variable store template): pflash drives; () -> QEMU's default -bios
    serial: str = "COM1 (0x3f8)"    # where loaders print (-serial)
    debugcon: int = 0xE9            # -debugcon port (the dump kernel writes there)
    firmware_log: int | None = None     # port of the firmware's own log (SeaBIOS: 0x402)
    gdb_registers: tuple = GDB_X86_64
    attach: dict = field(default_factory=lambda: {
        "cdrom": ("-cdrom", "{path}"), "disk": ("-drive", "file={path},format=raw,snapshot=on")})
    boot_timeout: float = 60.0      # verify's default wait for the kernel's entry (seconds)
    pci_devices: tuple = ()         # PciDevice models for -device ([[load.devices]]); the VGA is named "VGA"
    arch: str = "x86_64"            # the guest architecture (aarch64, arm, riscv64 for device-tree machines)
    ram_base: int = 0               # where RAM starts (virt: 0x40000000 on ARM, 0x80000000 on RISC-V)
    boot_registers: tuple = ()      # device-tree machines: the registers carrying the boot arguments
    dtb: str | None = None          # "dumpdtb": the DTB is QEMU's own (-machine NAME,dumpdtb=F)
    min_memory: int = 0             # the least -m the memory-map builder takes (checked there)
    cmdline_in_machine_dtb: bool = False    # QEMU writes bootargs while it builds the tree (riscv virt)

    @property
    def device_tree(self):
        """Whether the kernel gets a DTB from this machine instead of an E820/EFI map."""
        return self.firmware == DEVICE_TREE

    def firmware_args(self, vars_path="OVMF_VARS_4M.fd"):
        """QEMU's arguments for the firmware files (a fresh copy of the variable store at *vars_path*)."""
        if not self.firmware_files:
            return ()
        code, _vars = self.firmware_files
        return ("-drive", f"if=pflash,format=raw,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,file={vars_path}")

    def qemu_args(self, memory_bytes):
        """QEMU's binary, machine, CPU and memory arguments for *memory_bytes* of RAM."""
        return [self.binary, "-machine", self.machine, "-cpu", self.cpu, "-m", f"{memory_bytes // MIB}M"]

    def command(self, memory_bytes):
        """The QEMU command line this machine stands for (what `load` prints)."""
        return " ".join([*self.qemu_args(memory_bytes), *self.firmware_args()])

    def to_json(self, memory_bytes):
        return {"binary": self.binary, "machine": self.machine, "cpu": self.cpu, "cpu_vendor": self.cpu_vendor,
                "command": self.command(memory_bytes)}

    def medium_args(self, kind, path):
        """How a boot medium of *kind* (cdrom, disk) at *path* is attached."""
        return [a.format(path=path) for a in self.attach[kind]]


MACHINES = {}
for _module in MACHINE_MODULES:
    for _m in importlib.import_module(f"bootforge.machines.{_module}").MACHINES:
        MACHINES[_m.name] = _m

# Words older callers use for a machine: its firmware's (the first machine of that firmware).
_BY_FIRMWARE = {"bios": "qemu-pc-seabios", "seabios": "qemu-pc-seabios", "uefi": "qemu-q35-ovmf",
                "ovmf": "qemu-q35-ovmf", "efi": "qemu-q35-ovmf"}


def machine(name):
    """The Machine called *name* (or the default one of firmware *name*); RecipeError naming the known ones."""
    found = MACHINES.get(name) or MACHINES.get(_BY_FIRMWARE.get(name, ""))
    if found is None:
        raise RecipeError(f"unknown machine {name!r} (known: {', '.join(MACHINES)})")
    return found


def machines_of(firmware):
    """The machines whose firmware is *firmware* (bios, uefi; efi is uefi)."""
    firmware = "uefi" if firmware == "efi" else firmware
    return [m for m in MACHINES.values() if m.firmware == firmware]


def platform_syntax(firmware=None):
    """`qemu-pc-seabios:<mem>, ...`: how the machines (of *firmware*) are named as platforms."""
    return ", ".join(f"{m.name}:<mem>" for m in (machines_of(firmware) if firmware else MACHINES.values()))
