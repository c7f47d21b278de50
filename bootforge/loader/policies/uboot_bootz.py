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
  the blob's own address).
- A ramdisk (`bootz ADDR RD:SIZE FDT`, option ramdisk_address, default qemu_arm's
  ramdisk_addr_r 0x44000000): initrd_high = 0xffffffff, so boot_ramdisk_high leaves it where
  it was loaded (no "Loading Ramdisk" line); the DTB grows by 0x80 (FDT_RAMDISK_OVERHEAD) and
  fdt_initrd adds a /memreserve/ of it and /chosen linux,initrd-start/end (two cells each: root
  #address-cells = 2 on virt). Observed at 512M with a 5000-byte ramdisk at 0x45000000.
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
RAMDISK_ADDR_R = 0x44000000         # qemu_arm's default environment (strings u-boot.bin)
CONTROL_DTB_BELOW_RAM_END = {"2023.01+dfsg-2+deb12u3": 0x1208150}
OPTIONS = (
    Field("image_address", int, KERNEL_ADDR_R, "where the zImage was loaded before `bootz` (kernel_addr_r)",
          min=0, max=0xFFFFFFFF),
    Field("ramdisk_address", int, RAMDISK_ADDR_R, "where the ramdisk was loaded before `bootz` (ramdisk_addr_r); "
          "U-Boot leaves it there (initrd_high = 0xffffffff)", min=0, max=0xFFFFFFFF),
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
    if len(req.modules) > 1:
        raise RecipeError("bootz takes one ramdisk (ADDR:SIZE); give one initrd")
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
    ramdisk = req.modules[0].size if req.modules else None
    ramdisk_at = req.options["ramdisk_address"]
    if ramdisk:
        m = req.modules[0]
        res.place(f"ramdisk {m.loader_path}", ramdisk_at, ramdisk, 1, "where it was loaded (initrd_high = ~0: "
                  "boot_ramdisk_high does not move it)", "module")
        res.modules = [{"start": ramdisk_at, "end": ramdisk_at + ramdisk, "cmdline": m.loader_path}]
    handed, random_bytes, _ = handed_dtb(bios_dtb, req.cmdline, version, board.ram_base, board.memory_bytes,
                                         address=address or 0, ramdisk_size=ramdisk,
                                         ramdisk_start=ramdisk_at if ramdisk else None)
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
                 **({"ramdisk_loaded_at": ramdisk_at} if ramdisk else {}),
                 "devicetree": devicetree_facts(bios_dtb, handed, address, registers, RANDOM,
                                                source + " with -bios u-boot.bin (qemu_arm)", random_bytes)}
    ok = board.ram_base <= loaded and loaded + len(req.kernel.data) <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the zImage lies in RAM" if ok else "the zImage lies outside RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
