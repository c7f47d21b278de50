"""Images: MBR, GPT, El Torito, ISO 9660 with Rock Ridge, FAT12/16/32 directories and long
names: `inspect` of an image (text + JSON: tables, file systems, the loader's configuration and
its entries), and the ISO 9660 and FAT readers on their own (walk, every file read).

Seeds (seeds_images.py): bootforge's own ISO/disk images, grub-mkrescue's ISO, Debian's
ipxe.iso, FAT12/16/32 volumes from mkfs.fat + mtools with long names; large images also as
their first MiB. The image readers read by offset from a file: each input is written to
/dev/shm first."""

import os

from common import attempt, instrumented, main, scratch_path

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.image.fat import FatVolume
    from bootforge.image.inspect import inspect_image
    from bootforge.image.iso import IsoVolume

FAMILY = "images"
SCRATCH = str(scratch_path("images", ".img"))


def seeds():
    from seeds_images import image_seeds
    return image_seeds()


def _read(data):
    def read(offset, length):
        return data[offset:offset + max(0, length)] if offset >= 0 else b""
    return read


class DescriptorLeak(Exception):
    """An input left a file descriptor open: a reader that leaks one per rejected image runs
    the fuzzer (or any process inspecting many images) out of descriptors; libFuzzer then
    reports "fuzz target exited" and cannot write the input it names."""


def _open_fds():
    """{fd: what it points at} of this process, without the descriptor the listing itself used."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:         # the listing's own descriptor, closed by now
            pass
    return out


def target(data):
    before = _open_fds()
    try:
        _feed(data)
    finally:
        # Per input: atheris.Fuzz() never returns, so main's own unlink below never runs under it.
        if os.path.exists(SCRATCH):
            os.unlink(SCRATCH)
    leaked = {fd: what for fd, what in _open_fds().items() if before.get(fd) != what}
    if leaked:
        for fd in leaked:       # closed, so one leak is not every later input's too
            os.close(fd)
        raise DescriptorLeak(", ".join(f"fd {fd} -> {what}" for fd, what in sorted(leaked.items())))


def _feed(data):
    with open(SCRATCH, "wb") as f:
        f.write(data)
    report = attempt(inspect_image, SCRATCH)
    if report is not None:
        report.render_text()
        report.to_json()
    read = _read(data)
    if data[510:512] == b"\x55\xaa" or data[:3] in (b"\xeb\x3c\x90", b"\xeb\x58\x90"):
        fat = attempt(FatVolume, read, len(data))
        if fat is not None:
            for _, f in attempt(lambda: list(fat.walk())) or []:
                if not f.is_dir:
                    attempt(fat.read_file, f, 1 << 16)
    if data[0x8001:0x8006] == b"CD001":
        iso = attempt(IsoVolume, read, len(data))
        if iso is not None:
            attempt(iso.catalog)
            for _, f in attempt(lambda: list(iso.walk())) or []:
                if not f.is_dir:
                    attempt(iso.read_file, f, 1 << 16)


if __name__ == "__main__":
    main(FAMILY, seeds, target, scratch=SCRATCH)
