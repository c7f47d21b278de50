"""`bootforge inspect` of the formats no other harness names (bootforge/inspect.py FORMATS):
U-Boot's u-boot.bin (fdtboot/inspect.py), system firmware (rom/system_firmware.py: legacy
BIOS images, EDK2 flash images and their firmware volumes), boot information as `load
--mbi-out` writes it (multiboot/info_report.py: mb1-info, mb2-info), gzip and xz files (what
is inside, inspect.py inspect_compressed), a raw UEFI-compressed stream (compress/inspect.py),
and a bare EFI driver (rom/inspect.py inspect_efi_driver), each as `--format NAME` and as
detected; text + JSON. The first byte picks the name (modulo the list; 0: detected).

Seeds: Debian's u-boot.bin files (/usr/lib/u-boot), SeaBIOS's bios images, OVMF's and AAVMF's
CODE images with each firmware volume cut to its first 4 KiB (its headers; FvLength and the
checksum set to match) and the first 256 KiB of each as it is, the boot information `bootforge
load --mbi-out` writes for bootforge's mbdump kernels (GRUB i386-pc MB1 and MB2, GRUB EFI MB2),
gzip and xz of that kernel, of a DTB and of the head of Debian's bzImage, UEFI-compressed
streams (bootforge's encoder) of the mbdump kernel and of iPXE's e1000 EFI driver, and that
driver itself (from /usr/lib/ipxe/qemu/efi-e1000.rom)."""

import gzip
import lzma
import struct
import subprocess
import sys
from pathlib import Path

from common import REPO, WORK, files, instrumented, main

# The UEFI decoder has its own harness (efi-compress): here it runs at full speed.
with instrumented(exclude=["bootforge.compress"]):
    from bootforge.compress import compress
    from bootforge.formats import firmware_volume as fv
    from bootforge.inspect import inspect_data

FAMILY = "inspect-rest"
NAMES = (None, "u-boot", "legacy-bios", "uefi-flash", "mb1-info", "mb2-info", "gzip", "xz", "efi-compressed",
         "efi-driver")
HEAD = 256 << 10
VOLUME_KEEP = 0x1000
CODE_IMAGES = ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/AAVMF/AAVMF_CODE.fd",
               "/usr/share/AAVMF/AAVMF32_CODE.fd")


def _cut_volumes(data):
    """*data*'s firmware volumes end to end, each cut to its first VOLUME_KEEP bytes with
    FvLength and the header checksum (PI spec vol. 3 3.2.1: the header's 16-bit sum is 0) made
    to match, then the image's last 16 bytes (the reset vector)."""
    out, at = bytearray(), 0
    while at + fv.FV_HEADER_SIZE <= len(data):
        if data[at + fv.FV_SIGNATURE_OFFSET:at + fv.FV_SIGNATURE_OFFSET + 4] != fv.FV_SIGNATURE:
            at += 0x1000
            continue
        length = struct.unpack_from("<Q", data, at + 0x20)[0]
        header_length = struct.unpack_from("<H", data, at + 0x30)[0]
        vol = bytearray(data[at:at + min(length, VOLUME_KEEP)])
        if length < header_length or header_length > len(vol) or header_length & 1:
            break
        struct.pack_into("<Q", vol, 0x20, len(vol))
        struct.pack_into("<H", vol, 0x32, 0)
        total = sum(struct.unpack_from(f"<{header_length // 2}H", vol))
        struct.pack_into("<H", vol, 0x32, -total & 0xFFFF)
        out += vol
        at += max(0x1000, -(-length // 0x1000) * 0x1000)
    return bytes(out + data[-16:]) if out else None


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def _made(d):
    """Kernels and the boot information `bootforge load` writes for them (once, into d)."""
    py = sys.executable
    out = []
    try:
        for proto in ("mb1", "mb2"):
            kernel = d / f"mbdump-{proto}.elf"
            if not kernel.exists():
                _run([py, "-m", "bootforge", "build", str(REPO / "recipes" / f"kernel-mbdump-{proto}.toml"), "-o",
                      str(kernel)], cwd=REPO)
            out.append(kernel)
        (d / "initrd").write_bytes(b"initrd " * 100)
        for kernel, platform, loader in (("mbdump-mb1.elf", "qemu-pc-seabios:256M", "grub-pc-mb1"),
                                         ("mbdump-mb2.elf", "qemu-pc-seabios:256M", "grub-pc-mb2"),
                                         ("mbdump-mb2.elf", "qemu-q35-ovmf:256M", "grub-efi-mb2")):
            mbi = d / f"{loader}.mbi"
            if not mbi.exists():
                _run([py, "-m", "bootforge", "load", str(d / kernel), "--platform", platform, "--loader", loader,
                      "--cmdline", "console=ttyS0 a=b", "--module", f"{d / 'initrd'}=initrd", "--mbi-out", str(mbi)],
                     cwd=d)
            out.append(mbi)
    except subprocess.CalledProcessError as exc:
        print(f"fuzz seeds: {exc.cmd[3:5]}: {exc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return out


def _e1000_driver():
    rom = files("/usr/lib/ipxe/qemu/efi-e1000.rom")
    if not rom:
        return None
    from bootforge.commands.extract import extract_image
    try:
        data = rom[0][1]
        for index in range(4):
            payload, _ = extract_image(data, "efi-e1000.rom", index, False)
            if payload[:2] == b"MZ":
                return payload
    except Exception as exc:  # noqa: BLE001 -- a seed less, not a failed run
        print(f"fuzz seeds: e1000 EFI driver: {exc}", file=sys.stderr)
    return None


def seeds():
    d = WORK / "inspect-rest-seeds"
    d.mkdir(parents=True, exist_ok=True)
    out = []

    def add(name, data, fmt):
        for picked in {fmt, None}:
            out.append((f"{name}.{picked or 'detected'}", bytes([NAMES.index(picked)]) + data))

    for name, data in files("/usr/lib/u-boot/*/u-boot.bin"):
        add(name, data, "u-boot")
    for name, data in files("/usr/share/seabios/bios*.bin"):
        add(name, data, "legacy-bios")
    for path in CODE_IMAGES:
        # Made once (AAVMF_CODE.fd is 64 MiB): each libFuzzer restart asks for the seeds again.
        cut, head = d / (Path(path).name + ".cut"), d / (Path(path).name + ".head")
        if Path(path).exists() and not head.exists():
            data = Path(path).read_bytes()
            cut.write_bytes(_cut_volumes(data) or b"")
            head.write_bytes(data[:HEAD])
        for p in (cut, head):
            if p.exists() and p.stat().st_size:
                add(p.name, p.read_bytes(), "uefi-flash")
    made = _made(d)
    for p in made:
        if p.suffix == ".mbi":
            add(p.name, p.read_bytes(), "mb1-info" if "mb1" in p.name else "mb2-info")
    inner = [(p.name, p.read_bytes()) for p in made if p.suffix == ".elf"]
    inner += [(n, b) for n, b in files("tests/data/*.dtb") if int.from_bytes(b[4:8], "big") == len(b)][:1]
    kernel = sorted(Path("/boot").glob("vmlinuz-*"))
    if kernel:
        inner.append((kernel[0].name + ".head", kernel[0].read_bytes()[:HEAD]))
    for name, data in inner:
        add(name + ".gz", gzip.compress(data, mtime=0), "gzip")
        add(name + ".xz", lzma.compress(data, check=lzma.CHECK_CRC32), "xz")
    driver = _e1000_driver()
    if driver is not None:
        add("e1000.efi", driver, "efi-driver")
        inner.append(("e1000.efi", driver))
    for name, data in inner[:2] + inner[-1:]:
        add(name + ".efi-compressed", compress(data[:64 << 10], "efi"), "efi-compressed")
    return out


def target(data):
    if not data:
        return
    report = inspect_data("fuzz.bin", data[1:], NAMES[data[0] % len(NAMES)])
    report.render_text()
    report.to_json()


if __name__ == "__main__":
    main(FAMILY, seeds, target)
