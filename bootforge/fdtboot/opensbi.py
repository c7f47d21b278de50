"""OpenSBI 1.1 (Debian opensbi 1.1-2, QEMU 7.2's default -bios on riscv64 virt) between
QEMU and the kernel: the memory it keeps and the DTB edits it makes before it jumps to
the kernel in S-mode with a0 = hart id, a1 = the DTB (same address: fw_dynamic edits it
in place).

Source: opensbi v1.1 platform/generic/platform.c generic_final_init(): fdt_cpu_fixup,
fdt_fixups (aplic, imsic, plic, reserved-memory, pmu), fdt_domain_fixup;
lib/utils/fdt/fdt_fixup.c, fdt_pmu.c, fdt_domain.c; firmware/fw_base.S (fw_size is
_fw_end - _fw_start plus one stack per hart) and lib/sbi/sbi_domain.c (the root domain's
firmware region: the smallest naturally aligned power of two holding it, no S-mode
access, so fdt_reserved_memory_fixup lists it as mmode_resv0@<base>). Observed on
qemu-virt-riscv64 (tests/test_riscv_qemu.py): exactly these edits, the DTB where QEMU
put it, a0 = 0.
"""

from pathlib import Path

from bootforge.errors import ToolError

FIRMWARE_ELF = Path("/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.elf")
FIRMWARE_BIN = Path("/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin")
HART_STACK_SIZE = 8192          # SBI_PLATFORM_DEFAULT_HART_STACK_SIZE (include/sbi/sbi_platform.h)
IRQ_M_EXT = 11                  # the PLIC's M-mode context (include/sbi/riscv_encoding.h)
PAGE = 4096
PMU_PROPERTIES = ("riscv,event-to-mhpmcounters", "riscv,event-to-mhpmevent", "riscv,raw-event-to-mhpmcounters")


def firmware_region(elf_path=FIRMWARE_ELF, harts=1):
    """(base, size) of the root domain's firmware region: fw_start, 2^order >= fw_size."""
    # Function-level import: the ELF reader only for a RISC-V prediction.
    from bootforge.multiboot.headers import read_elf
    try:
        elf = read_elf(elf_path.read_bytes())
    except OSError as exc:
        raise ToolError(f"{elf_path}: {exc.strerror} (install opensbi / qemu-system-misc)") from None
    loads = [s for s in elf.loads if s.memsz]
    start = min(s.paddr for s in loads)
    fw_end = -(-max(s.paddr + s.memsz for s in loads) // PAGE) * PAGE     # ALIGN(0x1000) in fw_base.ldS
    fw_size = fw_end - start + harts * HART_STACK_SIZE
    size = 1
    while size < fw_size:
        size <<= 1
    return start, size


def firmware_end(bin_path=FIRMWARE_BIN, base=0x80000000):
    """Where QEMU's copy of fw_dynamic.bin ends (hw/riscv/boot.c riscv_find_and_load_firmware)."""
    try:
        return base + bin_path.stat().st_size
    except OSError as exc:
        raise ToolError(f"{bin_path}: {exc.strerror} (install opensbi / qemu-system-misc)") from None


def fixups(fdt, region):
    """generic_final_init()'s DTB edits on *fdt* (a libfdt.Fdt), in OpenSBI 1.1's order."""
    # fdt_cpu_fixup: room for a "status" property; every hart here is in the root domain and
    # has an mmu-type, so no hart is disabled.
    fdt.open_into(fdt.totalsize + 32)
    # fdt_plic_fixup: the M-mode external interrupt context of each hart becomes -1 (in place).
    plic = fdt.node_by_compatible("sifive,plic-1.0.0") or fdt.node_by_compatible("riscv,plic0")
    if plic is not None:
        span = fdt.value_span(plic, "interrupts-extended")
        if span is not None:
            start, length = span
            for i in range(length // 8):
                cell = start + 8 * i + 4
                if int.from_bytes(fdt.buf[cell:cell + 4], "big") == IRQ_M_EXT:
                    fdt._write(cell, b"\xff\xff\xff\xff")
    # fdt_reserved_memory_fixup.
    fdt.open_into(fdt.totalsize + 1024)
    na = int.from_bytes(fdt.getprop(0, "#address-cells") or b"\0\0\0\2", "big")
    ns = int.from_bytes(fdt.getprop(0, "#size-cells") or b"\0\0\0\1", "big")
    parent = fdt.path_offset("/reserved-memory")
    if parent is None:
        fdt.add_subnode(0, "reserved-memory")
        for name, value in (("ranges", b""), ("#size-cells", ns.to_bytes(4, "big")),
                            ("#address-cells", na.to_bytes(4, "big"))):
            fdt.setprop(fdt.path_offset("/reserved-memory"), name, value)
    base, size = region
    high = base >> 32
    name = f"mmode_resv0@{high:x},{base & 0xFFFFFFFF:x}" if na > 1 and high else f"mmode_resv0@{base & 0xFFFFFFFF:x}"
    fdt.add_subnode(fdt.path_offset("/reserved-memory"), name)
    reg = (base.to_bytes(8, "big") if na > 1 else (base & 0xFFFFFFFF).to_bytes(4, "big")) + \
          (size.to_bytes(8, "big") if ns > 1 else (size & 0xFFFFFFFF).to_bytes(4, "big"))
    node = next(o for n, o in fdt.subnodes(fdt.path_offset("/reserved-memory")) if n == name)
    fdt.setprop(node, "reg", reg)
    # fdt_pmu_fixup: the M-mode event maps are removed (QEMU's CPU has Sscofpmf, so
    # interrupts-extended would stay; virt's pmu node has none).
    pmu = fdt.node_by_compatible("riscv,pmu")
    if pmu is not None:
        for prop in PMU_PROPERTIES:
            fdt.delprop(fdt.node_by_compatible("riscv,pmu"), prop)
    # fdt_domain_fixup: no opensbi-domain properties or /chosen/opensbi-domains on virt.
