"""QEMU -kernel as a Multiboot1 loader (qemu/qemu hw/i386/multiboot.c and
pc-bios/optionrom/multiboot.S; QEMU 7.2 observed by the fidelity matrix).

Rules:
- Multiboot1 only; an ELF64 kernel: "Cannot load x86-64 image, give a 32bit one."
- One blob at the kernel's lowest p_paddr: the kernel image up to its highest
  segment end, padded to a page; then the module list (16 bytes each), then
  the strings: every module's string as given to -initrd ("file args"), the
  kernel's "<file> <append>", the loader name "qemu"; padded to a page; then
  the modules back to back, each starting on a page.
- MBI fixed at 0x9500 (flags 0x24f: mem, boot_device, cmdline, mods, mmap,
  loader name; boot_device 0x8000ffff); the option ROM fills the mmap at
  0x9000 with every INT 15h E820 entry (size 20), mem_lower from INT 12h,
  mem_upper = the available run starting at 1 MiB.
"""

from bootforge.align import align_up
from bootforge.formats.multiboot import (
    ELF_MAGIC, MBI1_SIZE_WITHOUT_FRAMEBUFFER, MbiFlag, Multiboot1Info, Multiboot1MmapEntryFixed, Multiboot1Module,
)
from bootforge.loader import mbi
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import (
    e820_entries, mb1_kludge_view, mem_lower_kib, mem_upper_kib, standard_checks,
)
from bootforge.loader.result import LoadResult
from bootforge.multiboot.entry import loader_entry
from bootforge.multiboot.verdicts.qemu import U32, elf_extent, elf_roms

MBI_ADDR = 0x9500
BOOT_DEVICE = 0x8000FFFF     # multiboot.c: "bootdevice": BIOS drive 0x80, no partition
MODULE_SIZE = Multiboot1Module.sizeof()
MMAP_ENTRY_SIZE = Multiboot1MmapEntryFixed.sizeof()
MMAP_ADDR = 0x9000
PAGE = 4096
SOURCE = "QEMU hw/i386/multiboot.c + pc-bios/optionrom/multiboot.S"


LOADER_NAME = "qemu"                 # hw/i386/multiboot.c: the boot loader name it writes


@loader_policy("qemu-mb1", firmware="bios", protocol="multiboot1", verdict="qemu-mb1", source=SOURCE,
               verified=True, boot_medium="qemu-kernel",
               wrong_firmware="qemu-mb1 runs on a BIOS platform (QEMU's multiboot option ROM)",
               summary="QEMU -kernel/-initrd (its multiboot option ROM)")
def load(req):
    k = mb1_kludge_view(req.kernel)
    res = LoadResult(req.loader, "multiboot1", req.platform, SOURCE)
    res.entry = loader_entry(k, "multiboot1", "qemu")
    low, high = k.low, k.high
    if k is req.kernel and k.data[:4] == ELF_MAGIC:
        # load_elf's extent: a zero-filled tail overlapping another segment is not loaded.
        roms, _why = elf_roms(k.data)
        if roms:
            low, high = elf_extent(roms)
    kernel_size = high - low
    res.place("kernel image", low, kernel_size, PAGE, "fixed: lowest p_paddr, one blob to the highest end",
              "kernel")
    offset = align_up(kernel_size, PAGE)
    mods_addr = low + offset
    strings_at = mods_addr + MODULE_SIZE * len(req.modules)
    mod_strings = [f"{m.loader_path} {m.cmdline}".rstrip() if m.cmdline else m.loader_path for m in req.modules]
    kernel_cmdline = f"{req.kernel_loader_path} {req.cmdline}"
    pos = strings_at
    mods = []
    for s in mod_strings:
        mods.append({"cmdline_addr": pos, "cmdline": s})
        pos += len(s.encode()) + 1
    cmdline_addr = pos
    pos += len(kernel_cmdline.encode()) + 1
    loader_addr = pos
    pos += len(LOADER_NAME.encode()) + 1
    res.place("module list + strings", mods_addr, pos - mods_addr, PAGE,
              "after the kernel, page aligned (QEMU's mb_buf)", "boot-info")
    at = low + align_up(pos - low, PAGE)
    for i, m in enumerate(req.modules):
        mods[i].update(start=at, end=at + m.size)
        res.place(f"module {i} {m.loader_path}", at, m.size, PAGE, "back to back after the strings, "
                  "each on a page", "module")
        at = low + align_up(at + m.size - low, PAGE)
    platform_map = req.platform.memory_map
    entries = e820_entries(platform_map)
    res.mmap = entries
    res.mem_lower, res.mem_upper = mem_lower_kib(req.platform), mem_upper_kib(platform_map)
    res.cmdline = kernel_cmdline
    res.modules = [{"start": m["start"], "end": m["end"], "cmdline": m["cmdline"], "cmdline_addr": m["cmdline_addr"]}
                   for m in mods]
    res.mbi_address = MBI_ADDR
    flags = (MbiFlag.MEM | MbiFlag.BOOT_DEVICE | MbiFlag.CMDLINE | MbiFlag.MODS | MbiFlag.MMAP
             | MbiFlag.BOOT_LOADER_NAME)                                   # 0x24f
    mmap_length = MMAP_ENTRY_SIZE * len(entries)
    # multiboot.c adds offsets to mb_buf_phys in 64 bits and stores 32 (mb_add_cmdline returns a
    # uint32_t, stl_p): past 4 GiB the addresses the kernel is given wrap.
    for m in res.modules:
        m.update(start=m["start"] & U32, end=m["end"] & U32, cmdline_addr=m["cmdline_addr"] & U32)
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, BOOT_DEVICE, cmdline_addr & U32, len(mods),
                                 mods_addr & U32, mmap_length=mmap_length, mmap_addr=MMAP_ADDR,
                                 loader=loader_addr & U32)[:MBI1_SIZE_WITHOUT_FRAMEBUFFER]
    res.mbi_bytes += bytes(Multiboot1Info.sizeof() - MBI1_SIZE_WITHOUT_FRAMEBUFFER)
    res.regions = {"mmap": MMAP_ADDR, "mods": mods_addr & U32, "cmdline": cmdline_addr & U32,
                   "loader": loader_addr & U32}
    res.place("multiboot_info", MBI_ADDR, MBI1_SIZE_WITHOUT_FRAMEBUFFER, 4, "fixed at 0x9500 by QEMU", "mbi")
    res.place("mmap (option ROM)", MMAP_ADDR, mmap_length, 4, "fixed at 0x9000 by the option ROM", "mbi")
    res.structures = mbi.mb1_structures(res, None, LOADER_NAME)
    standard_checks(res, platform_map)
    return res
