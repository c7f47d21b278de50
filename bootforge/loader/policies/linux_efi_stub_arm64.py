"""The arm64 Linux EFI stub (Debian's 6.1 kernel) started by AAVMF (qemu-efi-aarch64 2022.11) on
qemu-virt-aarch64: from a disk's ESP, EFI/BOOT/BOOTAA64.EFI being the kernel itself or an arm64
UKI (systemd-stub 252 starting its .linux with .cmdline and .initrd; a bootforge [image] with
loader "uki"), or by QEMU -kernel/-initrd/-append (a [load] recipe, `bootforge load KERNEL
--loader linux-efi-stub-arm64`).

Rules (Linux 6.1 drivers/firmware/efi/libstub/efi-stub.c efi_pe_entry, arm64-stub.c
handle_kernel_image, fdt.c update_fdt / allocate_new_fdt_and_exit_boot, mem.c, alignedmem.c;
arch/arm64/kernel/efi-entry.S efi_enter_kernel; the page allocations are AAVMF's:
bootforge/loader/aavmf_pages.py), each checked against a real boot (tests/data/aavmf/):
- The image: AAVMF's LoadImage places it (aavmf_pages: Loader Code top-down below the bins, at a
  SectionAlignment boundary; by QEMU -kernel under the pool LoadImage read the file into, whose
  pages follow the file's size: aavmf_pages.for_inputs). AAVMF has no EFI_RNG_PROTOCOL ("EFI_RNG_PROTOCOL unavailable"), so
  the stub sets efi_nokaslr and, the image being EFI_KIMG_ALIGN (64 KiB) aligned and its
  image_size inside the Loader Code pages (check_image_region), runs it where it is: no copy
  (observed: "Kernel Offset: 0x10000", the image's offset in its 2 MiB).
- The command line: the removable-media boot option BdsDxe creates carries no load options, so
  from an ESP the stub's command line is empty (efi_convert_cmdline: a 1-byte Loader Data pool
  block, CONFIG_CMDLINE "" in Debian's config): no bootargs, no initrd= files. Under QEMU -kernel
  AAVMF's QemuLoadKernelImage (OvmfPkg/Library/GenericQemuLoadImageLib) gives the -append string
  as load options with " initrd=initrd" appended when there is an initrd (observed: "Kernel
  command line: ... initrd=initrd"): that is bootargs.
- The initrd (QEMU -kernel): the stub loads it from the LINUX_EFI_INITRD_MEDIA device path that
  QemuKernelLoaderFsDxe installs ("Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path"),
  into 64 KiB aligned Loader Data it allocates right after the command line's pool page, and
  hands it over in a LINUX_EFI_INITRD_MEDIA configuration table (struct linux_efi_initrd: base,
  size; the kernel log's "INITRD="), not in /chosen: 6.1's update_fdt writes no
  linux,initrd-start/end (observed).
- A UKI (systemd 252 src/boot/efi/stub.c, linux.c linux_exec): AAVMF loads the UKI, systemd-stub
  takes its first Loader Data pool page, LoadImage()s .linux from memory (placed like the kernel
  file above) with .cmdline as load options and serves .initrd through its own
  LINUX_EFI_INITRD_MEDIA device path: the kernel stub then loads the initrd as under -kernel
  (observed: "Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path", "Kernel command line:"
  = .cmdline).
- The DTB: AAVMF on virt installs ACPI tables and no DEVICE_TREE_GUID table, so the stub builds
  an empty tree ("Generating empty DTB": fdt_create_empty_tree in a 2 MiB MAX_FDT_SIZE buffer,
  efi_allocate_pages: 64 KiB aligned Loader Data), sets the root's #address-cells and
  #size-cells to 2 (fdt_update_cell_size), adds /chosen with linux,uefi-system-table,
  linux,uefi-mmap-start/-size/-desc-size/-desc-ver (placeholders, filled in place from the final
  map in exit_boot_func) and linux,uefi-secure-boot (efi_get_secureboot: 2 = disabled, AAVMF's
  variables hold no PK), no kaslr-seed (efi_nokaslr), then fdt_pack(): totalsize 0x188 with no
  command line. libfdt puts each new property first in its node.
- The map: linux,uefi-mmap-start is the descriptors' address in the stub's map buffer (an
  EfiACPIReclaimMemory pool block, mem.c efi_get_memory_map), -size the exit map's descriptor
  count times 48, -desc-size 48, -desc-ver 1; the system table is AAVMF's gST.
- The entry: efi_enter_kernel branches to the image + primary_entry's offset (the Image header's
  code1 is `b primary_entry`) with x0 = the DTB, x1 = x2 = x3 = 0.
"""

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import verdicts
from bootforge.fdtboot.handover import devicetree_facts
from bootforge.fdtboot.libfdt import Fdt
from bootforge.loader import aavmf_pages
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.result import LoadResult
from bootforge.pe.image import read_pe
from bootforge.verdict import check

SOURCE = ("Linux 6.1 drivers/firmware/efi/libstub/ (efi-stub.c, arm64-stub.c, fdt.c) on AAVMF 2022.11 "
          "(ArmVirtQemu, MdeModulePkg/Core/Dxe Image.c, Page.c, Pool.c)")
MIB = 1 << 20
MAX_FDT_SIZE = 2 * MIB                  # arch/arm64/include/asm/efi.h: SZ_2M
EFI_KIMG_ALIGN = 64 << 10               # arm64 asm/efi.h: max(SEGMENT_ALIGN, THREAD_ALIGN) with 4K pages
EFI_DT_ADDR_CELLS_DEFAULT = 2           # libstub fdt.c fdt_update_cell_size
EFI_DT_SIZE_CELLS_DEFAULT = 2
SECUREBOOT_DISABLED = 2                 # include/linux/efi.h enum efi_secureboot_mode
ARM64_B = 0x14000000                    # `b imm26`
REMOVABLE_AA64 = "/EFI/BOOT/BOOTAA64.EFI"


def _fdt_create_empty_tree(bufsize):
    """libfdt fdt_create_empty_tree(buf, bufsize): a root node alone, version 17 (last compatible
    16), the reservation map at 0x28, the structure block at 0x38, totalsize = bufsize."""
    header = [0xD00DFEED, bufsize, 0x38, 0x48, 0x28, 17, 16, 0, 0, 0x10]
    struct_block = (1).to_bytes(4, "big") + bytes(4) + (2).to_bytes(4, "big") + (9).to_bytes(4, "big")
    return b"".join(v.to_bytes(4, "big") for v in header) + bytes(16) + struct_block


def stub_dtb(cmdline, system_table, memmap_start, memmap_size):
    """The tree update_fdt() builds without a firmware DTB, packed, with the map filled in."""
    fdt = Fdt(_fdt_create_empty_tree(MAX_FDT_SIZE), MAX_FDT_SIZE)
    fdt.setprop(0, "#address-cells", EFI_DT_ADDR_CELLS_DEFAULT.to_bytes(4, "big"))
    fdt.setprop(0, "#size-cells", EFI_DT_SIZE_CELLS_DEFAULT.to_bytes(4, "big"))
    fdt.add_subnode(0, "chosen")

    def chosen(name, value):
        fdt.setprop(fdt.path_offset("/chosen"), name, value)
    if cmdline:
        chosen("bootargs", cmdline.encode() + b"\0")
    chosen("linux,uefi-system-table", system_table.to_bytes(8, "big"))
    chosen("linux,uefi-mmap-start", memmap_start.to_bytes(8, "big"))
    chosen("linux,uefi-mmap-size", memmap_size.to_bytes(4, "big"))
    chosen("linux,uefi-mmap-desc-size", aavmf_pages.DESCRIPTOR_SIZE.to_bytes(4, "big"))
    chosen("linux,uefi-mmap-desc-ver", aavmf_pages.DESCRIPTOR_VERSION.to_bytes(4, "big"))
    chosen("linux,uefi-secure-boot", SECUREBOOT_DISABLED.to_bytes(4, "big"))
    fdt.pack()
    return fdt.blob()


def primary_entry_offset(data):
    """The Image header's code1, `b primary_entry` at offset 4: the branch target's offset."""
    code1 = int.from_bytes(data[4:8], "little")
    if code1 & 0xFC000000 != ARM64_B:
        raise RecipeError(f"the Image header's code1 {code1:#010x} is not a branch to primary_entry", offset=4)
    imm = code1 & 0x3FFFFFF
    return 4 + ((imm - (1 << 26) if imm & (1 << 25) else imm) << 2)


@loader_policy("linux-efi-stub-arm64", firmware="fdt", protocol="linux", verdict=None, source=SOURCE,
               verified=False, boot_medium=None,   # real boot: tests/test_aavmf_boot.py, verify/fdt.py
               wrong_firmware="linux-efi-stub-arm64 runs on qemu-virt-aarch64:<mem> (AAVMF)",
               summary="the arm64 Linux EFI stub under AAVMF on virt: a disk's EFI/BOOT/BOOTAA64.EFI (the kernel "
                       "or a UKI), or QEMU -kernel")
def load(req):
    plat = req.platform
    board = plat.devicetree
    if board is None or board.machine is None or board.machine.arch != "aarch64":
        raise RecipeError("linux-efi-stub-arm64 needs qemu-virt-aarch64:<mem> (AAVMF on QEMU virt)")
    data = req.kernel.data
    found = verdicts.efi_stub_arm64(data)
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="linux-efi-stub-arm64", words=found.words)
    boot_path = "esp" if req.kernel_loader_path.upper() == REMOVABLE_AA64 else "qemu-kernel"
    uki = read_pe(data)
    linux = uki.section(".linux")
    kernel_at = 0                       # where the kernel's PE lies in the booted file
    if linux is not None:
        if boot_path == "qemu-kernel" and (req.modules or req.cmdline):
            raise RecipeError("linux-efi-stub-arm64 predicts a UKI by QEMU -kernel without -append and -initrd "
                              "(its .cmdline and .initrd); systemd-stub would take load options over .cmdline")
        boot_path, kernel_at = boot_path + "-uki", linux.raw_offset
        data = linux.data(data)
        if data[0x38:0x3C] != b"ARM\x64":
            raise RecipeError("the UKI's .linux is not an arm64 Image with an EFI stub")
    if boot_path == "esp" and (req.modules or req.cmdline):
        raise RecipeError("AAVMF starts EFI/BOOT/BOOTAA64.EFI with no load options: no command line and no initrd "
                          "(give none, or boot a UKI carrying them)")
    if len(req.modules) > 1:
        raise RecipeError("QEMU -initrd takes one file; give one initrd")
    if boot_path.endswith("-uki"):
        section = uki.section(".cmdline")
        cmdline = section.data(req.kernel.data).split(b"\0")[0].decode("utf-8", "replace") if section else ""
        initrd_section = uki.section(".initrd")
        initrd_size = initrd_section.virtual_size if initrd_section else 0
    else:
        initrd_section = None
        initrd_size = req.modules[0].size if req.modules else 0
        # QemuLoadKernelImage's load options: -append, and " initrd=initrd" with an initrd.
        cmdline = req.cmdline + (" initrd=initrd" if initrd_size else "")
    pe = read_pe(data)
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    res.cmdline = cmdline
    capture = aavmf_pages.find_capture(board.machine.name, boot_path, board.memory_bytes, board.ram_base,
                                       initrd=bool(initrd_size))
    how = {"esp": "from an ESP", "esp-uki": "as a UKI from an ESP", "qemu-kernel": "by QEMU -kernel",
           "qemu-kernel-uki": "as a UKI by QEMU -kernel"}[boot_path] + \
        (" with an initrd" if initrd_size else " without an initrd")
    reason = None
    if capture is None:
        captured = ", ".join(f"{p} {'with' if i else 'without'} an initrd" for _, p, i in aavmf_pages.CAPTURES)
        reason = (f"no AAVMF page capture for {board.machine.name} with {board.memory_bytes >> 20} MiB {how} "
                  f"(captured: {captured}; "
                  f"a capture moves with the end of RAM while it ends below 4 GiB: at most "
                  f"{(aavmf_pages.RAM_LIMIT - board.ram_base) >> 20} MiB)")
    else:
        capture, reason = aavmf_pages.for_inputs(capture, len(req.kernel.data), initrd_size,
                                                 getattr(req, "efi_medium", None))
    if reason is not None:
        raise RecipeError(f"linux-efi-stub-arm64: placements not predicted exactly: {reason}")
    got = aavmf_pages.replay(capture, size_of_image=pe.size_of_image, section_alignment=pe.section_alignment,
                             cmdline_bytes=len(cmdline.encode()) + 1, fdt_size=MAX_FDT_SIZE, initrd_size=initrd_size,
                             uki=(uki.size_of_image, uki.section_alignment) if boot_path.endswith("-uki") else None)
    if got is None:
        raise RecipeError("linux-efi-stub-arm64: a command line of a page or more gets pool pages of its own: not "
                          "modelled")
    image_size = int.from_bytes(data[16:24], "little")
    if got.image % EFI_KIMG_ALIGN or got.image + image_size > got.image_block[1]:
        raise RecipeError("the image LoadImage gives is not 64 KiB aligned or its image_size runs past the Loader "
                          "Code pages: the stub would move it (efi_allocate_pages_aligned), not modelled")
    if got.memmap_start is None:
        raise RecipeError(f"the exit map has {got.memmap_size // 48} descriptors, the capture "
                          f"{capture.memmap_pool['descriptors']}: where AAVMF's ACPI-reclaim pool puts the map "
                          "buffer is known only for the captured one")
    entry = got.image + primary_entry_offset(data)
    dtb = stub_dtb(cmdline, capture.system_table, got.memmap_start, got.memmap_size)
    res.place("kernel image (AAVMF LoadImage)", got.image, image_size, pe.section_alignment,
              "Loader Code top-down in AAVMF's default bin, at a SectionAlignment boundary; run in place "
              "(no EFI_RNG_PROTOCOL, 64 KiB aligned)", "kernel")
    res.place("command line pool page", got.cmdline_page, 4096, 4096, "the first Loader Data pool page (the "
              "stub's; systemd-stub's for a UKI)", "loader")
    if got.uki_block is not None:
        res.place("UKI image (AAVMF LoadImage)", got.uki_block, uki.size_of_image, uki.section_alignment,
                  "Loader Code top-down below the file buffer AAVMF held", "loader")
    if got.initrd is not None:
        name = req.modules[0].loader_path if req.modules else "the UKI's .initrd"
        res.place(f"initrd {name}", got.initrd[0], got.initrd[1], EFI_KIMG_ALIGN,
                  "LoadFile2 of LINUX_EFI_INITRD_MEDIA into efi_allocate_pages: 64 KiB aligned Loader Data, "
                  "top-down", "module")
        res.modules = [{"start": got.initrd[0], "end": got.initrd[0] + got.initrd[1], "cmdline": name,
                        "handed_over": "LINUX_EFI_INITRD_MEDIA configuration table"}]
    res.place("DTB (the stub's)", got.fdt, MAX_FDT_SIZE, EFI_KIMG_ALIGN,
              "efi_allocate_pages(MAX_FDT_SIZE): 64 KiB aligned Loader Data, top-down"
              + (", after the initrd" if got.initrd else ""), "boot-info")
    res.place("EFI memory map buffer", got.memmap_start, got.memmap_size, 8,
              "ACPI-reclaim pool block (the capture's)", "boot-info")
    registers = {"x0": got.fdt, "x1": 0, "x2": 0, "x3": 0}
    res.mbi_address, res.mbi_bytes = got.fdt, dtb
    res.mmap = []
    res.linux = {"entry": entry, "kernel_format": "efi-stub", "registers": registers, "image_base": got.image,
                 # PE32+ OptionalHeader.ImageBase, which LoadImage rewrites in the loaded headers
                 "image_base_field": pe.optional_header_offset + 24,
                 "kernel_text_end": max(s.virtual_address + s.virtual_size for s in pe.sections
                                        if s.name == ".text"),
                 "capture": capture.name, "boot_path": boot_path, "system_table": capture.system_table,
                 # where the kernel's PE (the file, or a UKI's .linux) and the initrd's bytes are in the file
                 "kernel_file_offset": kernel_at,
                 "initrd_file_range": [initrd_section.raw_offset, initrd_size] if initrd_section else None,
                 "devicetree": devicetree_facts(dtb, dtb, got.fdt, registers, (), "the stub's empty tree", [])}
    # Predicted from the capture (the firmware's own values), compared like the rest.
    res.linux["devicetree"]["from_capture"] = [
        {"path": "/chosen", "property": "linux,uefi-system-table", "reason": "AAVMF's gST (the capture's)"},
        {"path": "/chosen", "property": "linux,uefi-mmap-start",
         "reason": "AAVMF's ACPI-reclaim pool block for the map buffer (the capture's)"}]
    res.notes.append(f"AAVMF page capture {capture.name}: image, DTB and map size replayed "
                     "(bootforge/loader/aavmf_pages.py)")
    ram_ok = all(board.ram_base <= p.start and p.end <= board.ram_base + board.memory_bytes for p in res.placements)
    res.checks.append(check("placements-in-ram", ram_ok, "image, DTB and map lie in RAM" if ram_ok
                            else "a placement lies outside RAM"))
    standard_checks(res, plat.memory_map)
    return res
