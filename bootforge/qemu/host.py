"""What the QEMU runs use on this machine, and the Debian 12 package of each.

One table, so a missing piece is reported with the package that provides it
(exit 2 through ToolError) and the paths are written down once.
"""

import shutil
from pathlib import Path

from bootforge.bootloaders import PACKAGES as BOOTLOADER_PACKAGES
from bootforge.bootloaders import grub, ipxe, syslinux
from bootforge.machines import MACHINES
from bootforge.errors import ToolError

QEMU = MACHINES["qemu-pc-seabios"].binary
OVMF_CODE, OVMF_VARS = MACHINES["qemu-q35-ovmf"].firmware_files
SEABIOS = "/usr/share/seabios/bios-256k.bin"        # QEMU's default -bios on the pc machine
# The bootloaders' files, declared by each bootloader (bootforge.bootloaders), named here for the tests.
IPXE_PXE_E1000 = ipxe.PXE_E1000
ISOLINUX_BIN = syslinux.ISOLINUX_BIN
SYSLINUX_BIOS_MODULES = syslinux.BIOS_DIR
GRUB_I386_PC = grub.PC_DIR
GRUB_X86_64_EFI = grub.EFI_DIR

# program or file -> the Debian 12 package that installs it: the tools' here, every machine's
# (QEMU, firmware) and every bootloader's from its declaration.
PACKAGES = {
    **{path: pkg for m in MACHINES.values() for path, pkg in m.packages.items()},
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
