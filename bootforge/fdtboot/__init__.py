"""Booting on device-tree platforms (AArch64, 32-bit ARM, RISC-V): the kernel images
those loaders take, U-Boot's images, and what each loader does with them.

- kernels: the arm64 Image, ARM zImage, RISC-V Image and legacy uImage readers.
- fit: FIT images (a DTB with /images and /configurations): read, hashes checked.
- fit_build: `[fit]` recipes.
- verdicts: QEMU -kernel, U-Boot booti/bootz/bootm and the Linux EFI stub on AAVMF,
  in the one Verdict shape.
- inspect: the `bootforge inspect` reports of those files.
- libfdt: in-place DTB edits the way libfdt makes them (where a new property,
  node or string lands, the stale bytes a splice leaves, which bytes are random),
  so a loader's edited DTB is predicted byte for byte.
- machines: QEMU's virt machines with the DTB each generates (dumpdtb, cached),
  and a board's DTB as a platform.
- opensbi: OpenSBI 1.1 fw_dynamic's kept memory and DTB fixups (riscv64 virt).
- handover: the DTB hand-over report (diff, DTS, random bytes) and the dtdump
  kernels' capture reader.
- image_build: `[linux_image]` recipes (flat code behind an Image header).
The loader policies that use these are bootforge/loader/policies/qemu_arm_kernel.py,
qemu_riscv_kernel.py and uboot_booti.py.
"""
