"""An EFI driver as the payload of a PCI option ROM: the PE facts that decide whether
`bootforge build` takes it ([[rom.images]] type = "efi") and which UEFI firmware's
PciBusDxe would load it from the ROM.

Rules (EDK2 MdeModulePkg/Bus/Pci/PciBusDxe/PciOptionRomSupport.c ProcessOpRomImage):
- the EFI ROM header carries the PE's subsystem and machine (EfiRom, iPXE's efirom and
  bootforge's builder copy them); PciBusDxe skips an image whose subsystem is not a
  boot service (11) or runtime (12) driver, so applications never load from a ROM and
  `bootforge build` refuses them;
- an image whose machine the firmware does not run is skipped
  (EFI_IMAGE_MACHINE_TYPE_SUPPORTED: X64 and the EBC interpreter on x64 UEFI such as
  OVMF, IA32 on IA32 UEFI, AArch64 on AArch64 UEFI such as AAVMF, ...);
- the ROM image length is a 16-bit count of 512-byte blocks: the driver after the
  image's headers must fit in 0xffff blocks (else compress = "efi" may make it fit).
"""

from bootforge.formats.pe import PeMachine, PeSubsystem
from bootforge.verdict import Verdict

OPTION_ROM_DRIVERS = (PeSubsystem.EFI_BOOT_SERVICE_DRIVER, PeSubsystem.EFI_RUNTIME_DRIVER)
# Which UEFI firmware runs each machine's drivers (EDK2 MdePkg/Include/<arch>/ProcessorBind.h
# EFI_IMAGE_MACHINE_TYPE_SUPPORTED; x64 firmware carries the EBC interpreter, EbcDxe).
FIRMWARE_OF_MACHINE = {
    PeMachine.X64: "x64 UEFI (OVMF)", PeMachine.EBC: "any UEFI with the EBC interpreter (x64 OVMF)",
    PeMachine.IA32: "IA32 UEFI", PeMachine.AARCH64: "AArch64 UEFI (AAVMF)", PeMachine.ARM_THUMB: "ARM UEFI",
    PeMachine.RISCV64: "RISC-V 64 UEFI", PeMachine.LOONGARCH64: "LoongArch64 UEFI",
}
MAX_IMAGE_BYTES = 0xFFFF * 512          # the PCIR image length and EFI initialization size are u16 blocks
ROM_HEADERS_ROOM = 0x40                 # EFI ROM header, PCIR and device list before the PE (build.py)


def refusal(subsystem):
    """Why `bootforge build` and PciBusDxe refuse a PE of *subsystem* in an option ROM, or None."""
    if subsystem in OPTION_ROM_DRIVERS:
        return None
    name = PeSubsystem.label_of(subsystem, f"subsystem {subsystem}")
    what = "EFI applications are skipped" if subsystem == PeSubsystem.EFI_APPLICATION else f"{name} is skipped"
    return (f"PE subsystem {subsystem} ({name}): UEFI PciBusDxe loads only boot service (11) and runtime (12) "
            f"drivers from option ROMs ({what})")


def option_rom_verdict(pe, size):
    """Can the PE image (bootforge.pe.PeFacts of *size* bytes) go in an option ROM? One Verdict
    ("option-rom"), its facts naming the recipe image type and the firmware that loads it."""
    machine = PeMachine.label_of(pe.machine, f"{pe.machine:#x}")
    firmware = FIRMWARE_OF_MACHINE.get(pe.machine)
    facts = {"subsystem": pe.subsystem, "subsystem_name": PeSubsystem.label_of(pe.subsystem, "unknown"),
             "machine": pe.machine, "machine_name": machine, "loaded_by": firmware,
             "recipe_image_type": "efi", "size": size}
    why = refusal(pe.subsystem)
    if why is not None:
        return Verdict("option-rom", False, f"cannot go in an option ROM: {why}", facts=facts)
    if firmware is None:
        return Verdict("option-rom", False, f"cannot go in an option ROM: machine {machine} is one no UEFI "
                       "PciBusDxe runs", facts=facts)
    fits = size + ROM_HEADERS_ROOM <= MAX_IMAGE_BYTES
    facts["needs_compression"] = not fits
    room = "" if fits else (f"; at {size} bytes it needs compress = \"efi\" to fit the 16-bit image length "
                            f"({MAX_IMAGE_BYTES} bytes)")
    return Verdict("option-rom", True, f"can go in an option ROM: [[rom.images]] type = \"efi\"; "
                   f"PciBusDxe of {firmware} loads it ({facts['subsystem_name']}, {machine}){room}", facts=facts)
