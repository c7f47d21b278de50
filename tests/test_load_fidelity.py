"""Fidelity: the real loaders decide. Each scenario boots the dump kernel under a
real loader in QEMU and compares, field for field, the boot information it
received with `bootforge load`'s prediction for the same platform, kernel,
modules and names (bootforge/loader/fidelity.py). `make fidelity` runs this
file and prints the matrix."""

import pytest

from conftest import BUILD, require
from bootforge.loader import fidelity as F


SCENARIOS = (
    [F.Scenario("qemu-mb1", m, n, k) for m in F.MEMORY_SIZES for n in F.MODULE_SETS for k in F.LINKS]
    + [F.Scenario(l, m, n, k) for l in ("grub-pc-mb1", "grub-pc-mb2") for m in F.MEMORY_SIZES
       for n in F.MODULE_SETS for k in F.LINKS]
    + [F.Scenario("syslinux-mb1", m, n, k) for m in F.MEMORY_SIZES for n in F.MODULE_SETS for k in F.LINKS]
    # iPXE boots take ~6 s (DHCP + TFTP): every module set at 256M, and the memory sizes with one module.
    + [F.Scenario("ipxe-pcbios-mb1", "256M", n, k) for n in F.MODULE_SETS for k in F.LINKS]
    + [F.Scenario("ipxe-pcbios-mb1", m, 1, "1m") for m in F.MEMORY_SIZES if m != "256M"]
    # GRUB x86_64-efi on OVMF (q35): the platform is GRUB's own `lsefimmap` just before loading,
    # and tag 6 must also follow from the dump's tag 17 (field mmap_from_tag17). Xen 4.17 (xen.gz)
    # through GRUB on OVMF: its printed load base and "EFI RAM map:", and GRUB's pages. The
    # parametric qemu-q35-ovmf:<mem> profile (+ GRUB's heap) against lsefimmap at 768M and 4G.
    + F.EFI_SCENARIOS
)
OUTCOMES = []


def _needs(loader):
    require("qemu-system-x86_64", "ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))
    if loader.startswith("grub-pc"):
        require("grub-mkrescue", "xorriso", "mformat", "/usr/lib/grub/i386-pc")
    if loader.startswith("syslinux"):
        require("xorriso", "/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/mboot.c32")
    if loader.startswith("ipxe"):
        require(F.IPXE_ROM)
    if loader.startswith("grub-efi") or loader in ("xen-efi", "platform-q35-ovmf"):
        require(F.OVMF_CODE, F.OVMF_VARS, "/usr/lib/grub/x86_64-efi", "grub-mkrescue", "xorriso", "mformat")
    if loader == "xen-efi":
        require(F.XEN_GZ)


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    return tmp_path_factory.mktemp("fidelity")


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name.replace(" ", "_"))
def test_fidelity(sc, workroot):
    _needs(sc.loader)
    work = workroot / f"{sc.loader}-{sc.modules}-{sc.link}"   # ISOs are reused across memory sizes
    work.mkdir(exist_ok=True)
    outcome = F.run_scenario(sc, work)
    OUTCOMES.append(outcome)
    assert outcome.error is None, outcome.error
    assert not outcome.mismatches, F.matrix_table([outcome])
    required = ({"load_base", "e820", "grub_pages"} if sc.loader == "xen-efi"
                else {"efi_map"} if sc.loader == "platform-q35-ovmf"
                else {"modules", "mmap", "mem_lower", "mem_upper", "mbi_address"})
    assert required <= set(outcome.matched)


def test_matrix_table(capsys):
    """Print the matrix (scenario, matched fields, mismatches) of the scenarios that ran."""
    if not OUTCOMES:
        pytest.skip("no fidelity scenario ran")
    with capsys.disabled():
        print("\n" + F.matrix_table(OUTCOMES))
