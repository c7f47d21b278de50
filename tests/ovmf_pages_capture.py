"""Write bootforge/data/ovmf-pages/*.json from the kept OVMF boots (tests/data/linux-ovmf/, their
commands in tests/data/README.md): `.venv/bin/python tests/ovmf_pages_capture.py`.

Each capture is the EFI map the kernel printed (efi=debug) with the loaders' own pieces returned
to conventional memory (bootforge.loader.ovmf_pages.derive_capture)."""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bootforge.formats.efi_memmap import EfiMemoryType as T  # noqa: E402
from bootforge.loader.ovmf_pages import CAPTURE_DIR, derive_capture, pages_for  # noqa: E402
from bootforge.uki.dmesg import parse_kernel_log  # noqa: E402

KERNEL_FILE = 8247232           # /boot/vmlinuz-6.1.0-57-amd64 (linux-image-amd64 6.1.192-3)
KERNEL_IMAGE = 0x822000         # its SizeOfImage
INITRD = 1048576 + 12345        # tests/test_uki_build.py INITRD_SIZE
UKI_FILE = 9380864              # tests/test_uki_build.py bootforge_uki(): the bootforge UKI
UKI_IMAGE = 0x8fa200
LOWMEM = {"512M": 0x20000000, "3G": 0x80000000}
SDBOOT = {"file_size": 140891, "size_of_image": 0x28340}     # systemd-boot-efi 252 systemd-bootx64.efi

# capture name: (fixture under tests/data, boot path, image SizeOfImage, file read, inputs, observed)
# The UKI's command line offset in systemd-stub's pool page: read through the gdbstub
# (tests/data/ovmf-pages/gdb-bootforge-uki-1G.txt: cmd_line_ptr 0x3dc45e18, page 0x3dc45000).
CASES = {
    "qemu-kernel-512M": ("linux-ovmf/kernel-512M", "qemu-kernel", KERNEL_IMAGE, KERNEL_FILE, {"file_size": KERNEL_FILE}, {}),
    "qemu-kernel-3G": ("linux-ovmf/kernel-3G", "qemu-kernel", KERNEL_IMAGE, KERNEL_FILE, {"file_size": KERNEL_FILE}, {}),
    "qemu-kernel-initrd-512M": ("linux-ovmf/kernel-initrd-512M", "qemu-kernel", KERNEL_IMAGE, KERNEL_FILE,
                                {"file_size": KERNEL_FILE, "initrd_size": INITRD}, {}),
    "qemu-kernel-initrd-3G": ("linux-ovmf/kernel-initrd-3G", "qemu-kernel", KERNEL_IMAGE, KERNEL_FILE,
                              {"file_size": KERNEL_FILE, "initrd_size": INITRD}, {}),
    "qemu-kernel-uki-512M": ("ovmf-pages/bootforge-uki-512M", "qemu-kernel-uki", UKI_IMAGE, UKI_FILE,
                             {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE},
                             {"cmdline_pool_offset": 0xE18}),
    "qemu-kernel-uki-3G": ("ovmf-pages/bootforge-uki-3G", "qemu-kernel-uki", UKI_IMAGE, UKI_FILE,
                           {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE},
                           {"cmdline_pool_offset": 0xE18}),
    # tests/test_linux_uki_esp.py image_recipe(): the same UKI as the ESP's EFI/BOOT/BOOTX64.EFI
    # (offset 0xe18 again in tests/data/ovmf-pages/gdb-uki-esp-1G.txt)
    "esp-uki-512M": ("ovmf-pages/uki-esp-512M", "esp-uki", UKI_IMAGE, UKI_FILE,
                     {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE}, {"cmdline_pool_offset": 0xE18}),
    "esp-uki-3G": ("ovmf-pages/uki-esp-3G", "esp-uki", UKI_IMAGE, UKI_FILE,
                   {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE}, {"cmdline_pool_offset": 0xE18}),
    # tests/test_linux_sdboot.py image_recipe(): Debian's systemd-bootx64.efi 252 (140891 bytes,
    # SizeOfImage 0x28340) starting the UKI from /EFI/Linux; the command line at 0x998 in
    # systemd-boot's pool page (tests/data/ovmf-pages/gdb-sdboot-uki-1G.txt)
    "sdboot-uki-512M": ("ovmf-pages/sdboot-uki-512M", "sdboot-uki", UKI_IMAGE, UKI_FILE,
                        {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE},
                        {"cmdline_pool_offset": 0x998, "first_image": SDBOOT, "loader_data_after": 1}),
    "sdboot-uki-3G": ("ovmf-pages/sdboot-uki-3G", "sdboot-uki", UKI_IMAGE, UKI_FILE,
                      {"file_size": UKI_FILE, "kernel_size_of_image": KERNEL_IMAGE},
                      {"cmdline_pool_offset": 0x998, "first_image": SDBOOT, "loader_data_after": 1}),
}


def default_top(efi):
    """The bottom of OVMF's bins: the Runtime Data piece right below Runtime Code."""
    for (t, a, b), (t2, a2, _) in zip(efi, efi[1:]):
        if t == T.RUNTIME_SERVICES_DATA and t2 == T.RUNTIME_SERVICES_CODE and b == a2:
            return a
    raise SystemExit("no runtime bins in the map")


def derive(name):
    """The capture *name* of CASES as derive_capture() makes it from its boot."""
    fixture, path, image_size, file_size, inputs, observed = CASES[name]
    log = parse_kernel_log((HERE / "data" / f"{fixture}.txt").read_text())
    size = pages_for(image_size) * 0x1000
    image = next((a, b) for t, a, b in log.efi if t == T.LOADER_CODE and b - a == size)
    observed = dict(observed)
    if "first_image" in observed:
        # systemd-boot's image sits right above the .linux image it LoadImage()d: one Loader Code piece
        both = pages_for(KERNEL_IMAGE) * 0x1000 + pages_for(SDBOOT["size_of_image"]) * 0x1000
        end = next(b for t, a, b in log.efi if t == T.LOADER_CODE and b - a == both)
        observed["first_image"] = {**SDBOOT, "end": end}
    return derive_capture(log.efi, image, file_size, path, LOWMEM[fixture.rsplit("-", 1)[1]], inputs,
                          default_top(log.efi), f"tests/data/{fixture}.txt", **observed)


# Limine's tag 17 on the CD-ROM path (bootforge.loader.ovmf_pages.limine_exit_map): the kept
# Limine boots (tests/data/README.md, tests/limine_oracle.py), capture name: (dump, lowmem, RAM)
LIMINE = {"limine-cdrom-256M": ("limine-ovmf-mb2-256M-mods3-1m.dump", 0x10000000, 0x10000000),
          "limine-cdrom-5G": ("limine-ovmf-mb2-5G-mods1-1m.dump", 0x80000000, 0x140000000)}


def derive_limine(name):
    import struct
    from bootforge.memmap.formats.mbdump import mbdump_bodies
    dump, lowmem, ram = LIMINE[name]
    _, body = mbdump_bodies(dump, (HERE / "data" / dump).read_bytes())
    size, version = struct.unpack_from("<II", body)
    assert (size, version) == (48, 1) and (len(body) - 8) % size == 0
    out = []
    for at in range(8, len(body), size):
        typ, pad, start, virt, pages, attr = struct.unpack_from("<IIQQQQ", body, at)
        assert pad == virt == 0 and body[at + 40:at + size] == bytes(size - 40)
        out.append([typ, start, pages, attr])
    return {"comment": f"the EFI map in Limine 11.4.1's MB2 tag 17 under OVMF, tests/data/{dump}",
            "source": f"tests/data/{dump}", "lowmem": lowmem, "ram": ram, "descriptors": out}


# Limine's linux protocol from a bootforge GPT disk (bootforge.loader.ovmf_pages.limine_disk_start):
# the kernel's efi=debug log and the zero page read at the kernel's entry (tests/data/linux-limine/,
# commands in tests/data/README.md), capture name: (fixture stem, lowmem, RAM)
LIMINE_DISK = {"limine-disk-512M": ("uefi-512M", 0x20000000, 0x20000000),
               "limine-disk-3G": ("uefi-3G", 0x80000000, 0xC0000000)}


def top_of_free_below_4g(efi):
    """The end of the highest conventional piece below 4 GiB (where Limine's ext_mem_alloc starts)."""
    return max(b for t, a, b in efi if t == T.CONVENTIONAL and b <= 1 << 32)


def derive_limine_disk(name):
    import struct
    stem, lowmem, ram = LIMINE_DISK[name]
    log = parse_kernel_log((HERE / "data" / "linux-limine" / f"{stem}.txt").read_text())
    page = (HERE / "data" / "linux-limine" / f"uefi-zero-page-{stem.removeprefix('uefi-')}.bin").read_bytes()
    systab, _size, _ver, memmap, _msize, systab_hi, memmap_hi = struct.unpack_from("<IIIIIII", page, 0x1C4)
    observed = {"efi_systab": systab | systab_hi << 32, "acpi_rsdp": struct.unpack_from("<Q", page, 0x70)[0],
                "efi_memmap": memmap | memmap_hi << 32,
                "cmdline_below_top": top_of_free_below_4g(log.efi) - struct.unpack_from("<I", page, 0x228)[0]}
    return {"comment": "the EFI map Limine 11.4.1's linux protocol hands over under OVMF from a bootforge disk "
                       f"(efi=debug), tests/data/linux-limine/{stem}.txt",
            "source": f"tests/data/linux-limine/{stem}.txt", "lowmem": lowmem, "ram": ram, "observed": observed,
            "ranges": [[int(t), a, b] for t, a, b in log.efi]}


def main():
    for name in LIMINE_DISK:
        Path(str(CAPTURE_DIR.joinpath(name + ".json"))).write_text(json.dumps(derive_limine_disk(name), indent=0)
                                                                   + "\n")
    for name in LIMINE:
        Path(str(CAPTURE_DIR.joinpath(name + ".json"))).write_text(json.dumps(derive_limine(name), indent=0) + "\n")
    for name in CASES:
        doc = derive(name)
        out = Path(str(CAPTURE_DIR.joinpath(name + ".json")))
        out.write_text(json.dumps(doc, indent=0) + "\n")
        print(out, "held", [[hex(a), hex(b)] for a, b in doc["held"]])


if __name__ == "__main__":
    main()
