"""grub-pc-mb1 / grub-pc-mb2 / grub-efi-mb2 byte facts against what the real GRUB 2.06
handed the dump kernel (tests/data/mb-grub-*.dump, tests/data/README.md has the commands)."""

import json

import pytest

from conftest import BUILD, DATA, require
import fidelity as F


def _predict(loader, protocol, platform="qemu-pc-seabios:256M"):
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest
    require("ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))
    kernel = F.dump_kernel("1m", protocol)
    k = read_kernel(kernel, read_input(kernel))
    return k, policy(loader)(LoadRequest(k, "/boot/kernel", F.KERNEL_CMDLINE, [], resolve(platform), loader))


def test_mb1_elf_shndx_is_e_shstrndx():
    """multiboot_mbi.c grub_multiboot_add_elfsyms keeps the ELF header's e_shstrndx: the
    real GRUB i386-pc wrote shndx 7 (.shstrtab) for the dump kernel."""
    from bootforge.formats.multiboot import Multiboot1ElfSections, Multiboot1Info
    from bootforge.multiboot.dump import decode_dump
    seen = decode_dump((DATA / "mb-grub-pc-mb1.dump").read_bytes())[0]["multiboot1"]["elf_sections"]
    k, res = _predict("grub-pc-mb1", "mb1")
    syms = Multiboot1ElfSections.parse(Multiboot1Info.parse(res.mbi_bytes).syms)
    assert seen["shndx"] == k.shstrndx == 7
    assert (syms.num, syms.size, syms.shndx) == (seen["num"], seen["size"], seen["shndx"])


TBOOT = "/boot/tboot.gz"


def _far_kernel(tmp_path, paddr):
    """The higher-half test kernel of test_multiboot_entry with its segment at *paddr*."""
    import subprocess
    from test_multiboot_entry import HIGHER_HALF_LD, HIGHER_HALF_S
    require("as", "ld")
    (tmp_path / "k.S").write_text(HIGHER_HALF_S)
    (tmp_path / "k.ld").write_text(HIGHER_HALF_LD.replace("AT(0x100000)", f"AT({paddr:#x})"))
    subprocess.run(["as", "--64", "-o", tmp_path / "k.o", tmp_path / "k.S"], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-T", tmp_path / "k.ld", "--build-id=none", "-z",
                    "max-page-size=0x1000", "-o", tmp_path / "k.elf", tmp_path / "k.o"], check=True)
    return tmp_path / "k.elf"


def _recipe(tmp_path, kernel, loader, platform, name="/boot/kernel"):
    r = tmp_path / f"{loader}.toml"
    r.write_text(f'[load]\nkernel = "{kernel}"\nloader_path = "{name}"\ncmdline = "x"\nplatform = "{platform}"\n'
                 f'loader = "{loader}"\n')
    return r


def test_fixed_target_beyond_ram(tmp_path):
    """A segment at 512 MiB on a 256 MiB machine: i386-pc says "out of memory." (real GRUB,
    below); x86_64-efi stages it in the highest conventional page below 4 GiB and copies it to
    where no RAM is (real GRUB, below: no fault), which the placement check reports (exit 1)."""
    from conftest import run_bootforge
    k = _far_kernel(tmp_path, 0x20000000)
    proc = run_bootforge("load", _recipe(tmp_path, k, "grub-pc-mb2", "qemu-pc-seabios:256M"))
    assert proc.returncode == 2 and "out of memory" in proc.stderr
    proc = run_bootforge("load", _recipe(tmp_path, k, "grub-efi-mb2", "qemu-q35-ovmf:256M"))
    assert proc.returncode == 1 and "kernel segment 0 [0x20000000, 0x2000001c) is not wholly in usable memory" \
        in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.qemu
def test_real_grub_efi_enters_a_kernel_linked_beyond_ram(tmp_path):
    """GRUB x86_64-efi on OVMF at 256M with the segment at 512 MiB: no page fault (OVMF's page
    tables map the whole address space); GRUB enters 0x20000018 with the MBI at 0x4000, every
    field and the MBI bytes as predicted (the staging page at 0xfe80000 shows in tag 17)."""
    from conftest import run_bootforge
    from bootforge.qemu import host
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_X86_64_EFI, host.OVMF_CODE)
    k = _far_kernel(tmp_path, 0x20000000)
    proc = run_bootforge("verify", "--json", "-q", _recipe(tmp_path, k, "grub-efi-mb2", "qemu-q35-ovmf:256M"))
    doc = json.loads(proc.stdout)
    assert doc["status"] == "entry" and doc["registers"]["rip"] == 0x20000018, doc
    assert doc["mismatches"] == [] and doc["mbi_bytes"]["match"], doc["mismatches"]


def test_efi_fixed_target_over_acpi_nvs_loads():
    """tboot 1.10.5 (Debian) links at 0x800000, where OVMF has ACPI NVS pages: GRUB x86_64-efi
    stages the bytes and copies them over it (relocator.c checks targets against chunks only);
    the placement check names the firmware memory it overwrites."""
    from conftest import run_bootforge
    require(TBOOT)
    proc = run_bootforge("load", "--json", TBOOT, "--platform", "qemu-q35-ovmf:512M", "--loader", "grub-efi-mb2")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr          # the in-usable-memory check fails: NVS overwritten
    seg = next(p for p in doc["placements"] if p["name"] == "kernel segment 0")
    assert (seg["start"], doc["entry"]["address"]) == (0x800000, 0x804000)
    bad = [c for c in doc["checks"] if not c["ok"]]
    assert [c["subject"] for c in bad] == ["placement-in-usable-memory"]


@pytest.mark.qemu
def test_real_grub_pc_out_of_memory(tmp_path):
    from conftest import run_bootforge
    from bootforge.qemu import host
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    k = _far_kernel(tmp_path, 0x20000000)
    proc = run_bootforge("verify", "--json", "-q", _recipe(tmp_path, k, "grub-pc-mb2", "qemu-pc-seabios:256M"))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["status"] == "refused" and "out of memory." in json.dumps(doc)


@pytest.mark.qemu
def test_real_grub_efi_loads_tboot_over_acpi_nvs(tmp_path):
    """The real GRUB x86_64-efi enters tboot at 0x804000 with every predicted field matching
    (MBI at 0x2000, the 18-entry map, tag 17's conversion; 11 s on OVMF)."""
    from conftest import run_bootforge
    from bootforge.qemu import host
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_X86_64_EFI, host.OVMF_CODE,
            TBOOT)
    proc = run_bootforge("verify", "--json", "-q", _recipe(tmp_path, TBOOT, "grub-efi-mb2", "qemu-q35-ovmf:512M",
                                                           name="/boot/tboot.gz"))
    doc = json.loads(proc.stdout)
    assert doc["status"] == "entry" and doc["registers"]["rip"] == 0x804000, doc
    assert doc["mismatches"] == [], doc["mismatches"]


def test_chunks_after_a_staged_target_keep_off_it():
    """On the Dell R820's EFI map the dump kernel's 0x100000 is not conventional memory, so GRUB
    x86_64-efi stages the segment; the staging copy may use the target's pages (tboot's does, on
    the real GRUB above), but the ELF sections, modules and MBI allocated after it do not."""
    from conftest import REPO, run_bootforge
    doc = json.loads(run_bootforge("load", "--json", REPO / "recipes" / "load-grub-pc-mb2.toml", "--platform",
                                   "r820-efi", "--loader", "grub-efi-mb2", check=0).stdout)
    placed = {p["name"]: p for p in doc["placements"]}
    target = placed["kernel segment 0"]
    assert "over firmware memory" in target["rule"]
    later = [p for p in doc["placements"] if p["kind"] in ("boot-info", "module", "mbi")]
    assert later and all(p["end"] <= target["start"] or p["start"] >= target["end"] for p in later), later
