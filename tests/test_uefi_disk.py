"""OVMF starting a loader from bootforge's GPT disk rather than a CD: the Boot Services Data block
OVMF's disk stack leaves above the loader (bootforge/loader/ovmf_media.py: EnhancedFatDxe's disk
cache of the ESP, DiskIo's working buffer per partition child, one more OVMF page above it), and
with it GRUB x86_64-efi's and Limine 11.4.1's tag 17, byte for byte.

The expected bytes are the MBIs the real loaders handed the dump kernel at its entry
(tests/data/uefi-disk/*.mbi, read by verify's gdbstub capture; `python tests/test_uefi_disk.py`
boots the images again and rewrites them, tests/data/uefi-disk/README.md). Two boots run here:
GRUB and Limine from the 4 MiB disk at 256M, stopped at the entry by verify."""

import hashlib
import json
import struct
from types import SimpleNamespace

import pytest

from conftest import DATA, REPO, require, run_bootforge

CAPTURES = DATA / "uefi-disk"
LIMINE_DIR = REPO.parent / "shared" / "oracles" / "limine-11.4.1"
OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"
MODULE = b"bootforge uefi-disk module\n" * 300
CMDLINE = "console=ttyS0 a=b"
# name -> (loader, firmware list, extra [image] lines, the kernel's required framebuffer or None):
# the images the captures were booted from.
IMAGES = {
    "grub-disk": ("grub", ["bios", "uefi"], "", None),           # BIOS boot partition + FAT12 ESP, 4 MiB
    "grub-disk-fat16": ("grub", ["bios", "uefi"], "size = 67108864\n", None),  # the ESP is FAT16 (61 MiB)
    "grub-disk-uefi": ("grub", ["uefi"], "", None),              # the ESP alone
    # GOP mode 28: QemuVideoDxe's BLT configuration reallocated (3 pages, under OVMF's block here)
    "grub-disk-2560": ("grub", ["bios", "uefi"], "", (2560, 1440, 32)),
    "limine-disk": ("limine", ["bios", "uefi"], f'limine_dir = "{LIMINE_DIR}"\n', None),
    "limine-disk-2560": ("limine", ["bios", "uefi"], f'limine_dir = "{LIMINE_DIR}"\n', (2560, 1440, 32)),
}
# capture name -> (image, memory)
BOOTS = {"grub-disk-256M": ("grub-disk", "256M"), "grub-disk-512M": ("grub-disk", "512M"),
         "grub-disk-fat16-256M": ("grub-disk-fat16", "256M"), "grub-disk-uefi-256M": ("grub-disk-uefi", "256M"),
         "grub-disk-2560-256M": ("grub-disk-2560", "256M"),
         "limine-disk-256M": ("limine-disk", "256M"), "limine-disk-512M": ("limine-disk", "512M"),
         "limine-disk-2560-256M": ("limine-disk-2560", "256M"),
         # RAM above 4 GiB: OVMF's other template (qemu_x86.OVMF_TEMPLATE_HIGH) and Limine's 5G capture
         "grub-disk-3G": ("grub-disk", "3G"), "grub-disk-2560-3G": ("grub-disk-2560", "3G"),
         "limine-disk-5G": ("limine-disk", "5G"), "limine-disk-2560-3G": ("limine-disk-2560", "3G")}


def build_image(tmp, name):
    """Build image *name* of IMAGES in *tmp* (the dump kernel from recipes/kernel-mbdump-mb2.toml)."""
    if not (tmp / "k.elf").exists():
        _build(REPO / "recipes" / "kernel-mbdump-mb2.toml", "-o", tmp / "k.elf")
        (tmp / "mod").write_bytes(MODULE)
    loader, firmware, extra, fb = IMAGES[name]
    kernel = "k.elf"
    if fb is not None:
        kernel = "k-{}x{}x{}.elf".format(*fb)
        (tmp / "k-fb.toml").write_text(
            f'[kernel]\ninput = "{REPO / "build" / "stubs" / "mbdump.elf"}"\nprotocol = "multiboot2"\n'
            f'output = "{kernel}"\n\n[kernel.multiboot2]\ninformation_request = [1, 2, 3, 6]\n'
            f'module_alignment = true\nframebuffer = {{ width = {fb[0]}, height = {fb[1]}, depth = {fb[2]} }}\n')
        _build(tmp / "k-fb.toml")
    (tmp / f"{name}.toml").write_text(
        f'[image]\nformat = "disk"\nloader = "{loader}"\nfirmware = {json.dumps(firmware)}\noutput = "{name}.img"\n'
        f'{extra}\n[[image.entries]]\ntitle = "mbdump"\nkernel = "{kernel}"\nloader_path = "/boot/mbdump.elf"\n'
        f'protocol = "multiboot2"\ncmdline = "{CMDLINE}"\n\n[[image.entries.modules]]\npath = "mod"\n'
        f'loader_path = "/boot/initrd"\ncmdline = "initrd"\n')
    _build(tmp / f"{name}.toml")
    return tmp / f"{name}.img"


def _build(*args):
    """`bootforge build ARGS` in this process (the CLI's own code; no interpreter start per image)."""
    from click.testing import CliRunner
    from bootforge.cli import cli
    got = CliRunner().invoke(cli, ["build", *map(str, args)])
    assert got.exit_code == 0, (args, got.output, got.exception)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    require("ld", "grub-mkimage", "/usr/lib/grub/x86_64-efi", str(LIMINE_DIR / "BOOTX64.EFI"), "cc")
    tmp = tmp_path_factory.mktemp("uefi-disk")
    return {name: build_image(tmp, name) for name in IMAGES}, tmp


def _prediction(image, memory):
    from bootforge.image.load import image_request
    from bootforge.loader.policies import policy
    req = image_request(str(image), f"qemu-q35-ovmf:{memory}", None, None, "uefi")
    return req, policy(req.loader)(req)


def tag17(mbi):
    """[(type, physical start, pages)] of an MB2 blob's tag 17, and the tag's offset."""
    off = 8
    while off + 8 <= len(mbi):
        t, size = struct.unpack_from("<II", mbi, off)
        if t == 17:
            step = struct.unpack_from("<I", mbi, off + 8)[0]
            return [struct.unpack_from("<I4xQ8xQ", mbi, at) for at in range(off + 16, off + size - step + 1, step)], off
        if t == 0:
            break
        off += (size + 7) & ~7
    return [], None


def _block(descriptors):
    """OVMF's Boot Services Data block above the loader in a tag 17: under the free and Loader
    Data pages below the Boot Services Data that sits under the DXE drivers' first code."""
    i = next(i for i, d in enumerate(descriptors) if d[0] == 3 and d[1] >= 0x1500000) - 2
    while descriptors[i][0] in (2, 7):
        i -= 1
    assert descriptors[i][0] == 4
    return descriptors[i]


def test_the_captures_are_of_these_images(images):
    """The kept boots are of the images this file builds (same recipe, same bytes)."""
    built, tmp = images
    booted = json.loads((CAPTURES / "images.json").read_text())     # sha256 of the kernel and images booted
    assert _sha(tmp / "k.elf") == booted["kernel"], "the dump kernel changed: re-run python tests/test_uefi_disk.py"
    for name, path in built.items():
        assert _sha(path) == booted[name], f"{name} changed: re-run python tests/test_uefi_disk.py"


@pytest.mark.parametrize("capture", sorted(BOOTS))
def test_load_predicts_the_real_mbi_byte_for_byte(images, capture):
    """`bootforge load` of the disk image: every counted byte of the MBI equals the real
    loader's, tag 17 (OVMF's exit map after the disk stack's allocations) included."""
    from bootforge.verify.compare import mbi_bytes_comparison
    image, memory = BOOTS[capture]
    seen = (CAPTURES / f"{capture}.mbi").read_bytes()
    _req, res = _prediction(images[0][image], memory)
    got = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=seen, structures={}))
    assert got["match"], got["differing"]
    _, at = tag17(seen)
    uncounted = [(f["start"], f["end"]) for f in got["firmware_data"]]
    assert not any(a < at + 8 + 16 and b > at for a, b in uncounted)   # tag 17 and total_size are counted
    assert not any(a == 0 for a, _b in uncounted)
    assert tag17(bytes(res.mbi_bytes))[0] == tag17(seen)[0]


def test_the_block_follows_the_esp_fat_cache_and_the_partitions():
    """What the real boots say of OVMF's block (the descriptor above GRUB's image and freed
    buffer): a FAT16 ESP adds exactly the difference of EnhancedFatDxe's two cache sizes
    (DiskCache.c FatInitializeDiskCache), one partition fewer takes one DiskIo buffer and its pool
    away, and a disk start leaves 46 pages less than the CD capture OVMF's template was printed
    from (728)."""
    from bootforge.loader.ovmf_media import fat_cache_pages, partition_child_pages
    pages = {c: _block(tag17((CAPTURES / f"{c}.mbi").read_bytes())[0])[2] for c in BOOTS}
    assert {pages[c] for c in ("grub-disk-256M", "grub-disk-512M", "grub-disk-3G", "limine-disk-256M",
                               "limine-disk-5G")} == {682}
    assert pages["grub-disk-fat16-256M"] - pages["grub-disk-256M"] == fat_cache_pages(16) - fat_cache_pages(12)
    assert pages["grub-disk-256M"] - pages["grub-disk-uefi-256M"] == partition_child_pages()


def test_the_medium_is_read_from_the_image(images):
    built, _tmp = images
    req, _res = _prediction(built["grub-disk"], "256M")
    assert (req.efi_medium.kind, req.efi_medium.fat_type, req.efi_medium.partitions) == ("disk", 12, 2)
    req, _res = _prediction(built["grub-disk-fat16"], "256M")
    assert (req.efi_medium.fat_type, req.efi_medium.partitions) == (16, 2)
    req, _res = _prediction(built["grub-disk-uefi"], "256M")
    assert req.efi_medium.partitions == 1
    _req, res = _prediction(built["grub-disk-2560"], "256M")
    assert any("BLT configuration" in n and "3 at 0xe281000" in n for n in res.notes)   # under the block


@pytest.mark.qemu
@pytest.mark.parametrize("image", ["grub-disk-2560", "limine-disk-2560"])
def test_real_boot_from_the_disk_matches_the_whole_mbi(images, image):
    """verify of the disk under OVMF at 256M: every field and the whole MBI, tag 17 counted.
    Both kernels ask for 2560x1440x32, so each boot checks the disk's block and page rules and
    QemuVideoDxe's BLT reallocation under that loader together (grub-disk-256M, limine-disk-256M
    and the uefi-video captures check each alone without QEMU)."""
    require("qemu-system-x86_64", OVMF)
    doc = json.loads(run_bootforge("verify", "--json", "-q", images[0][image], "--platform", "qemu-q35-ovmf:256M",
                                   "--firmware", "uefi").stdout)
    assert doc["ok"] and doc["mbi_bytes"]["match"], doc["mismatches"]
    assert not [f for f in doc["mbi_bytes"]["firmware_data"] if "efi_mmap" in f["name"] or "total_size" in f["name"]]


def _capture(tmp):
    """Boot every BOOTS image under verify and keep the MBI the loader handed over."""
    import bootforge.verify.run as run
    seen = {}
    keep = run.mbi_bytes_comparison

    def grab(res, cap):
        seen["mbi"] = bytes(cap.mbi_raw)
        return keep(res, cap)
    run.mbi_bytes_comparison = grab
    built = {name: build_image(tmp, name) for name in IMAGES}
    for capture, (image, memory) in sorted(BOOTS.items()):
        seen.clear()
        report = run.verify(str(built[image]), f"qemu-q35-ovmf:{memory}", None, firmware="uefi")
        if report.status != "entry" or "mbi" not in seen:
            raise SystemExit(f"{capture}: {report.status}")
        (CAPTURES / f"{capture}.mbi").write_bytes(seen["mbi"])
        print(capture, len(seen["mbi"]), "bytes")
    doc = {"kernel": _sha(tmp / "k.elf"), **{name: _sha(path) for name, path in built.items()}}
    (CAPTURES / "images.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        _capture(Path(d))
