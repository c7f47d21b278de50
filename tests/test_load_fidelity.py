"""Fidelity: the real loaders decide. Each scenario boots the dump kernel under a
real loader in QEMU and compares, field for field, the boot information it
received with `bootforge load`'s prediction for the same platform, kernel,
modules and names (tests/fidelity.py, on bootforge.qemu's runner and `bootforge
verify`'s capture at the kernel's entry). `make fidelity` runs this
file and prints the matrix."""

import pytest

from conftest import BUILD, require, unavailable
import fidelity as F


# Every loader x memory size (128M-5G) x module set (0, 1, 3) x link address
# (1 MiB, 16 MiB), iPXE included (~6 s a boot: DHCP + TFTP inside QEMU), then
# the OVMF scenarios (F.EFI_SCENARIOS): GRUB x86_64-efi with GRUB's own
# `lsefimmap` as the platform and tag 6 also derived from tag 17; Xen 4.17
# through GRUB on OVMF (its printed load base and "EFI RAM map:"); the
# parametric qemu-q35-ovmf:<mem> profile at sizes it was not derived from; Xen 4.17's
# xen.gz, unmodified, under GRUB i386-pc MB2 and MB1 (F.XEN_PC_SCENARIOS).
SCENARIOS = F.default_matrix()
OUTCOMES = []


def _needs(loader, link=None):
    require("qemu-system-x86_64", "ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))
    if loader.startswith("grub-pc"):
        require("grub-mkrescue", "xorriso", "mformat", F.host.GRUB_I386_PC)
    if loader.startswith("syslinux"):
        require("xorriso", F.host.ISOLINUX_BIN, f"{F.host.SYSLINUX_BIOS_MODULES}/mboot.c32")
    if loader.startswith("ipxe"):
        require(F.IPXE_ROM)
    if loader.startswith("grub-efi") or loader in ("xen-efi", "platform-q35-ovmf"):
        require(F.OVMF_CODE, F.OVMF_VARS, F.host.GRUB_X86_64_EFI, "grub-mkrescue", "xorriso", "mformat")
    if loader == "xen-efi-esp":
        require(F.OVMF_CODE, F.OVMF_VARS, F.XEN_EFI)
    if loader == "xen-efi" or link == "xen":
        vmlinuz, _initrd = F.debian_kernel_files()        # the dom0 modules (linux-image-amd64)
        require(F.XEN_GZ, str(vmlinuz) if vmlinuz else "/boot/vmlinuz-*", "/bin/busybox")


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    return tmp_path_factory.mktemp("fidelity")


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name.replace(" ", "_"))
def test_fidelity(sc, workroot):
    _needs(sc.loader, sc.link)
    work = workroot / f"{sc.loader}-{sc.modules}-{sc.link}"   # ISOs are reused across memory sizes
    work.mkdir(exist_ok=True)
    outcome = F.run_scenario(sc, work)
    OUTCOMES.append(outcome)
    assert outcome.error is None, outcome.error
    assert not outcome.mismatches, F.matrix_table([outcome])
    required = ({"load_base", "e820", "grub_pages"} if sc.loader == "xen-efi"
                else {"load_base", "e820", "files", "efi_map"} if sc.loader == "xen-efi-esp"
                else {"efi_map"} if sc.loader == "platform-q35-ovmf"
                else {"modules", "mmap", "mem_lower", "mem_upper", "mbi_address", "mbi_bytes"})
    assert required <= set(outcome.matched)


def test_matrix_table(capsys):
    """The matrix (scenario, matched fields, mismatches) of the scenarios that ran, printed; it
    fails when any of them errored or mismatched, or when a verified policy's scenarios ran and
    matched nothing."""
    if not OUTCOMES:
        unavailable("no fidelity scenario ran (selected out)")
    table = F.matrix_table(OUTCOMES)
    with capsys.disabled():
        print("\n" + table)
    bad = [o.scenario.name for o in OUTCOMES if o.error is not None or o.mismatches or not o.matched]
    assert not bad, f"scenarios that errored, mismatched or matched nothing: {', '.join(bad)}\n{table}"
