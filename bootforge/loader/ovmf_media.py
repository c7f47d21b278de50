"""What OVMF's disk stack allocates before BDS starts a loader, by the medium it starts it from.

OVMF 2022.11 (edk2-stable202211) connects every block device before BDS loads the boot option's
EFI/BOOT/BOOTX64.EFI. Its drivers' Boot Services Data pages are taken top-down from the default bin
(Page.c CoreFindFreePages, bootforge.loader.ovmf_pages) and adjoin into one block; LoadImage then
puts the loader's file buffer and image directly under it. The block's size follows the medium:

- FatPkg/EnhancedFatDxe/DiskCache.c FatInitializeDiskCache: the mounted ESP's disk cache is one
  AllocateZeroPool of FatCacheSize + DataCacheSize (Fat.h: FAT12 1 << 13 and 64 << 13 bytes,
  FAT16/32 16 << 15 and 64 << 16), served from pages of its own (Pool.c, > MAX_POOL_SIZE):
  131 pages on FAT12, 1153 on FAT16/32. Observed: bootforge's 4 MiB GPT disk (FAT12 ESP) 682 pages,
  the same disk at 64 MiB (FAT16 ESP) 1704 = 682 + 1153 - 131.
- MdeModulePkg/Universal/Disk/DiskIoDxe/DiskIo.c DiskIoDriverBindingStart: every BlockIo,
  each partition child PartitionDxe installs included, gets a SharedWorkingBuffer of
  EFI_SIZE_TO_PAGES(PcdDiskIoDataBufferBlockNum (64, MdeModulePkg.dec) x BlockSize) pages: 8 on a
  512-byte-sector disk. With the child's own pool records one GPT partition costs 9 pages
  (observed: bootforge's UEFI-only disk, ESP alone, 673 pages; with the BIOS boot partition 682).
- The rest of the block is what the other devices' drivers hold on each medium, measured (256M,
  512M, 3G and 5G, the same pages: the block's top moves with low RAM): on a CD start the CD's own
  2048-byte BlockIo and its El Torito child, on a disk start the disk's BlockIo beside QEMU's empty
  CD-ROM (how these split is not measured).
- Partition/Mbr.c PartitionInstallMbrChildHandles: an ESP image whose boot sector holds a valid
  partition entry (mformat's, covering the volume) gets one more child on a CD's El Torito
  partition (no HARDDRIVE node above it). Without that child (a CD ESP without the entry, and every
  GPT disk: the ESP partition's own MBR read is under a HARDDRIVE node) the block is 10 pages
  smaller on a CD and OVMF takes one more Boot Services Data page, top-down, before the loader's
  own first pages, which then go under it (observed at 256M: 0xe531000 Boot Services Data,
  GRUB's first Loader Data page at 0xe530000).
"""

from dataclasses import dataclass, replace

from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader.ovmf_pages import FOUR_GIB, PAGE, PageMap, pages_for, pool_pages
from bootforge.memmap.model import MemoryRange

# FatPkg/EnhancedFatDxe/Fat.h
FAT_FATCACHE_PAGE_MIN_ALIGNMENT, FAT_FATCACHE_PAGE_MAX_ALIGNMENT = 13, 15
FAT_DATACACHE_PAGE_MIN_ALIGNMENT, FAT_DATACACHE_PAGE_MAX_ALIGNMENT = 13, 16
FAT_DATACACHE_GROUP_COUNT = 64
FAT_FATCACHE_GROUP_MIN_COUNT, FAT_FATCACHE_GROUP_MAX_COUNT = 1, 16
DISK_IO_DATA_BUFFER_BLOCKS = 64             # PcdDiskIoDataBufferBlockNum, MdeModulePkg.dec default
DISK_SECTOR = 512
# Observed beside the DiskIo buffer per GPT partition child (its PARTITION_PRIVATE_DATA, device path
# and DiskIo instance records grow the Boot Services Data pool by one page).
PARTITION_POOL_PAGES = 1
# The block's pages other than the FAT cache and the partition children, per start (observed on
# OVMF 2022.11, QEMU 7.2 q35, 256M to 5G; the ESP FAT12 so the cache is 131 pages):
# grub-mkrescue's, Limine's and bootforge's CD (ESP boot sector with mformat's entry) 728 pages;
# bootforge's CD before it carried the entry 718; bootforge's GPT disk (BIOS boot + ESP) 682.
OTHER_BLOCK_PAGES = {("cdrom", True): 728 - 131, ("cdrom", False): 718 - 131, ("disk", False): 682 - 131 - 2 * 9}


@dataclass(frozen=True)
class EfiMedium:
    """The medium OVMF starts the loader from, as its block drivers see it."""
    kind: str                   # "cdrom" (El Torito UEFI image) or "disk" (GPT or MBR ESP partition)
    fat_type: int               # the ESP's FAT: 12, 16 or 32
    partitions: int = 0         # partition children on a disk (PartitionDxe: every GPT entry in use)
    self_partition: bool = False    # the ESP's boot sector holds a partition entry (bytes 446-461)

    @property
    def mbr_child(self):
        """Whether PartitionDxe's Mbr.c installs a child inside the ESP (a CD's El Torito image
        with a valid entry; a disk partition's own MBR read is under a HARDDRIVE node: no child)."""
        return self.kind == "cdrom" and self.self_partition


# The medium OVMF's platform template (bootforge/data/platforms qemu-q35-ovmf-*.lsefimmap) was
# printed from: grub-mkrescue's CD, whose FAT12 efi.img carries mformat's entry.
TEMPLATE_MEDIUM = EfiMedium("cdrom", 12, 0, True)


def fat_cache_pages(fat_type):
    """Pages of FatInitializeDiskCache's one pool allocation for a volume of *fat_type*."""
    if fat_type == 12:
        fat = FAT_FATCACHE_GROUP_MIN_COUNT << FAT_FATCACHE_PAGE_MIN_ALIGNMENT
        data = FAT_DATACACHE_GROUP_COUNT << FAT_DATACACHE_PAGE_MIN_ALIGNMENT
    else:
        fat = FAT_FATCACHE_GROUP_MAX_COUNT << FAT_FATCACHE_PAGE_MAX_ALIGNMENT
        data = FAT_DATACACHE_GROUP_COUNT << FAT_DATACACHE_PAGE_MAX_ALIGNMENT
    return pool_pages(fat + data)


def partition_child_pages():
    """Pages one 512-byte-sector partition child costs: DiskIo's SharedWorkingBuffer and its pool."""
    return pages_for(DISK_IO_DATA_BUFFER_BLOCKS * DISK_SECTOR) + PARTITION_POOL_PAGES


def bds_block_pages(medium):
    """Pages of the Boot Services Data block OVMF holds directly above the loader's file buffer."""
    other = OTHER_BLOCK_PAGES.get((medium.kind, medium.mbr_child))
    if other is None:
        return None
    children = medium.partitions * partition_child_pages() if medium.kind == "disk" else 0
    return other + children + fat_cache_pages(medium.fat_type)


def extra_page_above(medium):
    """Whether one more Boot Services Data page sits at the top of the free pages above the block
    (every start without Mbr.c's child inside the ESP)."""
    return not medium.mbr_child


def template_block(ranges):
    """(floor, block start, block end) in OVMF's platform map (the template's start from its CD):
    the block is the Boot Services Data directly above the template loader's image (its only
    Loader Code below 4 GiB) and the file buffer freed above it; the loader's pages and everything
    allocated top-down after the block lie in [floor, block start), floor being the start of the
    conventional memory under that image. None when the map has no such shape."""
    at = next((i for i, r in enumerate(ranges) if r.type == T.LOADER_CODE and r.start < FOUR_GIB), None)
    if at is None or at == 0 or at + 2 >= len(ranges):
        return None
    below, buffer, block = ranges[at - 1], ranges[at + 1], ranges[at + 2]
    if (below.type != T.CONVENTIONAL or buffer.type != T.CONVENTIONAL or block.type != T.BOOT_SERVICES_DATA
            or buffer.start + buffer.size != block.start):
        return None
    return below.start, block.start, block.start + block.size


def for_medium(ranges, medium, floor, block_end):
    """*ranges* (an EFI map, MemoryRanges in address order, of a start from TEMPLATE_MEDIUM) as the
    start from *medium* leaves it, or None when its shape is not the one these rules know:
    - the block ending at *block_end* gets bds_block_pages(medium), its top fixed;
    - what was allocated top-down under it, [floor, block start), moves with its bottom, and the
      conventional memory at *floor* takes up the difference;
    - extra_page_above: OVMF's one more Boot Services Data page, taken top-down before the
      loader's pages above the block, which then go top-down under it (_with_extra_page).
    Observed exact on GRUB x86_64-efi and Limine 11.4.1 from bootforge's GPT disk at 256M, 512M,
    3G and 5G."""
    b = next((i for i, r in enumerate(ranges) if r.type == T.BOOT_SERVICES_DATA and r.start + r.size == block_end), None)
    pages = bds_block_pages(medium)
    if b is None or pages is None:
        return None
    block = ranges[b]
    delta = block.size - pages * PAGE                 # how far the block's bottom moves up
    out = list(ranges)
    if delta:
        stack = [i for i in range(b) if floor <= ranges[i].start < block.start]
        if not stack or ranges[stack[0]].type != T.CONVENTIONAL or ranges[stack[0]].size + delta <= 0:
            return None
        low = ranges[stack[0]]
        out[stack[0]] = replace(low, size=low.size + delta)
        for i in stack[1:]:
            out[i] = replace(ranges[i], start=ranges[i].start + delta)
        out[b] = replace(block, start=block.start + delta, size=pages * PAGE)
    if extra_page_above(medium) and not extra_page_above(TEMPLATE_MEDIUM):
        out = _with_extra_page(out, b)
    return out


def bins_bottom(ranges):
    """OVMF's default bin top: the start of its runtime-data bin, under the runtime-code bin at
    the top of low RAM (EDK2 Page.c mDefaultMaximumAddress); None when the map has no such pair."""
    return next((r.start for r, nxt in zip(ranges, ranges[1:]) if r.type == T.RUNTIME_SERVICES_DATA
                 and nxt.type == T.RUNTIME_SERVICES_CODE and r.start + r.size == nxt.start), None)


def _with_extra_page(out, b):
    """OVMF's extra Boot Services Data page of a start without Mbr.c's child (extra_page_above),
    taken top-down (Page.c CoreFindFreePages) before the loader's first allocations: the pages
    between the block (index *b*) and the DXE drivers' first code hold, besides OVMF's Boot
    Services Data, the loader's Loader Data, taken top-down after it. So: those loader pieces
    freed, one page allocated top-down for OVMF, then each loader piece again top-down, highest
    first. Observed: 256M and 512M (the page above the hole under GRUB's first page, which goes one
    lower; Limine's 3 pages likewise), 3G (GRUB: the page above 6 Boot Services Data pages, under
    its first page) and 5G (Limine: the one free page inside the Boot Services Data above its 3
    pages, which stay)."""
    code = next((i for i in range(b + 1, len(out)) if out[i].type == T.BOOT_SERVICES_CODE), None)
    top = bins_bottom(out)
    if code is None or top is None:
        return None
    lo, hi = out[b].start, out[code].start
    loader = [r for r in out[b + 1:code] if r.type == T.LOADER_DATA]
    if any(r.type not in (T.CONVENTIONAL, T.LOADER_DATA, T.BOOT_SERVICES_DATA) for r in out[b + 1:code]):
        return None
    pm = PageMap([[r.start, r.start + r.size, T.CONVENTIONAL if r in loader else r.type] for r in out], top)
    got = [pm.allocate("OVMF's page", T.BOOT_SERVICES_DATA, 1)]
    got += [pm.allocate("the loader's", T.LOADER_DATA, r.size // PAGE)
            for r in sorted(loader, key=lambda r: -r.start)]
    if any(a is None or not lo <= a < hi for a in got):
        return None
    attributes = out[b].attributes
    window = [MemoryRange(max(s, lo), min(e, hi) - max(s, lo), T(t), attributes)
              for s, e, t in pm.ranges if e > lo and s < hi]
    return out[:b] + window + out[code:]
