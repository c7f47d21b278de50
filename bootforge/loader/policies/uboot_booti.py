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
- The DTB (boot/image-fdt.c, boot/fdt_support.c; observed equal byte for byte without an
  initrd): QEMU's tree for a firmware boot (dumpdtb with -bios u-boot.bin), copied by
  boot_relocate_fdt into totalsize + CONFIG_SYS_FDT_PAD (0x3000) bytes (fdt_open_into), then
  fdt_chosen (/chosen bootargs from the environment when set, u-boot,version), arch_fixup_fdt's
  fdt_fixup_memory_banks (/memory device_type and reg: the same bytes again) and
  fdt_shrink_to_minimum (totalsize = the end of the strings + 5 reservation entries, to the
  next page; no reservation is added). With a ramdisk totalsize grows by 0x80
  (FDT_RAMDISK_OVERHEAD) and fdt_initrd adds a /memreserve/ of its size and /chosen
  linux,initrd-start/end (two cells each): exact but for the address U-Boot picked (observed).
- Not predicted (bounded only): where U-Boot puts the DTB (boot_relocate_fdt's lmb allocation
  below its own stack; observed 0x7dcaf000 with 1 GiB) and a ramdisk (below initrd_high).
"""
import re
from pathlib import Path

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.handover import devicetree_facts, mark_random
from bootforge.fdtboot.libfdt import Fdt
from bootforge.fdtboot.machines import machine_dtb
from bootforge.loader.policies.qemu_arm_kernel import RANDOM
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.result import LoadResult
from bootforge.schema import Field
from bootforge.verdict import check

SOURCE = "U-Boot 2023.01 cmd/booti.c, arch/arm/lib/image.c booti_setup, arch/arm/lib/bootm.c"
MIB = 1 << 20
KERNEL_ADDR_R = 0x40400000          # qemu_arm64 environment (include/configs/qemu-arm.h)
UBOOT_ARM64 = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")     # u-boot-qemu
SYS_FDT_PAD = 0x3000                # CONFIG_SYS_FDT_PAD (boot_relocate_fdt)
PAGE = 4096
RSV_ENTRY = 16
RAMDISK_OVERHEAD = 0x80             # boot/image-fdt.c FDT_RAMDISK_OVERHEAD
OPTIONS = (
    Field("image_address", int, KERNEL_ADDR_R, "where the Image was loaded before `booti` (kernel_addr_r)",
          min=0, max=(1 << 64) - 1),
)


def uboot_version(path=UBOOT_ARM64):
    """PLAIN_VERSION of the U-Boot binary (its "U-Boot <version> (" string)."""
    m = re.search(rb"U-Boot (20\d\d\.\d\d[^\s(]*) \(", path.read_bytes())
    if m is None:
        raise RecipeError(f"{path}: no U-Boot version string")
    return m.group(1).decode("latin-1")


def handed_dtb(base_dtb, bootargs, version, ram_base, ram_size, random_props=RANDOM, bootconf=None,
               ramdisk_size=None):
    """(DTB booti/bootm hands the kernel without a ramdisk, its random byte spans). *random_props*:
    the base DTB's properties that differ per boot (QEMU's seeds in its own tree; none in a FIT's)."""
    fdt = Fdt(base_dtb)
    mark_random(fdt, random_props)
    fdt.open_into(fdt.totalsize + SYS_FDT_PAD)
    if fdt.path_offset("/chosen") is None:
        fdt.add_subnode(0, "chosen")
    if bootargs:
        fdt.setprop(fdt.path_offset("/chosen"), "bootargs", bootargs.encode() + b"\0")
    fdt.setprop(fdt.path_offset("/chosen"), "u-boot,version", version.encode() + b"\0")
    if bootconf is not None:      # bootm of a FIT: the configuration it took (observed after u-boot,version)
        fdt.setprop(fdt.path_offset("/chosen"), "u-boot,bootconf", bootconf.encode() + b"\0")
    na = int.from_bytes(fdt.getprop(0, "#address-cells") or b"\0\0\0\2", "big")
    ns = int.from_bytes(fdt.getprop(0, "#size-cells") or b"\0\0\0\2", "big")
    if fdt.path_offset("/memory") is None:
        fdt.add_subnode(0, "memory")
    fdt.setprop(fdt.path_offset("/memory"), "device_type", b"memory\0")
    fdt.setprop(fdt.path_offset("/memory"), "reg", ram_base.to_bytes(4 * na, "big") + ram_size.to_bytes(4 * ns, "big"))
    strings_end = int.from_bytes(fdt.buf[12:16], "big") + int.from_bytes(fdt.buf[32:36], "big")
    total = -(-(strings_end + 5 * RSV_ENTRY) // PAGE) * PAGE
    if ramdisk_size:
        # image_setup_libfdt: room for the ramdisk (FDT_RAMDISK_OVERHEAD), then fdt_initrd: a
        # /memreserve/ for it and /chosen linux,initrd-start/end (u64 with two address cells) at
        # the address U-Boot picked (bounded: those bytes are marked as the loader's choice).
        total += RAMDISK_OVERHEAD
        fdt.buf[4:8] = total.to_bytes(4, "big")
        at = fdt.add_mem_rsv(0, ramdisk_size)
        fdt.mark_random(at, 8, Fdt.CHOSEN)
        width = 8 if na == 2 else 4
        for name, value in (("linux,initrd-start", 0), ("linux,initrd-end", ramdisk_size)):
            chosen = fdt.path_offset("/chosen")
            fdt.setprop(chosen, name, value.to_bytes(width, "big"))
            start, length = fdt.value_span(fdt.path_offset("/chosen"), name)
            fdt.mark_random(start, length, Fdt.CHOSEN)
    else:
        fdt.buf[4:8] = total.to_bytes(4, "big")
    return fdt.blob(), fdt.random_spans(), fdt.random_spans(Fdt.CHOSEN)


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
    if len(req.modules) > 1:
        raise RecipeError("booti takes one ramdisk (ADDR:SIZE); give one initrd")
    if board.machine is not None:
        bios_dtb, source = machine_dtb(board.machine, board.memory_bytes, bios=UBOOT_ARM64)
        ramdisk = req.modules[0].size if req.modules else None
        handed, random_bytes, chosen_bytes = handed_dtb(bios_dtb, req.cmdline, uboot_version(), board.ram_base,
                                                        board.memory_bytes, ramdisk_size=ramdisk)
        res.mbi_bytes = handed
        res.linux["devicetree"] = devicetree_facts(bios_dtb, handed, None, res.linux["registers"], RANDOM,
                                                   source + " with -bios u-boot.bin", random_bytes)
        res.linux["devicetree"]["loader_chosen_bytes"] = [list(s) for s in chosen_bytes]
        if ramdisk:
            res.notes.append("bounded: the ramdisk's address (U-Boot copies it below initrd_high), so the "
                             "/memreserve/ address and linux,initrd-start/end values in the DTB")
    ok = board.ram_base <= entry and entry + size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel runs past RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
