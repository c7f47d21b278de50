"""QEMU -kernel on ARM virt machines, aarch64 and 32-bit (QEMU 7.2 hw/arm/boot.c
arm_setup_direct_kernel_boot(), arm_load_dtb(), fdt_add_psci_node(); hw/arm/virt.c).

Rules (observed with the dtdump kernel on qemu-virt-aarch64 at several -m, with and
without -initrd: tests/test_arm_qemu.py, tests/data/dtdump-*):
- Kernel: a uImage's data goes to its ih_load and is entered at ih_ep (observed with a
  mkimage kernel uImage). An arm64 Image (gunzipped first) with image_size != 0 goes to RAM base +
  text_offset, + 2 MiB when text_offset is below QEMU's 4 KiB bootloader; without
  image_size, RAM base + 0x80000. A uImage goes to its load address. 32-bit: the raw
  file at RAM base + 0x10000. "kernel ... is too large to fit in RAM" when image_size
  (or the file) exceeds RAM.
- Initrd: RAM base + min(RAM / 2, 128 MiB), or the kernel's end (RAM base + offset +
  image_size) when that is higher, page aligned; "not enough space after kernel to load
  initrd" / "too big to fit into RAM after the kernel" past the end of RAM. One file.
- DTB: ALIGN(initrd start + initrd size, 2 MiB) on AArch64 (4 KiB on 32-bit ARM); the
  whole 1 MiB buffer virt built the tree in (totalsize 0x100000).
- QEMU's bootloader at RAM base: AArch64 x0 = DTB, x1 = x2 = x3 = 0; 32-bit r0 = 0,
  r1 = 0xffffffff (virt's board id -1), r2 = DTB.
- DTB edits, in load_dtb's order, in place with libfdt (bootforge/fdtboot/libfdt.py):
  the /memory node (already in the machine's dump), /chosen bootargs (when the command
  line is not empty), linux,initrd-start and linux,initrd-end (one cell each, observed),
  then the /psci node (fdt_add_psci_node: added last, so it is taken out of the machine's
  dump and put back after the /chosen edits).
- QEMU -dtb FILE (--dtb, [load] dtb): the file in a buffer of (size + 10000) * 2 bytes
  (load_device_tree), its root /memory nodes NOPed, memory@<RAM base> added, /chosen
  added when absent, then the same /chosen edits and /psci replaced (handed_user_dtb).
- Random (each byte tracked through the edits, bootforge/fdtboot/libfdt.py Fdt.random):
  /chosen rng-seed (32 bytes) and kaslr-seed (8 bytes), created by virt.c
  create_randomness() and refilled on every reset (qemu_fdt_randomize_seeds); and the
  alignment padding of /chosen stdout-path ("/pl011@9000000" is 15 bytes: one pad byte),
  which keeps a byte of the first rng-seed because create_uart() inserts stdout-path in
  front of the seeds (libfdt fdt_splice_ memmove; observed to differ per boot); and the
  padding of a bootargs whose length is not a multiple of 4, which keeps bytes of the
  moved rng-seed the same way (observed at 128M: 3 bytes).
- An ELF of the machine's e_machine (load_elf, is_linux = 0): a bare program. Its PT_LOAD
  segments at their p_paddr, entered at e_entry with every register 0 (no bootloader, no boot
  protocol), -initrd not loaded; the DTB (the machine's, bootargs from -append) at the RAM base
  only when the segments leave room for its 1 MiB below their lowest address (dtb_limit), else
  none (arm_load_dtb returns without it). Observed on qemu-virt-arm 256M with the dtdump code
  linked at 0x40200000 (DTB at 0x40000000, r0-r2 = 0, no initrd) and at 0x40100000 (no DTB).
"""

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdt.parse import parse_dtb
from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.handover import RandomProperty, devicetree_facts, mark_random
from bootforge.fdtboot.libfdt import Fdt
from bootforge.formats.e820 import E820Type
from bootforge.formats.uimage import UIMAGE_HEADER_SIZE
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.result import LoadResult
from bootforge.memmap.convert import fdt_to_map
from bootforge.verdict import check

SOURCE = "QEMU 7.2 hw/arm/boot.c (arm_setup_direct_kernel_boot, arm_load_dtb, fdt_add_psci_node)"
MIB = 1 << 20
PAGE = 4096
BOOTLOADER_SIZE = 40            # bootloader_aarch64 / bootloader: 6 instructions + 4 words
VIRT_BOARD_ID = 0xFFFFFFFF
RANDOM = (RandomProperty("/chosen", "rng-seed", 32, "virt.c create_randomness, refilled at every reset"),
          RandomProperty("/chosen", "kaslr-seed", 8, "virt.c create_randomness, refilled at every reset"),
          # create_uart() sets stdout-path after the seeds: libfdt's splice leaves the first rng-seed's
          # bytes in the new property's alignment padding (observed: one byte, different every boot).
          RandomProperty("/chosen", "stdout-path", 1, "alignment padding: a stale byte of the first rng-seed",
                         part="padding"))


def take_out_psci(fdt):
    """The machine's dump with load_dtb's last edit undone: the /psci node out of the structure
    block and the names only it added off the end of the strings block. Returns its properties
    [(name, value)] in the order fdt_add_psci_node set them (the reverse of the node's order:
    libfdt puts each new property first); None without a /psci node."""
    node = fdt.path_offset("/psci")
    if node is None:
        return None
    props = [(n, fdt.getprop(node, n)) for n, _ in fdt.properties(node)]
    others = {n for other in fdt.nodes() if other != node for n, _ in fdt.properties(other)}
    fdt.del_node(node)
    names = fdt.strings()[:-1].split(b"\0")
    only_psci = {n for n, _ in props} - others
    while names and names[-1].decode("latin-1") in only_psci:
        names.pop()
    fdt.forget_strings(sum(len(n) + 1 for n in names))
    return list(reversed(props))


def put_back_psci(fdt, props):
    node = fdt.add_subnode(0, "psci")
    for name, value in props:
        fdt.setprop(fdt.path_offset("/psci"), name, value)
    return node


def handed_dtb(machine_dtb, cmdline, initrd):
    """(the DTB arm_load_dtb hands the kernel, its random byte spans): the machine's dump (no
    kernel) with the edits a kernel boot adds, byte for byte. *initrd*: (start, size) or None."""
    fdt = Fdt(machine_dtb)
    mark_random(fdt, RANDOM)
    psci = take_out_psci(fdt)
    chosen = fdt.path_offset("/chosen")
    if chosen is None:
        fdt.add_subnode(0, "chosen")
        chosen = fdt.path_offset("/chosen")
    if cmdline:
        fdt.setprop(chosen, "bootargs", cmdline.encode() + b"\0")
    if initrd is not None:
        start, size = initrd
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-start", start.to_bytes(4, "big"))
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-end", (start + size).to_bytes(4, "big"))
    if psci is not None:
        put_back_psci(fdt, psci)
    return fdt.blob(), fdt.random_spans()


def _cells(value, cells):
    return value.to_bytes(4 * cells, "big")


def handed_user_dtb(user_dtb, machine_dtb, ram_base, ram_size, cmdline, initrd):
    """(DTB, random spans) for QEMU -dtb FILE: load_device_tree() gives the file a buffer of
    (size + 10000) * 2 bytes (fdt_open_into), then arm_load_dtb NOPs every root /memory node,
    adds memory@<base> (device_type, reg in the root's cells), adds /chosen when absent, sets
    bootargs and the initrd range, and replaces /psci (the CPU's, as in the machine's DTB)."""
    fdt = Fdt(user_dtb, (len(user_dtb) + 10000) * 2)
    fdt.open_into((len(user_dtb) + 10000) * 2)
    mark_random(fdt, RANDOM[:2])
    acells = int.from_bytes(fdt.getprop(0, "#address-cells") or b"", "big")
    scells = int.from_bytes(fdt.getprop(0, "#size-cells") or b"", "big")
    if not acells or not scells:
        raise LoaderRefusal("the DTB's root #address-cells or #size-cells is 0 or absent", loader="qemu-arm-kernel",
                            words="dtb file invalid (#address-cells or #size-cells 0)")
    if scells < 2 and ram_size >= 1 << 32:
        raise LoaderRefusal("one size cell cannot say the RAM size", loader="qemu-arm-kernel",
                            words="qemu: dtb file not compatible with RAM size > 4GB")
    for name, node in fdt.subnodes(0):
        if name == "memory" or name.startswith("memory@"):
            fdt.nop_node(node)
    fdt.add_subnode(0, f"memory@{ram_base:x}")
    memory = fdt.path_offset(f"/memory@{ram_base:x}")
    fdt.setprop(memory, "device_type", b"memory\0")
    fdt.setprop(fdt.path_offset(f"/memory@{ram_base:x}"), "reg", _cells(ram_base, acells) + _cells(ram_size, scells))
    if fdt.path_offset("/chosen") is None:
        fdt.add_subnode(0, "chosen")
    if cmdline:
        fdt.setprop(fdt.path_offset("/chosen"), "bootargs", cmdline.encode() + b"\0")
    if initrd is not None:
        start, size = initrd
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-start", start.to_bytes(4, "big"))
        fdt.setprop(fdt.path_offset("/chosen"), "linux,initrd-end", (start + size).to_bytes(4, "big"))
    machine = Fdt(machine_dtb)
    psci = machine.path_offset("/psci")
    if psci is not None:
        old = fdt.path_offset("/psci")
        if old is not None:
            fdt.nop_node(old)
        put_back_psci(fdt, list(reversed([(n, machine.getprop(psci, n)) for n, _ in machine.properties(psci)])))
    return fdt.blob(), fdt.random_spans()


@loader_policy("qemu-arm-kernel", firmware="fdt", protocol="linux", verdict=None, source=SOURCE,
               verified=False, boot_medium=None,   # real boots: tests/test_arm_qemu.py, verify/fdt.py
               wrong_firmware="qemu-arm-kernel runs on a device-tree platform (qemu-virt-aarch64:<mem>, "
                              "qemu-virt-arm:<mem>)",
               summary="QEMU -kernel/-initrd/-append on ARM virt (its bootloader and load_dtb)")
def load(req):
    plat = req.platform
    board = plat.devicetree
    if board.machine is None or board.machine.arch not in ("aarch64", "arm"):
        raise RecipeError("qemu-arm-kernel needs qemu-virt-aarch64:<mem> or qemu-virt-arm:<mem>")
    arch = board.machine.arch
    data = req.kernel.data
    found = verdicts.qemu_arm_kernel(data, arch)
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="qemu-arm-kernel", words=found.words)
    if len(req.modules) > 1:
        raise RecipeError("QEMU -initrd takes one file; give one initrd")
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    base, ram = board.ram_base, board.memory_bytes
    ram_end = base + ram
    kind, offset, claimed = verdicts.qemu_arm_placement(data, arch)
    if kind == "elf":
        return load_elf_program(req, res, board, arch)
    raw, _ = verdicts.gunzipped(data) if arch == "aarch64" else (data, None)
    if kind == "uimage":
        # hw/core/loader.c load_uboot_image: the data at ih_load, the CPU enters at ih_ep.
        load_at, size = offset, claimed
        entry = kernels.read_uimage(data)["ep"]
        raw = data[UIMAGE_HEADER_SIZE:UIMAGE_HEADER_SIZE + size]
    else:
        entry, size = base + offset, claimed if kind == "arm64-image" else len(raw)
        load_at = entry
    if size > ram:
        raise LoaderRefusal(f"the kernel ({size} bytes) does not fit the {ram} bytes of RAM",
                            loader="qemu-arm-kernel",
                            words=f"kernel '{req.kernel_loader_path}' is too large to fit in RAM "
                                  f"(kernel size {size}, RAM size {ram})")
    res.place("QEMU bootloader", base, BOOTLOADER_SIZE, 4, "fixed: RAM base (hw/arm/boot.c write_bootloader)",
              "loader")
    res.place("kernel", load_at, max(size, len(raw)), 2 * MIB if kind == "arm64-image" else PAGE,
              {"arm64-image": "RAM base + text_offset (+ 2 MiB below the bootloader)",
               "uimage": "the uImage's load address", "raw": "RAM base + QEMU's fixed offset"}[kind], "kernel")
    image_high = load_at + size
    initrd_start = align_up(max(base + min(ram // 2, 128 * MIB), image_high), PAGE)
    initrd = None
    if req.modules:
        m = req.modules[0]
        if initrd_start >= ram_end:
            raise LoaderRefusal("no RAM left after the kernel for the initrd", loader="qemu-arm-kernel",
                                words="not enough space after kernel to load initrd")
        if initrd_start + m.size > ram_end:
            raise LoaderRefusal("the initrd runs past the end of RAM", loader="qemu-arm-kernel",
                                words=f"could not load initrd '{m.loader_path}': too big to fit into RAM after "
                                      "the kernel")
        initrd = (initrd_start, m.size)
        res.place(f"initrd {m.loader_path}", initrd_start, m.size, PAGE,
                  "RAM base + min(RAM/2, 128 MiB), or the kernel's end, page aligned", "module")
        res.modules = [{"start": initrd_start, "end": initrd_start + m.size, "cmdline": m.loader_path}]
    dtb_align = 2 * MIB if arch == "aarch64" else PAGE
    dtb_start = align_up(initrd_start + (initrd[1] if initrd else 0), dtb_align)
    if board.user_dtb is not None:
        handed, random_bytes = handed_user_dtb(board.user_dtb[1], board.dtb, base, ram, req.cmdline, initrd)
        given, source = board.user_dtb[1], f"the -dtb file {board.user_dtb[0]}"
    else:
        handed, random_bytes = handed_dtb(board.dtb, req.cmdline, initrd)
        given, source = board.dtb, board.dtb_source
    res.place("DTB", dtb_start, len(handed), dtb_align,
              f"after the initrd, {'2 MiB' if arch == 'aarch64' else '4 KiB'} aligned", "boot-info")
    registers = ({"x0": dtb_start, "x1": 0, "x2": 0, "x3": 0} if arch == "aarch64"
                 else {"r0": 0, "r1": VIRT_BOARD_ID, "r2": dtb_start})
    res.mbi_address, res.mbi_bytes = dtb_start, handed
    res.cmdline = req.cmdline
    memory = fdt_to_map(parse_dtb(handed))
    res.mmap = [(r.start, r.size, r.type) for r in memory.ranges]
    res.linux = {"entry": entry, "kernel_format": kind, "registers": registers,
                 "devicetree": devicetree_facts(given, handed, dtb_start, registers, RANDOM, source, random_bytes)}
    res.notes.append("random per boot (predicted present with their size): "
                     + ", ".join(f"{r.path}/{r.name} ({r.size} bytes)" for r in RANDOM))
    ram_ok = all(base <= p.start and p.end <= ram_end for p in res.placements)
    res.checks.append(check("placements-in-ram", ram_ok, "kernel, initrd and DTB lie in the RAM /memory gives"
                            if ram_ok else "a placement lies outside /memory"))
    if any(t != E820Type.RAM for _, _, t in res.mmap):
        res.notes.append("the DTB reserves memory (reserved-memory or /memreserve/)")
    standard_checks(res, plat.memory_map)
    return res


def elf_load_segments(data, path):
    """(e_entry, [(p_paddr, p_offset, p_filesz, p_memsz)] of the PT_LOAD headers) of a little-endian ELF."""
    wide = data[4] == 2
    entry = int.from_bytes(data[24:32] if wide else data[24:28], "little")
    phoff = int.from_bytes(data[32:40] if wide else data[28:32], "little")
    phentsize = int.from_bytes(data[54:56] if wide else data[42:44], "little")
    phnum = int.from_bytes(data[56:58] if wide else data[44:46], "little")
    if phentsize < (56 if wide else 32) or phoff + phnum * phentsize > len(data):
        raise RecipeError(f"ELF program headers ({phnum} at {phoff:#x}) run past the file", path=path, offset=phoff)
    out = []
    for i in range(phnum):
        h = data[phoff + i * phentsize:phoff + (i + 1) * phentsize]
        if int.from_bytes(h[0:4], "little") != 1:
            continue
        if wide:
            out.append(tuple(int.from_bytes(h[a:a + 8], "little") for a in (24, 8, 32, 40)))
        else:
            out.append(tuple(int.from_bytes(h[a:a + 4], "little") for a in (12, 4, 16, 20)))
    return entry, out


def load_elf_program(req, res, board, arch):
    """QEMU -kernel of an ELF (a bare program, see the rules above)."""
    base, ram_end = board.ram_base, board.ram_base + board.memory_bytes
    entry, segments = elf_load_segments(req.kernel.data, req.kernel.path)
    if not segments or any(p < base or p + m > ram_end for p, _, _, m in segments):
        raise RecipeError("an ELF kernel whose segments lie outside RAM: QEMU's load_elf writes them where they "
                          "say (qemu-arm-kernel predicts ELF programs loaded into RAM)", path=req.kernel.path)
    low, high = min(p for p, _, _, _ in segments), max(p + m for p, _, _, m in segments)
    for i, (paddr, _, filesz, memsz) in enumerate(segments):
        res.place(f"ELF segment {i}", paddr, memsz, 1, "its p_paddr (hw/core/loader.c load_elf)", "kernel")
    if req.modules:
        res.notes.append("QEMU loads no initrd for an ELF (not a Linux boot): -initrd is ignored")
    registers = {"x0": 0, "x1": 0, "x2": 0, "x3": 0} if arch == "aarch64" else {"r0": 0, "r1": 0, "r2": 0}
    res.linux = {"entry": entry, "kernel_format": "elf", "registers": registers, "dtb_register": None,
                 "elf_segments": [list(s) for s in segments]}
    res.cmdline = req.cmdline
    handed, random_bytes = handed_dtb(board.dtb, req.cmdline, None)
    room = low > base or high < base
    if room and (low <= base or len(handed) <= low - base):
        res.place("DTB", base, len(handed), PAGE, "the RAM base, below the ELF (dtb_limit = its lowest address)",
                  "boot-info")
        res.mbi_address, res.mbi_bytes = base, handed
        res.linux["devicetree"] = devicetree_facts(board.dtb, handed, base, registers, RANDOM, board.dtb_source,
                                                   random_bytes)
        res.notes.append("the DTB is at the RAM base, but no register points to it (a bare program)")
        res.mmap = [(r.start, r.size, r.type) for r in fdt_to_map(parse_dtb(handed)).ranges]
    else:
        res.notes.append(f"no DTB: its {len(handed):#x} bytes do not fit below the ELF's lowest address {low:#x}; "
                         "the program is handed no memory map")
    standard_checks(res, req.platform.memory_map)
    return res
