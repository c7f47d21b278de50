"""iPXE 1.0.0+git-20190125 (Debian 12's ipxe-qemu pxe-e1000.rom) on BIOS: a script fetched over
QEMU's TFTP (`kernel`, `module`, `boot`); no configuration on an image."""

import re

from bootforge.bootloaders import Bootloader

PXE_E1000 = "/usr/lib/ipxe/qemu/pxe-e1000.rom"


def write_script(kernel, modules):
    """The iPXE script booting *kernel* (name, args) with *modules* [(name, args)]."""
    lines = ["#!ipxe", f"kernel {kernel[0]} {kernel[1]}".rstrip()]
    lines += [f"module {name} {args}".rstrip() for name, args in modules]
    return "\n".join(lines + ["boot", ""])


REFUSAL = re.compile(r"Could not (?:boot|select)[^\r\n]*")


def read_refusal(run):
    """"Could not boot image: <words> (http://ipxe.org/...)", on serial or, where iPXE prints
    only through the BIOS console (its image selection: "Could not select: Exec format error"),
    on the VGA text screen (run.screen())."""
    m = REFUSAL.search(run.serial())
    if m is None and hasattr(run, "screen"):
        m = next((REFUSAL.search(row) for row in run.screen() if REFUSAL.search(row)), None)
    return m.group(0).strip() if m else None


BOOTLOADER = Bootloader(
    "ipxe", "iPXE (pxe-e1000.rom)", ("bios",),
    policies={("bios", "multiboot1"): "ipxe-pcbios-mb1"},
    packages={PXE_E1000: "ipxe-qemu"}, read_refusal=read_refusal, media=("ipxe-tftp",),
    entry_rule="grub",              # the rule its prediction has used (ELF e_entry through a program header)
)
