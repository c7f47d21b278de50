"""Syslinux 6.04 mboot.c32 as a Multiboot1 loader (com32/mboot/mboot.c, map.c,
mem.c; com32/lib/syslinux/memmap.c; ISOLINUX 6.04 observed by the fidelity
matrix).

Rules:
- The free map: INT 12h base memory and the E820 RAM from 1 MiB below
  4 GiB (syslinux_memory_map); first fit, lowest address, with alignment.
- Kernel PT_LOAD segments at p_paddr ("Memory segment at 0x... is
  unavailable" otherwise); the high-water mark starts at 1 MiB and follows
  the highest segment end.
- "High" data goes at or above the high-water mark: the section header
  table (4 KiB aligned, not padded), then every !SHF_ALLOC section with a
  size (aligned to sh_addralign, padded to it), then each module (4 KiB
  aligned, padded to 4 KiB).
- "Low" data is first fit from 0x2000: the MBI (88 bytes, 4-aligned), the
  kernel command line "<path> <args>", the module list (16-aligned,
  padded), then per module its string "<path> <args>" (1-aligned: short
  ones fill earlier gaps), then the mmap (all E820 entries, size 20,
  4-aligned) and the loader name.
- mem_lower from INT 12h, mem_upper = the available range at 1 MiB.

Syslinux's own memory at the kernel's entry (16-bit core at 0x7c00,
xfer_buf_seg 0x1000, the 32-bit core at 1 MiB, the heap and the COM32
modules in it, mboot.c32's stack) is the loader-owned list
(bootforge/loader/owned.py), found in guest memory by
tests/test_loader_owned.py. 6.04 has no cache_seg or real_mode_seg: its
cache and config data are on the heap.
"""

from bootforge.errors import LoaderRefusal
from bootforge.formats.multiboot import (
    MBI1_SIZE_WITHOUT_FRAMEBUFFER, MbiFlag, Multiboot1Info, Multiboot1MmapEntryFixed, Multiboot1Module, VbeInfoBlock,
    VbeModeInfoBlock,
)
from bootforge.loader import mbi
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import (
    GIB4, MIB, e820_entries, mem_lower_kib, mem_upper_kib, ram_intervals, standard_checks,
)
from bootforge.loader.alloc import FreeSpace
from bootforge.loader.owned import syslinux as syslinux_owned
from bootforge.loader.result import LoadResult
from bootforge.loader.video import LFB_MODE_FLAG, VBE_INTERFACE, syslinux_choose
from bootforge.multiboot.entry import loader_entry

SOURCE = "Syslinux 6.04 com32/mboot/{mboot,map,mem}.c"
LOADER_NAME = "ISOLINUX 6.04 20200816 "
MODULE_SIZE = Multiboot1Module.sizeof()
MMAP_ENTRY_SIZE = Multiboot1MmapEntryFixed.sizeof()


class SyslinuxMap:
    def __init__(self, platform):
        kib = mem_lower_kib(platform)
        low = [(0x600, kib * 1024)] if 31 < kib <= 640 else []
        self.free = FreeSpace(low + ram_intervals(platform.memory_map, MIB, GIB4))
        self.high_water = MIB

    def map_data(self, length, align, high, pad=True):
        align = max(align, 1)
        padding = (-length % align) if pad else 0
        start = self.high_water if high else 0x2000
        at = self.free.lowest(length + padding, align, start)
        if at is None:
            raise LoaderRefusal(f"Cannot map {length + padding} bytes")
        self.free.take(at, length + padding)
        if at + length + padding > self.high_water:
            self.high_water = at + length + padding
        return at


@loader_policy("syslinux-mb1", firmware="bios", protocol="multiboot1", verdict="syslinux-mb1", source=SOURCE,
               verified=True, boot_medium="isolinux-iso", wrong_firmware="syslinux-mb1 runs on a BIOS platform",
               summary="ISOLINUX 6.04 + mboot.c32")
def load(req):
    k = req.kernel
    res = LoadResult(req.loader, "multiboot1", req.platform, SOURCE)
    res.entry = loader_entry(k, "multiboot1", "syslinux")
    sm = SyslinuxMap(req.platform)
    for i, (p, _f, m) in enumerate(k.segments):
        if not sm.free.is_free(p, m):
            raise LoaderRefusal(f"Memory segment at 0x{p:08x} (len 0x{m:08x}) is unavailable")
        sm.free.take(p, m)
        sm.high_water = max(sm.high_water, p + m)
        res.place(f"kernel segment {i}", p, m, 1, "fixed: ELF p_paddr", "kernel")
    shdr = 0
    if k.shnum:
        shdr = sm.map_data(k.shnum * k.shentsize, 4096, True, pad=False)
        res.place("ELF section headers", shdr, k.shnum * k.shentsize, 4096, "high water, 4 KiB, not padded",
                  "boot-info")
        for s in k.unloaded_sections("syslinux"):
            at = sm.map_data(s.size, s.align, True)
            res.place(f"ELF section {s.index}", at, s.size, max(s.align, 1), "high water, sh_addralign",
                      "boot-info")
    mbi_at = sm.map_data(MBI1_SIZE_WITHOUT_FRAMEBUFFER, 4, False)
    cmdline = f"{req.kernel_loader_path} {req.cmdline}".rstrip()
    cmd_at = sm.map_data(len(cmdline.encode()) + 1, 1, False, pad=False)
    mods, mods_addr = [], 0
    if req.modules:
        mods_addr = sm.map_data(MODULE_SIZE * len(req.modules), 16, False)
        for i, m in enumerate(req.modules):
            s = f"{m.loader_path} {m.cmdline}".rstrip()
            s_at = sm.map_data(len(s.encode()) + 1, 1, False, pad=False)
            at = sm.map_data(m.size, 4096, True)
            mods.append({"start": at, "end": at + m.size, "cmdline": s, "cmdline_addr": s_at})
            res.place(f"module {i} {m.loader_path}", at, m.size, 4096, "high water, 4 KiB, padded", "module")
    entries = e820_entries(req.platform.memory_map)
    mmap_at = sm.map_data(MMAP_ENTRY_SIZE * len(entries), 4, False)
    name_at = sm.map_data(len(LOADER_NAME) + 1, 1, False, pad=False)
    # set_graphics_mode (initvesa.c), last before the jump: for MB1 flag 2 with mode_type 0 it
    # sets a VESA mode and maps its copy of the VBE info blocks (512 + 256 bytes).
    video, vbe = None, (0, 0, 0, 0, 0, 0)
    h = k.mb1 or {}
    if h.get("video_mode") and (h.get("video") or {}).get("mode_type", 1) == 0:
        v = h["video"]
        video = syslinux_choose(v.get("width", 0), v.get("height", 0), v.get("depth", 0))
    if video is not None:
        vesa_at = sm.map_data(VbeInfoBlock.sizeof() + VbeModeInfoBlock.sizeof(), 4, False)
        vbe = (vesa_at, vesa_at + VbeInfoBlock.sizeof(), video.mode | LFB_MODE_FLAG, *VBE_INTERFACE)
        res.notes.append(f"video: mboot.c32 sets VESA mode {video.mode:#x} ({video.width}x{video.height}x{video.bpp})")
    res.mmap = entries
    res.mem_lower, res.mem_upper = mem_lower_kib(req.platform), mem_upper_kib(req.platform.memory_map)
    res.cmdline = cmdline
    res.modules = [{"start": m["start"], "end": m["end"], "cmdline": m["cmdline"], "cmdline_addr": m["cmdline_addr"]}
                   for m in mods]
    res.mbi_address = mbi_at
    res.regions = {"cmdline": cmd_at, "mods": mods_addr, "mmap": mmap_at, "loader": name_at, "shdr": shdr}
    flags = MbiFlag.MEM | MbiFlag.CMDLINE | MbiFlag.MMAP | MbiFlag.BOOT_LOADER_NAME
    flags |= (MbiFlag.MODS if mods else 0) | (MbiFlag.ELF_SHDR if shdr else 0) | (MbiFlag.VBE if video else 0)
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, 0, cmd_at, len(mods), mods_addr,
                                 (k.shnum, k.shentsize, shdr, k.shstrndx) if shdr else (0, 0, 0, 0),
                                 MMAP_ENTRY_SIZE * len(entries), mmap_at, name_at,
                                 vbe=vbe)[:MBI1_SIZE_WITHOUT_FRAMEBUFFER]
    res.mbi_bytes += bytes(Multiboot1Info.sizeof() - MBI1_SIZE_WITHOUT_FRAMEBUFFER)
    # Syslinux's own memory at the entry (bootforge.loader.owned): mboot.c32's stack at the top
    # of the largest range its map leaves free (map.c mboot_map_stack).
    top = max(sm.free.intervals(), key=lambda r: (r[1] - r[0], -r[0]))[1]
    last = req.modules[-1] if req.modules else None
    # The bounce buffer keeps the last file's first sector when one read took it whole (64 KiB).
    last_file = (last.path, last.size) if last is not None and last.size <= 0x10000 else None
    append = " ".join([cmdline] + [f"--- {m['cmdline']}" for m in mods])      # mboot.c32's APPEND line
    res.owned = syslinux_owned(min(top, GIB4), last_file, len(append.encode()), len(mods))
    res.place("multiboot_info", mbi_at, MBI1_SIZE_WITHOUT_FRAMEBUFFER, 4, "first fit from 0x2000", "mbi")
    res.place("mmap", mmap_at, MMAP_ENTRY_SIZE * len(entries), 4, "first fit from 0x2000", "mbi")
    res.structures = mbi.mb1_structures(res, k, LOADER_NAME)
    standard_checks(res, req.platform.memory_map)
    return res

