"""GRUB 2 i386-pc as a Multiboot1 (`multiboot`/`module`) and Multiboot2
(`multiboot2`/`module2`) loader (grub-core/loader/multiboot.c,
multiboot_elfxx.c, multiboot_mbi.c, multiboot_mbi2.c, lib/relocator.c;
GRUB 2.06-13+deb12u2 observed by the fidelity matrix).

Rules:
- Kernel PT_LOAD segments at their p_paddr (fixed chunks); any other
  target: "couldn't find suitable memory target".
- Then every section with sh_addr == 0 and a size (symtab, strtab,
  shstrtab) gets a relocator chunk aligned to sh_addralign, in section order.
- Then each module a chunk aligned to 4 KiB, in command order.
- At boot the MBI: Multiboot1 in [0x10000, 0xa0000), 4-byte aligned, of
  grub_multiboot_get_mbi_size() bytes; Multiboot2 anywhere below 4 GiB,
  8-byte aligned, of grub_multiboot2_get_mbi_size() bytes (an upper bound
  of the real size).
- The relocator on PC-BIOS picks the lowest aligned free address, first in
  RAM at/above 1 MiB (GRUB's heap regions, from which it allocates with
  no preference), then in low RAM from 0x1000 (for requests that cannot be
  met above 1 MiB, like the Multiboot1 MBI). Observed: modules land right
  after the kernel's last segment, or at 1 MiB + the symbol sections when
  the kernel is linked high; the MB1 MBI at 0x10000.
- mmap: the BIOS E820 list as returned (GRUB adds no overlays here);
  mem_lower from the available range at 0 (639 KiB under SeaBIOS),
  mem_upper = the available range containing 1 MiB, minus 1 MiB.
- Command lines: GRUB 2 drops the file name (kernel and modules alike), in
  both protocols (observed; the Multiboot1 spec's "path first" is GRUB
  Legacy's habit).
"""

from dataclasses import replace
from pathlib import Path

from bootforge.align import align_up
from bootforge.compress.streams import decompress
from bootforge.errors import BootforgeError, LoaderRefusal
from bootforge.formats.multiboot import (
    APM_TABLE_SIZE, FramebufferType, Mb2HeaderTag, Mb2RelocatablePreference, Mb2Tag, MbiFlag, Multiboot1Info,
    Multiboot1MmapEntryFixed, Multiboot1Module, VbeInfoBlock, VbeModeInfoBlock,
)
from bootforge.loader import grub_heap, mbi
from bootforge.loader.policies import Comparison, loader_policy
from bootforge.loader.policies.common import (
    MIB, GIB4, e820_entries, free_space, mb1_kludge_view, mem_lower_kib, mem_upper_kib, standard_checks,
)
from bootforge.loader.owned import grub_pc as grub_pc_owned
from bootforge.loader.result import LoadResult
from bootforge.loader.video import LFB_ADDRESS, LFB_MODE_FLAG, VBE_INTERFACE, grub_mode_string, grub_vbe_choose
from bootforge.multiboot.entry import loader_entry, moved_entry

PACKAGE_STRING = "GRUB 2.06-13+deb12u2"
SOURCE = "GRUB 2.06 grub-core/loader/multiboot*.c, lib/relocator.c (i386-pc)"
REFUSE = "couldn't find suitable memory target"
# What SeaBIOS under QEMU gives GRUB (sizes matter for the MBI; contents are the firmware's).
RSDP_V1 = 20
SMBIOS_EPS = 0x1F
BIOSDEV_CDROM = 0xE0
MBI_ALLOC = align_up(Multiboot1Info.sizeof(), 8)     # GRUB allocates the 116-byte struct 8-byte aligned: 120
MODULE_SIZE = Multiboot1Module.sizeof()               # 16
MMAP_ENTRY_SIZE = Multiboot1MmapEntryFixed.sizeof()   # 24 with its size field
# The EGA text console SeaBIOS leaves (MB1 framebuffer fields and MB2 tag 8, observed in the dumps).
EGA_TEXT_FRAMEBUFFER = dict(framebuffer_addr=0xB8000, framebuffer_pitch=160, framebuffer_width=80,
                            framebuffer_height=25, framebuffer_bpp=16, framebuffer_type=FramebufferType.EGA_TEXT)


# GRUB's heap on i386-pc (kern/i386/pc/init.c) spans every available range between 1 MiB and
# 4 GiB; regions are kept smallest first (kern/mm.c grub_mm_init_region) and grub_real_malloc
# carves each block from the high end of a free one, so what GRUB holds when the relocator runs
# (its modules, config, disk cache, file buffers) sits at the top of the largest range below
# 4 GiB, and the relocator (lib/relocator.c) only uses the heap's free parts. How much: on
# bootforge's own images, what the modules of the image's core hold (LoadRequest.grub_heap,
# grub_heap.image_held: kern/dl.c's blocks and the disk-cache blocks, checked block by block
# against the real heap, tests/test_grub_heap.py); on grub-mkrescue's ISO (verify's own medium),
# the GRUB build's measured amount (grub_heap.BUILDS, with how it was measured). A longer
# grub.cfg adds disk-cache blocks and moves the holes GRUB's freed buffers leave: a
# 100-8000-byte command line puts the same probe one 2 MiB step lower, and not monotonically
# (probes at 1G), which is not derived: placements closer to the heap than HEAP_SPREAD are
# noted. The relocator also uses holes inside the span (a 0x1034-byte probe went to 0x3fe00000 with GRUB's lowest
# block at 0x3fdbc0e0), so the span is an approximation of the heap's free-block list.
HEAP_IN_USE = grub_heap.BUILDS[grub_heap.BUILD].multiboot_iso
HEAP_SPREAD = 0x9000        # above the > 0x8000 bytes more GRUB held with a 3000-byte command line

# gzio's header flags it refuses (grub-core/io/gzio.c test_gzip_header: CONTINUATION, ENCRYPTED, RESERVED).
GZIO_UNSUPPORTED_FLAGS = 0x02 | 0x20 | 0xC0


def grub_module_size(m):
    """The bytes GRUB loads for module *m* (a ModuleSpec): `module`/`module2` open the file
    without GRUB_FILE_TYPE_NO_DECOMPRESS unless --nounzip (grub-core/loader/multiboot.c
    grub_cmd_module), so a gzip module is gunzipped, its size the trailer's ISIZE (io/gzio.c
    test_gzip_header reads file->size from the last 4 bytes), and an xz module is
    unxz'd (io/xzio.c). Other files (a zstd initrd, a bzImage) are loaded as they are.
    Observed: a gzip'd busybox initrd as Xen's third module under real GRUB i386-pc."""
    data = m.data
    if data is None:
        try:
            with open(m.path, "rb") as f:
                head = f.read(10)
                if head[:2] == b"\x1f\x8b" and len(head) == 10 and head[2] == 8 \
                        and not head[3] & GZIO_UNSUPPORTED_FLAGS and Path(m.path).stat().st_size >= 18:
                    f.seek(-4, 2)
                    return int.from_bytes(f.read(4), "little")
                if not head.startswith(b"\xfd7zXZ\x00"):
                    return m.size
                data = head + f.read()
        except OSError:
            return m.size
    if data[:2] == b"\x1f\x8b" and len(data) >= 18 and data[2] == 8 and not data[3] & GZIO_UNSUPPORTED_FLAGS:
        return int.from_bytes(data[-4:], "little")
    if data.startswith(b"\xfd7zXZ\x00"):
        try:
            return len(decompress(data, "xz"))
        except BootforgeError:
            return m.size
    return m.size


class Relocator:
    """GRUB's relocator on PC-BIOS: lowest fit above 1 MiB, else below; GRUB's own heap in use
    at the top of the largest RAM range below 4 GiB is not free."""

    def __init__(self, memory_map, held=HEAP_IN_USE):
        self.high = free_space(memory_map, MIB, GIB4)
        self.low = free_space(memory_map, 0x1000, MIB)
        self.heap = heap_in_use(memory_map, held)
        if self.heap:
            self.high.take_overlap(*self.heap)

    def is_free(self, start, size):
        return self.high.is_free(start, size) or self.low.is_free(start, size)

    def take(self, start, size):
        (self.high if self.high.is_free(start, size) else self.low).take(start, size)

    def take_overlap(self, start, size):
        self.high.take_overlap(start, size)
        self.low.take_overlap(start, size)

    def alloc(self, size, align, min_addr, max_addr, high=False):
        """grub_relocator_alloc_chunk_align(min_addr, max_addr (highest start), size, align)."""
        align = max(align, 1)
        min_addr = max(min_addr, 0x1000)
        for pool in (self.high, self.low):
            if high:
                at = pool.highest(size, align, min_addr, max_addr + size)
            else:
                at = pool.lowest(size, align, min_addr, max_addr + size)
            if at is not None:
                pool.take(at, size)
                return at
        raise LoaderRefusal(REFUSE)


OUT_OF_MEMORY = "out of memory"


def _covered(memory_map, lo, hi):
    """[lo, hi) inside the map's ranges of any type, without a gap."""
    at = lo
    for r in sorted(memory_map.ranges, key=lambda r: r.start):
        if r.start <= at < r.start + r.size:
            at = r.start + r.size
            if at >= hi:
                return True
    return False


def heap_in_use(memory_map, held=HEAP_IN_USE):
    """(start, size) of GRUB's heap in use: *held* bytes (HEAP_IN_USE, or an image's
    LoadRequest.grub_heap) at the top of the largest available range in [1 MiB, 4 GiB), or None."""
    ranges = [(max(a, MIB), min(b, GIB4)) for a, b in free_space(memory_map, MIB, GIB4).intervals()]
    ranges = [(a, b) for a, b in ranges if b - a > held]
    if not ranges:
        return None
    a, b = max(ranges, key=lambda r: (r[1] - r[0], r[0]))
    return b - held, held


TEXT_VBE_MODE = 3                       # the VGA text mode SeaBIOS leaves: GRUB reports it when no video is set


def chosen_mode(k, protocol):
    """The VBE mode GRUB i386-pc sets for the kernel's video request (MB1 header flag 2 with
    mode_type 0, MB2 framebuffer tag, optional or not: multiboot.c / multiboot_mbi2.c
    set_console), or None (text). Indexed (8-bit) modes are not modelled: None."""
    if protocol == "multiboot1":
        h = k.mb1 or {}
        if not h.get("video_mode") or (h.get("video") or {}).get("mode_type", 1) != 0:
            return None
        v = h["video"]
        want = (v.get("width", 0), v.get("height", 0), v.get("depth", 0))
    else:
        tag = next((t for t in (k.mb2 or {}).get("tags", []) if t.get("type") == Mb2HeaderTag.FRAMEBUFFER), None)
        if tag is None:
            return None
        want = (tag.get("width", 0), tag.get("height", 0), tag.get("depth", 0))
    mode = grub_vbe_choose(grub_mode_string(*want))
    return mode if mode is not None and mode.rgb is not None else None


def rgb_framebuffer(video):
    """The framebuffer fields of a direct-colour VBE mode (address: the stdvga BAR)."""
    return dict(framebuffer_addr=LFB_ADDRESS, framebuffer_pitch=video.pitch, framebuffer_width=video.width,
                framebuffer_height=video.height, framebuffer_bpp=video.bpp, framebuffer_type=FramebufferType.RGB)


def relocatable_tag(k):
    """The MB2 relocatable header tag (type 10) of *k*, or None."""
    if not k.mb2:
        return None
    return next((t for t in k.mb2.get("tags", []) if t.get("type") == Mb2HeaderTag.RELOCATABLE), None)


def relocate(rel, k, tag):
    """Where GRUB puts a relocatable image (multiboot_elfxx.c): [min, max] holds the whole
    image (highest segment end - lowest p_paddr), aligned, lowest or highest by preference."""
    size = k.high - k.low
    lo, hi, align = tag["min_addr"], tag["max_addr"], tag["align"]
    if align == 0:
        raise LoaderRefusal("relocatable tag has align 0 (no alignment can be met)")
    if size > hi or lo > hi - size:
        raise LoaderRefusal(f"invalid min/max address and/or load size (relocatable min {lo:#x}, max {hi:#x}, "
                            f"image {size:#x} bytes)", words="invalid min/max address and/or load size")
    at = rel.alloc(size, align, lo, hi - size, high=tag.get("preference") == Mb2RelocatablePreference.HIGH)
    return at


def _prepare(req, protocol):
    k = req.kernel
    res = LoadResult(req.loader, protocol, req.platform, SOURCE)
    held = req.grub_heap or HEAP_IN_USE
    how = ("size derived from the modules of the image's core, grub_heap.image_held" if req.grub_heap
           else "size measured on grub-mkrescue's ISO, grub_heap.BUILDS")
    rel = Relocator(req.platform.memory_map, held)
    if rel.heap:
        res.place("GRUB heap in use", rel.heap[0], rel.heap[1], 16, "kern/mm.c: blocks carved from the top of the "
                  f"largest RAM range below 4 GiB ({how})", "loader")
    # GRUB's own memory at the entry (bootforge.loader.owned; tests/test_loader_owned.py).
    res.owned = grub_pc_owned(rel.heap, "multiboot" if protocol == "multiboot1" else "multiboot2", how)
    segs = [(p, m) for p, _f, m in k.segments if m]
    reloc = relocatable_tag(k) if protocol == "multiboot2" else None
    res.load_base = k.low
    res.entry = loader_entry(k, protocol, "grub")
    if reloc is not None:
        base = relocate(rel, k, reloc)
        if rel.heap and 0 <= rel.heap[0] - (base + k.high - k.low) < HEAP_SPREAD:
            res.notes.append(f"the relocatable image ends {rel.heap[0] - (base + k.high - k.low):#x} bytes below "
                             f"GRUB's heap in use ({held:#x} bytes, {how}, with short "
                             "command lines): a longer grub.cfg can make GRUB hold more and place it one "
                             f"{reloc['align']:#x} step lower")
        res.entry = moved_entry(res.entry, base - k.low)
        res.place("relocatable image", base, k.high - k.low, reloc["align"] or 1,
                  f"relocatable tag: [{reloc['min_addr']:#x}, {reloc['max_addr']:#x}] align "
                  f"{reloc['align']:#x} preference {reloc['preference']}", "kernel")
        segs = [(p - k.low + base, m) for p, m in segs]
        res.load_base = base
        for i, (p, m) in enumerate(segs):
            rel.take_overlap(p, m)
        segs = []
    for i, (p, m) in enumerate(segs):
        if not rel.is_free(p, m):
            # grub_relocator_alloc_chunk_addr checks a fixed target against the other chunks
            # only (relocator.c): bytes for a target in memory GRUB does not own are staged and
            # copied there at boot; a target the memory map does not cover at all is "out of
            # memory." (observed: a segment at 512 MiB on a 256 MiB machine).
            if not _covered(req.platform.memory_map, p, p + m):
                raise LoaderRefusal(f"{OUT_OF_MEMORY} (kernel segment at [{p:#x}, {p + m:#x}) lies beyond the "
                                    "memory map)", words=OUT_OF_MEMORY)
            rel.take_overlap(p, m)
            res.place(f"kernel segment {i}", p, m, 1, "fixed: ELF p_paddr over memory GRUB does not own (copied "
                      "there at boot)", "kernel")
            continue
        rel.take(p, m)
        res.place(f"kernel segment {i}", p, m, 1, "fixed: ELF p_paddr", "kernel")
    for s in k.unloaded_sections("grub"):
        at = rel.alloc(s.size, s.align, 0, 0xFFFFFFFF - s.size + 1)
        res.place(f"ELF section {s.index}", at, s.size, max(s.align, 1),
                  "relocator: lowest fit, sh_addralign (sh_addr == 0 sections)", "boot-info")
    mods = []
    for i, m in enumerate(req.modules):
        m = replace(m, size=grub_module_size(m))
        try:
            at = rel.alloc(m.size, 4096, MIB if protocol == "multiboot1" else 0, 0xFFFFFFFF - m.size + 1)
        except LoaderRefusal as exc:
            raise LoaderRefusal(f"{exc.message} (module {i} {m.loader_path}, {m.size} bytes)",
                                words=exc.words) from None
        mods.append({"start": at, "end": at + m.size, "cmdline": m.cmdline})
        res.place(f"module {i} {m.loader_path}", at, m.size, 4096, "relocator: lowest 4 KiB-aligned fit", "module")
    res.modules = mods
    platform_map = req.platform.memory_map
    res.mmap = e820_entries(platform_map)
    res.mem_lower = min(mem_lower_kib(req.platform), 640)
    res.mem_upper = mem_upper_kib(platform_map)
    res.cmdline = req.cmdline
    return res, rel


WRONG_FIRMWARE = "grub-pc-* runs on a BIOS platform; use grub-efi-mb1 / grub-efi-mb2 on EFI"
# Bytes GRUB never writes, so they hold its buffer's earlier contents (verify shows them, uncounted).
UNWRITTEN_TAG_PADDING = ("tag padding GRUB does not clear (multiboot_mbi2.c aligns its pointer to 8 without "
                         "writing the gap): earlier contents of its buffer")
UNWRITTEN_MODULE_RESERVED = ("the module entries' reserved word, which multiboot_mbi.c never sets: earlier "
                             "contents of GRUB's buffer")


@loader_policy("grub-pc-mb1", firmware="bios", protocol="multiboot1", verdict="grub-mb1", source=SOURCE,
               verified=True, boot_medium="grub-pc-iso", wrong_firmware=WRONG_FIRMWARE,
               summary="GRUB 2.06 i386-pc `multiboot`/`module`",
               comparison=Comparison(unwritten_module_reserved=UNWRITTEN_MODULE_RESERVED))
def load_mb1(req):
    req = replace(req, kernel=mb1_kludge_view(req.kernel))
    res, rel = _prepare(req, "multiboot1")
    k = req.kernel
    cmd = req.cmdline.encode() + b"\0"
    name = PACKAGE_STRING.encode() + b"\0"
    modcmds = [m["cmdline"].encode() + b"\0" for m in res.modules]
    shdr_size = k.shnum * k.shentsize
    nmmap = len(res.mmap)
    # grub_multiboot_get_mbi_size(): everything the buffer may hold.
    bufsize = (MBI_ALLOC + align_up(len(cmd), 4) + align_up(len(name), 4) + MODULE_SIZE * len(modcmds)
               + sum(align_up(len(c), 4) for c in modcmds) + MMAP_ENTRY_SIZE * nmmap + APM_TABLE_SIZE
               + shdr_size + VbeInfoBlock.sizeof() + VbeModeInfoBlock.sizeof())
    at = rel.alloc(bufsize, 4, 0x10000, 0xA0000 - bufsize)
    pos = at + MBI_ALLOC
    regions = {"cmdline": pos}
    pos += align_up(len(cmd), 4)
    regions["loader"] = pos
    pos += align_up(len(name), 4)
    # Room for the APM table stays in the buffer, but with no APM BIOS answer GRUB leaves
    # apm_table 0 and the flag clear (observed under SeaBIOS).
    pos += APM_TABLE_SIZE
    mods_addr = pos if modcmds else 0
    regions["mods"] = mods_addr
    pos += MODULE_SIZE * len(modcmds)
    for m, c in zip(res.modules, modcmds):
        m["cmdline_addr"] = pos
        pos += align_up(len(c), 4)
    regions["mmap"] = pos
    pos += MMAP_ENTRY_SIZE * nmmap
    regions["shdr"] = pos if shdr_size else 0
    pos += shdr_size
    regions["vbe_control"], regions["vbe_mode"] = pos, pos + VbeInfoBlock.sizeof()
    flags = (MbiFlag.MEM | MbiFlag.BOOT_DEVICE | MbiFlag.CMDLINE | MbiFlag.MMAP | MbiFlag.BOOT_LOADER_NAME
             | MbiFlag.VBE | MbiFlag.FRAMEBUFFER)
    if modcmds:
        flags |= MbiFlag.MODS
    if shdr_size:
        flags |= MbiFlag.ELF_SHDR
    res.mbi_address = at
    res.regions = regions
    video = chosen_mode(k, "multiboot1")
    vbe_mode, fb = TEXT_VBE_MODE, EGA_TEXT_FRAMEBUFFER
    if video is not None:
        vbe_mode, fb = video.mode | LFB_MODE_FLAG, rgb_framebuffer(video)
        fb["color_info"] = bytes(video.rgb[:4])     # red and green: blue lies past the info's 116 bytes
        res.notes.append(f"video: GRUB sets VBE mode {video.mode:#x} ({video.width}x{video.height}x{video.bpp})")
    drive, part = req.boot_device or (BIOSDEV_CDROM, None)
    boot_device = (drive << 24) | (0xFFFFFF if part is None else (part << 16) | 0xFFFF)
    res.mbi_bytes = mbi.mb1_info(flags, res.mem_lower, res.mem_upper, boot_device,
                                 regions["cmdline"], len(modcmds), mods_addr,
                                 (k.shnum, k.shentsize, regions["shdr"], k.shstrndx) if shdr_size else (0, 0, 0, 0),
                                 MMAP_ENTRY_SIZE * nmmap, regions["mmap"], regions["loader"], 0,
                                 (regions["vbe_control"], regions["vbe_mode"], vbe_mode, *VBE_INTERFACE), fb)
    res.place("multiboot_info + strings + mmap", at, bufsize, 4,
              "relocator: [0x10000, 0xa0000), lowest 4-byte-aligned fit of get_mbi_size()", "mbi")
    res.notes.append("MB1 info: boot_device, APM, VBE and framebuffer contents come from the firmware "
                     "(SeaBIOS values written; only their sizes are predicted)")
    res.structures = mbi.mb1_structures(res, k, PACKAGE_STRING)
    standard_checks(res, req.platform.memory_map)
    return res


def mb2_size_bound(res, k, cmd_len, has_apm=True):
    """grub_multiboot2_get_mbi_size() on i386-pc (multiboot_mbi2.c)."""
    total_modcmd = sum(align_up(len(m["cmdline"].encode()) + 1, 8) for m in res.modules)
    return (8 + 8 + 8 + (8 + align_up(cmd_len, 8)) + (8 + align_up(len(PACKAGE_STRING) + 1, 8))
            + 16 * len(res.modules) + total_modcmd + 16 + 24 + 24 + align_up(k.shnum * k.shentsize, 8)
            + align_up(16 + 24 * len(res.mmap), 8) + 40 + align_up(8 + RSDP_V1, 8) + 16
            + align_up(16 + SMBIOS_EPS, 8) + (784 + 7) + (28 + 7))


@loader_policy("grub-pc-mb2", firmware="bios", protocol="multiboot2", verdict="grub-mb2", source=SOURCE,
               verified=True, boot_medium="grub-pc-iso", wrong_firmware=WRONG_FIRMWARE,
               summary="GRUB 2.06 i386-pc `multiboot2`/`module2`",
               comparison=Comparison(unwritten_tag_padding=UNWRITTEN_TAG_PADDING))
def load_mb2(req):
    res, rel = _prepare(req, "multiboot2")
    k = req.kernel
    cmd_len = len(req.cmdline.encode()) + 1
    bound = mb2_size_bound(res, k, cmd_len)
    at = rel.alloc(bound, 8, 0x1000, 0xFFFFFFFF - bound + 1)
    tags = [mbi.mb2_tag_of(Mb2Tag.LOAD_BASE_ADDR, load_base_addr=res.load_base),
            mbi.mb2_string(Mb2Tag.CMDLINE, req.cmdline),
            mbi.mb2_string(Mb2Tag.BOOT_LOADER_NAME, PACKAGE_STRING),
            mbi.mb2_tag(Mb2Tag.APM, bytes(APM_TABLE_SIZE))]
    tags += [mbi.mb2_module(m["start"], m["end"], m["cmdline"]) for m in res.modules]
    tags.append(mbi.mb2_mmap(res.mmap))
    tags.append(elf_sections_tag(k, res))
    tags.append(mbi.mb2_tag_of(Mb2Tag.BASIC_MEMINFO, mem_lower=res.mem_lower, mem_upper=res.mem_upper))
    # GRUB's root device (multiboot_mbi2.c: grub_get_root_biosnumber, the partition's number):
    # the CD-ROM GRUB boots from (0xe0, whole), or a disk image's partition.
    drive, part = req.boot_device or (BIOSDEV_CDROM, None)
    tags.append(mbi.mb2_tag_of(Mb2Tag.BOOTDEV, biosdev=drive, partition=0xFFFFFFFF if part is None else part,
                               sub_partition=0xFFFFFFFF))
    video = chosen_mode(k, "multiboot2")
    if video is None:
        tags.append(mbi.mb2_tag_of(Mb2Tag.FRAMEBUFFER, reserved=0, color_info=b"", **EGA_TEXT_FRAMEBUFFER))
    else:
        # The VBE tag (mode set, interface and info blocks the video BIOS returns), then the RGB framebuffer.
        tags.append(mbi.mb2_tag_of(Mb2Tag.VBE, vbe_mode=video.mode | LFB_MODE_FLAG,
                                   **dict(zip(("vbe_interface_seg", "vbe_interface_off", "vbe_interface_len"),
                                              VBE_INTERFACE)),
                                   vbe_control_info=bytes(VbeInfoBlock.sizeof()),
                                   vbe_mode_info=bytes(VbeModeInfoBlock.sizeof())))
        tags.append(mbi.mb2_tag_of(Mb2Tag.FRAMEBUFFER, reserved=0, color_info=bytes(video.rgb),
                                   **rgb_framebuffer(video)))
        res.notes.append(f"video: GRUB sets VBE mode {video.mode:#x} ({video.width}x{video.height}x{video.bpp})")
    tags.append(mbi.mb2_tag_of(Mb2Tag.ACPI_OLD, rsdp=bytes(RSDP_V1)))
    res.mbi_bytes = mbi.mb2_info(tags)
    res.mbi_address = at
    res.place("Multiboot2 information", at, len(res.mbi_bytes), 8,
              f"relocator: lowest 8-byte-aligned fit of get_mbi_size() = {bound} bytes", "mbi")
    res.notes.append("MB2 tags 10 (APM), 5 (bootdev), 8 (EGA text) and 14 (ACPI RSDP) carry firmware data: "
                     "their sizes are predicted, the APM and RSDP bytes are left zero")
    standard_checks(res, req.platform.memory_map)
    return res


def elf_sections_tag(k, res):
    """MB2 tag 9: the section headers as GRUB rewrites them (sh_addr of each unloaded
    section = where it put it)."""
    placed = {int(p.name.split()[-1]): p.start for p in res.placements if p.name.startswith("ELF section")}
    return mbi.mb2_tag_of(Mb2Tag.ELF_SECTIONS, num=k.shnum, entsize=k.shentsize, shndx=k.shstrndx,
                          sections=k.section_headers(placed))
