"""The loader stage: where firmware and a boot loader put a kernel, its modules
and the boot information, and what the kernel is told.

- recipe: load recipes ([load] tables, grub.cfg, isolinux.cfg, QEMU arguments).
- platforms: firmware memory maps (QEMU pc + SeaBIOS for any -m, map files, EFI).
- image: the facts a loader reads from a kernel ELF (segments, sections).
- alloc: the free-memory bookkeeping every policy allocates from.
- policies/: one module per real loader, citing its source and stating its rules.
- mbi: the Multiboot1 / Multiboot2 bytes a loader hands over.
- result: the placement report (text, JSON, SVG) and its checks.
(bootforge.verify boots the real loaders and compares; tests/fidelity.py is the matrix.)
"""
