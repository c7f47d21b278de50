"""QEMU 7.2's device-tree `virt` machines (Debian 12): the kernel gets a DTB, not an E820 map.

qemu-virt-aarch64
    qemu-system-aarch64 -machine virt -cpu cortex-a57, RAM at 0x40000000; QEMU's built-in
    boot loader (hw/arm/boot.c) enters an Image with x0 = the DTB, x1-x3 = 0.
qemu-virt-arm
    qemu-system-arm -machine virt -cpu cortex-a15, RAM at 0x40000000; a zImage is entered
    with r0 = 0, r1 = ~0 (DT), r2 = the DTB (hw/arm/boot.c).
qemu-virt-riscv64
    qemu-system-riscv64 -machine virt (default CPU rv64: a dump with -cpu rv64 differs from
    one without only in /chosen rng-seed), RAM at 0x80000000; OpenSBI fw_dynamic enters the
    kernel in S-mode with a0 = hart id, a1 = the DTB. hw/riscv/virt.c create_fdt() writes
    bootargs while it builds the tree, so the machine's DTB depends on the command line.

The memory map is the one the machine's DTB describes. That DTB is never written by hand:
QEMU writes it with `-machine virt,dumpdtb=F` (bootforge.fdtboot.machines.machine_dtb,
cached per QEMU version). No INT 12h, no EBDA.
"""

from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot.machines import virt_board
from bootforge.machines import DEVICE_TREE, MIB, Machine, MachineMap
from bootforge.memmap.convert import fdt_to_map

# gdbstub 'g' replies (names, bytes each) up to the program counter: QEMU gdb-xml/aarch64-core.xml
# (x0-x30, sp, pc 8 bytes; cpsr 4 bytes follows), arm-core.xml (r0-r12, sp, lr, pc 4 bytes),
# riscv-64bit-cpu.xml (the 32 integer registers, then pc).
GDB_AARCH64 = (tuple(f"x{i}" for i in range(31)) + ("sp", "pc"), 8)
GDB_ARM = (tuple(f"r{i}" for i in range(13)) + ("sp", "lr", "pc"), 4)
GDB_RISCV64 = (("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", *(f"a{i}" for i in range(8)),
                *(f"s{i}" for i in range(2, 12)), "t3", "t4", "t5", "t6", "pc"), 8)
VIRT_MIN_MEMORY = 128 * MIB


def virt_map(ram, name):
    """The memory map of *name* with *ram* bytes: the /memory and /reserved-memory of the DTB
    QEMU dumps for it (needs the QEMU binary)."""
    board = virt_board(next(m for m in MACHINES if m.name == name), ram)
    return MachineMap(fdt_to_map(parse_dtb(board.dtb, board.dtb_source)))


ARM_PACKAGES = {"qemu-system-aarch64": "qemu-system-arm", "qemu-system-arm": "qemu-system-arm"}

MACHINES = (
    Machine("qemu-virt-aarch64", "QEMU virt (AArch64)", DEVICE_TREE, "QEMU's boot loader", "qemu-system-aarch64",
            "virt", "cortex-a57", "ARM", virt_map, ARM_PACKAGES, serial="PL011 (0x9000000)", debugcon=None,
            gdb_registers=GDB_AARCH64, attach={}, arch="aarch64", ram_base=0x40000000,
            boot_registers=("x0", "x1", "x2", "x3"), dtb="dumpdtb", min_memory=VIRT_MIN_MEMORY),
    Machine("qemu-virt-arm", "QEMU virt (32-bit ARM)", DEVICE_TREE, "QEMU's boot loader", "qemu-system-arm",
            "virt", "cortex-a15", "ARM", virt_map, ARM_PACKAGES, serial="PL011 (0x9000000)", debugcon=None,
            gdb_registers=GDB_ARM, attach={}, arch="arm", ram_base=0x40000000,
            boot_registers=("r0", "r1", "r2"), dtb="dumpdtb", min_memory=VIRT_MIN_MEMORY),
    Machine("qemu-virt-riscv64", "QEMU virt (RISC-V 64)", DEVICE_TREE, "OpenSBI", "qemu-system-riscv64",
            "virt", "rv64", "RISC-V", virt_map,
            {"qemu-system-riscv64": "qemu-system-misc",
             "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin": "qemu-system-data"},
            serial="NS16550 (0x10000000)", debugcon=None, gdb_registers=GDB_RISCV64, attach={}, arch="riscv64",
            ram_base=0x80000000, boot_registers=("a0", "a1"), dtb="dumpdtb", min_memory=VIRT_MIN_MEMORY,
            cmdline_in_machine_dtb=True),
)
