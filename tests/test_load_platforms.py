"""Platform profiles against the captures they were derived from (no QEMU needed here;
tests/test_load_fidelity.py checks fresh boots at sizes the profiles never saw)."""

import pytest

from conftest import DATA
from bootforge.loader.platforms import PLATFORM_DIR, parse_lsefimmap, qemu_pc_seabios, qemu_q35_ovmf, resolve
from bootforge.loader.policies.grub_efi import with_grub_heap


def _keys(m):
    return [(r.start, r.size, r.type, r.attributes) for r in m.ranges]


@pytest.mark.parametrize("mib", [256, 512, 1024, 2048, 3072, 5120])
def test_q35_ovmf_profile_equals_captures(mib):
    """512M and 3072M are the templates; 256M, 1G, 2G and 5G are predictions."""
    path = (PLATFORM_DIR / "qemu-q35-ovmf-512M.lsefimmap") if mib == 512 else DATA / f"load-ovmf-q35-{mib}M.lsefimmap"
    want = parse_lsefimmap(path.read_text())
    got, heap = with_grub_heap(qemu_q35_ovmf(mib << 20))
    assert heap is not None
    assert _keys(got) == _keys(want)


@pytest.mark.parametrize("fixture,mib", [("memmap-qemu-seabios-m256.txt", 256), ("memmap-qemu-seabios-m4096.txt", 4096)])
def test_seabios_profile_equals_seabios_logs(fixture, mib):
    text = (DATA / fixture).read_text()
    entries = []
    for line in text.splitlines()[1:]:
        rng, typ = line.split("=")
        a, b = rng.split(":")[1].split("-")
        entries.append((int(a, 16), int(b, 16) - int(a, 16), int(typ.split()[0])))
    assert [(r.start, r.size, r.type) for r in qemu_pc_seabios(mib << 20).memory_map.ranges] == entries


def test_platform_names():
    assert resolve("qemu-q35-ovmf:1G").memory_map.family == "efi"
    assert resolve("qemu-pc-seabios:3.5G").memory_bytes == 3584 << 20
    assert resolve("r820-efi").firmware == "uefi"
