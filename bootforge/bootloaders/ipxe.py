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


def read_refusal(run):
    """"Could not boot image: <words> (http://ipxe.org/...)"."""
    m = re.search(r"Could not (?:boot|select)[^\r\n]*", run.serial())
    return m.group(0).strip() if m else None


BOOTLOADER = Bootloader(
    "ipxe", "iPXE (pxe-e1000.rom)", ("bios",),
    policies={("bios", "multiboot1"): "ipxe-pcbios-mb1"},
    packages={PXE_E1000: "ipxe-qemu"}, read_refusal=read_refusal, media=("ipxe-tftp",),
    entry_rule="grub",              # the rule its prediction has used (ELF e_entry through a program header)
)
