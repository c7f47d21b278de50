"""U-Boot 2023.01 `bootz` of a 32-bit ARM zImage on QEMU virt (u-boot-qemu qemu_arm as -bios):
cmd/bootz.c, arch/arm/lib/zimage.c bootz_setup, boot/image-fdt.c, arch/arm/lib/bootm.c.

Rules (observed with the 32-bit dtdump kernel at -m 512M and 1G: tests/test_uboot_qemu.py):
- bootz_setup: "zimage: Bad magic!" without 0x016f2818 at 0x24; "Kernel image @ ADDR [ start
  - end ]"; the zImage runs where it was loaded (it relocates itself): option image_address,
  default qemu_arm's kernel_addr_r 0x40400000.
- r0 = 0, r1 = the machine id (bd->bi_arch_number: 0 on qemu_arm), r2 = the DTB.
- The DTB: qemu_arm's environment sets fdt_high = 0xffffffff, so U-Boot edits its control DTB
  in place ("Using Device Tree in place at ..."): QEMU's firmware-boot tree (dumpdtb with -bios
  u-boot.bin) at 0x1208150 below the end of RAM for Debian's 2023.01+dfsg-2+deb12u3 build
  (observed at 512M and 1G), totalsize + 0x3000, then the booti edits (uboot_booti.handed_dtb:
  /chosen bootargs and u-boot,version, /memory, fdt_shrink_to_minimum to the page boundary of
  the blob's own address). A ramdisk is not modelled.
"""

from pathlib import Path

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.handover import devicetree_facts
from bootforge.fdtboot.machines import machine_dtb
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.policies.qemu_arm_kernel import RANDOM
from bootforge.loader.policies.uboot_booti import SYS_FDT_PAD, handed_dtb, uboot_version
from bootforge.loader.result import LoadResult
from bootforge.schema import Field
from bootforge.verdict import check

SOURCE = "U-Boot 2023.01 cmd/bootz.c, arch/arm/lib/zimage.c, boot/image-fdt.c, arch/arm/lib/bootm.c"
UBOOT_ARM = Path("/usr/lib/u-boot/qemu_arm/u-boot.bin")     # u-boot-qemu
KERNEL_ADDR_R = 0x40400000
CONTROL_DTB_BELOW_RAM_END = {"2023.01+dfsg-2+deb12u3": 0x1208150}
OPTIONS = (
    Field("image_address", int, KERNEL_ADDR_R, "where the zImage was loaded before `bootz` (kernel_addr_r)",
          min=0, max=0xFFFFFFFF),
)


@loader_policy("uboot-bootz", firmware="fdt", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, options=OPTIONS,
               wrong_firmware="uboot-bootz runs on a device-tree platform (qemu-virt-arm:<mem>)",
               summary="U-Boot qemu_arm `bootz` of a 32-bit zImage (in place; the DTB edited in place)")
def load(req):
    board = req.platform.devicetree
    if board.machine is None or board.machine.arch != "arm":
        raise RecipeError("uboot-bootz is modelled for qemu-virt-arm:<mem> (U-Boot qemu_arm)")
    found = verdicts.uboot_bootz(req.kernel.data)
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="uboot-bootz", words=found.words)
    if req.modules:
        raise RecipeError("uboot-bootz: a ramdisk is not modelled yet")
    header = kernels.read_zimage(req.kernel.data)
    res = LoadResult(req.loader, "linux", req.platform, SOURCE)
    loaded = req.options["image_address"]
    ram_end = board.ram_base + board.memory_bytes
    res.place("zImage", loaded, len(req.kernel.data), 1, "where it was loaded (it relocates itself)", "kernel")
    res.notes.append(f"U-Boot prints: Kernel image @ {loaded:#x} [ {header['start']:#08x} - {header['end']:#08x} ]")
    version = uboot_version(UBOOT_ARM)
    bios_dtb, source = machine_dtb(board.machine, board.memory_bytes, bios=UBOOT_ARM)
    below = CONTROL_DTB_BELOW_RAM_END.get(version)
    address = ram_end - below if below is not None else None
    handed, random_bytes, _ = handed_dtb(bios_dtb, req.cmdline, version, board.ram_base, board.memory_bytes,
                                         address=address or 0)
    registers = {"r0": 0, "r1": 0, **({"r2": address} if address is not None else {})}
    if address is not None:
        res.place("DTB (U-Boot's control DTB, edited in place)", address, len(handed), 8,
                  "U-Boot's relocated control DTB (fdt_high = 0xffffffff)", "boot-info")
        end = address + int.from_bytes(bios_dtb[4:8], "big") + SYS_FDT_PAD - 1
        res.notes.append(f"U-Boot prints: Using Device Tree in place at {address:x}, end {end:x}")
        res.mbi_address = address
    else:
        res.notes.append(f"bounded: U-Boot {version}'s control DTB address (not observed for this build)")
    res.mbi_bytes = handed
    res.cmdline = req.cmdline
    res.linux = {"entry": loaded, "kernel_format": "arm-zimage", "registers": registers,
                 "devicetree": devicetree_facts(bios_dtb, handed, address, registers, RANDOM,
                                                source + " with -bios u-boot.bin (qemu_arm)", random_bytes)}
    ok = board.ram_base <= loaded and loaded + len(req.kernel.data) <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the zImage lies in RAM" if ok else "the zImage lies outside RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
