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
  u-boot,bootconf = the configuration's name, /memory, shrink to the page, the ramdisk's
  /memreserve/ and linux,initrd-start/end); the ramdisk and DTB copies where U-Boot's lmb
  puts them (uboot_booti.lmb_layout), x0 the DTB copy.
- A legacy uImage (`bootm ADDR RD|- ${fdtcontroladdr}`): both CRCs and the architecture checked
  (the uboot-bootm verdict's words); uncompressed data is copied to ih_load ("Loading Kernel
  Image") and entered at ih_ep; the DTB is U-Boot's control DTB edited exactly as booti edits it,
  its copy and a ramdisk's where booti's lmb puts them (observed: the dump kernel as a mkimage
  uImage at -m 1G, x0 and the DTB byte for byte equal to uboot-booti's prediction).
- A FIT kernel with compression gzip/lzma/lz4 is decompressed to its load address the same way
  (bootm_load_os, observed with a gzip'd dtdump kernel in a bootforge FIT).
- A compressed legacy uImage (boot/image.c image_decomp, from bootm_load_os): gzip, lzma and lz4
  (Debian's qemu_arm64 config; lzo, zstd: "Unimplemented compression type N", back at the
  prompt) are decompressed straight to ih_load ("Uncompressing Kernel Image") into a buffer of
  CONFIG_SYS_BOOTM_LEN = 0x4000000 bytes: exactly 64 MiB of output boots, more fails in the
  decoder's words ("gzip compressed: uncompress error -1", "Must RESET board to recover", then
  the prompt again; observed). The kernel is entered at ih_ep; the DTB and ramdisk copies are
  those of an uncompressed uImage (lmb allocates top-down below U-Boot, away from the kernel).
  Observed: the dtdump kernel gzip'd, lzma'd and lz4'd by their tools and wrapped by mkimage
  -C gzip/lzma/lz4 -a 0x40400000 at 1G (tests/test_uboot_qemu.py).
"""

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.fit import read_fit
from bootforge.fdtboot.handover import devicetree_facts
from bootforge.formats import uimage as ufmt
from bootforge.loader.policies import loader_policy
from bootforge.loader.policies.common import standard_checks
from bootforge.loader.policies.uboot_booti import (PAGE, SYS_FDT_PAD, hand_over_control_dtb, handed_dtb,
                                                   lmb_layout, uboot_version)
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
    if kernels.is_uimage(data) and board.machine is not None:
        return load_legacy(req)
    if data[:4] != b"\xd0\x0d\xfe\xed":
        raise RecipeError("uboot-bootm takes a FIT or a legacy uImage (on qemu-virt-aarch64)")
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
    size = found.facts.get("decompressed_size", kernel.data_size)
    comp = kernel.props.get("compression", "none")
    res.place(f"kernel {kernel.name}" + (f" ({comp}, decompressed)" if comp != "none" else ""), kernel.load, size, 1,
              "the FIT image's load address" + (" (bootm_load_os: image_decomp there)" if comp != "none" else ""),
              "kernel")
    if comp != "none":
        res.notes.append("U-Boot prints: Uncompressing Kernel Image")
    ram_end = board.ram_base + board.memory_bytes
    res.linux = {"entry": entry, "kernel_format": "fit", "configuration": conf.name,
                 "registers": {"x1": 0, "x2": 0, "x3": 0},
                 "bounded": {"x0 (DTB)": [board.ram_base, ram_end], "ramdisk": [board.ram_base, ram_end]}}
    res.cmdline = req.cmdline
    if conf.fdt:
        fdt_image = fit.image(conf.fdt[0])
        base_dtb = bytes(fdt_image.data)
        if len(base_dtb) < int.from_bytes(base_dtb[4:8], "big"):
            # boot_relocate_fdt copies fdt_totalsize() bytes: past the image's data, the FIT's next bytes.
            raise RecipeError(f"uboot-bootm: fdt image {fdt_image.name}'s tree says totalsize "
                              f"{int.from_bytes(base_dtb[4:8], 'big'):#x} but holds {len(base_dtb):#x} bytes: U-Boot "
                              "copies bytes past it (not modelled; pack the tree)", path=req.kernel.path)
        ramdisk = fit.image(conf.ramdisk).data_size if conf.ramdisk else None
        version = uboot_version()
        fdt_bytes = int.from_bytes(base_dtb[4:8], "big") + SYS_FDT_PAD
        # The lmb layout is a fact of the QEMU virt U-Boot builds only (not of a user's board).
        layout = lmb_layout(version, ram_end, fdt_bytes, ramdisk) if board.machine is not None else None
        # The FIT's DTB is fixed bytes: QEMU refills the seeds of its own tree only.
        handed, random_bytes, chosen_bytes = handed_dtb(base_dtb, req.cmdline, version, board.ram_base,
                                                        board.memory_bytes, random_props=(), bootconf=conf.name,
                                                        ramdisk_size=ramdisk,
                                                        ramdisk_start=layout[0] if layout else None)
        if layout is not None:
            ramdisk_at, dtb_at = layout
            if ramdisk_at is not None:
                res.place(f"ramdisk {conf.ramdisk}", ramdisk_at, ramdisk, PAGE,
                          "lmb, top-down below U-Boot's own memory (boot_ramdisk_high)", "module")
                res.modules = [{"start": ramdisk_at, "end": ramdisk_at + ramdisk, "cmdline": conf.ramdisk}]
            res.place(f"DTB {fdt_image.name} (U-Boot's copy, shrunk)", dtb_at, len(handed), PAGE,
                      "lmb, top-down below the ramdisk (boot_relocate_fdt)", "boot-info")
            res.mbi_address = dtb_at
            res.linux["registers"] = {"x0": dtb_at, **res.linux["registers"]}
            res.linux.pop("bounded", None)
        res.mbi_bytes = handed
        res.linux["devicetree"] = devicetree_facts(base_dtb, handed, res.mbi_address, res.linux["registers"],
                                                   (), f"the FIT's {fdt_image.name}", random_bytes)
        res.linux["devicetree"]["loader_chosen_bytes"] = [list(c) for c in chosen_bytes]
    ok = board.ram_base <= kernel.load and kernel.load + size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel lies outside RAM"))
    standard_checks(res, req.platform.memory_map)
    return res


def fit_kernel_loaded_bytes(data, configuration):
    """The decompressed kernel of a FIT's *configuration*, or None when it is stored uncompressed (its
    hash, which U-Boot checks, covers the bytes it runs)."""
    fit = read_fit(data)
    kernel = fit.image(next(c for c in fit.configurations if c.name == configuration).kernel)
    comp = kernel.props.get("compression", "none")
    if comp == "none":
        return None
    return kernels.BOOTM_DECOMPRESSORS[ufmt.UImageCompression.by_fit_name()[comp]](bytes(kernel.data),
                                                                                  verdicts.SYS_BOOTM_LEN)


def root_compatible(dtb):
    # Function-level import: only a board DTB platform needs its compatible list.
    from bootforge.fdt.parse import parse_dtb
    value = parse_dtb(dtb).root.prop("compatible") or b""
    return [c.decode("latin-1") for c in value.rstrip(b"\0").split(b"\0") if c]


def load_legacy(req):
    """bootm of a legacy uImage on qemu-virt-aarch64 (boot/bootm.c bootm_load_os: the data to ih_load)."""
    board = req.platform.devicetree
    found = verdicts.uboot_bootm_legacy(req.kernel.data, "aarch64")
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="uboot-bootm", words=found.words)
    h = kernels.read_uimage(req.kernel.data)
    if len(req.modules) > 1:
        raise RecipeError("bootm takes one ramdisk (ADDR:SIZE); give one initrd")
    res = LoadResult(req.loader, "linux", req.platform, SOURCE)
    size = found.facts.get("decompressed_size", h["size"])
    ram_end = board.ram_base + board.memory_bytes
    if h["comp"]:
        if not (board.ram_base <= h["load"] and h["load"] + size <= ram_end):
            raise RecipeError(f"uboot-bootm: the {h['comp_name']} kernel decompresses to [{h['load']:#x}, "
                              f"{h['load'] + size:#x}), outside RAM (not modelled)", path=req.kernel.path)
        res.place("kernel (decompressed)", h["load"], size, 1,
                  f"the uImage's load address (ih_load), {h['comp_name']} data decompressed there", "kernel")
        res.notes.append("U-Boot prints: Uncompressing Kernel Image")
    else:
        res.place("kernel", h["load"], h["size"], 1, "the uImage's load address (ih_load)", "kernel")
        res.notes.append("U-Boot prints: Loading Kernel Image")
    res.linux = {"entry": h["ep"], "kernel_format": "uimage", "registers": {"x1": 0, "x2": 0, "x3": 0},
                 "bounded": {"x0 (DTB)": [board.ram_base, ram_end], "ramdisk": [board.ram_base, ram_end]}}
    res.cmdline = req.cmdline
    hand_over_control_dtb(res, board, req)
    ok = board.ram_base <= h["load"] and h["load"] + size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel lies outside RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
