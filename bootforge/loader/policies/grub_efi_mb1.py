"""GRUB 2 x86_64-efi as a Multiboot1 loader (`multiboot`/`module`: grub-core/loader/multiboot.c,
multiboot_elfxx.c, i386/multiboot_mbi.c built for EFI, lib/relocator.c with EFI firmware
requests, mmap/efi/mmap.c; GRUB 2.06-13+deb12u2 on OVMF 2022.11).

Rules (the relocator and staging model of grub-efi-mb2, bootforge.loader.policies.grub_efi):
- Kernel segments at their p_paddr, whole pages from the firmware; a target outside
  conventional memory staged. Then each sh_addr == 0 section at the lowest conventional pages
  from 0x1000 (observed: 0x1000, 0x2000, 0x3000).
- Modules: the lowest conventional pages at or above 1 MiB (multiboot.c grub_cmd_module:
  lowest_addr 0x100000 for `module`; `module2` has 0), so the first module follows the
  kernel's last page (observed: 0x103000 after the page of the dump kernel's segment at 0x102078).
- The info: grub_multiboot_get_mbi_size() bytes in [0x10000, 0xa0000), the lowest conventional
  pages there (observed: 0x10000). Layout as on i386-pc, less what EFI has not: the 120-byte
  struct, command line, loader name, (no APM: multiboot_mbi.c asks only GRUB_MACHINE_PCBIOS), the
  module list and strings, the mmap, the section headers; no VBE blocks (no
  GRUB_MACHINE_HAS_VBE), no boot device (grub_multiboot_set_bootdev: no BIOS drive number on
  EFI, flag 1 clear), no drives.
- mmap: grub_mmap_iterate over the EFI map GetMemoryMap gives when the info is made (GRUB's
  chunks loader data), converted as for tag 6 (grub_efi.grub_efi_mmap); mem_lower /
  mem_upper from it as grub_mmap_get_lower / get_upper.
- Video: with no VGA text on EFI, multiboot.c set_video_mode always asks for a mode:
  "WxHxD,WxH,auto;auto" for a flag-2 mode_type 0 request, "auto" otherwise. With efi_gop loaded
  (an image or medium built for a kernel asking for video: bootloaders/grub.py asks_for_video)
  GRUB sets the GOP mode efi_gop.c chooses (bootforge.loader.video.grub_gop_choose) and writes
  the RGB framebuffer fields and flag 12, and no VBE fields (flag 11 clear). Without a video
  driver GRUB prints "no suitable video mode found." and writes neither (observed).
"""

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal
from bootforge.formats.multiboot import APM_TABLE_SIZE, FramebufferType, MbiFlag, Multiboot1Module
from bootforge.loader import mbi
from bootforge.loader.policies import Comparison, loader_policy
from bootforge.loader.policies.common import GIB4, MIB, mb1_kludge_view, standard_checks
from bootforge.loader.policies.grub_efi import (PAGE, _available_runs, _take, _with_loader_data, grub_efi_mmap,
                                                load_fixed_segments, place_grub_heap)
from bootforge.loader.policies.grub_pc import (MBI_ALLOC, MMAP_ENTRY_SIZE, PACKAGE_STRING, REFUSE,
                                               UNWRITTEN_MODULE_RESERVED, grub_module_size)
from bootforge.loader.result import LoadResult
from bootforge.loader.video import grub_gop_choose, grub_mode_string
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.multiboot.entry import loader_entry

SOURCE = ("GRUB 2.06 grub-core/loader/multiboot.c, multiboot_elfxx.c, i386/multiboot_mbi.c, lib/relocator.c, "
          "mmap/efi/mmap.c (x86_64-efi)")
MODULE_SIZE = Multiboot1Module.sizeof()       # 16
PALETTE_ROOM = 256 * 3                        # get_mbi_size(): 256 struct multiboot_color
MBI_MIN, MBI_LIMIT = 0x10000, 0xA0000         # multiboot_mbi.c: alloc_chunk_align_safe(0x10000, 0xa0000, ...)


def mbi_size(cmd, name, modcmds, nmmap, shdr_size):
    """grub_multiboot_get_mbi_size() as x86_64-efi builds it (no VBE blocks)."""
    return (MBI_ALLOC + align_up(len(cmd), 4) + MODULE_SIZE * len(modcmds) + sum(align_up(len(c), 4) for c in modcmds)
            + align_up(len(name), 4) + MMAP_ENTRY_SIZE * nmmap + shdr_size + PALETTE_ROOM
            + align_up(APM_TABLE_SIZE, 4))


def video_request(k):
    """(width, height, depth) of an MB1 video request GRUB honours (flag 2, mode_type 0), or None."""
    h = k.mb1 or {}
    v = h.get("video") or {}
    if not h.get("video_mode") or v.get("mode_type", 1) != 0:
        return None
    return v.get("width", 0), v.get("height", 0), v.get("depth", 0)


def gop_framebuffer(k, res):
    """The MB1 framebuffer fields GRUB x86_64-efi writes for a flag-2 mode_type 0 request with
    efi_gop loaded (multiboot_mbi.c retrieve_video_parameters), or None. Address: GOP's
    FrameBufferBase, the BAR OVMF assigned (0 here: firmware data in verify)."""
    want = video_request(k)
    if want is None:
        return None
    mode = grub_gop_choose(grub_mode_string(*want) + ";auto")
    if mode is None:
        return None
    res.notes.append(f"video: GRUB sets GOP mode {mode.mode} ({mode.width}x{mode.height}x{mode.bpp}, pitch "
                     f"{mode.pitch}) from OVMF's list")
    # color_info: red and green position/size; blue lies past the 116 bytes the info's flags cover.
    return dict(framebuffer_addr=0, framebuffer_pitch=mode.pitch, framebuffer_width=mode.width,
                framebuffer_height=mode.height, framebuffer_bpp=mode.bpp, framebuffer_type=FramebufferType.RGB,
                color_info=bytes(mode.rgb[:4]))


@loader_policy("grub-efi-mb1", firmware="uefi", protocol="multiboot1", verdict="grub-mb1", source=SOURCE,
               verified=True, boot_medium="grub-efi-iso",
               comparison=Comparison(unwritten_module_reserved=UNWRITTEN_MODULE_RESERVED),
               wrong_firmware="grub-efi-mb1 needs an EFI platform (an EFI map: lsefimmap text, efi-bin, "
                              "a dump's tag 17, r820-efi)",
               summary="GRUB 2.06 x86_64-efi `multiboot`/`module`")
def load(req):
    k = mb1_kludge_view(req.kernel)
    res = LoadResult(req.loader, "multiboot1", req.platform, SOURCE)
    res.entry = loader_entry(k, "multiboot1", "grub")
    res.load_base = k.low
    efi, free = place_grub_heap(res, req.platform)
    free = free.clip(0x1000, GIB4)
    taken = []

    def alloc(name, size, rule, kind, min_addr=0x1000, limit=GIB4):
        at = free.lowest(align_up(size, PAGE), PAGE, min_addr, limit)
        if at is None:
            raise LoaderRefusal(f"{REFUSE} ({name}, {size} bytes)", words=REFUSE)
        _take(res, free, taken, name, at, size, rule, kind)
        return at

    load_fixed_segments(res, k, efi, free, taken, alloc, k.segments)
    for s in k.unloaded_sections("grub"):
        alloc(f"ELF section {s.index}", s.size, "lowest conventional pages", "boot-info")
    mods = []
    for i, m in enumerate(req.modules):
        size = grub_module_size(m)
        at = alloc(f"module {i} {m.loader_path}", size, "lowest conventional pages at or above 1 MiB "
                   "(`module`'s lowest_addr)", "module", min_addr=MIB)
        mods.append({"start": at, "end": at + size, "cmdline": m.cmdline})
    res.modules = mods
    cmd = req.cmdline.encode() + b"\0"
    name = PACKAGE_STRING.encode() + b"\0"
    modcmds = [m["cmdline"].encode() + b"\0" for m in mods]
    shdr_size = k.shnum * k.shentsize
    # The mmap count get_mbi_size() takes before the info's own chunk: that chunk, loader data in
    # conventional memory, merges into the same type-1 entry, so the count is the one filled.
    nmmap = len(grub_efi_mmap(_with_loader_data(efi, taken)))
    bufsize = mbi_size(cmd, name, modcmds, nmmap, shdr_size)
    at = alloc("multiboot_info + strings + mmap", bufsize, f"lowest conventional pages in [0x10000, 0xa0000) "
               f"of get_mbi_size() = {bufsize} bytes", "mbi", min_addr=MBI_MIN, limit=MBI_LIMIT)
    after = _with_loader_data(efi, taken)
    res.maps["efi-at-exit"] = after
    res.mmap = grub_efi_mmap(after)
    runs = _available_runs(res.mmap)
    res.mem_lower = next((min(b - a, 640 * 1024) // 1024 for a, b in runs if a == 0), 0)
    res.mem_upper = next(((b - MIB) // 1024 for a, b in runs if a <= MIB < b), 0)
    res.cmdline = req.cmdline
    pos = at + MBI_ALLOC
    regions = {"cmdline": pos}
    pos += align_up(len(cmd), 4)
    regions["loader"] = pos
    pos += align_up(len(name), 4)
    regions["mods"] = pos if modcmds else 0
    pos += MODULE_SIZE * len(modcmds)
    for m, c in zip(mods, modcmds):
        m["cmdline_addr"] = pos
        pos += align_up(len(c), 4)
    regions["mmap"] = pos
    pos += MMAP_ENTRY_SIZE * len(res.mmap)
    regions["shdr"] = pos if shdr_size else 0
    flags = MbiFlag.MEM | MbiFlag.CMDLINE | MbiFlag.MMAP | MbiFlag.BOOT_LOADER_NAME
    if modcmds:
        flags |= MbiFlag.MODS
    if shdr_size:
        flags |= MbiFlag.ELF_SHDR
    fb = gop_framebuffer(k, res)
    if fb is not None:
        flags |= MbiFlag.FRAMEBUFFER
    res.mbi_address = at
    res.regions = regions
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, 0, regions["cmdline"], len(modcmds),
                                 regions["mods"],
                                 (k.shnum, k.shentsize, regions["shdr"], k.shstrndx) if shdr_size else (0, 0, 0, 0),
                                 MMAP_ENTRY_SIZE * len(res.mmap), regions["mmap"], regions["loader"], 0,
                                 (0, 0, 0, 0, 0, 0), fb)
    res.notes.append("MB1 info on EFI: no boot device, APM, drives or VBE fields (GRUB asks no BIOS)")
    if fb is None:
        res.notes.append("no framebuffer: without a video driver GRUB says \"no suitable video mode found.\"")
    res.structures = mbi.mb1_structures(res, k, PACKAGE_STRING)
    ram = MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in res.mmap])
    res.maps["mmap"] = ram
    standard_checks(res, ram)
    return res
