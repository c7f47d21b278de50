"""What the QEMU runs use on this machine, and the Debian 12 package of each.

One table, so a missing piece is reported with the package that provides it
(exit 2 through ToolError) and the paths are written down once.
"""

import shutil
from pathlib import Path

from bootforge.errors import ToolError

QEMU = "qemu-system-x86_64"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
SEABIOS = "/usr/share/seabios/bios-256k.bin"        # QEMU's default -bios on the pc machine
IPXE_PXE_E1000 = "/usr/lib/ipxe/qemu/pxe-e1000.rom"
ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
SYSLINUX_BIOS_MODULES = "/usr/lib/syslinux/modules/bios"
GRUB_I386_PC = "/usr/lib/grub/i386-pc"
GRUB_X86_64_EFI = "/usr/lib/grub/x86_64-efi"

# program or file -> the Debian 12 package that installs it.
PACKAGES = {
    QEMU: "qemu-system-x86",
    OVMF_CODE: "ovmf",
    OVMF_VARS: "ovmf",
    SEABIOS: "seabios",
    IPXE_PXE_E1000: "ipxe-qemu",
    ISOLINUX_BIN: "isolinux",
    SYSLINUX_BIOS_MODULES: "syslinux-common",
    GRUB_I386_PC: "grub-pc-bin",
    GRUB_X86_64_EFI: "grub-efi-amd64-bin",
    "grub-mkrescue": "grub-common",
    "xorriso": "xorriso",
    "mformat": "mtools",
    "ld": "binutils",
}


def present(name):
    """True when the program (on PATH) or the absolute path exists."""
    return Path(name).exists() if name.startswith("/") else shutil.which(name) is not None


def require(*names):
    """ToolError naming every missing program or file and the packages to install."""
    missing = [n for n in names if not present(n)]
    if missing:
        pkgs = sorted({PACKAGES.get(n, "?") for n in missing})
        raise ToolError(f"{', '.join(missing)} not found: install the Debian package(s) "
                        f"{' '.join(pkgs)} (apt-get install {' '.join(pkgs)})")
