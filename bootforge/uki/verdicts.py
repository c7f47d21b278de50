"""What real firmware and loaders say about an EFI-stub kernel or a UKI, in the one
Verdict shape (bootforge/verdict.py). Each check follows the named upstream code.

- uefi: OVMF 2022.11 starting the file from an ESP or QEMU -kernel (EDK2
  MdeModulePkg/Core/Dxe/Image/Image.c: CoreStartImage answers EFI_UNSUPPORTED for a
  machine type the platform does not run (observed: "BdsDxe: failed to start Boot0002
  ...: Unsupported" for an IA32 UKI), BdsDxe boots applications; MdePkg BasePeCoffLib
  PeCoffLoaderGetPeHeader/PeCoffLoaderLoadImage: SizeOfHeaders holds the section
  table and lies in the file, every section lies inside SizeOfImage, and a
  relocations-stripped image needs its ImageBase free; images are loaded at an
  address OVMF picks, so the .reloc directory must exist unless ImageBase is used).
- systemd-stub: systemd 252 src/boot/efi/stub.c + linux_x86.c: the .linux section
  must hold a bzImage with boot_flag 0xAA55, "HdrS", protocol >= 2.11, relocatable,
  and (x86-64 handover) XLF_EFI_HANDOVER_64; .osrel, .cmdline, .initrd, .uname,
  .splash, .dtb are optional.
- grub-linux: GRUB 2.06 grub-core/loader/i386/linux.c grub_cmd_linux on the
  kernel: "invalid magic number" (boot_flag), "version too old for 32-bit boot"
  (< 2.03), "too many setup sectors" (> 64), "zImage doesn't support 32-bit boot"
  (LOADED_HIGH clear); the relocatable 2.05+ path is what x86_64-efi uses.
- qemu-kernel (pc + SeaBIOS) and qemu-kernel-ovmf (q35 + OVMF): QEMU 7.2 hw/i386/x86.c
  x86_load_linux: a "HdrS" kernel is a Linux kernel of that protocol; anything else
  is taken as an old zImage and handed to the firmware through fw_cfg, where OVMF's
  QemuKernelLoaderFsDxe rebuilds the file and LoadImage()s it, so a UKI starts under
  OVMF (observed); a bzImage without a PE header goes to OvmfPkg LoadLinuxLib. QEMU's own
  refusals: "qemu: invalid kernel header" ((setup_sects + 1) * 512 past the file),
  "qemu: linux kernel too old to load a ram disk" (-initrd with protocol < 2.00, so
  a UKI takes no -initrd: its initrd is .initrd).
"""

from bootforge.formats import bzimage as bzfmt
from bootforge.formats import pe as pefmt
from bootforge.verdict import Verdict

MACHINE_X64 = 0x8664
SUBSYSTEM_EFI_APPLICATION = 10
IMAGE_FILE_RELOCS_STRIPPED = 0x0001
GRUB_LINUX_MAX_SETUP_SECTS = 64
WORDS = ("takes", "REFUSES", "warn")


def _v(subject, ok, reason, words=None, warning=False, **facts):
    return Verdict(subject, bool(ok), reason, "warning" if warning else "error", words, facts)


def uefi_verdict(img, size, machine=MACHINE_X64, firmware="OVMF"):
    """Would OVMF's LoadImage + BdsDxe start this PE image? (*firmware* AAVMF for machine AArch64:
    the same EDK2 image loader, bootforge/uki/arm64.py.)"""
    wanted = pefmt.PeMachine.label_of(machine)
    if img.machine != machine:
        return _v("uefi", False, f"machine {img.machine:#x} ({pefmt.PeMachine.label_of(img.machine)}) is not {wanted}: "
                  f"{firmware}'s boot manager fails to start it (StartImage: EFI_UNSUPPORTED, observed)",
                  words="Unsupported")
    if img.subsystem != SUBSYSTEM_EFI_APPLICATION:
        return _v("uefi", False, f"subsystem {img.subsystem} ({pefmt.PeSubsystem.label_of(img.subsystem)}) is not "
                  "an EFI application: the boot manager only starts applications", words="Unsupported")
    if img.size_of_headers > size or img.section_table_end > img.size_of_headers:
        return _v("uefi", False, f"SizeOfHeaders {img.size_of_headers:#x} does not hold the section table "
                  f"(ends at {img.section_table_end:#x}) inside the file", words="Load Error")
    for s in img.sections:
        if s.virtual_address + s.virtual_size > img.size_of_image:
            return _v("uefi", False, f"section {s.name} [{s.virtual_address:#x}, "
                      f"{s.virtual_address + s.virtual_size:#x}) ends past SizeOfImage {img.size_of_image:#x}",
                      words="Load Error")
        if s.virtual_address < img.size_of_headers and s.virtual_size:
            return _v("uefi", False, f"section {s.name} at RVA {s.virtual_address:#x} overlaps the headers "
                      f"(SizeOfHeaders {img.size_of_headers:#x})", words="Load Error")
    if img.entry_point >= img.size_of_image or not img.entry_point:
        return _v("uefi", False, f"entry point RVA {img.entry_point:#x} is outside the image", words="Load Error")
    reloc = img.directories.get("basereloc", (0, 0))
    if img.characteristics & IMAGE_FILE_RELOCS_STRIPPED and not reloc[1]:
        return _v("uefi", True, f"relocations stripped: loads only if ImageBase {img.image_base:#x} is free",
                  warning=True)
    return _v("uefi", True, f"{'x86-64' if machine == MACHINE_X64 else wanted} EFI application, {len(img.sections)} "
              f"sections inside SizeOfImage {img.size_of_image:#x}, relocatable: {firmware} loads and starts it")


def bzimage_problems(bz):
    """What systemd-stub's linux_exec (252) refuses in the kernel, or []."""
    out = []
    if bz.version < 0x20B:
        out.append(f"boot protocol {bz.version >> 8}.{bz.version & 0xff:02d} < 2.11")
    if not bz.get("relocatable_kernel"):
        out.append("kernel not relocatable")
    if not (bz.get("xloadflags") or 0) & bzfmt.XLoadFlag.XLF_EFI_HANDOVER_64:
        out.append("no XLF_EFI_HANDOVER_64 (no 64-bit handover entry)")
    return out


def stub_verdict(img, data, bz, bz_error):
    """Will systemd-stub find what it needs in this UKI?"""
    linux = img.section(".linux")
    if linux is None:
        return _v("systemd-stub", False, "no .linux section: the stub has no kernel to start",
                  words="Unable to locate embedded .linux section")
    if bz is None:
        return _v("systemd-stub", False, f".linux is not a bzImage: {bz_error}", words="Load Error")
    problems = bzimage_problems(bz)
    if problems:
        return _v("systemd-stub", False, "the embedded kernel: " + "; ".join(problems), words="Load Error")
    found = [n for n in (".osrel", ".cmdline", ".initrd", ".uname", ".splash", ".dtb") if img.section(n)]
    last = max(img.sections, key=lambda s: s.virtual_address)
    if last is not linux:
        return _v("systemd-stub", True, f".linux is not the last section ({last.name} is above it): the kernel "
                  "stub relocates itself anyway (image_offset 0 on the handover path)", warning=True)
    return _v("systemd-stub", True, f"finds .linux (protocol {bz.version >> 8}.{bz.version & 0xff:02d}, "
              f"handover entry at {bz.get('handover_offset'):#x})"
              + (f" and {', '.join(found)}" if found else "; no .cmdline, .osrel or .initrd (all optional)"))


def grub_verdict(bz, bz_error):
    """GRUB 2.06 `linux` on the kernel (the embedded one for a UKI)."""
    if bz is None:
        return _v("grub-linux", False, f"not a Linux kernel: {bz_error}", words="invalid magic number")
    h = bz.header
    if h.version < 0x203:
        return _v("grub-linux", False, f"protocol {h.version:#x} < 2.03", words="version too old for 32-bit boot")
    if not h.loadflags & bzfmt.LoadFlag.LOADED_HIGH:
        return _v("grub-linux", False, "LOADED_HIGH clear (a zImage)", words="zImage doesn't support 32-bit boot")
    if h.setup_sects > GRUB_LINUX_MAX_SETUP_SECTS:
        return _v("grub-linux", False, f"{h.setup_sects} setup sectors > {GRUB_LINUX_MAX_SETUP_SECTS}",
                  words="too many setup sectors")
    return _v("grub-linux", True, f"bzImage protocol {h.version >> 8}.{h.version & 0xff:02d}, "
              f"{bz.setup_sects} setup sectors" + (", relocatable" if bz.get("relocatable_kernel") else ""))


def _qemu_header_problem(data, bz):
    """QEMU's own refusal before any firmware runs (x86_load_linux), or None."""
    setup = (bz.setup_sects if bz is not None else ((data[0x1F1] if len(data) > 0x1F1 else 0) or 4)) + 1
    if setup * 512 > len(data):
        return _v("qemu-kernel", False, f"QEMU reads {setup} setup sectors from byte 0x1f1: past the file",
                  words="qemu: invalid kernel header")
    return None


def _qemu_seabios(data, bz):
    if bz is not None:
        return _v("qemu-kernel", True, f"Linux kernel, protocol {bz.version >> 8}.{bz.version & 0xff:02d}: QEMU's "
                  "linuxboot option ROM starts its setup code")
    return _v("qemu-kernel", False, "no 'HdrS': QEMU takes it as a protocol-0 zImage and SeaBIOS would run the "
              "PE's bytes as setup code: no kernel starts (observed: a UKI under SeaBIOS hangs silently)")


def qemu_verdicts(data, bz, img):
    """QEMU 7.2 -kernel of the file as given: on the pc machine with SeaBIOS (QEMU's linuxboot
    option ROM jumps to the setup code) and on q35 with OVMF (QemuKernelLoaderFsDxe rebuilds
    the file; LoadImage() when it is a PE, else OvmfPkg LoadLinuxLib, which wants protocol
    >= 2.05 and a relocatable kernel)."""
    is_pe = img is not None
    bad = _qemu_header_problem(data, bz)
    if bad is None and is_pe:
        # OVMF LoadImage()s a PE first: what it refuses there fails the QEMU boot option too.
        firmware = uefi_verdict(img, len(data))
        if firmware.fails:
            return [_qemu_seabios(data, bz),
                    Verdict("qemu-kernel-ovmf", False, firmware.reason, "error", firmware.words, {})]
    if bad is not None:
        return [bad, Verdict("qemu-kernel-ovmf", False, bad.reason, "error", bad.words, {})]
    seabios = _qemu_seabios(data, bz)
    if bz is not None:
        proto = f"protocol {bz.version >> 8}.{bz.version & 0xff:02d}"
        if is_pe:
            ovmf = _v("qemu-kernel-ovmf", True, f"Linux kernel, {proto}: OVMF LoadImage()s its PE (the kernel's "
                      "own EFI stub)")
        elif bz.version >= 0x205 and bz.get("relocatable_kernel"):
            ovmf = _v("qemu-kernel-ovmf", True, f"Linux kernel, {proto}, relocatable, no PE header: OVMF's "
                      "LoadLinuxLib starts it")
        else:
            ovmf = _v("qemu-kernel-ovmf", False, f"no PE header and {proto}"
                      + ("" if bz.get("relocatable_kernel") else ", not relocatable")
                      + ": OVMF's LoadLinuxLib refuses it; its QEMU boot option fails (observed with iPXE's "
                      "ipxe.lkrn)", words="Not Found")
        return [seabios, ovmf]
    if not is_pe:
        return [seabios, _v("qemu-kernel-ovmf", False, "neither a Linux kernel nor a PE image OVMF could start")]
    ovmf = _v("qemu-kernel-ovmf", True, "no 'HdrS': QEMU hands it over as a protocol-0 image and OVMF rebuilds and "
              "LoadImage()s the PE (a UKI boots this way); QEMU refuses -initrd for it ('qemu: linux kernel too old "
              "to load a ram disk'): the initrd goes in .initrd")
    return [seabios, ovmf]
