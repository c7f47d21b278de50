"""U-Boot 2023.01 `bootm ADDR` of a FIT on QEMU virt (u-boot-qemu qemu_arm64 as -bios):
boot/bootm.c, boot/image-fit.c fit_image_load, boot/image-fdt.c, arch/arm/lib/bootm.c.

Rules:
- The configuration is the one best matching the board's compatible (QEMU virt's
  "linux,dummy-virt"; fit_conf_find_compat), else "Could not find configuration node"
  (the uboot-bootm verdict, bootforge/fdtboot/verdicts.py); every image's hash is checked.
- The kernel runs at its image's load address (uncompressed data is moved there), with
  x0 = the DTB, x1 = x2 = x3 = 0 (observed: the dump kernel at the FIT's load address).
- The DTB is the configuration's fdt image, relocated and edited as for booti
  (uboot_booti.handed_dtb: open_into + 0x3000, /chosen bootargs, u-boot,version and
  u-boot,bootconf = the configuration's name, /memory, shrink to the page): predicted byte for byte without a ramdisk. With a ramdisk
  ("Loading Ramdisk to ..." below initrd_high) its linux,initrd-* values and /memreserve/
  are U-Boot's choice: the DTB is then not predicted. Addresses of the DTB and ramdisk copies
  are bounded (lmb allocations below U-Boot's stack).
"""

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import verdicts
from bootforge.fdtboot.fit import read_fit
from bootforge.fdtboot.handover import devicetree_facts
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.policies.uboot_booti import handed_dtb, uboot_version
from bootforge.loader.result import LoadResult
from bootforge.verdict import check

SOURCE = "U-Boot 2023.01 boot/bootm.c, boot/image-fit.c fit_image_load, boot/image-fdt.c image_setup_libfdt"


@loader_policy("uboot-bootm", firmware="fdt", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None,
               wrong_firmware="uboot-bootm runs on a device-tree platform (qemu-virt-aarch64:<mem>)",
               summary="U-Boot qemu_arm64 `bootm` of a FIT (kernel at its load address, the FIT's DTB edited)")
def load(req):
    board = req.platform.devicetree
    if board.machine is not None and board.machine.arch != "aarch64":
        raise RecipeError("uboot-bootm is modelled for qemu-virt-aarch64:<mem> (U-Boot qemu_arm64) or a board DTB")
    data = req.kernel.data
    if data[:4] != b"\xd0\x0d\xfe\xed":
        raise RecipeError("uboot-bootm here takes a FIT (legacy uImages: not modelled yet)")
    fit = read_fit(data, req.kernel.path)
    compatible = verdicts.QEMU_VIRT_COMPATIBLE
    if board.machine is None:
        root = root_compatible(board.dtb)
        compatible = tuple(root) or compatible
    found = verdicts.uboot_bootm_fit(fit, "aarch64", compatible)
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="uboot-bootm", words=found.words)
    conf = verdicts.best_match_configuration(fit, compatible)
    kernel = fit.image(conf.kernel)
    if kernel.load is None:
        raise LoaderRefusal(f"kernel image {kernel.name} has no load address", loader="uboot-bootm",
                            words="Can't get kernel subimage load address!")
    res = LoadResult(req.loader, "linux", req.platform, SOURCE)
    entry = kernel.entry if kernel.entry is not None else kernel.load
    res.place(f"kernel {kernel.name}", kernel.load, kernel.data_size, 1, "the FIT image's load address", "kernel")
    ram_end = board.ram_base + board.memory_bytes
    res.linux = {"entry": entry, "kernel_format": "fit", "configuration": conf.name,
                 "registers": {"x1": 0, "x2": 0, "x3": 0},
                 "bounded": {"x0 (DTB)": [board.ram_base, ram_end], "ramdisk": [board.ram_base, ram_end]}}
    res.cmdline = req.cmdline
    if conf.fdt and not conf.ramdisk:
        fdt_image = fit.image(conf.fdt[0])
        # The FIT's DTB is fixed bytes: QEMU refills the seeds of its own tree only.
        handed, random_bytes, _ = handed_dtb(bytes(fdt_image.data), req.cmdline, uboot_version(), board.ram_base,
                                             board.memory_bytes, random_props=(), bootconf=conf.name)
        res.mbi_bytes = handed
        res.linux["devicetree"] = devicetree_facts(bytes(fdt_image.data), handed, None, res.linux["registers"],
                                                   (), f"the FIT's {fdt_image.name}", random_bytes)
    elif conf.ramdisk:
        res.notes.append(f"ramdisk {conf.ramdisk}: U-Boot copies it below initrd_high and writes its range into "
                         "the DTB: the DTB is not predicted")
    ok = board.ram_base <= kernel.load and kernel.load + kernel.data_size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel lies outside RAM"))
    standard_checks(res, req.platform.memory_map)
    return res


def root_compatible(dtb):
    # Function-level import: only a board DTB platform needs its compatible list.
    from bootforge.fdt.parse import parse_dtb
    value = parse_dtb(dtb).root.prop("compatible") or b""
    return [c.decode("latin-1") for c in value.rstrip(b"\0").split(b"\0") if c]
