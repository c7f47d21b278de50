"""`bootforge load` with linux-efi-stub against what Debian's kernel printed under OVMF
(tests/data/linux-ovmf/, commands in tests/data/README.md): the E820 table byte for
byte as dmesg shows it, the decompressed kernel's Loader Code block, the "Memory"
total, the initrd's size and bounds; for the kernel itself, a bootforge UKI and an
objcopy UKI. No QEMU here: tests/test_uki_qemu.py boots a few of these again."""

import json
import re
from pathlib import Path

import pytest

from conftest import DATA, assert_one_line_error, require, run_bootforge
from test_uki_build import CMDLINE, INITRD_SIZE, KERNEL, bootforge_uki, make_initrd, objcopy_uki

from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-ovmf"
PAGE = 4096
EFI_LOADER_CODE = 1


def fixture_cases():
    """(fixture name, memory, what was booted) for every kept boot."""
    out = []
    for p in sorted(FIXTURES.glob("*.txt")):
        m = re.fullmatch(r"(kernel|kernel-initrd|objcopy-uki|objcopy-uki-esp|bootforge-uki|bootforge-uki-esp)-(\d+[MG])",
                         p.stem)
        out.append((p.stem, m.group(2), m.group(1)))
    return out


def load_recipe(directory, kernel, memory, initrd=None):
    lines = ["[load]", f'kernel = "{kernel}"', f'platform = "qemu-q35-ovmf:{memory}"', 'loader = "linux-efi-stub"']
    if "uki" not in Path(kernel).name:          # a UKI brings its own (.cmdline)
        lines.append(f'cmdline = "{CMDLINE}"')
    if initrd:
        lines += ["[[load.modules]]", f'path = "{initrd}"']
    p = Path(directory) / "load.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def predict(tmp_path, what, memory):
    """(JSON report, dmesg lines of --map-out e820-dmesg) for the boot *what* at *memory*."""
    require(KERNEL)
    if what.startswith("bootforge-uki"):
        kernel, initrd = bootforge_uki(tmp_path), None
    elif what.startswith("objcopy-uki"):
        kernel, initrd = objcopy_uki(tmp_path), None
    elif what == "kernel-initrd":
        kernel, initrd = KERNEL, make_initrd(tmp_path / "initrd.img")
    else:
        kernel, initrd = KERNEL, None
    recipe = load_recipe(tmp_path, kernel, memory, initrd)
    out = tmp_path / "e820.txt"
    proc = run_bootforge("load", recipe, "--json", "--map-out", out, "--map-format", "e820-dmesg", check=0)
    return json.loads(proc.stdout), out.read_text()


@pytest.mark.parametrize("name,memory,what", fixture_cases())
def test_prediction_equals_the_kernels_own_words(tmp_path, name, memory, what):
    log = parse_kernel_log((FIXTURES / f"{name}.txt").read_text())
    report, dmesg = predict(tmp_path, what, memory)
    # 1. the E820 table exactly as the kernel printed it (sorted by the kernel)
    printed = [f"BIOS-e820: [mem {a:#018x}-{b:#018x}] {t}" for a, b, t in log.e820]
    assert dmesg.splitlines() == printed
    # 2. the decompressed kernel: a Loader Code block in the EFI map the kernel was handed
    kernel = next(p for p in report["placements"] if p["kind"] == "kernel")
    assert (EFI_LOADER_CODE, kernel["start"], kernel["end"]) in log.efi
    # 3. "Memory: X/YK available": Y exact, X below it
    assert report["linux"]["memory_total_kib"] == log.memory_kib[1]
    assert log.memory_kib[0] < log.memory_kib[1]
    # 4. the initrd: size exact (RAMDISK ends at the page-aligned end), address inside the bounds
    if what == "kernel":
        assert log.ramdisk is None and report["linux"]["initrd_size"] == 0
    else:
        assert report["linux"]["initrd_size"] == INITRD_SIZE
        start, last = log.ramdisk
        assert last + 1 - start == -(-INITRD_SIZE // PAGE) * PAGE
        bounds = report["linux"]["initrd_bounds"]
        assert bounds["above"] <= start and last < bounds["below"]
    assert report["linux"]["boot_path"] == ("uki" if "uki" in what else "efi-stub")
    assert report["mbi"]["cmdline"] == log.command_line       # a UKI's from .cmdline
    # 5. setup_data: the SETUP_PCI node of q35's VGA ROM, as large as predicted, where the bounds allow
    nodes = log.setup_data_nodes()
    predicted = report["linux"]["setup_data"]
    assert [n["size"] for n in predicted] == [size for _, size in nodes]
    assert all(kernel["end"] <= start < 1 << 32 for start, _ in nodes)


def test_setup_pci_node_holds_the_vga_rom():
    """The SETUP_PCI node's size is the header plus struct pci_setup_rom plus QEMU's std VGA ROM
    as Debian ships it (seabios's vgabios-stdvga.bin)."""
    rom = Path("/usr/share/seabios/vgabios-stdvga.bin")
    require(str(rom))
    for name, _, _ in fixture_cases():
        assert [size for _, size in parse_kernel_log((FIXTURES / f"{name}.txt").read_text()).setup_data_nodes()] \
            == [16 + 48 + rom.stat().st_size], name


def test_both_e820_orders_in_json_and_the_kernel_sorts(tmp_path):
    """At 3G the firmware's map lists RAM above 4 GiB before the 32-bit MMIO holes: boot_params
    keeps that order, the kernel prints it sorted (fixture kernel-3G)."""
    require(KERNEL)
    log = parse_kernel_log((FIXTURES / "kernel-3G.txt").read_text())
    proc = run_bootforge("load", load_recipe(tmp_path, KERNEL, "3G"), "--json", check=0)
    report = json.loads(proc.stdout)
    handed = [(e["start"], e["size"]) for e in report["mbi"]["mmap"]]
    printed = [(e["start"], e["size"]) for e in report["maps"]["e820-printed"]["entries"]]
    assert handed != printed and sorted(handed) == printed
    assert printed == [(a, b + 1 - a) for a, b, _ in log.e820]
    # boot_params order is the EFI map's order, which the kernel printed (efi: memNN)
    ram_above_4g = next(i for i, (t, a, b) in enumerate(log.efi) if a == 1 << 32)
    mmio = next(i for i, (t, a, b) in enumerate(log.efi) if a == 0xB0000000)
    assert ram_above_4g < mmio
    assert handed.index((1 << 32, 1 << 30)) < handed.index((0xB0000000, 0x10000000))


def test_a_kernel_without_the_efi_stub_is_refused(tmp_path):
    require(KERNEL)
    data = bytearray(Path(KERNEL).read_bytes())
    data[0:2] = b"\xeb\x3c"
    (tmp_path / "bz").write_bytes(bytes(data))
    assert_one_line_error(run_bootforge("load", load_recipe(tmp_path, tmp_path / "bz", "512M")), "no PE header")


def test_an_efi_map_file_is_a_platform(tmp_path):
    """The EFI map the kernel printed at 512M, as a platform: the same kernel block and E820."""
    log = parse_kernel_log((FIXTURES / "kernel-512M.txt").read_text())
    names = ["reserved", "ldr-code", "ldr-data", "BS-code", "BS-data", "RT-code", "RT-data", "conv-mem",
             "unusable", "ACPI-rec", "ACPI-nvs", "MMIO"]
    # GRUB lsefimmap text, which bootforge reads as a platform (the kernel's own block made free again)
    lines = ["Type      Physical start  - end             #Pages        Size Attributes"]
    for t, a, b in log.efi:
        t = 7 if t == EFI_LOADER_CODE and a == 0x1600000 else t
        lines.append(f"{names[t]:<9} {a:016x}-{b - 1:016x} {(b - a) // PAGE:08x} {(b - a) >> 10:>8}KiB WB")
    (tmp_path / "map.lsefimmap").write_text("\n".join(lines) + "\n")
    recipe = load_recipe(tmp_path, KERNEL, "512M").read_text().replace('"qemu-q35-ovmf:512M"', '"map.lsefimmap"')
    (tmp_path / "load.toml").write_text(recipe)
    proc = run_bootforge("load", tmp_path / "load.toml", "--json", check=0)
    report = json.loads(proc.stdout)
    kernel = next(p for p in report["placements"] if p["kind"] == "kernel")
    assert (kernel["start"], kernel["end"]) == (0x1600000, 0x5600000)
    assert report["linux"]["memory_total_kib"] == log.memory_kib[1]


@pytest.mark.parametrize("memory", ["192M", "1G", "5G"])
def test_efi_map_at_exit_where_predicted(tmp_path, memory):
    """The EFI map the kernel was handed: every descriptor that is not RAM (reserved, runtime,
    ACPI, MMIO) is where the prediction has it, and so is the kernel's Loader Code block;
    the RAM descriptors (loader, boot services, conventional) cover the same bytes."""
    log = parse_kernel_log((FIXTURES / f"kernel-{memory}.txt").read_text())
    report, _ = predict(tmp_path, "kernel", memory)
    ram = {1, 2, 3, 4, 7}
    predicted = [(e["efi_type"], e["start"], e["start"] + e["size"]) for e in report["maps"]["efi-at-exit"]["entries"]]
    assert [d for d in log.efi if d[0] not in ram] == [d for d in predicted if d[0] not in ram]
    kernel = next(p for p in report["placements"] if p["kind"] == "kernel")
    assert (EFI_LOADER_CODE, kernel["start"], kernel["end"]) in predicted

    def covered(descs):
        spans = sorted((a, b) for t, a, b in descs if t in ram)
        merged = []
        for a, b in spans:
            if merged and merged[-1][1] == a:
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return merged
    assert covered(log.efi) == covered(predicted)


@pytest.mark.parametrize("name,memory,what", fixture_cases())
def test_what_is_only_bounded_stays_in_its_bounds(name, memory, what):
    """The report bounds the stub's other allocations (the image OVMF loaded, boot_params, the
    command line, the initrd, setup_data): Loader Code/Data pages above the kernel, below 4 GiB,
    none in low memory; the initrd inside one of them."""
    log = parse_kernel_log((FIXTURES / f"{name}.txt").read_text())
    kernel = (EFI_LOADER_CODE, 0x1600000, 0x5600000)
    loader = [d for d in log.efi if d[0] in (1, 2) and d != kernel]
    assert loader and all(kernel[2] <= a and b <= 1 << 32 for _, a, b in loader)
    if log.ramdisk:
        start, last = log.ramdisk
        assert any(t == 2 and a <= start and last < b for t, a, b in log.efi)
