"""U-Boot 2023.01 `booti` of an arm64 Image on QEMU virt (u-boot-qemu qemu_arm64 as -bios):
cmd/booti.c booti_start() and arch/arm/lib/image.c booti_setup().

Rules:
- The Image is where the user loaded it (option image_address; default qemu_arm64's
  kernel_addr_r, 0x40400000). booti_setup: without "ARM\\x64" "Bad Linux ARM64 Image
  magic!"; image_size 0 means 16 MiB at text_offset 0x80000 ("Image lacks image_size
  field, assuming 16MiB"); with flags bit 3 the 2 MiB aligned base is the load address
  - text_offset, else the start of RAM; the kernel runs at ALIGN(base, 2 MiB) +
  text_offset, and when that is not where it was loaded booti moves it there ("Moving
  Image from 0x%lx to 0x%lx, end=%lx"). Observed: loaded at 0x44000000 it runs there.
- x0 = the DTB, x1 = x2 = x3 = 0 (arch/arm/lib/bootm.c boot_jump_linux).
- On a board given as its DTB (--platform board.dtb), the RAM start is its first /memory
  bank (gd->bd->bi_dram[0].start).
- Not predicted (bounded only): where U-Boot puts the DTB and a ramdisk. It copies the DTB
  (boot_relocate_fdt, lmb below its own relocated image; observed 0x7dcaf000 with 1 GiB)
  and edits /chosen (bootargs, u-boot,version) and /memory; the ramdisk goes below
  initrd_high. Both lie in RAM below U-Boot's own copy near the top.
"""

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import kernels, verdicts
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.result import LoadResult
from bootforge.schema import Field
from bootforge.verdict import check

SOURCE = "U-Boot 2023.01 cmd/booti.c, arch/arm/lib/image.c booti_setup, arch/arm/lib/bootm.c"
MIB = 1 << 20
KERNEL_ADDR_R = 0x40400000          # qemu_arm64 environment (include/configs/qemu-arm.h)
OPTIONS = (
    Field("image_address", int, KERNEL_ADDR_R, "where the Image was loaded before `booti` (kernel_addr_r)",
          min=0, max=(1 << 64) - 1),
)


def relocation(header, image_address, ram_base):
    """(address the kernel runs at, image size booti uses) for booti_setup()."""
    if header["image_size"] == 0:
        size, text_offset = verdicts.UBOOT_BOOTI_DEFAULT_SIZE, verdicts.UBOOT_BOOTI_DEFAULT_OFFSET
    else:
        size, text_offset = header["image_size"], header["text_offset"]
    base = image_address - text_offset if header["phys_anywhere"] else ram_base
    return -(-base // (2 * MIB)) * 2 * MIB + text_offset, size


@loader_policy("uboot-booti", firmware="fdt", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, options=OPTIONS,
               wrong_firmware="uboot-booti runs on a device-tree platform (qemu-virt-aarch64:<mem>)",
               summary="U-Boot qemu_arm64 `booti` of an arm64 Image (kernel placement; DTB and ramdisk bounded)")
def load(req):
    board = req.platform.devicetree
    if board.machine is not None and board.machine.arch != "aarch64":
        raise RecipeError("uboot-booti is modelled for qemu-virt-aarch64:<mem> (U-Boot qemu_arm64) or a board DTB")
    found = verdicts.uboot_booti(req.kernel.data, "aarch64")
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="uboot-booti", words=found.words)
    raw, _ = verdicts.gunzipped(req.kernel.data)
    header = kernels.read_arm64_image(raw)
    res = LoadResult(req.loader, "linux", req.platform, SOURCE)
    loaded = req.options["image_address"]
    ram_end = board.ram_base + board.memory_bytes
    entry, size = relocation(header, loaded, board.ram_base)
    words = None
    if entry != loaded:
        words = f"Moving Image from {loaded:#x} to {entry:#x}, end={entry + size:x}"
        res.notes.append(f"U-Boot prints: {words}")
    res.place("kernel", entry, max(size, len(raw)), 2 * MIB,
              "ALIGN(load address - text_offset (flags bit 3) or RAM start, 2 MiB) + text_offset", "kernel")
    res.linux = {"entry": entry, "kernel_format": "arm64-image", "loaded_at": loaded, "move": words,
                 "registers": {"x1": 0, "x2": 0, "x3": 0},
                 "bounded": {"x0 (DTB)": [board.ram_base, ram_end], "ramdisk": [board.ram_base, ram_end]}}
    res.cmdline = req.cmdline
    res.notes.append("bounded: U-Boot's copy of the DTB (x0) and the ramdisk, below its own relocated image")
    ok = board.ram_base <= entry and entry + size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel runs past RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
