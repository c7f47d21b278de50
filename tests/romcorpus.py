"""The real ROM corpus (Debian's ipxe-qemu and seabios packages) and an
independent reading of it with plain struct, to check bootforge against."""

import glob
import struct

from conftest import require

IPXE_DIR = "/usr/lib/ipxe/qemu"
SEABIOS_DIR = "/usr/share/seabios"


def ipxe_roms():
    require(IPXE_DIR)
    roms = sorted(glob.glob(f"{IPXE_DIR}/*.rom"))
    assert len([r for r in roms if "/pxe-" in r]) == 8 and len([r for r in roms if "/efi-" in r]) == 8, roms
    return roms


def vga_roms():
    require(SEABIOS_DIR)
    roms = sorted(glob.glob(f"{SEABIOS_DIR}/vgabios*.bin"))
    assert roms
    return roms


def corpus():
    return ipxe_roms() + vga_roms()


def walk(data):
    """(offset, pcir_offset or None) per image, with nothing but struct."""
    images, off = [], 0
    while True:
        pcir = struct.unpack_from("<H", data, off + 0x18)[0]
        if data[off + pcir:off + pcir + 4] != b"PCIR":
            return images + [(off, None)]
        images.append((off, pcir))
        ilen, _, _, indicator = struct.unpack_from("<HHBB", data, off + pcir + 0x10)
        if indicator & 0x80:
            return images
        off += ilen * 512
