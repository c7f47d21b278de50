"""GRUB 2.06 x86_64-efi `linux`/`initrd` (Debian 12's 2.06-13+deb12u2) on OVMF: grub-core/loader/
i386/linux.c built for EFI, its relocator on the firmware's pages (lib/relocator.c,
lib/efi/relocator.c), booting a bzImage through its 32-bit entry after ExitBootServices (no EFI
handover: with Secure Boot off Debian's GRUB takes linux.c's path; observed, the kernel's E820
carries GRUB's type 20 for runtime code, tests/data/linux-grub-efi/).

Rules (the source's; each checked against Debian's kernel booted from a bootforge disk image,
stopped at the 32-bit entry by verify: tests/test_linux_grub_efi.py, tests/data/linux-grub-efi/):
- The map GRUB meets: OVMF's at GRUB's start with GRUB's own image and heap
  (grub_efi._with_grub_image, grub_efi.grub_efi_heap: kern/efi/mm.c). The relocator takes
  chunks from the firmware's conventional memory by address (grub_relocator_firmware_fill_events
  lists EFI_CONVENTIONAL_MEMORY only; grub_relocator_firmware_alloc_region is AllocatePages
  (AllocateAddress, EfiLoaderData)), so OVMF's top-down default bin plays no part. malloc_in_range
  also hands out the heap's free blocks (all of the heap but what GRUB uses at its top,
  HEAP_IN_USE); a chunk lies in one or the other, and one from the heap stays Loader Code in the map.
- The kernel (allocate_pages): page_align(init_size) bytes at pref_address when those pages are
  conventional. Under OVMF they are not (Boot Services Data holds 0x900000-0x14fffff at every -m):
  grub_relocator_alloc_chunk_align then allocates a source chunk of that size in the lowest
  conventional memory that holds it and fails to find a target in [pref_address, pref_address]
  ("couldn't find suitable memory target"), leaving the source allocated (Loader Data until
  ExitBootServices); the loop `for (; err && align + 1 > min_align; align--)` then asks for
  [16 MiB, 4 GiB) aligned to 1 << align (kernel_alignment's bit), lowest first: the kernel lands at
  the lowest such address above the leaked chunk. The loop's decrement runs once more after the
  success, so the zero page's kernel_alignment is half the header's.
- The initrd (grub_cmd_initrd): as on i386-pc, the highest page-aligned free chunk ending at or
  below addr = (min(initrd_addr_max, 0x37ffffff) - 64 KiB - page_align(size)) & ~0xfff (observed at
  3G: it ends exactly there) and starting at or above the kernel's target + page_align(init_size).
- boot_params (grub_linux_boot): real_size = ALIGN_UP(cl_offset + cmdline_size + 1, 4096) as on
  i386-pc, plus efi_mmap_size = ALIGN_UP(the EFI map's size when GRUB boots + a page, 4096)
  (kern/efi/mm.c grub_efi_find_mmap_size: "UEFI can alter the memory map itself"); the
  first descriptor of the map iterated with boot services memory avoided that reaches
  [0x10000, 0x90000) with room gives real_mode_target = clipped top - (real_size + efi_mmap_size).
  Below 1 MiB the relocator stages that chunk above everything else and copies it down after
  ExitBootServices: the EFI map there stays conventional. cmd_line_ptr = target + cl_offset, the
  EFI map GRUB hands over at target + real_size.
- e820_table: grub_mmap_iterate over the EFI map (grub-core/mmap/efi/mmap.c types: runtime code
  is GRUB_MEMORY_CODE, 20), adjacent ranges of one type merged (grub_e820_add_region).
- The zero page: struct linux_kernel_params (0x3fc bytes) as on i386-pc (then the E820 entries
  past the struct's 15, which grub_e820_add_region writes on into the chunk), with EFI's differences:
  no video mode set (grub_linux_setup_video fails without a video driver: have_vga, video_mode,
  width and height 0 and no cursor), efi_info's "EL64" signature and system table, the map's
  descriptor size/version/address/size (grub_efi_finish_boot_services: the exit map's size, so
  the exit map is predicted descriptor by descriptor), secure_boot (grub_efi_get_secureboot).
"""

from bootforge.align import align_up
from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.formats import bzimage as bz
from bootforge.formats.efi_memmap import EFI_DESCRIPTOR_DEFAULT_SIZE, EFI_DESCRIPTOR_VERSION, EfiMemoryType
from bootforge.loader.alloc import FreeSpace
from bootforge.loader.policies import grub_pc_linux, loader_policy
from bootforge.loader.policies.common import GIB4
from bootforge.loader.policies.grub_efi import _with_grub_image, grub_efi_mmap, with_grub_heap
from bootforge.loader.policies.grub_pc_linux import (BZIMAGE_ADDR, INITRD_MAX_ADDRESS, INITRD_TOP_GAP,
                                                     REAL_MODE_HIGH, REAL_MODE_LOW)
from bootforge.loader.result import LoadResult
from bootforge.memmap.model import MemoryRange

SOURCE = ("GRUB 2.06 grub-core/loader/i386/linux.c (x86_64-efi: grub_cmd_linux, grub_cmd_initrd, grub_linux_boot), "
          "lib/relocator.c, lib/efi/relocator.c")
PAGE = 0x1000
KERNEL_MIN = 0x1000000                  # allocate_pages' second try: [16 MiB, 4 GiB)
# The relocator's free memory is the firmware's conventional pages and its heap's free blocks
# (relocator.c malloc_in_range walks both); GRUB's heap in use at its top when `initrd` runs, on the
# disk images bootforge builds: 0x933000 bytes, measured at 966M (heap 0x29bda000-0x38175000, the
# initrd ending at 0x37842000 under the 0x37eeb000 cap: tests/data/linux-grub-efi/gdb-stop-966M.json).
HEAP_IN_USE = 0x933000
SECURE_BOOT = 0x1EC                     # boot_params.secure_boot
# GRUB_LINUX_EFI_SECUREBOOT_MODE_* (include/grub/i386/linux.h), Linux's efi_secureboot_mode values.
SECUREBOOT_DISABLED, SECUREBOOT_ENABLED = 2, 3
WRONG_FIRMWARE = "grub-efi-linux needs an EFI platform (qemu-q35-ovmf:<mem>, an EFI map file)"
DECLARED = (
    (bz.efi_info_offset("efi_systab"), 4, "efi_info.efi_systab: the EFI system table OVMF allocated "
                                          "(grub_efi_system_table)"),
    (bz.efi_info_offset("efi_systab_hi"), 4, "efi_info.efi_systab_hi: the EFI system table's high half"),
)


class RelocatorMemory:
    """The relocator's free memory as pools a chunk never spans: the firmware's conventional pages
    and the heap's free blocks (observed at 256M: the kernel's aligned chunk would fit only across
    the conventional pages under the heap and the heap's free ones, and GRUB said "out of memory")."""

    def __init__(self, pools):
        self.pools = pools

    def _pick(self, how, size, align, lo, hi, best):
        found = [(at, pool) for pool in self.pools
                 if (at := getattr(pool, how)(size, align, lo, hi)) is not None]
        return best(found, key=lambda x: x[0])[0] if found else None

    def lowest(self, size, align, lo, hi):
        return self._pick("lowest", size, align, lo, hi, min)

    def highest(self, size, align, lo, hi):
        return self._pick("highest", size, align, lo, hi, max)

    def is_free(self, at, size):
        return any(pool.is_free(at, size) for pool in self.pools)

    def take(self, at, size):
        next(pool for pool in self.pools if pool.is_free(at, size)).take(at, size)


def secure_boot_mode(plat):
    """What grub_efi_get_secureboot() reads (i386/linux.c, 2.06's "Report UEFI Secure Boot status to
    the Linux kernel", written in grub_linux_boot): DISABLED when the SecureBoot variable is 0 (or
    missing) or SetupMode is 1. The machines here run OVMF without Secure Boot (OVMF_CODE_4M.fd,
    whose SecureBoot variable reads 0: observed 2 at 512M and 3G)."""
    return SECUREBOOT_DISABLED


def _pages(n):
    return align_up(max(n, 1), PAGE)


def kernel_target(free, prot, pref, align_log, min_align):
    """allocate_pages on the relocator's free memory *free* (RelocatorMemory, taken from it):
    (target, leaked source chunk or None, the align the loop left)."""
    if free.is_free(pref, prot):
        free.take(pref, prot)
        return pref, None, align_log
    # The failed first try leaves its source chunk allocated: the lowest free pages that hold it.
    leaked = free.lowest(prot, PAGE, PAGE, GIB4)
    if leaked is not None:
        free.take(leaked, prot)
    align = align_log
    while align + 1 > min_align:
        at = free.lowest(prot, 1 << align, KERNEL_MIN, (0xFFFFFFFF & ~prot) + prot)
        align -= 1                      # the for loop's decrement, also after the success
        if at is not None:
            free.take(at, prot)
            return at, leaked, align
    raise LoaderRefusal("out of memory", loader="grub-efi-linux", words="out of memory")


def efi_mmap_size(descriptors):
    """grub_efi_find_mmap_size() (kern/efi/mm.c): the size GetMemoryMap asks for plus a page,
    page aligned."""
    return align_up(descriptors * EFI_DESCRIPTOR_DEFAULT_SIZE + PAGE, PAGE)


def real_mode_target(efi_map, need):
    """grub_linux_boot_mmap_find over grub_efi_mmap_iterate(avoid boot services): the first
    available descriptor reaching [0x10000, 0x90000] with *need* bytes, its clipped top - need."""
    for r in sorted(efi_map.ranges, key=lambda r: r.start):
        if r.type not in (EfiMemoryType.CONVENTIONAL, EfiMemoryType.LOADER_CODE, EfiMemoryType.LOADER_DATA):
            continue
        a, size = r.start, r.size
        if a > REAL_MODE_HIGH or a + size < REAL_MODE_LOW:
            continue
        if a < REAL_MODE_LOW:
            size, a = size + a - REAL_MODE_LOW, REAL_MODE_LOW
        if a + size > REAL_MODE_HIGH:
            size = REAL_MODE_HIGH - a
        if need <= size:
            return a + size - need
    return None


def with_loader_data(efi_map, chunks):
    """*efi_map* with each (start, size) chunk retyped EfiLoaderData (cut out of conventional memory)."""
    ranges = list(efi_map.ranges)
    for at, size in sorted(chunks):
        out = []
        for r in ranges:
            end = r.start + r.size
            if r.type != EfiMemoryType.CONVENTIONAL or end <= at or r.start >= at + size:
                out.append(r)
                continue
            if r.start < at:
                out.append(MemoryRange(r.start, at - r.start, r.type, r.attributes))
            lo, hi = max(r.start, at), min(end, at + size)
            out.append(MemoryRange(lo, hi - lo, EfiMemoryType.LOADER_DATA, r.attributes))
            if hi < end:
                out.append(MemoryRange(hi, end - hi, r.type, r.attributes))
        ranges = out
    merged = []         # EDK2 CoreAddRange: a descriptor adjoining one of its type and attributes joins it
    for r in ranges:
        last = merged[-1] if merged else None
        if (last is not None and (last.type, last.attributes) == (r.type, r.attributes)
                and last.start + last.size == r.start):
            merged[-1] = MemoryRange(last.start, last.size + r.size, r.type, r.attributes)
        else:
            merged.append(r)
    return efi_map.replace(merged)


def zero_page(data, hdr, code32, kernel_alignment, ramdisk, cmd_line_ptr, e820, cmdline, efi_mmap, secure_boot):
    """The struct linux_kernel_params GRUB x86_64-efi copies to real_mode_target (0x3fc bytes):
    i386-pc's (grub_pc_linux.zero_page) without the text console, with efi_info and secure_boot."""
    page = bytearray(grub_pc_linux.zero_page(data, hdr, code32, kernel_alignment, ramdisk, cmd_line_ptr, e820,
                                             cmdline, text_console=False))
    page[SECURE_BOOT] = secure_boot
    addr, size = efi_mmap
    # grub_cmd_linux: signature and system table (its address declared); grub_linux_boot: the map.
    info = bz.EfiInfo.build(dict(efi_loader_signature=bz.EFI_LOADER_SIGNATURE_64, efi_systab=0,
                                 efi_memdesc_size=EFI_DESCRIPTOR_DEFAULT_SIZE,
                                 efi_memdesc_version=EFI_DESCRIPTOR_VERSION, efi_memmap=addr & 0xFFFFFFFF,
                                 efi_memmap_size=size, efi_systab_hi=0, efi_memmap_hi=addr >> 32))
    page[bz.BOOT_PARAMS_EFI_INFO:bz.BOOT_PARAMS_EFI_INFO + len(info)] = info
    return bytes(page)


@loader_policy("grub-efi-linux", firmware="uefi", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, wrong_firmware=WRONG_FIRMWARE,
               summary="GRUB 2.06 x86_64-efi `linux`/`initrd` (a bzImage, its 32-bit entry) under OVMF")
def load(req):
    data, hdr = grub_pc_linux.read_kernel(req, "grub-efi-linux")
    version = hdr.version
    if version < 0x20A:
        raise RecipeError(f"{req.kernel.path}: boot protocol {version >> 8}.{version & 0xff:02d}: grub-efi-linux models "
                          "2.10+ kernels (init_size, pref_address)")
    g = hdr.get
    plat = _with_grub_image(req.platform, req.efi_application, req.efi_medium)
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    if req.efi_application is None and plat.qemu is not None:
        res.notes.append("GRUB's BOOTX64.EFI and the medium are not known here (a recipe, not its image): GRUB's "
                         "image and heap are the platform template's (grub-mkrescue's CD), and the initrd and the "
                         "EFI map follow them; `load` of the built image (and verify, which predicts from it) "
                         "places them for that image")
    efi, heap = with_grub_heap(plat)
    if heap:
        res.place("GRUB heap", heap[0], heap[1], PAGE, "kern/efi/mm.c: a quarter of conventional memory "
                  "below 4 GiB, top-down", "loader")
    free = RelocatorMemory([FreeSpace((r.start, r.start + r.size) for r in efi.ranges
                                      if r.type == EfiMemoryType.CONVENTIONAL and r.start < GIB4)]
                           + ([FreeSpace([(heap[0], heap[0] + heap[1] - HEAP_IN_USE)])]
                              if heap and heap[1] > HEAP_IN_USE else []))
    in_heap = (lambda at: heap[0] <= at < heap[0] + heap[1]) if heap else (lambda at: False)
    setup_sects = g("setup_sects") or bz.DEFAULT_SETUP_SECTS
    align = g("kernel_alignment")
    relocatable = bool(g("relocatable_kernel")) and align and align & (align - 1) == 0
    align_log = (align & -align).bit_length() - 1 if relocatable else 0
    prot = _pages(g("init_size"))
    pref = g("pref_address") if relocatable else BZIMAGE_ADDR
    chunks = []
    if relocatable:
        target, leaked, align_left = kernel_target(free, prot, pref, align_log, g("min_alignment"))
    else:
        if not free.is_free(pref, prot):
            raise LoaderRefusal("out of memory", loader="grub-efi-linux", words="out of memory")
        free.take(pref, prot)
        target, leaked, align_left = pref, None, 0
    if leaked is not None and not in_heap(leaked):
        chunks.append((leaked, prot))
        res.place("relocator source of the failed pref_address try (Loader Data, not freed)", leaked, prot, PAGE,
                  "lowest conventional pages (grub_relocator_alloc_chunk_align)", "loader")
    if not in_heap(target):
        chunks.append((target, prot))
    res.place("kernel (protected-mode part, relocator chunk)", target, prot, 1 << align_log if relocatable else 1,
              "pref_address" if target == pref else f"lowest {1 << align_log:#x}-aligned conventional pages above "
              "16 MiB (allocate_pages' second try)", "kernel")
    code32 = target + g("code32_start") - BZIMAGE_ADDR
    cmdline, cmdline_size = grub_pc_linux.loader_cmdline(req, hdr, "grub-efi-linux")
    res.cmdline = cmdline

    ramdisk = (0, 0)
    if req.modules:
        size = grub_pc_linux.initrd_size(req.modules)
        aligned = align_up(size, PAGE)
        limit = min(g("initrd_addr_max"), INITRD_MAX_ADDRESS)
        top = (limit - INITRD_TOP_GAP - aligned) & ~(PAGE - 1)
        low = target + prot
        # The chunk ends at or below addr (as on i386-pc: observed at 3G, the initrd ends there).
        at = free.highest(aligned, PAGE, low, top) if top >= low else None
        if at is None:
            raise LoaderRefusal("the initrd is too big", loader="grub-efi-linux", words="the initrd is too big")
        free.take(at, aligned)
        if not in_heap(at):                 # heap memory stays GRUB's Loader Code in the EFI map
            chunks.append((at, aligned))
        res.place("initrd", at, aligned, PAGE, "highest 4 KiB-aligned conventional chunk below min(initrd_addr_max, "
                  "0x37ffffff) - 64 KiB (grub_cmd_initrd, PREFERENCE_HIGH)", "module")
        res.modules.append({"start": at, "end": at + size, "cmdline": ""})
        ramdisk = (at, size)

    now = with_loader_data(efi, chunks)
    mmap = grub_efi_mmap(now)
    cl_offset, real_size = grub_pc_linux.real_mode_layout(len(mmap), setup_sects, cmdline_size)
    map_bytes = efi_mmap_size(len(now.ranges))
    params = real_mode_target(efi, real_size + map_bytes)
    if params is None:
        raise LoaderRefusal("cannot allocate real mode pages", loader="grub-efi-linux",
                            words="cannot allocate real mode pages")
    res.place("boot_params, command line and EFI map (real-mode chunk, copied down at boot)", params,
              real_size + map_bytes, 1, "top of the first available range in [0x10000, 0x90000) less "
              "real_size + efi_mmap_size (grub_linux_boot_mmap_find)", "boot-info")
    # The real-mode chunk's source: below 1 MiB the relocator stages a chunk above the others
    # (relocator.c grub_relocator_alloc_chunk_addr, "a trick to improve Linux allocation"):
    # observed at the top of the highest conventional pages below 4 GiB at 512M and 3G.
    staged = free.highest(real_size + map_bytes, PAGE, PAGE, GIB4)
    if staged is None:
        raise LoaderRefusal("out of memory", loader="grub-efi-linux", words="out of memory")
    free.take(staged, real_size + map_bytes)
    res.place("real-mode chunk's source (Loader Data, copied to boot_params at boot)", staged,
              real_size + map_bytes, PAGE, "highest conventional pages below 4 GiB (relocator post chunk)", "loader")
    at_exit = with_loader_data(efi, chunks + [(staged, real_size + map_bytes)])
    res.maps["efi-at-exit"] = at_exit
    exit_bytes = len(at_exit.ranges) * EFI_DESCRIPTOR_DEFAULT_SIZE
    res.mbi_address = params
    res.mbi_bytes = zero_page(data, hdr, code32, 1 << align_left if relocatable else 1, ramdisk, params + cl_offset,
                              mmap, cmdline, (params + real_size, exit_bytes), secure_boot_mode(plat))
    res.mmap = mmap
    res.linux = {"boot_params": params, "cmd_line_ptr": params + cl_offset, "cl_offset": cl_offset,
                 "real_size": real_size, "efi_mmap_size": map_bytes, "code32_start": code32,
                 "ramdisk_image": ramdisk[0], "ramdisk_size": ramdisk[1], "kernel": {"start": target, "size": prot},
                 "e820_entries": len(mmap), "boot_path": "grub-efi-linux", "setup_data": [],
                 "zero_page": grub_pc_linux.zero_page_spec(res.mbi_bytes, DECLARED, "not written by GRUB")}
    res.notes.append(f"predicted: kernel at {target:#x}, code32_start {code32:#x}, boot_params at {params:#x} "
                     f"(cmd_line_ptr {params + cl_offset:#x}), {len(mmap)} E820 entries"
                     + (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else ""))
    return res
