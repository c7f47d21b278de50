"""What the QEMU runs use on this machine, and the Debian 12 package of each.

One table, so a missing piece is reported with the package that provides it
(exit 2 through ToolError) and the paths are written down once.
"""

import shutil
from pathlib import Path

from bootforge.bootloaders import PACKAGES as BOOTLOADER_PACKAGES
from bootforge.bootloaders import grub, ipxe, syslinux
from bootforge.errors import ToolError

QEMU = "qemu-system-x86_64"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
SEABIOS = "/usr/share/seabios/bios-256k.bin"        # QEMU's default -bios on the pc machine
# The bootloaders' files, declared by each bootloader (bootforge.bootloaders), named here for the tests.
IPXE_PXE_E1000 = ipxe.PXE_E1000
ISOLINUX_BIN = syslinux.ISOLINUX_BIN
SYSLINUX_BIOS_MODULES = syslinux.BIOS_DIR
GRUB_I386_PC = grub.PC_DIR
GRUB_X86_64_EFI = grub.EFI_DIR

# program or file -> the Debian 12 package that installs it: QEMU's, the firmware's and the
# tools' here, every bootloader's from its declaration.
PACKAGES = {
    QEMU: "qemu-system-x86",
    "qemu-system-i386": "qemu-system-x86",
    OVMF_CODE: "ovmf",
    OVMF_VARS: "ovmf",
    SEABIOS: "seabios",
    "xorriso": "xorriso",
    "mformat": "mtools",
    "ld": "binutils",
    **BOOTLOADER_PACKAGES,
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
