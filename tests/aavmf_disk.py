"""A bootforge disk image whose ESP's EFI/BOOT/BOOTAA64.EFI is Debian's arm64 kernel (the
[image] recipe with loader "uki"), shared by the AAVMF tests."""

from conftest import run_bootforge
from test_arm_images import debian_arm64_kernel


def build_esp_image(tmp_path):
    kernel = debian_arm64_kernel()
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
