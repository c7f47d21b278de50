"""U-Boot 2023.01 `booti` of an arm64 Image on QEMU virt (u-boot-qemu qemu_arm64 as -bios):
cmd/booti.c booti_start() and arch/arm/lib/image.c booti_setup(); and of a RISC-V Image on
riscv64 virt (qemu-riscv64_smode started by OpenSBI: load_riscv() below).

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
- Where U-Boot puts its copies (boot_relocate_fdt, boot_ramdisk_high: lmb top-down, 4 KiB
  aligned, the ramdisk first): below U-Boot's own memory, which ends 0x224e000 below the end of
  RAM for Debian's 2023.01+dfsg-2+deb12u3 build (observed at 512M..3G: LMB_TOP_BELOW_RAM_END);
  x0 is the DTB copy. Another build, or RAM ending above 4 GiB, leaves them bounded.
"""
import re
from pathlib import Path

from bootforge.errors import LoaderRefusal, RecipeError, ToolError
from bootforge.fdtboot import kernels, opensbi, verdicts
from bootforge.fdtboot.handover import devicetree_facts, mark_random
from bootforge.fdtboot.libfdt import Fdt
from bootforge.fdtboot.machines import machine_dtb
from bootforge.loader.policies import qemu_riscv_kernel
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
    Field("image_address", int, KERNEL_ADDR_R, "where the Image was loaded before `booti` (default: "
          "kernel_addr_r, qemu_arm64's; on riscv64 virt qemu-riscv's 0x84000000)", min=0, max=(1 << 64) - 1),
    Field("ramdisk_address", int, 0x8C300000, "riscv64: where the ramdisk was loaded before `booti` "
          "(qemu-riscv's ramdisk_addr_r); U-Boot leaves it there (initrd_high = ~0)", min=0, max=(1 << 64) - 1),
)


def uboot_version(path=None):
    """PLAIN_VERSION of the U-Boot binary (its "U-Boot <version> (" string)."""
    path = Path(path or UBOOT_ARM64)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ToolError(f"{path}: {exc.strerror} (install u-boot-qemu)") from None
    m = re.search(rb"U-Boot (20\d\d\.\d\d[^\s(]*) \(", data)
    if m is None:
        raise RecipeError(f"{path}: no U-Boot version string")
    return m.group(1).decode("latin-1")


# Where U-Boot's lmb allocations start, below the top of RAM: U-Boot's relocated image, malloc area
# and stack (arch_lmb_reserve: from the stack pointer - 16 KiB up) are above. Observed for Debian's
# u-boot-qemu 2023.01+dfsg-2+deb12u3 qemu_arm64 at -m 512M, 1G, 2G and 3G: the DTB copy at
# RAM end - 0x2351000 with QEMU's 1 MiB tree (0x103000 bytes from boot_relocate_fdt), i.e. the
# allocations start 0x224e000 below the end of RAM, the ramdisk first, top-down, page aligned.
LMB_TOP_BELOW_RAM_END = {"2023.01+dfsg-2+deb12u3": 0x224E000}


def lmb_layout(version, ram_end, fdt_bytes, ramdisk_size):
    """(ramdisk address or None, DTB address) U-Boot's lmb gives, or None when this U-Boot build or
    RAM size was not observed (RAM ending above 4 GiB is not)."""
    below = LMB_TOP_BELOW_RAM_END.get(version)
    if below is None or ram_end > 1 << 32:
        return None
    top = ram_end - below
    ramdisk = None
    if ramdisk_size:
        ramdisk = (top - ramdisk_size) // PAGE * PAGE        # lmb_alloc_base: top-down, 4 KiB aligned
        top = ramdisk
    return ramdisk, (top - fdt_bytes) // PAGE * PAGE


def handed_dtb(base_dtb, bootargs, version, ram_base, ram_size, random_props=RANDOM, bootconf=None,
               ramdisk_size=None, ramdisk_start=None, address=0, boot_hartid=None):
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
    if boot_hartid is not None:   # RISC-V arch_fixup_fdt: "U-Boot is the last stage BL"
        fdt.setprop(fdt.path_offset("/chosen"), "boot-hartid", boot_hartid.to_bytes(4, "big"))
    na = int.from_bytes(fdt.getprop(0, "#address-cells") or b"\0\0\0\2", "big")
    ns = int.from_bytes(fdt.getprop(0, "#size-cells") or b"\0\0\0\2", "big")
    if fdt.path_offset("/memory") is None:
        fdt.add_subnode(0, "memory")
    fdt.setprop(fdt.path_offset("/memory"), "device_type", b"memory\0")
    fdt.setprop(fdt.path_offset("/memory"), "reg", ram_base.to_bytes(4 * na, "big") + ram_size.to_bytes(4 * ns, "big"))
    strings_end = int.from_bytes(fdt.buf[12:16], "big") + int.from_bytes(fdt.buf[32:36], "big")
    # fdt_shrink_to_minimum: the blob ends on a page boundary of its address (*address*).
    total = -(-(strings_end + 5 * RSV_ENTRY + address % PAGE) // PAGE) * PAGE - address % PAGE
    if ramdisk_size:
        # image_setup_libfdt: room for the ramdisk (FDT_RAMDISK_OVERHEAD), then fdt_initrd: a
        # /memreserve/ for it and /chosen linux,initrd-start/end (u64 with two address cells) at
        # the address U-Boot picked (bounded: those bytes are marked as the loader's choice).
        total += RAMDISK_OVERHEAD
        fdt.buf[4:8] = total.to_bytes(4, "big")
        where = ramdisk_start or 0
        at = fdt.add_mem_rsv(where, ramdisk_size)
        if ramdisk_start is None:
            fdt.mark_random(at, 8, Fdt.CHOSEN)
        width = 8 if na == 2 else 4
        for name, value in (("linux,initrd-start", where), ("linux,initrd-end", where + ramdisk_size)):
            chosen = fdt.path_offset("/chosen")
            fdt.setprop(chosen, name, value.to_bytes(width, "big"))
            if ramdisk_start is None:
                start, length = fdt.value_span(fdt.path_offset("/chosen"), name)
                fdt.mark_random(start, length, Fdt.CHOSEN)
    else:
        fdt.buf[4:8] = total.to_bytes(4, "big")
    return fdt.blob(), fdt.random_spans(), fdt.random_spans(Fdt.CHOSEN)


def place_copies(res, layout, ramdisk, fdt_bytes, dtb_size, req):
    """The ramdisk and DTB copies where lmb puts them (lmb_layout), x0, and no more bounds."""
    ramdisk_at, dtb_at = layout
    if ramdisk_at is not None:
        m = req.modules[0]
        res.place(f"ramdisk {m.loader_path}", ramdisk_at, ramdisk, PAGE,
                  "lmb, top-down below U-Boot's own memory (boot_ramdisk_high)", "module")
        res.modules = [{"start": ramdisk_at, "end": ramdisk_at + ramdisk, "cmdline": m.loader_path}]
        res.notes.append(f"U-Boot prints: Loading Ramdisk to {ramdisk_at:08x}, end {ramdisk_at + ramdisk:08x} ... OK")
    res.place("DTB (U-Boot's copy, shrunk)", dtb_at, dtb_size, PAGE,
              "lmb, top-down below the ramdisk (boot_relocate_fdt: totalsize + 0x3000)", "boot-info")
    res.notes.append(f"U-Boot prints: Loading Device Tree to {dtb_at:016x}, end {dtb_at + fdt_bytes - 1:016x} ... OK")
    res.mbi_address = dtb_at
    res.linux["registers"] = {"x0": dtb_at, **res.linux["registers"]}
    res.linux.pop("bounded", None)
    res.notes = [n for n in res.notes if not n.startswith("bounded: U-Boot's copy")]


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
               summary="U-Boot qemu_arm64 `booti` of an arm64 Image (kernel, ramdisk and DTB placement, the DTB)")
def load(req):
    board = req.platform.devicetree
    if board.machine is not None and board.machine.arch == "riscv64":
        return load_riscv(req)
    if board.machine is not None and board.machine.arch != "aarch64":
        raise RecipeError("uboot-booti is modelled for qemu-virt-aarch64:<mem> (U-Boot qemu_arm64), "
                          "qemu-virt-riscv64:<mem> (qemu-riscv64_smode) or a board DTB")
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
        layout, ramdisk = hand_over_control_dtb(res, board, req)
        if ramdisk and layout is None:
            res.notes.append("bounded: the ramdisk's address (U-Boot copies it below initrd_high), so the "
                             "/memreserve/ address and linux,initrd-start/end values in the DTB")
    ok = board.ram_base <= entry and entry + size <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel runs past RAM"))
    standard_checks(res, req.platform.memory_map)
    return res


def hand_over_control_dtb(res, board, req):
    """U-Boot on qemu_arm64 hands over its control DTB (booti, and bootm of a legacy uImage, edit
    and copy it alike): the edited tree as res.mbi_bytes, lmb's copies placed, its devicetree
    facts. Returns (the lmb layout or None where it is not predicted, the ramdisk's size or None)."""
    ram_end = board.ram_base + board.memory_bytes
    bios_dtb, source = machine_dtb(board.machine, board.memory_bytes, bios=UBOOT_ARM64)
    version = uboot_version()
    ramdisk = req.modules[0].size if req.modules else None
    fdt_bytes = int.from_bytes(bios_dtb[4:8], "big") + SYS_FDT_PAD
    layout = lmb_layout(version, ram_end, fdt_bytes, ramdisk)
    handed, random_bytes, chosen_bytes = handed_dtb(bios_dtb, req.cmdline, version, board.ram_base,
                                                    board.memory_bytes, ramdisk_size=ramdisk,
                                                    ramdisk_start=layout[0] if layout else None)
    if layout is not None:
        place_copies(res, layout, ramdisk, fdt_bytes, len(handed), req)
    res.mbi_bytes = handed
    res.linux["devicetree"] = devicetree_facts(bios_dtb, handed, res.mbi_address, res.linux["registers"],
                                               RANDOM, source + " with -bios u-boot.bin", random_bytes)
    res.linux["devicetree"]["loader_chosen_bytes"] = [list(c) for c in chosen_bytes]
    return layout, ramdisk


# RISC-V: Debian's qemu-riscv64_smode U-Boot, started by OpenSBI as QEMU's -kernel (so its DTB is
# the one qemu-riscv-kernel predicts for it); fdt_high = ~0: booti edits its control DTB in place,
# which sits 0x8ca6b0 below the end of RAM for 2023.01+dfsg-2+deb12u3 (observed at 512M and 1G;
# 0x8cb6b0 with RAM ending at 4 GiB, not modelled: bounded there).
UBOOT_RISCV64_SMODE = Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")
RISCV_CONTROL_DTB_BELOW_RAM_END = {"2023.01+dfsg-2+deb12u3": 0x8CA6B0}
RISCV_KERNEL_ADDR_R = 0x84000000     # qemu-riscv environment


def load_riscv(req):
    """booti on qemu-virt-riscv64 (arch/riscv/lib/image.c booti_setup: "Bad Linux RISCV Image
    magic!", "Image lacks image_size field, error!"; the kernel always goes to RAM start +
    text_offset, moved there with "Moving Image from ..."; a0 = hart 0, a1 = the DTB)."""
    board = req.platform.devicetree
    found = verdicts.uboot_booti(req.kernel.data, "riscv64")
    if not found.ok:
        raise LoaderRefusal(found.reason, loader="uboot-booti", words=found.words)
    if len(req.modules) > 1:
        raise RecipeError("booti takes one ramdisk (ADDR:SIZE); give one initrd")
    header = kernels.read_riscv_image(req.kernel.data)
    loaded = req.options["image_address"]
    if loaded == KERNEL_ADDR_R:             # the declared default is qemu_arm64's; RISC-V's differs
        loaded = RISCV_KERNEL_ADDR_R
    res = LoadResult(req.loader, "linux", req.platform, SOURCE)
    ram_end = board.ram_base + board.memory_bytes
    entry = board.ram_base + header["text_offset"]
    if entry != loaded:
        res.notes.append(f"U-Boot prints: Moving Image from {loaded:#x} to {entry:#x}, "
                         f"end={entry + header['image_size']:x}")
    res.place("kernel", entry, max(header["image_size"], len(req.kernel.data)), 1, "RAM start + text_offset",
              "kernel")
    # U-Boot's own DTB: QEMU's tree for a kernel (U-Boot) without -append, after OpenSBI.
    dump, source = machine_dtb(board.machine, board.memory_bytes)
    base_dtb, _ = qemu_riscv_kernel.handed_dtb(dump, None, opensbi.firmware_region())
    version = uboot_version(UBOOT_RISCV64_SMODE)
    below = RISCV_CONTROL_DTB_BELOW_RAM_END.get(version)
    address = ram_end - below if below is not None and ram_end < 1 << 32 else None
    # A ramdisk stays where it was loaded (initrd_high = ~0): fdt_initrd's /memreserve/ and
    # linux,initrd-start/end (two cells), the tree 0x80 larger (observed at 512M, 5000 bytes at 0x86000000).
    ramdisk = req.modules[0].size if req.modules else None
    ramdisk_at = req.options["ramdisk_address"]
    if ramdisk:
        m = req.modules[0]
        res.place(f"ramdisk {m.loader_path}", ramdisk_at, ramdisk, 1, "where it was loaded (initrd_high = ~0)",
                  "module")
        res.modules = [{"start": ramdisk_at, "end": ramdisk_at + ramdisk, "cmdline": m.loader_path}]
    handed, random_bytes, _ = handed_dtb(base_dtb, req.cmdline, version, board.ram_base, board.memory_bytes,
                                         random_props=qemu_riscv_kernel.RANDOM, address=address or 0, boot_hartid=0,
                                         ramdisk_size=ramdisk, ramdisk_start=ramdisk_at if ramdisk else None)
    registers = {"a0": 0, **({"a1": address} if address is not None else {})}
    if address is not None:
        res.place("DTB (U-Boot's control DTB, edited in place)", address, len(handed), 8,
                  "U-Boot's relocated control DTB (fdt_high = ~0)", "boot-info")
        res.mbi_address = address
    else:
        res.notes.append("bounded: U-Boot's control DTB address (a1) for this build or RAM size")
    res.mbi_bytes = handed
    res.cmdline = req.cmdline
    res.linux = {"entry": entry, "kernel_format": "riscv-image", "loaded_at": loaded, "registers": registers,
                 **({"ramdisk_loaded_at": ramdisk_at} if ramdisk else {}),
                 "devicetree": devicetree_facts(base_dtb, handed, address, registers, qemu_riscv_kernel.RANDOM,
                                                source + " + OpenSBI, as qemu-riscv64_smode U-Boot got it",
                                                random_bytes)}
    # In place, the DTB's totalsize runs past U-Boot's copy of it (reserve_fdt: ALIGN(totalsize, 32))
    # into U-Boot's own memory (its structures: pointers into its heap, observed): not the tree's
    # bytes, declared as the loader's.
    copy_end = -(-int.from_bytes(base_dtb[4:8], "big") // 32) * 32
    res.linux["devicetree"]["loader_chosen_bytes"] = ([[copy_end, len(handed) - copy_end]]
                                                      if len(handed) > copy_end else [])
    ok = board.ram_base <= entry and entry + header["image_size"] <= ram_end
    res.checks.append(check("kernel-in-ram", ok, "the kernel lies in RAM" if ok else "the kernel runs past RAM"))
    standard_checks(res, req.platform.memory_map)
    return res
