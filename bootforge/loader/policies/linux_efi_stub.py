"""The Linux x86 EFI stub (Debian's 6.1 kernel, drivers/firmware/efi/libstub/x86-stub.c,
randomalloc.c, x86-stub setup_e820()), started by OVMF either as the kernel's own PE
image (QEMU -kernel, an ESP) or through systemd-stub's handover from a UKI.

Rules, each checked against real boots (tests/test_uki_load.py, tests/data/linux-*):
- Kernel: with nokaslr the stub allocates the decompressed kernel as EFI Loader Code
  at the lowest address >= LOAD_PHYSICAL_ADDR (16 MiB) aligned to kernel_alignment
  (CONFIG_PHYSICAL_ALIGN, 2 MiB) where ALIGN(init_size, kernel_alignment) bytes are
  conventional memory below 4 GiB (efi_random_alloc with slot 0: the first slot of the
  first fitting descriptor in map order). Observed: 0x1600000 of 64 MiB at 192M..5G
  (OVMF's Boot Data holds 0x900000-0x14fffff).
- E820: from the EFI map at ExitBootServices by the stub's table (convert.efi_to_e820,
  convention "linux"), merged only with the previous entry, never sorted: that is
  boot_params.e820_table (128 entries, the rest in a SETUP_E820_EXT node). The kernel
  prints it after e820__update_table() (sort + merge): the "BIOS-e820:" lines.
  Loader/boot-services/conventional memory all become usable, so the firmware's own
  allocations during boot do not change it: predicted exactly.
- "Memory: X/YK available": Y counts RAM pages after setup_arch's trim_bios_range()
  reserves page 0 and [640 KiB, 1 MiB): the usable E820 KiB minus 4 on OVMF. X
  (after the kernel's own reservations) is only bounded (X < Y).
- Initrd: the stub loads it through LINUX_EFI_INITRD_MEDIA_GUID (LoadFile2, from QEMU's
  -initrd or systemd-stub's .initrd) into pages it allocates with AllocateMaxAddress
  (limit initrd_addr_max, or none with XLF_CAN_BE_LOADED_ABOVE_4G); OVMF answers
  top-down below 4 GiB. Its size is exact (the kernel prints "RAMDISK: [mem a-b]" with b
  = PAGE_ALIGN(a + size) - 1); its address depends on what OVMF allocated before on that
  boot path (the image, QEMU's kernel copy), so it is bounded, not predicted.
- The stub's other allocations (boot_params, the command line, the EFI map buffer;
  systemd-stub's copy of the command line) are Loader Data pages OVMF places top-down:
  listed with their sizes, addresses bounded.
- setup_data: the stub's setup_efi_pci() adds a SETUP_PCI node (struct pci_setup_rom: a
  16-byte header, 48 bytes of ids and location, the ROM image) for every PCI device whose
  option ROM OVMF kept; on qemu-q35-ovmf with no NIC that is QEMU's std VGA (1234:1111)
  with SeaBIOS's vgabios-stdvga.bin of 39936 bytes: one node of len 39984 (observed at
  every size and boot path: "reserve setup_data: [mem a-b]" of 40000 bytes, and read from
  boot_params through QEMU's gdbstub). Its address (a pool allocation) is bounded only.
  SETUP_E820_EXT comes only past 128 E820 entries. Platforms given as map files have no
  device list: their SETUP_PCI nodes are not predicted.
- The zero page: the whole page efi_pe_entry clears and fills (bootforge/loader/
  linux_stub_zero_page.py), its address fields from OVMF's replayed allocator (linux.placement),
  efi_memmap_size from the replayed exit map; OVMF's own pointers declared.
"""

from bootforge.align import align_down, align_up
from bootforge.errors import BootforgeError, FormatError, LoaderRefusal, RecipeError
from bootforge.fileio import read_input
from bootforge.formats import bzimage as bz, field_offset
from bootforge.formats.e820 import BOOT_PARAMS_E820_MAX
from bootforge.formats.efi_memmap import EfiMemoryType
from bootforge.loader import ovmf_pages
from bootforge.loader.linux_stub_zero_page import exit_descriptors
from bootforge.loader.linux_stub_zero_page import predict as stub_zero_page
from bootforge.loader.video import ovmf_gop_modes
from bootforge.loader.policies import loader_policy
from bootforge.machines.qemu_x86 import Q35_LOWMEM, Q35_LOWMEM_SPLIT
from bootforge.loader.result import LoadResult
from bootforge.memmap.convert import efi_to_e820
from bootforge.memmap.model import MemoryRange
from bootforge.memmap.ops import sanitize
from bootforge.uki.kernel import is_bzimage, read_bzimage
from bootforge.uki.measure import PREDICTION_SOURCE, predictions
from bootforge.pe.image import read_pe
from bootforge.verdict import check

SOURCE = "Linux 6.1 drivers/firmware/efi/libstub/x86-stub.c (efi_random_alloc, setup_e820, efi_load_initrd)"
PAGE = 4096
KIB = 1024
FOUR_GIB = 1 << 32
EFI_LOADER_DATA = 2
E820_RAM = 1
# setup_arch(): trim_bios_range() reserves the first page and the legacy BIOS area.
TRIMMED = ((0, PAGE), (0xA0000, 0x100000))
# x86-stub: boot_params (struct boot_params, PARAM_SIZE 16 KiB in 6.1 stable's efi_pe_entry).
BOOT_PARAMS_ALLOC = 0x4000
SETUP_DATA_HEADER = bz.SetupDataHeader.sizeof()
PCI_SETUP_ROM_FIELDS = 48           # struct pci_setup_rom after its setup_data header (vendor..function)
# QEMU q35's default display (-vga std): its ROM is SeaBIOS's vgabios-stdvga.bin (Debian seabios
# 1.16.2: 39936 bytes); OVMF keeps it as the device's RomImage.
QEMU_STD_VGA = ("1234:1111 (QEMU std VGA)", 39936)


# arch/x86/Kconfig PHYSICAL_ALIGN: "range 0x200000 0x1000000 if X86_64", a multiple of 2 MiB.
PHYSICAL_ALIGN_RANGE = (0x200000, 0x1000000)
KERNEL_ALIGNMENT_AT = bz.SETUP_HEADER_OFFSET + field_offset(bz.SetupHeader, "kernel_alignment")


def kernel_slot(efi_map, size, align, minimum=bz.LOAD_PHYSICAL_ADDR, limit=FOUR_GIB):
    """efi_random_alloc() with slot 0: the first conventional descriptor (map order) with an
    aligned start >= *minimum* where *size* bytes fit below *limit*; None when none does."""
    for r in sorted(efi_map.ranges, key=lambda r: r.start):
        if r.type != EfiMemoryType.CONVENTIONAL:
            continue
        start = align_up(max(r.start, minimum), align)
        if start + size <= min(r.start + r.size, limit):
            return start
    return None


def allocate_in_place(efi_map, start, size, new_type, label):
    """*efi_map* with [start, start+size) cut out of the conventional descriptor holding it and
    typed *new_type*, every other descriptor where it was: the firmware's map keeps its order
    (OVMF lists RAM above 4 GiB before the 32-bit MMIO ranges), and so does the E820 the stub
    derives from it."""
    out, done = [], False
    for r in efi_map.ranges:
        if not done and r.type == EfiMemoryType.CONVENTIONAL and r.start <= start and start + size <= r.start + r.size:
            if r.start < start:
                out.append(MemoryRange(r.start, start - r.start, r.type, r.attributes))
            out.append(MemoryRange(start, size, new_type, r.attributes, label))
            if start + size < r.start + r.size:
                out.append(MemoryRange(start + size, r.start + r.size - start - size, r.type, r.attributes))
            done = True
        else:
            out.append(r)
    if not done:
        raise RecipeError(f"[{start:#x}, {start + size:#x}) is not inside one conventional descriptor")
    return efi_map.replace(out)


def memory_total_kib(e820):
    """Y of "Memory: X/YK available": RAM pages after trim_bios_range(), in KiB."""
    total = 0
    for r in e820.ranges:
        if r.type != E820_RAM:
            continue
        lo, hi = align_up(r.start, PAGE), align_down(r.start + r.size, PAGE)
        for t0, t1 in TRIMMED:
            if t0 <= lo < t1:
                lo = t1
            if t0 < hi <= t1:
                hi = t0
        if hi > lo:
            total += hi - lo
            for t0, t1 in TRIMMED:
                if lo < t0 and t1 < hi:
                    total -= t1 - t0
    return total // KIB


def boot_path_of(req, path):
    """The OVMF boot path of *req*: QEMU -kernel (a [load] recipe; QemuKernelLoaderFsDxe hands the
    file to LoadImage) or a file on the ESP (an image's /EFI/... path: BdsDxe or systemd-boot)."""
    where = str(req.kernel_loader_path or "").upper()
    if where == "/EFI/BOOT/BOOTX64.EFI" and path == "uki":
        return "esp-uki"                    # BdsDxe starts the removable-media UKI itself
    if where.startswith("/EFI/LINUX/") and path == "uki":
        return "sdboot-uki"                 # a Type #2 entry: systemd-boot (BOOTX64.EFI) starts it
    if where.startswith("/EFI/"):
        return "esp"                        # a bzImage on the ESP
    return "qemu-kernel-uki" if path == "uki" else "qemu-kernel"


def _ovmf_placement(req, res, hdr, kernel, initrd_size, path, kernel_start, nodes):
    """The addresses OVMF's page allocator gives on this boot (bootforge/loader/ovmf_pages.py),
    where OVMF's map at the loader's start is captured for this machine, memory class, boot path
    and input sizes; otherwise exact=False and why (the bounds above stay)."""
    plat = req.platform
    boot = boot_path_of(req, path)
    out = {"exact": False, "capture": None, "boot_path": boot, "reason": None, "image": None, "kernel_image": None,
           "boot_params": None, "cmdline_page": None, "cmd_line_ptr": None, "initrd": None, "setup_data": []}
    machine = plat.qemu.name if plat.qemu is not None else None
    if machine is None or plat.memory_bytes is None:
        out["reason"] = "a platform given as a map file: no capture of OVMF's allocations"
        return out
    ram = plat.memory_bytes
    lowmem = Q35_LOWMEM if ram >= Q35_LOWMEM_SPLIT else ram
    cap = ovmf_pages.find_capture(machine, boot, ram, lowmem, bool(initrd_size) and boot == "qemu-kernel")
    data = req.kernel.data
    pe = read_pe(data)
    inputs = {"file_size": len(data)}
    if boot == "qemu-kernel" and initrd_size:
        inputs["initrd_size"] = initrd_size
    if boot in ovmf_pages.UKI_PATHS:
        inputs["kernel_size_of_image"] = read_pe(kernel).size_of_image
    if cap is None:
        out["reason"] = f"no capture of OVMF's map for the {boot} boot path on {machine} at this memory size"
        return out
    out["capture"] = cap.name
    cap, why = ovmf_pages.for_inputs(cap, inputs)      # QemuKernelLoaderFsDxe's blobs of these sizes
    if cap is None:
        out["reason"] = why
        return out
    above4g = bool((hdr.get("xloadflags") or 0) & bz.XLoadFlag.XLF_CAN_BE_LOADED_ABOVE_4G)
    initrd_max = (1 << 64) - 1 if above4g else hdr.get("initrd_addr_max")
    rom_sizes = [n["len"] - PCI_SETUP_ROM_FIELDS for n in nodes if n["type"] == "SETUP_PCI"]
    got = ovmf_pages.replay(cap, lowmem, file_size=len(data), size_of_image=pe.size_of_image,
                            initrd_size=initrd_size, initrd_max=initrd_max, rom_sizes=rom_sizes,
                            kernel_size_of_image=inputs.get("kernel_size_of_image"))
    out["exit_descriptors"] = exit_descriptors(got.pm, (kernel_start, next(p.end - p.start for p in res.placements
                                                                           if p.start == kernel_start)))
    out.update(exact=True, image={"start": got.image[0], "end": got.image[1]},
               kernel_image=({"start": got.kernel_image[0], "end": got.kernel_image[1]} if got.kernel_image else None),
               boot_params=got.boot_params, cmdline_page=got.cmdline_page, cmd_line_ptr=got.cmdline,
               initrd=({"start": got.initrd[0], "size": initrd_size} if got.initrd else None),
               setup_data=got.setup_data)
    rule = f"top-down AllocatePages on OVMF's captured map ({cap.name}; EDK2 Page.c CoreFindFreePages)"
    # The bounds said before are superseded by the addresses.
    res.notes[:] = [n for n in res.notes if not n.startswith("bounded:") and "(its address, a pool" not in n]
    res.place("PE image (OVMF LoadImage, Loader Code)", got.image[0], got.image[1] - got.image[0], PAGE, rule, "loader")
    if got.kernel_image:
        res.place(".linux image (systemd-stub LoadImage, Loader Code)", got.kernel_image[0],
                  got.kernel_image[1] - got.kernel_image[0], PAGE, rule, "loader")
    res.place("boot_params (efi_allocate_bootparams, Loader Data)", got.boot_params, PAGE, PAGE,
              rule, "boot-info")
    if got.cmdline is not None:
        res.place("command line (Loader Data pool)", got.cmdline, len(res.cmdline) + 1, 8, rule,
                  "boot-info")
    if got.initrd:
        res.place("initrd (efi_load_initrd, Loader Data)", got.initrd[0], align_up(initrd_size, PAGE),
                  PAGE, rule, "module")
    for node, addr in zip((n for n in nodes if n["type"] == "SETUP_PCI"), got.setup_data):
        node["address"] = addr
        res.place(f"setup_data SETUP_PCI {node['device']} (Loader Data pool)", addr, node["size"], 8, rule,
                  "boot-info")
    res.notes.append(f"predicted from OVMF's page allocator ({cap.name}): image {got.image[0]:#x}, boot_params "
                     f"{got.boot_params:#x}, command line page {got.cmdline_page:#x}"
                     + (f", initrd {got.initrd[0]:#x}" if got.initrd else "")
                     + "".join(f", setup_data {a:#x}" for a in got.setup_data))
    return out


# `bootforge load UKI` alone: a UKI names its loader (systemd-stub hands its .linux to the EFI
# stub) and needs UEFI, so this policy on QEMU's default UEFI machine (as an [image]'s default).
BARE_UKI_PLATFORM = "qemu-q35-ovmf:256M"


def is_uki_bytes(data):
    """True when *data* is a PE image with a .linux section."""
    try:
        return data[:2] == b"MZ" and read_pe(data).section(".linux") is not None
    except FormatError:
        return False


def is_uki_file(path):
    """True when *path* is a PE image with a .linux section (a UKI, as inspect names it)."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"MZ":
                return False
        return read_pe(read_input(path)).section(".linux") is not None
    except (OSError, BootforgeError):
        return False


def kernel_parts(req):
    """(bzImage BzImage, bzImage bytes, initrd size, boot path, .cmdline text or None) from the
    recipe's kernel: an EFI-stub bzImage (its initrd from the recipe's modules) or a UKI
    (.linux, .initrd, .cmdline)."""
    data = req.kernel.data
    path = req.kernel.path
    try:
        if is_bzimage(data):
            if data[:2] != b"MZ":
                raise LoaderRefusal(f"{path}: a bzImage without the EFI stub (no PE header): OVMF cannot start it",
                                loader="linux-efi-stub")
            initrd = sum(m.size for m in req.modules)
            return read_bzimage(data), data, initrd, "efi-stub", None
        if data[:2] != b"MZ":
            raise LoaderRefusal(f"{path}: neither a bzImage nor a PE image (a UKI): OVMF cannot start it",
                                loader="linux-efi-stub")
        img = read_pe(data)
        linux = img.section(".linux")
        if linux is None:
            raise LoaderRefusal(f"{path}: neither a bzImage nor a UKI (no .linux section): no Linux for the "
                                "EFI stub to start", loader="linux-efi-stub")
        kernel = linux.data(data)
        initrd_sec = img.section(".initrd")
        initrd = len(initrd_sec.data(data)) if initrd_sec else 0
        if req.modules:
            raise RecipeError("a UKI carries its initrd in .initrd; give no modules")
        cmdline_sec = img.section(".cmdline")
        embedded = cmdline_sec.data(data).rstrip(b"\0").decode("utf-8", "replace") if cmdline_sec else None
        return read_bzimage(kernel), kernel, initrd, "uki", embedded
    except FormatError as exc:
        raise exc.located(path=path) from None


# verified=False: the fidelity matrix does not boot it; tests/test_uki_load.py compares it with
# Debian's kernel booted under OVMF (-kernel and UKIs), and tests/data/linux-* keeps those boots.
@loader_policy("linux-efi-stub", firmware="uefi", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None,
               wrong_firmware="linux-efi-stub needs an EFI platform (qemu-q35-ovmf:<mem>, an EFI map file)",
               summary="Linux's EFI stub (an EFI-stub bzImage or a UKI) under OVMF: kernel block, E820, Memory total")
def load(req):
    plat = req.platform
    hdr, kernel, initrd_size, path, embedded = kernel_parts(req)
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    # systemd-stub 252 (stub.c): the loader's options replace .cmdline when Secure Boot is off
    # (OVMF here), else .cmdline is the command line.
    res.cmdline = req.cmdline if req.cmdline or embedded is None else embedded
    on_q35_ovmf = plat.qemu is not None and plat.qemu.name == "qemu-q35-ovmf"   # the machine, not a map file
    if path == "efi-stub" and req.modules and on_q35_ovmf:
        # QEMU -initrd under OVMF: X86QemuLoadImageLib appends "initrd=initrd" to the load options
        # (the initrd file of QemuKernelLoaderFs); observed in the kernel's "Command line:".
        res.cmdline = (res.cmdline + " " if res.cmdline else "") + "initrd=initrd"
    if not hdr.get("relocatable_kernel") or hdr.version < 0x20B:
        raise RecipeError(f"{req.kernel.path}: boot protocol {hdr.version >> 8}.{hdr.version & 0xff:02d}, "
                          f"relocatable {bool(hdr.get('relocatable_kernel'))}: the EFI stub needs a relocatable "
                          "2.11+ kernel")
    align = hdr.get("kernel_alignment")
    if not PHYSICAL_ALIGN_RANGE[0] <= align <= PHYSICAL_ALIGN_RANGE[1] or align & (align - 1):
        # The stub aligns by its own CONFIG_PHYSICAL_ALIGN, which the header's field repeats; a
        # value no x86_64 build can have says nothing of what the stub was built with.
        raise FormatError(f"setup header kernel_alignment {align:#x} is not a power of two in "
                          f"[{PHYSICAL_ALIGN_RANGE[0]:#x}, {PHYSICAL_ALIGN_RANGE[1]:#x}] (x86_64's "
                          "CONFIG_PHYSICAL_ALIGN): no Linux build has it", path=req.kernel.path,
                          offset=KERNEL_ALIGNMENT_AT if path == "efi-stub" else None)
    size = align_up(hdr.get("init_size"), align)
    start = kernel_slot(plat.memory_map, size, align)
    if start is None:
        raise RecipeError(f"no conventional memory for the kernel: {size:#x} bytes aligned to {align:#x} "
                          f"above {bz.LOAD_PHYSICAL_ADDR:#x} below 4 GiB (efi_random_alloc fails)")
    res.place("kernel (decompressed, EFI Loader Code)", start, size, align,
              "lowest kernel_alignment-aligned conventional address >= 16 MiB (efi_random_alloc, nokaslr)",
              "kernel")
    at_exit = allocate_in_place(plat.memory_map, start, size, EfiMemoryType.LOADER_CODE, "kernel")
    res.maps["efi-at-exit"] = at_exit
    res.checks.append(check("kernel-placement", start >= bz.LOAD_PHYSICAL_ADDR and start % align == 0,
                            f"kernel at {start:#x}, {size:#x} bytes (ALIGN(init_size {hdr.get('init_size'):#x}, "
                            f"{align:#x})), predicted", start=start, size=size))

    e820 = efi_to_e820(at_exit, "linux")
    printed = sanitize(e820)
    res.maps["e820"] = e820                  # boot_params order
    res.maps["e820-printed"] = printed       # the kernel's "BIOS-e820:" lines (sorted, merged)
    res.mmap = [(r.start, r.size, r.type) for r in e820.ranges]
    n = len(res.mmap)
    res.checks.append(check("boot-params-e820", True,
                            f"{min(n, BOOT_PARAMS_E820_MAX)} entries in boot_params.e820_table"
                            + (f", {n - BOOT_PARAMS_E820_MAX} in a SETUP_E820_EXT setup_data node"
                               if n > BOOT_PARAMS_E820_MAX else ", no SETUP_E820_EXT node")))
    total = memory_total_kib(printed)
    facts = {"boot_path": path, "memory_total_kib": total, "kernel": {"start": start, "size": size},
             "initrd_size": initrd_size, "e820_printed_order_differs": [r.key() for r in printed.ranges]
             != [r.key() for r in e820.ranges]}
    if not initrd_size:
        facts["ramdisk_image"] = 0          # no initrd: the stub leaves ramdisk_image 0 (observed at 1G)
    res.notes.append(f"boot path: {'UKI (systemd-stub hands over to the kernel)' if path == 'uki' else 'EFI-stub kernel'}")
    res.notes.append(f"predicted: kernel block, E820 (both orders), \"Memory: .../{total}K available\", "
                     f"initrd size {initrd_size} bytes" + (" (printed as RAMDISK of "
                                                           f"{align_up(initrd_size, PAGE):#x} bytes)" if initrd_size else ""))
    if initrd_size:
        above4g = bool((hdr.get("xloadflags") or 0) & bz.XLoadFlag.XLF_CAN_BE_LOADED_ABOVE_4G)
        limit = FOUR_GIB if above4g else min(hdr.get("initrd_addr_max") + 1, FOUR_GIB)
        low_top = max(r.start + r.size for r in plat.memory_map.ranges
                      if r.type == EfiMemoryType.CONVENTIONAL and r.start < limit)
        low_top = min(low_top, limit)
        ok = initrd_size <= limit
        res.checks.append(check("initrd-fits", ok, f"initrd of {initrd_size} bytes below {limit:#x}"))
        facts["initrd_bounds"] = {"above": start + size, "below": low_top, "pages": align_up(initrd_size, PAGE)}
        res.notes.append(f"bounded: the initrd lies in [{start + size:#x}, {low_top:#x}) (top-down Loader Data "
                         "from OVMF's AllocateMaxAddress; the exact address depends on the boot path)")
    res.notes.append(f"bounded: boot_params ({BOOT_PARAMS_ALLOC:#x} bytes), the command line "
                     f"({len(res.cmdline) + 1} bytes) and the EFI map buffer are Loader Data pages OVMF places "
                     "top-down below 4 GiB" + ("; systemd-stub also loads the whole UKI image as Loader Code"
                                               if path == "uki" else "; OVMF loads the PE image as Loader Code"))
    nodes = []
    if n > BOOT_PARAMS_E820_MAX:
        nodes.append({"type": "SETUP_E820_EXT", "len": 20 * (n - BOOT_PARAMS_E820_MAX), "address": None})
    if on_q35_ovmf:
        device, rom = QEMU_STD_VGA
        nodes.append({"type": "SETUP_PCI", "device": device, "len": PCI_SETUP_ROM_FIELDS + rom,
                      "size": SETUP_DATA_HEADER + PCI_SETUP_ROM_FIELDS + rom, "address": None})
        res.notes.append(f"predicted: setup_data SETUP_PCI node for {device}, len {PCI_SETUP_ROM_FIELDS + rom} "
                         "(its address, a pool allocation, is bounded: below 4 GiB, above the kernel)")
    else:
        res.notes.append("setup_data: SETUP_PCI nodes (one per PCI device with an option ROM) are not predicted "
                         "for a platform given as a map file (no device list)")
    facts["setup_data"] = nodes
    facts["placement"] = _ovmf_placement(req, res, hdr, kernel, initrd_size, path, start, nodes)
    if path == "uki":
        # Measured boot: what systemd-stub and OVMF extend (bootforge/uki/measure.py).
        facts["pcrs"] = predictions(req.kernel.data, read_pe(req.kernel.data))
        res.notes.append(f"predicted: PCR 11 sha256 {facts['pcrs']['11']['sha256']}, PCR 4 sha256 "
                         f"{facts['pcrs']['4']['sha256']} ({PREDICTION_SOURCE})")
    res.linux = facts
    # The zero page bytes (bootforge/loader/linux_stub_zero_page.py): OVMF's GOP keeps its mode 0.
    gop = ovmf_gop_modes()[0] if on_q35_ovmf else None
    stub_zero_page(res, facts["placement"], (gop.width, gop.height) if gop else None)
    return res
