"""QEMU 7.2's x86 PC machines (Debian 12), with the memory map each firmware reports.

qemu-pc-seabios
    qemu-system-x86_64's pc machine (i440fx, default CPU qemu64) with SeaBIOS, for any -m.
    Derived from real captures (tests/data/memmap-qemu-seabios-m256.txt, -m4096, and the
    fidelity matrix's dumps at 128M..5G), parametric in the memory size: QEMU puts
    min(ram, lowmem) below 4 GiB, where lowmem is 3 GiB once ram >= 3.5 GiB (pc_init1's
    gigabyte alignment) and the rest at 4 GiB; SeaBIOS lists [0, 0x9fc00) RAM, its 1 KiB
    EBDA at 0x9fc00 and the BIOS area [0xf0000, 1 MiB) reserved, RAM from 1 MiB to 128 KiB
    below the end of low RAM, those 128 KiB reserved (its high tables), the 256 KiB flash
    at 4 GiB - 256 KiB reserved, RAM above 4 GiB, and QEMU's reserved [0xfd00000000, 1 TiB)
    (the AMD HyperTransport hole; the default CPU model reports AuthenticAMD). INT 12h says
    639 KiB.
qemu-pc-seabios-i386
    The same machine under qemu-system-i386, whose default CPU qemu32 reports GenuineIntel:
    no HyperTransport hole, so one reserved entry fewer (observed: QEMU's -kernel hands the
    dump kernel 6 entries where qemu-system-x86_64 hands 7; tests/data/mb-qemu-i386-mb1.dump).
    Its gdbstub speaks the 32-bit register layout.
qemu-q35-ovmf
    OVMF 2022.11's EFI map under QEMU q35 for any -m >= 128M, derived from GRUB lsefimmap
    captures at 256M..5G: the first 21 MiB fixed, OVMF's allocations at the top of low RAM
    moving with it, conventional memory between, q35's 2 GiB low-memory split from 2.75 GiB
    on, RAM above 4 GiB (bootforge/data/platforms/qemu-q35-ovmf-512M.lsefimmap is the template).
"""

from importlib.resources import files

from bootforge.errors import RecipeError
from bootforge.formats.e820 import E820Type
from bootforge.formats.efi_memmap import EfiMemoryType
from bootforge.machines import GDB_I386, GDB_X86_64, MIB, Machine, MachineMap, PciDevice
from bootforge.memmap.formats.lsefimmap import parse_lsefimmap
from bootforge.memmap.model import MemoryMap, MemoryRange

PLATFORM_DIR = files("bootforge").joinpath("data", "platforms")
SEABIOS_HIGH_TABLES = 0x20000
SEABIOS_EBDA = 0x9FC00
QEMU_PC_LOWMEM_SPLIT = 0xE0000000     # ram >= this: only 3 GiB below 4 GiB
QEMU_PC_LOWMEM_GB_ALIGNED = 0xC0000000
QEMU_AMD_HT_HOLE = (0xFD00000000, 0x300000000)
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
QEMU_PACKAGE = {"qemu-system-x86_64": "qemu-system-x86", "qemu-system-i386": "qemu-system-x86"}


def seabios_e820(ram, name, amd):
    """The E820 map SeaBIOS reports under QEMU's pc machine with *ram* bytes: only an AMD CPU
    model gets the HyperTransport hole (QEMU 7.2 hw/i386/pc.c reserves it for IS_AMD_CPU)."""
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
    if amd:
        e.append((*QEMU_AMD_HT_HOLE, reserved))
    m = MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in e], source=name)
    return MachineMap(m, int12_kib=SEABIOS_EBDA // 1024, ebda=SEABIOS_EBDA)


def seabios_amd(ram, name):
    return seabios_e820(ram, name, amd=True)


def seabios_intel(ram, name):
    return seabios_e820(ram, name, amd=False)


# q35 with OVMF: derived from GRUB's lsefimmap on OVMF 2022.11 at 256M, 512M, 1G, 2G, 3G, 5G
# (tests/data/load-ovmf-q35-*.lsefimmap, bootforge/data/platforms/qemu-q35-ovmf-512M.lsefimmap).
OVMF_TEMPLATE = "qemu-q35-ovmf-512M.lsefimmap"
OVMF_TEMPLATE_LOWMEM = 512 * MIB
OVMF_TEMPLATE_HIGH = "qemu-q35-ovmf-3072M.lsefimmap"
OVMF_FIXED_BELOW = 0x1500000        # [0, 21 MiB): identical for every -m
OVMF_PCI_HOLE = 0xB0000000          # q35: MMCONFIG from 2.75 GiB; entries there and above stay put
Q35_LOWMEM_SPLIT = 0xB0000000       # ram >= this: only 2 GiB below 4 GiB (pc_q35_init)
Q35_LOWMEM = 0x80000000


def ovmf_efi_map(ram, name="qemu-q35-ovmf"):
    """OVMF's EFI map under QEMU q35 with *ram* bytes, as an EFI application sees it before it
    allocates anything of its own: the first 21 MiB are the same for every size, everything
    OVMF allocates at the top of low RAM moves with it, conventional memory fills the gap, and
    RAM above 4 GiB (ram >= 2.75 GiB: only 2 GiB below 4 GiB) is one conventional range."""
    if ram < 128 * MIB or ram % MIB:
        raise RecipeError(f"{name} needs at least 128 MiB, in whole MiB")
    lowmem = Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram
    # With RAM above 4 GiB OVMF allocates a little more at the top of low RAM (observed: 3G, 5G).
    template_name, base_low = (OVMF_TEMPLATE_HIGH, Q35_LOWMEM) if ram > lowmem else (OVMF_TEMPLATE,
                                                                                     OVMF_TEMPLATE_LOWMEM)
    template = parse_lsefimmap(PLATFORM_DIR.joinpath(template_name).read_text(), template_name, error=RecipeError)
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
    return MachineMap(MemoryMap("efi", ranges, source="qemu-q35-ovmf"))


# QEMU 7.2's PCI models on pc (hw/net/*.c, hw/display/vga-pci.c ids; the pc machine's default
# romfile of each: efi-*.rom from machine type 2.x on). -vga std is "VGA" (SeaVGABIOS, no pin).
QEMU_PC_PCI_DEVICES = (
    PciDevice("e1000", 0x8086, 0x100E, 0x020000, "efi-e1000.rom"),
    PciDevice("e1000-82545em", 0x8086, 0x100F, 0x020000, "efi-e1000.rom"),
    PciDevice("e1000e", 0x8086, 0x10D3, 0x020000, "efi-e1000e.rom"),
    PciDevice("rtl8139", 0x10EC, 0x8139, 0x020000, "efi-rtl8139.rom"),
    PciDevice("virtio-net-pci", 0x1AF4, 0x1000, 0x020000, "efi-virtio.rom"),
    PciDevice("pcnet", 0x1022, 0x2000, 0x020000, "efi-pcnet.rom"),
    PciDevice("ne2k_pci", 0x10EC, 0x8029, 0x020000, "efi-ne2k_pci.rom"),
    PciDevice("i82559er", 0x8086, 0x1209, 0x020000, "efi-eepro100.rom"),
    PciDevice("vmxnet3", 0x15AD, 0x07B0, 0x020000, "efi-vmxnet3.rom"),
    PciDevice("VGA", 0x1234, 0x1111, 0x030000, "vgabios-stdvga.bin", interrupt_pin=False),
)

MACHINES = (
    Machine("qemu-pc-seabios", "QEMU pc with SeaBIOS", "bios", "SeaBIOS", "qemu-system-x86_64", "pc", "qemu64",
            "AuthenticAMD", seabios_amd, {**QEMU_PACKAGE, "/usr/share/seabios/bios-256k.bin": "seabios"},
            firmware_log=0x402, gdb_registers=GDB_X86_64, pci_devices=QEMU_PC_PCI_DEVICES),
    Machine("qemu-pc-seabios-i386", "QEMU pc (qemu-system-i386) with SeaBIOS", "bios", "SeaBIOS",
            "qemu-system-i386", "pc", "qemu32", "GenuineIntel", seabios_intel,
            {**QEMU_PACKAGE, "/usr/share/seabios/bios-256k.bin": "seabios"}, firmware_log=0x402,
            gdb_registers=GDB_I386, pci_devices=QEMU_PC_PCI_DEVICES),
    Machine("qemu-q35-ovmf", "QEMU q35 with OVMF", "uefi", "OVMF", "qemu-system-x86_64", "q35", "qemu64",
            "AuthenticAMD", ovmf_efi_map, {**QEMU_PACKAGE, OVMF_CODE: "ovmf", OVMF_VARS: "ovmf"},
            firmware_files=(OVMF_CODE, OVMF_VARS), boot_timeout=120.0),
)
