"""No bootloader: the UKI (or an EFI-stub bzImage) is the ESP's removable-media path,
EFI/BOOT/BOOTX64.EFI, which OVMF's boot manager starts itself (UEFI 2.x 3.5.1.1; Debian's
OVMF 2022.11 boots it with no boot option, observed: tests/data/linux-ovmf/*-esp-*). The
image's one entry is that file; a UKI brings its command line (.cmdline) and initrd
(.initrd), and the firmware gives it no load options, so the entry has neither.
"""

from bootforge.bootloaders import Bootloader, ImageParts
from bootforge.errors import RecipeError

REMOVABLE_PATH = "/EFI/BOOT/BOOTX64.EFI"
# UEFI 2.x 3.5.1.1's removable-media file of each architecture: x64, and AArch64 (AAVMF on
# qemu-virt-aarch64 starts BOOTAA64.EFI from a disk's ESP with no boot option, observed).
REMOVABLE_PATHS = (REMOVABLE_PATH, "/EFI/BOOT/BOOTAA64.EFI")


def write(entries, timeout=0, **_extra):
    """No configuration: only checks the one entry is at the removable-media path."""
    if len(entries) != 1:
        raise RecipeError(f"[image] loader uki: the firmware starts one file ({REMOVABLE_PATH}); "
                          f"{len(entries)} entries given")
    (e,) = entries
    if e.kernel.upper() not in REMOVABLE_PATHS:
        raise RecipeError(f"[image] loader uki: the entry's loader_path must be {' or '.join(REMOVABLE_PATHS)} (the "
                          f"firmware's removable-media path), not {e.kernel}")
    if e.modules or e.cmdline:
        raise RecipeError(f"entry {e.title!r}: OVMF starts {REMOVABLE_PATH} with no load options; give no "
                          "cmdline or modules (build them into the UKI)")
    return ""


def read_refusal(run):
    return None


def image_parts(req):
    if req.format != "disk":
        raise RecipeError("[image] loader uki makes disk images (an ESP)")
    return ImageParts()


class RemovableUki(Bootloader):
    removable_path = REMOVABLE_PATH
    # AArch64: AAVMF starts EFI/BOOT/BOOTAA64.EFI (an EFI-stub arm64 Image or an arm64 UKI) itself,
    # on a device-tree machine; the Linux EFI stub's policy for it.
    aarch64_removable_path = REMOVABLE_PATHS[1]
    aarch64_policy = "linux-efi-stub-arm64"


BOOTLOADER = RemovableUki(
    "uki", "no bootloader (the UKI as EFI/BOOT/BOOTX64.EFI)", ("uefi",),
    policies={("uefi", "linux"): "linux-efi-stub"},
    packages={}, read_refusal=read_refusal, write=write, image_formats=("disk",),
    limits={"bios": "a UKI boots under UEFI only", "iso": "UKI images here are disks (format = \"disk\")",
            "multiboot1": "boots a UKI, not Multiboot", "multiboot2": "boots a UKI, not Multiboot"},
    image_parts=image_parts,
)
