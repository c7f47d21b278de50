"""What the loaders of device-tree platforms say about a kernel file, in the one Verdict
shape: each judge follows the named upstream code and refuses in the loader's own words.

- qemu-arm-kernel: QEMU 7.2 hw/arm/boot.c arm_setup_direct_kernel_boot(): an ELF
  first, then a uImage (hw/core/loader.c load_uboot_image: kernel types only,
  compression none or gzip, no CRC check: "Unsupported u-boot image type"), then on
  an AArch64 CPU arm_load_aarch64_image() (gunzip if it is gzip; "ARM\\x64" and a
  non-zero image_size give text_offset, + 2 MiB when below the 4 KiB bootloader;
  otherwise 0x80000), and on 32-bit ARM the raw file at RAM + 0x10000.
- qemu-riscv-kernel: QEMU 7.2 hw/riscv/boot.c riscv_load_kernel(): ELF, then
  uImage, then the raw file at the first 2 MiB boundary after the firmware.
- uboot-booti: U-Boot 2023.01 cmd/booti.c + arch/arm/lib/image.c ("Bad Linux ARM64
  Image magic!", image_size 0 assumed 16 MiB at text_offset 0x80000) and
  arch/riscv/lib/image.c ("Bad Linux RISCV Image magic!" for magic2,
  "Image lacks image_size field, error!").
- uboot-bootz: arch/arm/lib/zimage.c bootz_setup ("zimage: Bad magic!"); 32-bit only.
- uboot-bootm: boot/bootm.c + boot/image-board.c genimg_get_format (legacy or FIT, else
  "Wrong Image Format for bootm command"), image_check_hcrc/dcrc ("Bad Header
  Checksum", "Bad Data CRC"), image_check_target_arch ("Unsupported Architecture"),
  and for FIT boot/image-fit.c: `bootm ADDR` takes the configuration best matching the
  board's compatible (fit_conf_find_compat; none: "Could not find configuration node",
  observed on QEMU virt even with a default), then fit_image_verify ("Bad hash value for
  'hash-1' hash node in 'kernel-1' image node", observed).
- linux-efi-stub-arm64: AAVMF (EDK2 2022.11) LoadImage takes a PE32+ of machine
  AArch64 (0xaa64), subsystem EFI application; an Image without "MZ" is no PE.
"""

from bootforge.errors import FormatError
from bootforge.fdtboot import kernels
from bootforge.formats import fdt as fdtfmt
from bootforge.formats import uimage as ufmt
from bootforge.verdict import Verdict

MIB = 1 << 20
QEMU_BOOTLOADER_MAX_SIZE = 4096        # hw/arm/boot.c BOOTLOADER_MAX_SIZE
QEMU_KERNEL64_LOAD_ADDR = 0x80000      # hw/arm/boot.c KERNEL64_LOAD_ADDR (no usable header)
QEMU_KERNEL_LOAD_ADDR = 0x10000        # hw/arm/boot.c KERNEL_LOAD_ADDR (32-bit raw kernels)
UBOOT_BOOTI_DEFAULT_SIZE = 16 * MIB    # arch/arm/lib/image.c: image_size 0
UBOOT_BOOTI_DEFAULT_OFFSET = 0x80000
PE_MACHINE_AARCH64 = 0xAA64
EFI_APPLICATION = 10
QEMU_UIMAGE_TYPES = (ufmt.UImageType.KERNEL, ufmt.UImageType.KERNEL_NOLOAD)
QEMU_UIMAGE_COMPRESSIONS = (ufmt.UImageCompression.NONE, ufmt.UImageCompression.GZIP)
BOOTM_ARCH = {"aarch64": ufmt.UImageArch.ARM64, "arm": ufmt.UImageArch.ARM, "riscv64": ufmt.UImageArch.RISCV}
BOOTM_TYPES = (ufmt.UImageType.KERNEL, ufmt.UImageType.KERNEL_NOLOAD, ufmt.UImageType.STANDALONE,
               ufmt.UImageType.MULTI)
WORDS = ("takes", "REFUSES", "warns")


def _v(subject, ok, reason, words=None, warning=False, **facts):
    return Verdict(subject, bool(ok), reason, "warning" if warning else "error", words, facts)


def gunzipped(data):
    """(bytes QEMU/U-Boot see after their gunzip, "gzip" or None)."""
    if data[:2] == kernels.GZIP_MAGIC:
        # Function-level import: the compress package (its EFI coder, lzma) only for gzipped
        # kernels; a FIT's inspect does not need it (bench/fit.py, ~4 ms of imports).
        from bootforge.compress.streams import decompress
        try:        # the one decompression path and its limit (a gzip bomb is a LimitError)
            return decompress(data, "gzip"), "gzip"
        except FormatError:
            return data, None
    return data, None


EM_ARM, EM_AARCH64, EM_RISCV = 40, 183, 243     # ELF e_machine (include/elf.h)


def elf_for(data, machine):
    """An ELF QEMU's load_elf() takes for *machine* (its e_machine; any other ELF falls through)."""
    return data[:4] == kernels.ELF_MAGIC and len(data) >= 20 and int.from_bytes(data[18:20], "little") == machine


def qemu_arm_placement(data, arch):
    """(format QEMU takes the file as, load offset from the RAM base or absolute address,
    size it claims) for hw/arm/boot.c, or a refusal Verdict."""
    if elf_for(data, EM_AARCH64 if arch == "aarch64" else EM_ARM):
        return "elf", None, None
    if kernels.is_uimage(data):
        h = kernels.read_uimage(data)
        if h["type"] not in QEMU_UIMAGE_TYPES:
            words = f"Unsupported u-boot image type {h['type']}"
            return _v("qemu-arm-kernel", False, f"uImage type {h['type']} ({h['type_name']}): QEMU loads kernel "
                      "uImages only", words=words), None, None
        if h["comp"] not in QEMU_UIMAGE_COMPRESSIONS:
            words = f"Unable to load u-boot images with compression type {h['comp']}"
            return _v("qemu-arm-kernel", False, f"uImage compression {h['comp_name']}: QEMU gunzips only",
                      words=words), None, None
        return "uimage", h["load"], h["size"]
    if arch == "aarch64":
        raw, _ = gunzipped(data)
        if kernels.is_arm64_image(raw):
            h = kernels.read_arm64_image(raw)
            if h["image_size"]:
                offset = h["text_offset"]
                if offset < QEMU_BOOTLOADER_MAX_SIZE:
                    offset += 2 * MIB
                return "arm64-image", offset, h["image_size"]
        return "raw", QEMU_KERNEL64_LOAD_ADDR, len(raw)
    return "raw", QEMU_KERNEL_LOAD_ADDR, len(data)


def qemu_arm_kernel(data, arch):
    kind, offset, size = qemu_arm_placement(data, arch)
    if isinstance(kind, Verdict):
        return kind
    if kind == "elf":
        return _v("qemu-arm-kernel", True, "an ELF: QEMU loads its segments (not a Linux boot: no DTB in x0)",
                  warning=False, arch=arch, taken_as="elf")
    if kind == "uimage":
        return _v("qemu-arm-kernel", True, f"uImage loaded at its load address {offset:#x} ({size} bytes; "
                  "QEMU checks no CRC)", arch=arch, taken_as="uimage", load=offset)
    if kind == "arm64-image":
        return _v("qemu-arm-kernel", True, f"arm64 Image at RAM base + {offset:#x} (text_offset"
                  f"{' + 2 MiB, below the 4 KiB bootloader' if offset >= 2 * MIB else ''}), "
                  f"image_size {size:#x}", arch=arch, taken_as="arm64-image", offset=offset)
    if arch == "aarch64":
        return _v("qemu-arm-kernel", False, f"no arm64 Image header with image_size: QEMU copies the "
                  f"file raw to RAM base + {offset:#x} and jumps there", arch=arch, taken_as="raw",
                  offset=offset)
    return _v("qemu-arm-kernel", True, f"loaded raw at RAM base + {offset:#x} (a zImage or Image for "
              "32-bit ARM)", arch=arch, taken_as="raw", offset=offset)


def qemu_riscv_kernel(data):
    if elf_for(data, EM_RISCV):
        return _v("qemu-riscv-kernel", True, "an ELF: QEMU loads its segments at their p_paddr and fw_dynamic "
                  "enters it at the lowest one (not e_entry)", taken_as="elf")
    if kernels.is_uimage(data):
        h = kernels.read_uimage(data)
        why = qemu_riscv_uimage_problem(data, h)
        if why is not None:
            return _v("qemu-riscv-kernel", False, f"QEMU's uImage loader refuses it ({why}), so riscv_load_kernel "
                      "copies the whole file raw to the first 2 MiB boundary after OpenSBI: the CPU runs the uImage "
                      "header", words=why, taken_as="raw")
        return _v("qemu-riscv-kernel", True, f"uImage ({h['comp_name']}): its data "
                  f"{'gunzipped ' if h['comp'] else ''}at ih_load {h['load']:#x}, fw_dynamic enters ih_ep "
                  f"{h['ep']:#x} (QEMU checks no CRC)", taken_as="uimage", load=h["load"], ep=h["ep"])
    ok = kernels.is_riscv_image(data)
    return _v("qemu-riscv-kernel", ok, "loaded raw at the first 2 MiB boundary after OpenSBI "
              "(QEMU reads no Image header)" + ("" if ok else "; no RISC-V Image header: not a Linux Image"),
              taken_as="raw")


# hw/core/loader.c load_uboot_image: gunzip output at most UBOOT_MAX_GUNZIP_BYTES.
QEMU_UIMAGE_GUNZIP_MAX = 64 << 20


def qemu_riscv_uimage_problem(data, h):
    """What QEMU 7.2's load_uboot_image prints when it refuses a uImage for riscv_load_kernel (no load
    address given: kernel_noload is refused too), or None. Its refusal is not the boot's: the file is
    then loaded raw (hw/riscv/boot.c falls through to load_image_targphys_as)."""
    if h["type"] != ufmt.UImageType.KERNEL:
        if h["type"] == ufmt.UImageType.KERNEL_NOLOAD:
            return "this image format (kernel_noload) cannot be loaded on this machine type"
        return f"Wrong image type {h['type']}, expected {int(ufmt.UImageType.KERNEL)}"
    if h["comp"] not in QEMU_UIMAGE_COMPRESSIONS:
        return f"Unable to load u-boot images with compression type {h['comp']}"
    if h["truncated"]:
        return "Error reading file"
    if h["comp"] == ufmt.UImageCompression.GZIP:
        try:
            kernels.bootm_loaded_bytes(data, QEMU_UIMAGE_GUNZIP_MAX)
        except (kernels.TooLarge, kernels.DecompressError):
            return "Unable to decompress gzipped image!"
    return None


def uboot_booti(data, arch):
    raw, comp = gunzipped(data)
    if arch == "riscv64":
        h = kernels.read_riscv_image(raw) if len(raw) >= 64 else None
        if h is None or not h["magic2_ok"]:
            return _v("uboot-booti", False, "no RSC\\x05 magic at 0x38", words="Bad Linux RISCV Image magic!")
        if not h["image_size"]:
            return _v("uboot-booti", False, "image_size is 0", words="Image lacks image_size field, error!")
        return _v("uboot-booti", True, f"relocated to RAM base + text_offset {h['text_offset']:#x}, "
                  f"image_size {h['image_size']:#x}", text_offset=h["text_offset"], image_size=h["image_size"],
                  compressed=comp)
    if not kernels.is_arm64_image(raw) or len(raw) < 64:
        return _v("uboot-booti", False, "no ARM\\x64 magic at 0x38", words="Bad Linux ARM64 Image magic!")
    h = kernels.read_arm64_image(raw)
    if not h["image_size"]:
        return _v("uboot-booti", True, "image_size 0: booti assumes 16 MiB at text_offset 0x80000", warning=True,
                  words="Image lacks image_size field, assuming 16MiB",
                  text_offset=UBOOT_BOOTI_DEFAULT_OFFSET, image_size=UBOOT_BOOTI_DEFAULT_SIZE, compressed=comp)
    where = ("its 2 MiB aligned load address - text_offset (flags bit 3: anywhere)" if h["phys_anywhere"]
             else "the start of RAM (flags bit 3 clear)")
    return _v("uboot-booti", True, f"relocated to ALIGN({where}, 2 MiB) + text_offset {h['text_offset']:#x}",
              text_offset=h["text_offset"], image_size=h["image_size"], phys_anywhere=h["phys_anywhere"],
              compressed=comp)


def uboot_bootz(data):
    if not kernels.is_zimage(data):
        return _v("uboot-bootz", False, "no zImage magic 0x016f2818 at 0x24", words="zimage: Bad magic!")
    h = kernels.read_zimage(data)
    return _v("uboot-bootz", True, f"zImage [{h['start']:#x} - {h['end']:#x}] (32-bit ARM U-Boot only)",
              words=None, start=h["start"], end=h["end"])


def uboot_bootm_legacy(data, arch):
    h = kernels.read_uimage(data)
    if h["hcrc"] != h["hcrc_computed"]:
        return _v("uboot-bootm", False, f"header CRC {h['hcrc']:#010x}, computed {h['hcrc_computed']:#010x}",
                  words="Bad Header Checksum")
    if h["truncated"]:
        return _v("uboot-bootm", False, f"data size {h['size']:#x} runs past the file", words="Bad Data CRC")
    if h["dcrc"] != h["dcrc_computed"]:
        return _v("uboot-bootm", False, f"data CRC {h['dcrc']:#010x}, computed {h['dcrc_computed']:#010x}",
                  words="Bad Data CRC")
    want = BOOTM_ARCH.get(arch)
    if want is not None and h["arch"] != want:
        return _v("uboot-bootm", False, f"architecture {h['arch']} ({h['arch_name']}) is not this U-Boot's "
                  f"({ufmt.UImageArch.label_of(want)})", words=f"Unsupported Architecture {h['arch']:#x}")
    if h["type"] not in BOOTM_TYPES:
        return _v("uboot-bootm", False, f"type {h['type_name']} is not a kernel",
                  words="Wrong Image Type for bootm command")
    if h["comp"] == ufmt.UImageCompression.NONE:
        return _v("uboot-bootm", True, f"{h['arch_name']} {h['os_name']} {h['type_name']} ({h['comp_name']}), "
                  f"loaded at {h['load']:#x}, entry {h['ep']:#x}", load=h["load"], ep=h["ep"])
    return uboot_bootm_decompress(data, h, arch)


# Decompressors in Debian's u-boot-qemu 2023.01 builds (/usr/share/doc/u-boot-qemu/configs/
# config.<board>.gz: CONFIG_GZIP, CONFIG_LZMA, CONFIG_LZ4; LZO, ZSTD, BZIP2 not set) and their
# CONFIG_SYS_BOOTM_LEN (0x4000000 in all three), the buffer image_decomp() decompresses into.
BOOTM_COMPRESSIONS = {"aarch64": (ufmt.UImageCompression.GZIP, ufmt.UImageCompression.LZMA,
                                  ufmt.UImageCompression.LZ4),
                      "arm": (ufmt.UImageCompression.GZIP,),
                      "riscv64": (ufmt.UImageCompression.GZIP, ufmt.UImageCompression.LZMA,
                                  ufmt.UImageCompression.LZ4)}
SYS_BOOTM_LEN = 0x4000000
# What each decoder returns when the output passes SYS_BOOTM_LEN, printed by bootm.c
# handle_decomp_error() as "<comp name>: uncompress error <ret>" (observed on qemu_arm64 with
# 65 MiB of output; 2023.01 does not print "Image too large" here: the decoders' reported
# length stays below the buffer's). gunzip also prints "Error: inflate() returned -5".
BOOTM_TOO_LARGE_ERROR = {ufmt.UImageCompression.GZIP: -1, ufmt.UImageCompression.LZMA: 1,
                         ufmt.UImageCompression.LZ4: -71}


def _decompressed(body, comp, arch):
    """image_decomp()'s output for *body* (U-Boot's decoder, into SYS_BOOTM_LEN), or the refusal Verdict
    in U-Boot's words."""
    name = ufmt.UImageCompression.label_of(comp)
    if comp not in BOOTM_COMPRESSIONS.get(arch, ()):
        # A number no U-Boot names (ih_comp is any byte) reaches image_decomp's default case too.
        which = ufmt.UImageCompression(comp).fit_name if comp in ufmt.UImageCompression else f"type {comp}"
        return _v("uboot-bootm", False, f"{name} data: this U-Boot has no {which} "
                  "decompressor (not in Debian's build config)", words=f"Unimplemented compression type {comp}")
    try:
        return kernels.BOOTM_DECOMPRESSORS[comp](body, SYS_BOOTM_LEN)
    except kernels.TooLarge:
        return _v("uboot-bootm", False, f"the {name} data decompresses to more than CONFIG_SYS_BOOTM_LEN "
                  f"({SYS_BOOTM_LEN:#x} bytes)", words=f"{name}: uncompress error {BOOTM_TOO_LARGE_ERROR[comp]}",
                  limit=SYS_BOOTM_LEN)
    except kernels.DecompressError as exc:
        code = f" {exc.code}" if exc.code is not None else ""
        return _v("uboot-bootm", False, f"the {name} data does not decompress: {exc.why}",
                  words=f"{name}: uncompress error{code}")


def uboot_bootm_decompress(data, h, arch):
    """bootm_load_os() -> image_decomp() of a compressed legacy uImage ("Uncompressing Kernel Image"):
    the data decompressed to ih_load, at most SYS_BOOTM_LEN bytes."""
    comp, name = h["comp"], h["comp_name"]
    out = _decompressed(data[ufmt.UIMAGE_HEADER_SIZE:ufmt.UIMAGE_HEADER_SIZE + h["size"]], comp, arch)
    if isinstance(out, Verdict):
        return out
    return _v("uboot-bootm", True, f"{h['arch_name']} {h['os_name']} {h['type_name']} ({name}): "
              f"decompressed ({len(out):#x} bytes, limit {SYS_BOOTM_LEN:#x}) to {h['load']:#x}, entry {h['ep']:#x}",
              load=h["load"], ep=h["ep"], decompressed_size=len(out))


# U-Boot's control DTB on QEMU virt is QEMU's own (its root compatible), which `bootm ADDR`
# matches FIT configurations against (CONFIG_FIT_BEST_MATCH in qemu_arm64_defconfig).
QEMU_VIRT_COMPATIBLE = ("linux,dummy-virt",)


def _fdt_image_root(data, parse_dtb):
    """The root node of a FIT's fdt image as U-Boot's libfdt reads its compatible: in place, from the
    header's offsets, with no check of the tree's totalsize against the image's data size (observed:
    a tree whose totalsize says 1 MiB but whose data stops after its strings still matched). None
    when a block lies past the data (libfdt would read the FIT's next bytes) or it does not parse."""
    try:
        return parse_dtb(data).root
    except FormatError:
        pass
    if len(data) < fdtfmt.FDT_HEADER_SIZE or data[:4] != fdtfmt.FDT_MAGIC.to_bytes(4, "big"):
        return None
    h = fdtfmt.FdtHeader.parse(data[:fdtfmt.FDT_HEADER_SIZE])
    if h.off_dt_struct + h.size_dt_struct > len(data) or h.off_dt_strings + h.size_dt_strings > len(data):
        return None
    try:         # the same tree with totalsize cut to the bytes that exist
        return parse_dtb(data[:4] + len(data).to_bytes(4, "big") + data[8:]).root
    except FormatError:
        return None


def best_match_configuration(fit, board_compatible):
    """boot/image-fit.c fit_conf_find_compat() (2023.01): each configuration's compatible (its own
    property, else its first fdt image's root compatible, uncompressed images only) against the
    board's compatible strings in order; the first configuration matching the earliest string."""
    # Function-level import: the DTB parser only for FITs whose configurations name a DTB.
    from bootforge.fdt.parse import parse_dtb
    best, best_pos = None, None
    for conf in fit.configurations:
        if conf.compatible is not None:
            compat = [conf.compatible]
        else:
            img = fit.image(conf.fdt[0]) if conf.fdt else None
            if img is None or img.props.get("compression", "none") != "none":
                continue
            root = _fdt_image_root(bytes(img.data), parse_dtb)
            if root is None:
                continue
            compat = [c.decode("latin-1") for c in (root.prop("compatible") or b"").rstrip(b"\0").split(b"\0")]
        for i, want in enumerate(board_compatible):
            if best is not None and best_pos <= i:
                break
            if want in compat:
                best, best_pos = conf, i
                break
    return best


def uboot_bootm_fit(fit, arch, board_compatible=QEMU_VIRT_COMPATIBLE):
    """`bootm ADDR` of a FIT on U-Boot 2023.01 qemu_arm64 (no #config: the best match)."""
    conf = best_match_configuration(fit, board_compatible)
    if conf is None:
        return _v("uboot-bootm", False, "no configuration's DTB (or compatible) matches the board's compatible "
                  f"{', '.join(board_compatible)}: `bootm ADDR` picks none (`bootm ADDR#{fit.default}` would)",
                  words="Could not find configuration node", default=fit.default)
    for name in [conf.kernel, conf.ramdisk, *conf.fdt]:
        img = fit.image(name) if name else None
        if name and img is None:
            return _v("uboot-bootm", False, f"configuration {conf.name} names {name!r}, which /images lacks",
                      words="Could not find subimage node")
        if img is None:
            continue
        for h in img.hashes:
            if not h["ok"]:
                return _v("uboot-bootm", False, f"{img.name}/{h['name']}: {h['algo']} does not match",
                          words=f"Bad hash value for '{h['name']}' hash node in '{img.name}' image node")
    kernel = fit.image(conf.kernel) if conf.kernel else None
    if kernel is None:
        return _v("uboot-bootm", False, f"configuration {conf.name} has no kernel", words="can't get kernel image!")
    want = BOOTM_ARCH.get(arch)
    got = ufmt.UImageArch.by_fit_name().get(kernel.props.get("arch"))
    if want is not None and got != want:
        return _v("uboot-bootm", False, f"kernel arch {kernel.props.get('arch')!r} is not "
                  f"{ufmt.UImageArch(want).fit_name}", words=f"Unsupported Architecture {int(got or 0):#x}")
    comp_name = kernel.props.get("compression", "none")
    facts = {}
    if comp_name != "none":
        # bootm_load_os decompresses a FIT kernel as it does a legacy uImage's data (image_decomp).
        comp = ufmt.UImageCompression.by_fit_name().get(comp_name)
        if comp is None:        # genimg_get_comp_id: -1, stored in a uint8_t, then image_decomp's default
            return _v("uboot-bootm", False, f"kernel compression {comp_name!r} is none U-Boot names",
                      words="Unimplemented compression type 255")
        out = _decompressed(bytes(kernel.data), comp, arch)
        if isinstance(out, Verdict):
            return out
        facts["decompressed_size"] = len(out)
    return _v("uboot-bootm", True, f"configuration {conf.name}: kernel {kernel.name}"
              + (f" ({comp_name}, {facts['decompressed_size']:#x} bytes decompressed to its load address)"
                 if facts else "")
              + (f", ramdisk {conf.ramdisk}" if conf.ramdisk else "")
              + (f", fdt {', '.join(conf.fdt)}" if conf.fdt else "") + "; every hash matches",
              configuration=conf.name, board_compatible=list(board_compatible), **facts)


def uboot_bootm_other():
    return _v("uboot-bootm", False, "neither a legacy uImage nor a FIT", words="Wrong Image Format for bootm command")


def efi_stub_arm64(data):
    """AAVMF's LoadImage of the file from an ESP (the Linux EFI stub then runs)."""
    if data[:2] != b"MZ":
        return _v("linux-efi-stub-arm64", False, "no MZ header: not a PE image, AAVMF's LoadImage refuses it "
                  "(a plain Image boots through QEMU -kernel or booti)", words="Unsupported")
    # Function-level import: the PE reader only for MZ files.
    from bootforge.pe.image import read_pe
    try:
        img = read_pe(data)
    except FormatError as exc:
        return _v("linux-efi-stub-arm64", False, f"PE header unreadable: {exc}", words="Load Error")
    if img.machine != PE_MACHINE_AARCH64:
        return _v("linux-efi-stub-arm64", False, f"PE machine {img.machine:#x} is not AArch64 (0xaa64)",
                  words="Unsupported")
    if img.subsystem != EFI_APPLICATION:
        return _v("linux-efi-stub-arm64", False, f"subsystem {img.subsystem} is not an EFI application",
                  words="Unsupported")
    # Observed (Debian 6.1.0-57 under AAVMF 2022.11, QEMU 7.2 virt -kernel): AAVMF gives ACPI and no
    # DTB, and has no EFI_RNG_PROTOCOL: the stub says so and builds an empty DTB for /chosen.
    return _v("linux-efi-stub-arm64", True, f"PE32+ AArch64 EFI application, entry RVA {img.entry_point:#x}, "
              f"SizeOfImage {img.size_of_image:#x}: the stub runs from an ESP or AAVMF's -kernel; on QEMU "
              "virt AAVMF offers ACPI, no DTB, so the stub generates an empty one",
              entry_point=img.entry_point, size_of_image=img.size_of_image,
              stub_says=["EFI stub: Booting Linux Kernel...", "EFI stub: EFI_RNG_PROTOCOL unavailable",
                         "EFI stub: Generating empty DTB", "EFI stub: Exiting boot services..."])


def kernel_verdicts(data, header, fit=None):
    """Every loader's verdict on a file already read as *header* (kernels.read_dt_kernel) or *fit*."""
    if fit is not None:
        arch = {"arm64": "aarch64", "arm": "arm", "riscv": "riscv64"}.get(
            (fit.image(fit.configuration().kernel).props.get("arch") if fit.configuration()
             and fit.configuration().kernel and fit.image(fit.configuration().kernel) else None), "aarch64")
        out = [uboot_bootm_fit(fit, arch)]
        out.append(_v("qemu-arm-kernel" if arch != "riscv64" else "qemu-riscv-kernel", False,
                      "a FIT is a DTB, not a kernel: QEMU -kernel copies it raw and jumps into it"))
        return out
    kind = header["kind"]
    if kind == "uimage":
        arch = {ufmt.UImageArch.ARM64: "aarch64", ufmt.UImageArch.ARM: "arm",
                ufmt.UImageArch.RISCV: "riscv64"}.get(header["arch"], "aarch64")
        qemu = qemu_riscv_kernel(data) if arch == "riscv64" else qemu_arm_kernel(data, arch)
        return [qemu, uboot_bootm_legacy(data, arch)]
    if kind == "arm64-image":
        return [qemu_arm_kernel(data, "aarch64"), uboot_booti(data, "aarch64"), uboot_bootm_other(),
                efi_stub_arm64(data)]
    if kind == "riscv-image":
        return [qemu_riscv_kernel(data), uboot_booti(data, "riscv64"), uboot_bootm_other()]
    return [qemu_arm_kernel(data, "arm"), uboot_bootz(data), uboot_bootm_other()]
