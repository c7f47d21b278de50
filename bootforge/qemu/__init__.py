"""Running the real firmware and loaders in QEMU: the one place that starts QEMU.

- host.py: where QEMU, OVMF, iPXE, GRUB and Syslinux live on a Debian 12 machine,
  and which Debian package provides each (one table).
- runner.py: one QEMU runner (machine, firmware, memory, media, debug console,
  serial, gdbstub, timeouts, clean-up).
- gdbremote.py: a small GDB remote protocol client for QEMU's gdbstub.
- media.py: the boot media a loader needs (GRUB ISO, isolinux ISO, iPXE TFTP
  tree, QEMU -kernel), built from a kernel, a command line and modules.
"""
