"""QEMU -kernel on riscv64 virt through OpenSBI fw_dynamic (QEMU 7.2 hw/riscv/boot.c
riscv_calc_kernel_start_addr, riscv_load_kernel, riscv_load_initrd, riscv_load_fdt;
hw/riscv/virt.c virt_machine_done; OpenSBI 1.1: bootforge/fdtboot/opensbi.py).

Rules (observed with the dtdump kernel on qemu-virt-riscv64 at several -m, with and
without -initrd: tests/test_riscv_qemu.py):
- Firmware: fw_dynamic.bin at RAM base (0x80000000); it keeps the smallest naturally
  aligned power of two holding its image and one stack per hart, listed in the DTB as
  /reserved-memory/mmode_resv0@80000000 (no S-mode access).
- Kernel: a raw Image at the first 2 MiB boundary after the firmware's file (QEMU reads
  no Image header: text_offset is ignored).
- A uImage (load_uimage_as -> hw/core/loader.c load_uboot_image, no load address given): type
  kernel, compression none or gzip (gunzipped, at most 64 MiB): its data at ih_load, and
  fw_dynamic enters ih_ep; the initrd goes ih_ep + min(RAM / 2, 128 MiB). No CRC is checked.
  Anything else it refuses on stderr ("Wrong image type 4, expected 2", "this image format
  (kernel_noload) cannot be loaded on this machine type", "Unable to load u-boot images with
  compression type 3", "Unable to decompress gzipped image!") and riscv_load_kernel falls through
  to the raw load: the CPU enters the uImage header (the verdict says so; load refuses it).
- An ELF of e_machine EM_RISCV (riscv_load_kernel: load_elf_ram_sym): each PT_LOAD with a
  p_memsz at its p_paddr (filesz bytes, the rest zero), and the "kernel entry" handed to
  fw_dynamic (its next_addr, riscv_setup_rom_reset_vec) is the ELF's lowest loaded address
  (load_elf's lowaddr), NOT e_entry: QEMU's "NB: Use low address not ELF entry point"
  comment (since QEMU 7.0), so an ELF boots as fw_jump/fw_payload would jump to it. The
  initrd, the DTB, a0/a1 and OpenSBI's edits are those of a raw Image, from that address.
  Each loaded file is a ROM blob (hw/core/loader.c rom_add_elf_program, rom_add_file_fixed,
  rom_add_blob_fixed_as "fdt" of the 1 MiB buffer): segments overlapping fw_dynamic.bin, the
  initrd or the DTB make QEMU exit before the boot (rom_check_and_register_reset; QEMU 7.2
  prints "Some ROM regions are overlapping", observed with an ELF at 0x80010000); segments in
  OpenSBI's kept region past its file (its hart stacks) are refused as not modelled.
  Observed: the dtdump code linked by ld -n at 0x80400000 with e_entry in its strings (never
  executed): stopped at 0x80400000, a0 = 0, a1 = the DTB, initrd at
  0x80400000 + 128 MiB (tests/test_riscv_qemu.py).
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

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot import kernels, opensbi, verdicts
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
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    base, ram = board.ram_base, board.memory_bytes
    ram_end = base + ram
    region = opensbi.firmware_region()
    fw_end = opensbi.firmware_end(base=base)
    res.place("OpenSBI fw_dynamic (kept: mmode_resv0)", region[0], region[1], region[1],
              "the firmware's image and hart stacks, a power of two", "firmware")
    data = req.kernel.data
    segments = None
    blobs = None            # the kernel's ROM blobs [(address, offset, filesz, memsz)] when not a raw Image
    if found.facts.get("taken_as") == "elf":
        entry, segments = elf_program(req, base, ram_end)
        for i, (paddr, _, _, memsz) in enumerate(segments):
            res.place(f"ELF segment {i}", paddr, memsz, 1, "its p_paddr (hw/core/loader.c load_elf)", "kernel")
        blobs = segments
    elif found.facts.get("taken_as") == "uimage":
        entry, size = found.facts["ep"], len(kernels.bootm_loaded_bytes(data, verdicts.QEMU_UIMAGE_GUNZIP_MAX))
        load_at = found.facts["load"]
        if not (base <= load_at and load_at + size <= ram_end and base <= entry < ram_end):
            raise RecipeError(f"a uImage loaded at [{load_at:#x}, {load_at + size:#x}) entered at {entry:#x}: "
                              "outside RAM (not modelled)", path=req.kernel.path)
        res.place("kernel (uImage data)", load_at, size, 1, "the uImage's ih_load (hw/core/loader.c load_uboot_image)",
                  "kernel")
        blobs = [(load_at, 0, size, size)]
    else:
        entry = align_up(fw_end, 2 * MIB)
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
    res.linux = {"entry": entry, "kernel_format": found.facts.get("taken_as", "raw"), "registers": registers,
                 "devicetree": devicetree_facts(dump, handed, dtb_start, registers, RANDOM, source, random_bytes)}
    if segments is not None:
        res.linux["elf_segments"] = [list(s) for s in segments]
        res.notes.append(f"fw_dynamic enters the ELF at its lowest loaded address {entry:#x}, not at e_entry "
                         f"{elf_entry(data):#x} (QEMU riscv_load_kernel)")
    if blobs is not None:
        rom_overlap(res, blobs, fw_end, base)
        if any(p < region[0] + region[1] and region[0] < p + m for p, _, _, m in blobs):
            raise RecipeError(f"a kernel inside OpenSBI's own memory [{region[0]:#x}, {region[0] + region[1]:#x}) "
                              "(its hart stacks; the kernel must start past it): not modelled", path=req.kernel.path)
    ok = all(base <= p.start and p.end <= ram_end for p in res.placements)
    res.checks.append(check("placements-in-ram", ok, "firmware, kernel, initrd and DTB lie in /memory's RAM"
                            if ok else "a placement lies outside /memory"))
    standard_checks(res, plat.memory_map)
    return res


def elf_entry(data):
    return int.from_bytes(data[24:32] if data[4] == 2 else data[24:28], "little")


def elf_program(req, base, ram_end):
    """(lowest loaded address, the loaded PT_LOAD segments) of an EM_RISCV ELF in RAM."""
    # Function-level import: one ELF program-header reader for both QEMU -kernel policies.
    from bootforge.loader.policies.qemu_arm_kernel import elf_load_segments
    _, segments = elf_load_segments(req.kernel.data, req.kernel.path)
    segments = [s for s in segments if s[3]]          # load_elf skips empty segments
    if not segments or any(p < base or p + m > ram_end for p, _, _, m in segments):
        raise RecipeError("an ELF kernel whose segments lie outside RAM: QEMU's load_elf writes them where they "
                          "say (qemu-riscv-kernel predicts ELF programs loaded into RAM)", path=req.kernel.path)
    return min(p for p, _, _, _ in segments), segments


def rom_overlap(res, segments, fw_end, base):
    """QEMU refuses to start when two ROM blobs overlap (rom_check_and_register_reset)."""
    blobs = [("fw_dynamic.bin", base, fw_end)]
    blobs += [(p.name, p.start, p.end) for p in res.placements if p.kind in ("module", "boot-info")]
    for i, (paddr, _, _, memsz) in enumerate(segments):
        for name, start, end in blobs:
            if paddr < end and start < paddr + memsz:
                raise LoaderRefusal(f"the kernel's blob {i} [{paddr:#x}, {paddr + memsz:#x}) overlaps {name} "
                                    f"[{start:#x}, {end:#x}): QEMU exits before the boot",
                                    loader="qemu-riscv-kernel", words="Some ROM regions are overlapping")
