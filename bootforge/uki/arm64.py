"""An arm64 UKI (systemd's linuxaa64.efi.stub with an EFI-stub arm64 Image in .linux) as
`bootforge inspect` shows it: the embedded kernel in both its views (the arm64 Image header,
bootforge/formats/arm_image.py, and the PE header of its own Linux EFI stub), and what AAVMF,
systemd-stub and QEMU do with the UKI.

- uefi (AAVMF, EDK2 2022.11 as qemu-efi-aarch64): the same LoadImage/StartImage rules as
  OVMF's (bootforge/uki/verdicts.py uefi_verdict) for machine AArch64 (0xaa64): the UKI boots
  from an ESP as BOOTAA64.EFI or through AAVMF's QEMU -kernel loader (observed: the UKI as
  -kernel on qemu-virt-aarch64, tests/test_uki_arm64.py).
- systemd-stub 252 (src/boot/efi/linux.c, the non-x86 linux_exec): .linux must be a PE image of
  the stub's own machine (pe.c pe_alignment_info -> verify_pe; "Bad kernel image" otherwise); the
  stub copies it to pages of SizeOfImage aligned to its SectionAlignment, serves .initrd through
  the LINUX_EFI_INITRD_MEDIA device path and starts the kernel's own EFI stub with .cmdline as
  its load options (observed: "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device
  path", "Kernel command line: <.cmdline>", "Freeing initrd memory: <.initrd's whole pages>K").
- qemu-arm-kernel: QEMU -kernel without firmware finds no arm64 Image header in the UKI (the
  stub's MZ header has no "ARM\\x64"): it copies the file raw (bootforge/fdtboot/verdicts.py).
"""

from bootforge.fdtboot import kernels as dt_kernels
from bootforge.fdtboot import verdicts as dt_verdicts
from bootforge.formats import pe as pefmt
from bootforge.pe.image import read_pe
from bootforge.errors import FormatError
from bootforge.uki.verdicts import SUBSYSTEM_EFI_APPLICATION, _v, uefi_verdict

MACHINE_AA64 = 0xAA64
PE_MAX_SECTIONS = 96        # systemd src/boot/efi/pe.c MAX_SECTIONS


def is_arm64_uki_kernel(kernel):
    return dt_kernels.is_arm64_image(kernel)


def image_views(kernel):
    """The embedded kernel's two views: its arm64 Image header and its PE header (or why not)."""
    view = dt_kernels.read_arm64_image(kernel)
    view["uname"] = _uname(kernel)
    try:
        pe = read_pe(kernel)
        view["pe"] = {"machine": pe.machine, "machine_name": pefmt.PeMachine.label_of(pe.machine),
                      "subsystem": pe.subsystem, "entry_point": pe.entry_point, "size_of_image": pe.size_of_image,
                      "section_alignment": pe.section_alignment, "sections": len(pe.sections)}
    except FormatError as exc:
        view["pe"], view["pe_error"] = None, exc.message
    return view


def _uname(kernel):
    # Function-level import: the banner pattern is the build's (ukify's scrape_generic).
    from bootforge.uki.build import arm64_uname
    return arm64_uname(kernel)


def kernel_says(img, data):
    """The lines the kernel prints when the stub starts it from AAVMF (observed, Debian 6.1 on AAVMF
    2022.11): its EFI stub's, the command line (.cmdline: AAVMF's -kernel passes no load options, so
    systemd-stub gives .cmdline) and the initrd pages it frees (free_reserved_area: the whole 4 KiB
    pages of the page-aligned buffer the stub's LoadFile2 filled)."""
    initrd, cmdline = img.section(".initrd"), img.section(".cmdline")
    says = ["EFI stub: Booting Linux Kernel...", "EFI stub: EFI_RNG_PROTOCOL unavailable"]
    if initrd is not None:
        says.append("EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path")
    says += ["EFI stub: Generating empty DTB", "EFI stub: Exiting boot services..."]
    if cmdline is not None:
        says.append(f"Kernel command line: {cmdline.data(data).rstrip(bytes(1)).decode('utf-8', 'replace')}")
    if initrd is not None:
        says.append(f"Freeing initrd memory: {initrd.virtual_size // 4096 * 4}K")
    return says


def stub_verdict(img, view, data):
    """systemd-stub 252 on AArch64: .linux must be a PE32+ image for AArch64."""
    pe = view.get("pe")
    if pe is None:
        return _v("systemd-stub", False, f".linux holds an arm64 Image without a usable PE header "
                  f"({view.get('pe_error')}): the stub starts kernels through their EFI stub", words="Bad kernel image")
    if pe["machine"] != MACHINE_AA64 or pe["sections"] > PE_MAX_SECTIONS:
        return _v("systemd-stub", False, f".linux's PE header: machine {pe['machine']:#x}, {pe['sections']} sections "
                  f"(the stub wants AArch64, at most {PE_MAX_SECTIONS})", words="Bad kernel image")
    found = [n for n in (".osrel", ".cmdline", ".initrd", ".uname", ".dtb") if img.section(n)]
    return _v("systemd-stub", True, f"finds .linux (an EFI-stub arm64 Image, PE entry RVA {pe['entry_point']:#x}, "
              f"SizeOfImage {pe['size_of_image']:#x}) and starts its EFI stub"
              + (f"; {', '.join(found)}" if found else "") + (": .initrd through LINUX_EFI_INITRD_MEDIA"
                                                              if ".initrd" in found else ""),
              kernel_says=kernel_says(img, data))


def arm64_uki(doc, img, data, kernel):
    """Fill *doc* for an arm64 UKI (the embedded Image's views) and return its verdicts."""
    doc.pop("linux_error", None)
    view = image_views(kernel)
    doc["arm64_image"] = view
    firmware = uefi_verdict(img, len(data), machine=MACHINE_AA64, firmware="AAVMF")
    out = [firmware, stub_verdict(img, view, data)]
    if firmware.ok and img.subsystem == SUBSYSTEM_EFI_APPLICATION:
        out.append(_v("qemu-kernel-aavmf", True, "QEMU -kernel on qemu-virt-aarch64 with AAVMF: its kernel loader "
                      "LoadImage()s the PE (observed); give no -initrd (the initrd is .initrd)"))
    else:
        out.append(_v("qemu-kernel-aavmf", False, firmware.reason, words=firmware.words))
    out.append(dt_verdicts.qemu_arm_kernel(data, "aarch64"))
    return out


def render(view, in_uki=True):
    """Text lines for the embedded kernel's two views."""
    out = [f"  kernel{' (.linux)' if in_uki else ''}: arm64 Image {view['uname'] or '?'}: text_offset "
           f"{view['text_offset']:#x}, image_size {view['image_size']:#x}, flags {view['flags']:#x} "
           f"({', '.join(view['flag_names']) or 'none'}), page size {view['page_size']}"]
    pe = view.get("pe")
    if pe:
        out.append(f"    its Linux EFI stub's PE: machine {pe['machine']:#x} ({pe['machine_name']}), entry RVA "
                   f"{pe['entry_point']:#x}, SizeOfImage {pe['size_of_image']:#x}, SectionAlignment "
                   f"{pe['section_alignment']:#x}, {pe['sections']} sections")
    else:
        out.append(f"    no PE view: {view.get('pe_error')}")
    return out
