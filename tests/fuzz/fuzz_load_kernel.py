"""`bootforge load KERNEL --platform P --loader L --module FILE=initrd --json` (the CLI
in-process) of the input as the kernel: loader/image.py's kernel reader and each loader policy's
own reading of it (Multiboot 1/2 headers, address and a.out kludge fields, ELF program headers,
the Linux setup header and its EFI stub's PE, arm64/RISC-V Image headers, zImage), as GRUB
(pc and EFI), Limine, Syslinux's mboot.c32, iPXE, QEMU's -kernel, systemd's/Linux's EFI stub and
U-Boot's booti/bootz place it. An answer is exit 0, 1 or 2; a traceback is a crash. The first
byte picks the (platform, loader) pair; uboot-bootm's uImages have the fit harness.

Seeds: the kernels recipes/kernel-mbdump-*.toml build (Multiboot 1, 2, both, the a.out kludge,
an EFI entry, one far above 1 MiB), bootforge's stubs and test kernels (build/stubs,
build/kernels, build/load-fidelity; dtdump for arm, arm64 and RISC-V), memtest86+'s and iPXE's
kernels from /boot, tests/data's arm64 and RISC-V Images, and the first 256 KiB of Debian's
bzImage with its PE sections cut to the bytes kept (its setup header, EFI stub and the start of
the payload): each with every pair of its architecture."""

from pathlib import Path

from common import WORK, files, instrumented, main, run_cli, scratch_path
from seeds_kernels import built_kernels, cut_pe

with instrumented(exclude=["bootforge.compress"]):
    import bootforge.cli  # noqa: F401  (what run_cli drives, imported inside the instrumentation)

FAMILY = "load-kernel"
X86 = [("qemu-pc-seabios:256M", loader) for loader in (
    "grub-pc-mb1", "grub-pc-mb2", "grub-pc-linux", "ipxe-pcbios-mb1", "limine-mb1", "limine-mb2", "limine-linux",
    "qemu-linux", "qemu-mb1", "syslinux-mb1")]
X86 += [("qemu-q35-ovmf:256M", loader) for loader in (
    "grub-efi-mb1", "grub-efi-mb2", "grub-efi-linux", "limine-mb2", "limine-linux", "linux-efi-stub")]
ARM = [("qemu-virt-aarch64:512M", "uboot-booti"), ("qemu-virt-aarch64:512M", "linux-efi-stub-arm64"),
       ("qemu-virt-aarch64:512M", "qemu-arm-kernel"), ("qemu-virt-arm:512M", "uboot-bootz"),
       ("qemu-virt-arm:512M", "qemu-arm-kernel"), ("qemu-virt-riscv64:512M", "qemu-riscv-kernel"),
       ("qemu-virt-riscv64:512M", "uboot-booti")]
PAIRS = X86 + ARM
SCRATCH = scratch_path("load")
KERNEL_HEAD = 256 << 10


def seeds():
    x86 = built_kernels(WORK / "load-kernel-seeds")
    x86 += files("build/stubs/mbdump.elf", "build/kernels/*", "build/load-fidelity/*.elf", "/boot/memtest86+ia32.bin",
                 "/boot/memtest86+x64.bin", "/boot/ipxe.lkrn", max_size=1 << 20)
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if kernels:
        with open(kernels[-1], "rb") as f:
            x86.append((kernels[-1].name + ".head", cut_pe(f.read(KERNEL_HEAD))))
    arm = files("build/stubs/dtdump-*.bin", "build/stubs/dtdump-*.elf", "tests/data/dtdump-*.Image")
    out = []
    for group, pairs in ((x86, X86), (arm, ARM)):
        for name, data in group:
            for platform, loader in pairs:
                out.append((f"{name}.{loader}", bytes([PAIRS.index((platform, loader))]) + data))
    return out



def target(data):
    if not data:
        return
    platform, loader = PAIRS[data[0] % len(PAIRS)]
    SCRATCH.mkdir(exist_ok=True)
    kernel, initrd = SCRATCH / "kernel", SCRATCH / "initrd"
    kernel.write_bytes(data[1:])
    if not initrd.exists():
        initrd.write_bytes(b"initrd " * 64)
    try:
        run_cli(["load", str(kernel), "--platform", platform, "--loader", loader, "--cmdline", "console=ttyS0 a=b",
                "--module", f"{initrd}=initrd", "--json"])
    finally:
        # Per input: atheris.Fuzz() never returns, so main's clean-up below never runs under it.
        kernel.unlink(missing_ok=True)


if __name__ == "__main__":
    main(FAMILY, seeds, target, scratch=SCRATCH)
