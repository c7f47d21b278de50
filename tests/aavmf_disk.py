"""A bootforge disk image whose ESP's EFI/BOOT/BOOTAA64.EFI is Debian's arm64 kernel (the
[image] recipe with loader "uki"), shared by the AAVMF tests."""

from conftest import run_bootforge, unavailable
from test_arm_images import debian_arm64_kernel as fetched_kernel

# The kernel the AAVMF captures were made with (bootforge/data/aavmf-pages/*.json "inputs"): another
# Debian point release is another file, whose placements the captures do not give.
CAPTURED_KERNEL = "linux-image-6.1.0-57-arm64 (32956352 bytes)"
CAPTURED_KERNEL_SIZE = 32956352


def debian_arm64_kernel():
    kernel = fetched_kernel()
    if kernel.stat().st_size != CAPTURED_KERNEL_SIZE:
        unavailable(f"{kernel} is {kernel.stat().st_size} bytes, not the captured {CAPTURED_KERNEL}: boot it and "
                    "rerun tests/aavmf_capture.py (tests/data/README.md, aavmf/)")
    return kernel


def build_esp_image(tmp_path, kernel=None):
    """bootforge's disk image (tmp_path/virt-esp.img) with *kernel* (default: Debian's) as its ESP's
    EFI/BOOT/BOOTAA64.EFI."""
    kernel = kernel or debian_arm64_kernel()
    recipe = tmp_path / "virt-esp.toml"
    recipe.write_text(f'''[image]
format = "disk"
loader = "uki"
firmware = "uefi"
output = "virt-esp.img"
[[image.entries]]
title = "Debian arm64"
kernel = "{kernel}"
loader_path = "/EFI/BOOT/BOOTAA64.EFI"
protocol = "linux"
''')
    run_bootforge("build", recipe, check=0)
    return tmp_path / "virt-esp.img"


# QEMU -kernel under AAVMF: the kept boot's command line and initrd (tests/data/aavmf/qemu-kernel-initrd-1G-*)
KERNEL_CMDLINE = "console=ttyAMA0 root=/dev/vda"
KERNEL_INITRD_SIZE = 3 * (1 << 20) + 123


def kernel_initrd(tmp_path):
    # Function-level import: dtboot needs the QEMU helpers only these boots use.
    from dtboot import make_initrd
    return make_initrd(tmp_path / "initrd.img", KERNEL_INITRD_SIZE)


def qemu_kernel_args(tmp_path, memory="1G"):
    """`bootforge load/verify` arguments for Debian's kernel by AAVMF's QEMU -kernel with the initrd."""
    return (debian_arm64_kernel(), "--platform", f"qemu-virt-aarch64:{memory}", "--loader", "linux-efi-stub-arm64",
            "--cmdline", KERNEL_CMDLINE)


def build_uki_esp_image(tmp_path):
    """The same kernel in an arm64 UKI (systemd's linuxaa64.efi.stub, the -kernel boot's initrd and
    command line as .initrd and .cmdline) as the ESP's EFI/BOOT/BOOTAA64.EFI (the kept esp-uki boot)."""
    # Function-level import: the UKI stub's fetch lives with the arm64 UKI tests.
    from test_uki_arm64 import arm64_stub
    stub = arm64_stub()
    initrd = kernel_initrd(tmp_path)
    (tmp_path / "uki.toml").write_text(f'''[uki]
kernel = "{debian_arm64_kernel()}"
stub = "{stub}"
initrd = ["{initrd.name}"]
cmdline = "{KERNEL_CMDLINE}"
os_release = {{ ID = "debian", VERSION_ID = "12", PRETTY_NAME = "bootforge arm64 UKI" }}
output = "uki-arm64.efi"
''')
    run_bootforge("build", tmp_path / "uki.toml", check=0)
    (tmp_path / "disk.toml").write_text('''[image]
format = "disk"
loader = "uki"
firmware = "uefi"
output = "uki-esp.img"
[[image.entries]]
title = "Debian arm64 UKI"
kernel = "uki-arm64.efi"
loader_path = "/EFI/BOOT/BOOTAA64.EFI"
protocol = "linux"
''')
    run_bootforge("build", tmp_path / "disk.toml", check=0)
    return tmp_path / "uki-esp.img"
