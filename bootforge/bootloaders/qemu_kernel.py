"""QEMU's own Multiboot 1 loader (QEMU 7.2 hw/i386/multiboot.c): -kernel, -append, -initrd
('F args,F2 args'); no configuration on an image."""

import re

from bootforge.bootloaders import Bootloader


def read_refusal(run):
    """QEMU refuses the -kernel itself: its message on stderr, then it exits."""
    if not run.exited():
        return None
    m = re.search(r"qemu-system-\w+: ([^\r\n]*)", run.qemu_stderr())
    return m.group(1).strip() if m else None


BOOTLOADER = Bootloader(
    "qemu-kernel", "QEMU -kernel", ("bios",),
    policies={("bios", "multiboot1"): "qemu-mb1", ("bios", "linux"): "qemu-linux"},
    packages={}, read_refusal=read_refusal, media=("qemu-kernel",),
    entry_rule="qemu",
)
