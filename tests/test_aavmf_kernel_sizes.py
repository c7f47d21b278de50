"""AAVMF's QEMU -kernel with kernels and initrds of sizes no capture was made with
(bootforge/loader/aavmf_pages.py for_inputs): the file's and the initrd's pools in AAVMF's Boot
Services Data bin and LoadImage's pool of the file, held above the image, follow their sizes in
Pool.c's pages. Checked against real boots kept in tests/data/aavmf/ (commands there and in
tests/data/README.md): Debian's kernel with 0x40 .. 0x3456 bytes appended (the kernel's own EFI map),
and two `bootforge verify` reports of sizes no capture has. One of those verifies runs for real."""

import json
import sys
from pathlib import Path

import pytest

from aavmf_disk import KERNEL_CMDLINE, build_esp_image, debian_arm64_kernel
from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import aavmf_pages
from bootforge.pe.image import read_pe
from conftest import assert_one_line_error, require, run_bootforge

DATA = Path(__file__).parent / "data" / "aavmf"
SIZES = json.loads((DATA / "qemu-kernel-sizes-1G.json").read_text())
# (kept `bootforge verify --json` report, bytes appended to Debian's kernel, initrd size or 0, -append)
VERIFIED = [("verify-qemu-kernel-plus1234567-1G.json", 1234567, 0, "console=ttyAMA0"),
            ("verify-qemu-kernel-initrd-plus0x54321-1G.json", 0x54321, 3 * (1 << 20) + 0x2345, KERNEL_CMDLINE)]
AAVMF = ("qemu-system-aarch64", "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")


def padded_kernel(tmp_path, appended):
    kernel = debian_arm64_kernel()
    out = tmp_path / f"vmlinuz-plus{appended}"
    out.write_bytes(kernel.read_bytes() + bytes(appended))
    return out


def bin_block(capture):
    """The Boot Services Data piece at the bottom of the bin's used block (above the default bin)."""
    return next([a, b] for a, b, t in capture.ranges if a >= capture.default_top and t == T.BOOT_SERVICES_DATA)


def test_pool_pages_are_the_kept_pool_head():
    """The freed LoadImage buffer of the captured kernel kept its POOL_HEAD Size: 0x1f6dfe8 (the file's
    32956352 bytes + 0x18 + 16), at the held span's bottom (0x7a4c2000, 0x1f6e pages under the bins)."""
    capture = aavmf_pages.read_capture("qemu-kernel-1G")
    assert aavmf_pages.pool_pages(32956352) == -(-0x1F6DFE8 // 4096) == 0x1F6E
    assert capture.held == [[0x7A4C2000, 0x7A4C2000 + 0x1F6E * 4096]]


@pytest.mark.parametrize("boot", SIZES["boots"], ids=lambda b: f"plus{b['appended']:#x}")
def test_replay_gives_the_kept_pieces_of_a_longer_kernel(boot):
    pe = read_pe(debian_arm64_kernel().read_bytes())
    capture = aavmf_pages.find_capture("qemu-virt-aarch64", "qemu-kernel", 1 << 30, 1 << 30)
    moved, why = aavmf_pages.for_inputs(capture, boot["file_size"])
    assert why is None
    got = aavmf_pages.replay(moved, size_of_image=pe.size_of_image, section_alignment=pe.section_alignment,
                             cmdline_bytes=len("console=ttyAMA0 efi=debug") + 1, fdt_size=2 << 20)
    assert list(got.image_block) == boot["loader_code"]
    if boot["boot_services_data_bin_block"]:
        assert bin_block(moved) == boot["boot_services_data_bin_block"]


@pytest.mark.parametrize("name, appended, initrd_size, cmdline", VERIFIED, ids=[v[0] for v in VERIFIED])
def test_load_predicts_the_kept_verify_of_an_uncaptured_size(tmp_path, name, appended, initrd_size, cmdline):
    """Each value the real boot gave (kernel entry, x0, the stub's DTB and its /chosen, the initrd's
    LINUX_EFI_INITRD_MEDIA table) is what `bootforge load` predicts for these files now."""
    report = json.loads((DATA / name).read_text())
    observed = {f["name"]: f["observed"] for f in report["fields"]}
    assert report["ok"] and all(f["match"] for f in report["fields"])
    args = [padded_kernel(tmp_path, appended), "--platform", "qemu-virt-aarch64:1G", "--loader",
            "linux-efi-stub-arm64", "--cmdline", cmdline]
    if initrd_size:
        from dtboot import make_initrd
        args += ["--initrd", make_initrd(tmp_path / "initrd.img", initrd_size)]
    proc = run_bootforge("load", *args, "--json", "--mbi-out", tmp_path / "dtb", check=0)
    doc = json.loads(proc.stdout)
    assert doc["linux"]["entry"] == observed["kernel entry"]
    assert doc["linux"]["registers"]["x0"] == observed["x0"] == observed["dtb address"]
    dtb = (tmp_path / "dtb").read_bytes()
    assert int.from_bytes(dtb[4:8], "big") == observed["dtb totalsize"]
    if initrd_size:
        module = doc["mbi"]["modules"][0]
        assert module["start"] == observed["initrd start (LINUX_EFI_INITRD_MEDIA table)"]
        assert module["end"] - module["start"] == observed["initrd size (LINUX_EFI_INITRD_MEDIA table)"] == initrd_size


def test_load_predicts_the_kept_verify_of_a_uki_of_an_uncaptured_size(tmp_path):
    """A UKI of 36308992 bytes by -kernel (the captured one is 36173312: .initrd 3 MiB + 0x21357 bytes
    here): the held span is LoadImage's pool of the UKI file, as for a bare kernel."""
    from dtboot import make_initrd
    from test_uki_arm64 import arm64_stub
    report = json.loads((DATA / "verify-qemu-kernel-uki-36308992-1G.json").read_text())
    observed = {f["name"]: f["observed"] for f in report["fields"]}
    assert report["ok"] and all(f["match"] for f in report["fields"])
    make_initrd(tmp_path / "initrd.img", 3 * (1 << 20) + 0x21357)
    (tmp_path / "uki.toml").write_text(f'''[uki]
kernel = "{debian_arm64_kernel()}"
stub = "{arm64_stub()}"
initrd = ["initrd.img"]
cmdline = "{KERNEL_CMDLINE}"
os_release = {{ ID = "debian", VERSION_ID = "12", PRETTY_NAME = "bootforge arm64 UKI" }}
output = "uki-arm64.efi"
''')
    run_bootforge("build", tmp_path / "uki.toml", check=0)
    uki = tmp_path / "uki-arm64.efi"
    assert uki.stat().st_size == 36308992
    doc = json.loads(run_bootforge("load", uki, "--platform", "qemu-virt-aarch64:1G", "--loader",
                                   "linux-efi-stub-arm64", "--json", check=0).stdout)
    assert doc["linux"]["entry"] == observed["kernel entry"]
    assert doc["linux"]["registers"]["x0"] == observed["x0"]
    assert doc["mbi"]["modules"][0]["start"] == observed["initrd start (LINUX_EFI_INITRD_MEDIA table)"]


def esp_image(tmp_path, appended):
    """bootforge's disk image with Debian's kernel + *appended* zero bytes as EFI/BOOT/BOOTAA64.EFI."""
    return build_esp_image(tmp_path, padded_kernel(tmp_path, appended))


def test_load_predicts_the_kept_verify_of_a_longer_kernel_from_an_esp(tmp_path):
    """From a disk: BdsDxe's pool of the file stays in the Boot Services Data bin (0x12345 bytes more
    here), the image where it was; every value of the real boot is the prediction."""
    report = json.loads((DATA / "verify-esp-plus0x12345-1G.json").read_text())
    observed = {f["name"]: f["observed"] for f in report["fields"]}
    assert report["ok"] and all(f["match"] for f in report["fields"])
    doc = json.loads(run_bootforge("load", esp_image(tmp_path, 0x12345), "--json", "--mbi-out", tmp_path / "dtb",
                                   check=0).stdout)
    assert doc["linux"]["entry"] == observed["kernel entry"]
    assert doc["linux"]["registers"]["x0"] == observed["x0"]
    assert int.from_bytes((tmp_path / "dtb").read_bytes()[4:8], "big") == observed["dtb totalsize"]


def test_kernel_outgrowing_the_bin_from_an_esp_is_one_line(tmp_path):
    """1 MiB more kernel: BdsDxe's buffer no longer fits the room under it in the bin (0x81 pages in
    the capture, the Loader Code bin's 20 among them): refused, saying why."""
    proc = run_bootforge("load", esp_image(tmp_path, 1 << 20))
    assert_one_line_error(proc, "not predicted exactly", "outgrows AAVMF's Boot Services Data bin")


def test_initrd_outgrowing_the_bin_is_one_line(tmp_path):
    """3 MiB more initrd than captured: its pool no longer fits AAVMF's Boot Services Data bin (0x2f9
    free pages in the capture), so it is not predicted, and says so."""
    from dtboot import make_initrd
    other = make_initrd(tmp_path / "big.img", 6 * (1 << 20))
    proc = run_bootforge("load", debian_arm64_kernel(), "--platform", "qemu-virt-aarch64:1G", "--loader",
                         "linux-efi-stub-arm64", "--cmdline", KERNEL_CMDLINE, "--initrd", other)
    assert_one_line_error(proc, "not predicted exactly", "Boot Services Data bin")


def test_verify_a_longer_kernel_by_qemu_kernel(tmp_path):
    """A real AAVMF boot of Debian's kernel 1234567 bytes longer than captured: every field counted and equal."""
    for tool in AAVMF:
        require(tool)
    kernel = padded_kernel(tmp_path, 1234567)
    proc = run_bootforge("verify", kernel, "--platform", "qemu-virt-aarch64:1G", "--loader", "linux-efi-stub-arm64",
                         "--cmdline", "console=ttyAMA0", "--json", "-q", check=0)
    report = json.loads(proc.stdout)
    assert report["ok"], proc.stdout[-2000:]
    assert all(f["match"] and f["counted"] for f in report["fields"])
    kept = {f["name"]: f["observed"] for f in json.loads((DATA / VERIFIED[0][0]).read_text())["fields"]}
    assert {f["name"]: f["observed"] for f in report["fields"]} == kept


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
