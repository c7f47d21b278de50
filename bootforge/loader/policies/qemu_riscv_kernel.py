"""QEMU -kernel on riscv64 virt through OpenSBI fw_dynamic (QEMU 7.2 hw/riscv/boot.c
riscv_calc_kernel_start_addr, riscv_load_kernel, riscv_load_initrd, riscv_load_fdt;
hw/riscv/virt.c virt_machine_done; OpenSBI 1.1: bootforge/fdtboot/opensbi.py).

Rules (observed with the dtdump kernel on qemu-virt-riscv64 at several -m, with and
without -initrd: tests/test_riscv_qemu.py):
- Firmware: fw_dynamic.bin at RAM base (0x80000000); it keeps the smallest naturally
  aligned power of two holding its image and one stack per hart, listed in the DTB as
  /reserved-memory/mmode_resv0@80000000 (no S-mode access).
- Kernel: a raw Image at the first 2 MiB boundary after the firmware's file (QEMU reads
  no Image header: text_offset is ignored); an ELF at its addresses; a uImage at its load
  address.
- Initrd: kernel start + min(RAM / 2, 128 MiB); /chosen linux,initrd-start and
  linux,initrd-end, one cell each, set before the DTB is placed.
- DTB: the whole 1 MiB buffer virt built the tree in is placed at
  ALIGN_DOWN(min(RAM end, 3 GiB) - 1 MiB, 2 MiB) and packed (fdt_pack); OpenSBI edits it
  in place (open_into +32 and +1024 bytes, the PLIC's M-mode contexts set to -1,
  /reserved-memory added first in the root, the PMU's M-mode event maps deleted) and
  jumps to the kernel with a0 = hart id 0, a1 = the DTB.
- The command line is written into the tree by virt.c create_fdt() while QEMU builds
  the machine, so the machine's DTB is dumped with it (bootforge/fdtboot/machines.py).
- Random: /chosen rng-seed (32 bytes, virt.c create_fdt_randomness, refilled at reset).
"""

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot import opensbi, verdicts
from bootforge.fdtboot.handover import RandomProperty, devicetree_facts, mark_random
from bootforge.fdtboot.libfdt import Fdt
from bootforge.fdtboot.machines import machine_dtb
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.result import LoadResult
from bootforge.memmap.convert import fdt_to_map
from bootforge.verdict import check

SOURCE = "QEMU 7.2 hw/riscv/boot.c + hw/riscv/virt.c; OpenSBI 1.1 fw_dynamic (platform/generic, lib/utils/fdt)"
MIB = 1 << 20
PAGE = 4096
FDT_BUFFER = 1 * MIB            # create_device_tree(): FDT_MAX_SIZE
FDT_LIMIT = 3 << 30             # riscv_load_fdt: below 3 GiB when RAM starts below it
RANDOM = (RandomProperty("/chosen", "rng-seed", 32, "virt.c create_fdt, refilled at every reset"),)


def _align(value, alignment):
    return (value + alignment - 1) // alignment * alignment


def handed_dtb(machine_dtb_bytes, initrd, region):
    """(the DTB the kernel gets, its random byte spans): the machine's dump with
    virt_machine_done's initrd properties, fdt_pack, then OpenSBI's fixups."""
    fdt = Fdt(machine_dtb_bytes)
    mark_random(fdt, RANDOM)
    if initrd is not None:
        fdt.open_into(FDT_BUFFER)           # the dump was packed after these edits
        start, size = initrd
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-start", start.to_bytes(4, "big"))
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-end", (start + size).to_bytes(4, "big"))
        fdt.pack()
    opensbi.fixups(fdt, region)
    return fdt.blob(), fdt.random_spans()


@loader_policy("qemu-riscv-kernel", firmware="fdt", protocol="linux", verdict=None, source=SOURCE,
               verified=False, boot_medium=None,   # real boots: tests/test_riscv_qemu.py, verify/fdt.py
               wrong_firmware="qemu-riscv-kernel runs on a device-tree platform (qemu-virt-riscv64:<mem>)",
               summary="QEMU -kernel/-initrd/-append on riscv64 virt through OpenSBI fw_dynamic")
def load(req):
    plat = req.platform
    board = plat.devicetree
    if board.machine is None or board.machine.arch != "riscv64":
        raise RecipeError("qemu-riscv-kernel needs qemu-virt-riscv64:<mem>")
    found = verdicts.qemu_riscv_kernel(req.kernel.data)
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="qemu-riscv-kernel", words=found.words)
    if len(req.modules) > 1:
        raise RecipeError("QEMU -initrd takes one file; give one initrd")
    if found.facts.get("taken_as") in ("elf", "uimage"):
        raise RecipeError(f"a{'n ELF' if found.facts['taken_as'] == 'elf' else ' uImage'} kernel: "
                          "qemu-riscv-kernel predicts raw Images (QEMU loads the others at their own "
                          "addresses; not modelled)", path=req.kernel.path)
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    base, ram = board.ram_base, board.memory_bytes
    ram_end = base + ram
    region = opensbi.firmware_region()
    fw_end = opensbi.firmware_end(base=base)
    res.place("OpenSBI fw_dynamic (kept: mmode_resv0)", region[0], region[1], region[1],
              "the firmware's image and hart stacks, a power of two", "firmware")
    entry = _align(fw_end, 2 * MIB)
    data = req.kernel.data
    res.place("kernel", entry, len(data), 2 * MIB, "the first 2 MiB boundary after fw_dynamic.bin", "kernel")
    initrd = None
    if req.modules:
        m = req.modules[0]
        start = entry + min(ram // 2, 128 * MIB)
        if start + m.size > ram_end:
            raise LoaderRefusal("the initrd runs past the end of RAM", loader="qemu-riscv-kernel",
                                words=f"could not load ramdisk '{m.loader_path}'")
        initrd = (start, m.size)
        res.place(f"initrd {m.loader_path}", start, m.size, PAGE, "kernel start + min(RAM/2, 128 MiB)", "module")
        res.modules = [{"start": start, "end": start + m.size, "cmdline": m.loader_path}]
    dtb_start = (min(ram_end, FDT_LIMIT) if base < FDT_LIMIT else ram_end) - FDT_BUFFER
    dtb_start -= dtb_start % (2 * MIB)
    if board.cmdline == (req.cmdline or None):
        dump, source = board.dtb, board.dtb_source
    else:       # the machine's DTB holds the command line: QEMU makes the one for this one
        dump, source = machine_dtb(board.machine, ram, req.cmdline or None)
    handed, random_bytes = handed_dtb(dump, initrd, region)
    res.place("DTB (QEMU's 1 MiB buffer)", dtb_start, FDT_BUFFER, 2 * MIB,
              "ALIGN_DOWN(min(RAM end, 3 GiB) - 1 MiB, 2 MiB)", "boot-info")
    registers = {"a0": 0, "a1": dtb_start}
    res.mbi_address, res.mbi_bytes = dtb_start, handed
    res.cmdline = req.cmdline
    memory = fdt_to_map(parse_dtb(handed))
    res.mmap = [(r.start, r.size, r.type) for r in memory.ranges]
    res.linux = {"entry": entry, "kernel_format": "raw", "registers": registers,
                 "devicetree": devicetree_facts(dump, handed, dtb_start, registers, RANDOM, source, random_bytes)}
    ok = all(base <= p.start and p.end <= ram_end for p in res.placements)
    res.checks.append(check("placements-in-ram", ok, "firmware, kernel, initrd and DTB lie in /memory's RAM"
                            if ok else "a placement lies outside /memory"))
    standard_checks(res, plat.memory_map)
    return res
