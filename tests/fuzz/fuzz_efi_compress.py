"""UEFI (EFI/Tiano) compression: the decoder on arbitrary streams, and the encoder's
round trip on arbitrary data (compress/).

The first byte picks the case: even -> decompress the rest as "efi", odd -> as
"tiano"; >= 0xF0 -> compress the rest (up to 256 bytes: the encoder is slow) and decompress it again, which
must give the same bytes.

Seeds: compressed streams of real data (Debian's e1000 EFI driver from efi-e1000.rom
compressed as OVMF's ROMs carry it, test data files) and the raw data itself."""

import struct

from common import files, instrumented, main

# The encoder runs uninstrumented: the round trip checks it, the coverage guides the decoder.
with instrumented(exclude=["bootforge.compress.encoder", "bootforge.compress.writer"]):
    from bootforge.compress import compress, decompress

FAMILY = "efi-compress"


def seeds():
    out = []
    raw = files("tests/data/*.txt", "tests/data/*.dts", "tests/data/*.log", max_size=8 << 10)
    rom = files("/usr/lib/ipxe/qemu/efi-e1000.rom")
    if rom:
        data = rom[0][1]
        image = struct.unpack_from("<H", data, 0x2C)[0] * 512
        at = struct.unpack_from("<H", data, image + 0x16)[0]
        raw.append(("e1000.efi", data[image + at:image + at + (8 << 10)]))
    for name, data in raw:
        out.append((name + ".efi", b"\x00" + compress(data, "efi")))
        out.append((name + ".tiano", b"\x01" + compress(data[:16 << 10], "tiano")))
        out.append((name + ".raw", b"\xf0" + data[:256]))
    return out


def target(data):
    if not data:
        return
    selector, body = data[0], data[1:]
    if selector >= 0xF0:
        body = body[:256]
        for fmt in ("efi", "tiano"):
            if decompress(compress(body, fmt), fmt) != body:
                raise AssertionError(f"{fmt} round trip changed the data")
        return
    decompress(body, "tiano" if selector & 1 else "efi", max_size=1 << 15)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
