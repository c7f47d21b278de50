"""QEMU 7.2 -kernel/-initrd/-append of a bzImage on SeaBIOS (hw/i386/x86.c x86_load_linux,
pc-bios/optionrom/linuxboot_dma.c): QEMU lays the kernel out through fw_cfg and its
linuxboot_dma option ROM copies it there and jumps to the real-mode setup code, which
builds boot_params itself (its own INT 15h E820 walk) and enters the 32-bit kernel.

Rules (x86_load_linux; checked against Debian's kernel: tests/test_linux_qemu_kernel.py,
tests/data/linux-qemu-seabios/):
- boot protocol >= 2.02 with LOADED_HIGH: setup and the zero page QEMU fills at 0x10000, the
  command line at 0x20000 (cmd_line_ptr), the protected-mode kernel at 0x100000. The
  real-mode setup code copies that zero page into its own data (arch/x86/boot/main.c
  copy_boot_params) and enters the kernel with ESI there: an address inside the setup
  image, per kernel build, not predicted here.
- initrd_max = initrd_addr_max (protocol 2.03+; else 0x37ffffff), or 4 GiB - 1 when
  protocol >= 2.12 says XLF_CAN_BE_LOADED_ABOVE_4G, then at most below_4g_mem_size -
  acpi_data_size - 1 (0x20000 on pc-i440fx-7.2); the initrd at
  (initrd_max - size) & ~4095. "qemu: initrd is too large" when it does not fit.
- The command line is -append as given (the kernel prints it).
- E820: SeaBIOS's table as INT 15h returns it (the setup code copies it).
"""

from bootforge.errors import FormatError, LoaderRefusal
from bootforge.formats import bzimage as bz
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import e820_entries
from bootforge.loader.result import LoadResult
from bootforge.machines.qemu_x86 import QEMU_PC_LOWMEM_GB_ALIGNED, QEMU_PC_LOWMEM_SPLIT
from bootforge.uki.kernel import is_bzimage, read_bzimage

SOURCE = "QEMU 7.2 hw/i386/x86.c x86_load_linux, pc-bios/optionrom/linuxboot_dma.c"
REAL_ADDR, CMDLINE_ADDR, PROT_ADDR = 0x10000, 0x20000, 0x100000
# acpi_data_size of Debian's QEMU 7.2 pc machine: 0x20000 (pc.c's default; the +0x8000 of
# pc_piix.c is older machine types'), observed: RAMDISK ends at below_4g - 0x20000 - 1 at 512M.
PC_ACPI_DATA_SIZE = 0x20000
INITRD_MAX_DEFAULT = 0x37FFFFFF
LOADED_HIGH = 0x01
PAGE = 4096


def below_4g(ram):
    """pc_init1's below_4g_mem_size (machines.qemu_x86 holds the split)."""
    return QEMU_PC_LOWMEM_GB_ALIGNED if ram >= QEMU_PC_LOWMEM_SPLIT else ram


@loader_policy("qemu-linux", firmware="bios", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium="qemu-kernel",
               wrong_firmware="qemu-linux models QEMU -kernel on SeaBIOS (qemu-pc-seabios:<mem>)",
               summary="QEMU -kernel/-initrd of a bzImage on SeaBIOS (linuxboot_dma)")
def load(req):
    data = req.kernel.data
    if not is_bzimage(data):
        raise LoaderRefusal("not a bzImage (no 'HdrS' setup header): QEMU would try it as Multiboot",
                            loader="qemu-linux")
    try:
        hdr = read_bzimage(data)
    except FormatError as exc:
        raise exc.located(path=req.kernel.path) from None
    plat = req.platform
    if plat.memory_bytes is None or not plat.name.startswith("qemu-pc"):
        raise LoaderRefusal("qemu-linux needs a QEMU pc machine (qemu-pc-seabios:<mem>): QEMU derives the "
                            "initrd address from its RAM size", loader="qemu-linux")
    g = hdr.get
    version = hdr.version
    if version < 0x202 or not g("loadflags") & LOADED_HIGH:
        raise LoaderRefusal("a low or pre-2.02 kernel (setup at 0x90000): not modelled", loader="qemu-linux")
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    res.cmdline = req.cmdline
    res.place("setup code and QEMU's zero page (real_addr)", REAL_ADDR, CMDLINE_ADDR - REAL_ADDR, 1,
              "protocol >= 2.02 and LOADED_HIGH: 0x10000 (x86_load_linux)", "boot-info")
    res.place("command line (cmdline_addr)", CMDLINE_ADDR, (len(req.cmdline.encode()) + 16) & ~15, 16,
              "0x20000, its size aligned to 16 (x86_load_linux)", "boot-info")
    prot_size = len(data) - ((g("setup_sects") or bz.DEFAULT_SETUP_SECTS) + 1) * bz.SECTOR
    res.place("kernel (protected-mode part)", PROT_ADDR, prot_size, 1, "0x100000 (x86_load_linux)", "kernel")
    ramdisk = (0, 0)
    if req.modules:
        if len(req.modules) > 1:
            raise LoaderRefusal("QEMU -initrd on a Linux kernel takes one file", loader="qemu-linux")
        size = req.modules[0].size
        xlf = g("xloadflags") or 0
        if version >= 0x20C and xlf & bz.XLoadFlag.XLF_CAN_BE_LOADED_ABOVE_4G:
            initrd_max = 0xFFFFFFFF
        else:
            initrd_max = g("initrd_addr_max") if version >= 0x203 else INITRD_MAX_DEFAULT
        low = below_4g(plat.memory_bytes)
        if initrd_max >= low - PC_ACPI_DATA_SIZE:
            initrd_max = low - PC_ACPI_DATA_SIZE - 1
        if size >= initrd_max:
            raise LoaderRefusal("qemu: initrd is too large, cannot support it.", loader="qemu-linux",
                                words="initrd is too large, cannot support it.")
        at = (initrd_max - size) & ~(PAGE - 1)
        res.place("initrd", at, size, PAGE, "(initrd_max - size) & ~4095 (x86_load_linux)", "module")
        res.modules.append({"start": at, "end": at + size, "cmdline": ""})
        ramdisk = (at, size)
    res.mbi_address = REAL_ADDR
    res.mmap = e820_entries(plat.memory_map)
    res.linux = {"setup_zero_page": REAL_ADDR, "cmd_line_ptr": CMDLINE_ADDR, "ramdisk_image": ramdisk[0],
                 "ramdisk_size": ramdisk[1], "boot_path": "qemu-linux",
                 "zero_page_why": "the kernel's real-mode setup code builds the boot_params it enters with "
                                  "(copy_boot_params, then its own BIOS calls: video, E820, EDD, APM)"}
    res.notes.append(f"predicted: QEMU's zero page at {REAL_ADDR:#x} (the setup code's copy is what the kernel "
                     "gets: not predicted), cmd_line_ptr {CMDLINE_ADDR:#x}, kernel at "
                     f"{PROT_ADDR:#x}" + (f", initrd at {ramdisk[0]:#x} ({ramdisk[1]} bytes)" if ramdisk[1] else ""))
    return res
