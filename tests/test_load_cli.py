"""`bootforge load` through the CLI: the report, JSON, MBI bytes, maps, SVG, the
recipe forms (explicit, grub.cfg, isolinux.cfg, QEMU arguments) and bad input."""

import json
import struct

import pytest

from conftest import DATA, REPO, assert_one_line_error, run_bootforge

ROOT = DATA / "load-root"


def load_json(*args):
    proc = run_bootforge("load", *args, "--json", check=0)
    return json.loads(proc.stdout)


def test_grub_pc_mb2_report_and_json():
    doc = load_json("recipes/load-grub-pc-mb2.toml")
    mbi = doc["mbi"]
    # The facts GRUB 2.06 i386-pc produced for this kernel (tests/test_load_fidelity.py boots it).
    assert mbi["address"] == 0x1016E0
    assert [(m["start"], m["end"], m["cmdline"]) for m in mbi["modules"]] == [
        (0x103000, 0x103BB8, "mod1-args"), (0x104000, 0x115171, "mod2 args two")]
    assert (mbi["mem_lower"], mbi["mem_upper"]) == (639, 0x3FB80)
    assert mbi["cmdline"] == "kernel-args a=b"
    assert mbi["mmap"][3] == {"start": 0x100000, "size": 0xFEE0000, "type": 1}
    assert {p["rule"] for p in doc["placements"]} and all(
        {"name", "start", "end", "rule"} <= set(p) for p in doc["placements"])
    assert all(c["ok"] for c in doc["checks"]) and len(doc["checks"]) >= 6
    # Issue 15 item 13: the map the kernel is given has its own key (7 entries at -m 256 on
    # qemu-system-x86_64, as in the MBI), the retyped view is named so.
    handed = [(e["start"], e["size"], e["e820_type"]) for e in doc["maps"]["handed-to-kernel"]["entries"]]
    assert handed == [(e["start"], e["size"], e["type"]) for e in mbi["mmap"]] and len(handed) == 7
    assert "input-retyped" in doc["maps"] and "output" not in doc["maps"]
    text = run_bootforge("load", "recipes/load-grub-pc-mb2.toml", check=0).stdout
    assert "module 1: [0x104000, 0x115171) 'mod2 args two'" in text


def test_mbi_bytes_mb2(tmp_path):
    out = tmp_path / "mbi.bin"
    run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--mbi-out", out, check=0)
    data = out.read_bytes()
    total = struct.unpack_from("<I", data)[0]
    assert total == len(data) == 856
    from bootforge.multiboot.dump import decode_mb2_info
    tags = decode_mb2_info(data)["tags"]
    assert [t["type"] for t in tags] == [21, 1, 2, 10, 3, 3, 6, 9, 4, 5, 8, 14, 0]
    mods = [t for t in tags if t["type"] == 3]
    assert (mods[1]["mod_start"], mods[1]["string"]) == (0x104000, "mod2 args two")


def test_mbi_bytes_mb1_qemu(tmp_path):
    out = tmp_path / "mbi.bin"
    run_bootforge("load", "recipes/load-qemu.toml", "--mbi-out", out, check=0)
    flags, lower, upper = struct.unpack_from("<III", out.read_bytes())
    assert (flags, lower, upper) == (0x24F, 639, 0x1FB80)


def test_config_forms_agree():
    explicit = load_json("recipes/load-grub-pc-mb2.toml")["mbi"]
    from_cfg = load_json("recipes/load-grub-cfg.toml")["mbi"]
    assert explicit == from_cfg
    iso = load_json("recipes/load-isolinux.toml")["mbi"]
    assert iso["address"] == 0x2000
    assert iso["cmdline"] == "/boot/kernel-mb1 kernel-args a=b"
    assert [m["cmdline"] for m in iso["modules"]] == ["/boot/mod1 mod1-args", "/boot/mod2 mod2 args two"]
    assert iso["mmap"][6] == {"start": 1 << 32, "size": 0x80000000, "type": 1}      # 5G: RAM above 4 GiB
    qemu = load_json("recipes/load-qemu.toml")["mbi"]
    assert qemu["cmdline"] == "tests/data/load-root/boot/kernel-mb1 kernel-args a=b"
    assert [m["start"] for m in qemu["modules"]] == [0x104000, 0x105000]


@pytest.mark.parametrize("loader", ["grub-pc-mb1", "syslinux-mb1", "qemu-mb1", "ipxe-pcbios-mb1"])
def test_loader_override(loader, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{ROOT}/boot/kernel-mb1"\ncmdline = "x"\n'
                      f'platform = "qemu-pc-seabios:1G"\nloader = "grub-pc-mb2"\n'
                      f'[[load.modules]]\npath = "{ROOT}/boot/mod1"\n')
    doc = load_json(recipe, "--loader", loader)
    assert doc["loader"] == loader and doc["mbi"]["mem_upper"] == 0xFFB80
    assert doc["mbi"]["modules"][0]["start"] % 4096 == 0


def test_platform_parametric_pci_hole():
    doc = load_json("recipes/load-grub-pc-mb2.toml", "--platform", "qemu-pc-seabios:3.5G")
    mmap = [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]]
    assert (0x100000, 0xBFEE0000, 1) in mmap and (1 << 32, 0x20000000, 1) in mmap
    assert doc["mbi"]["mem_upper"] == 0x2FFB80


def test_map_out_and_svg(tmp_path):
    m, s = tmp_path / "map.txt", tmp_path / "load.svg"
    run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--map-out", m, "--map-format", "e820-dmesg",
                  "--svg", s, check=0)
    assert "BIOS-e820: [mem 0x0000000000100000-0x000000000ffdffff] usable" in m.read_text()
    svg = s.read_text()
    assert svg.startswith("<svg") and "module 1 /boot/mod2 0x104000" in svg and "Multiboot2 information" in svg


def test_relocatable_kernel(tmp_path):
    from conftest import require
    require(str(REPO / "build" / "stubs" / "mbdump.elf"))
    from bootforge.multiboot.build import build_kernel_recipe
    kernel = tmp_path / "reloc.elf"
    build_kernel_recipe(tmp_path / "k.toml", {"kernel": {
        "input": str(REPO / "build" / "stubs" / "mbdump.elf"), "protocol": "multiboot2",
        "multiboot2": {"relocatable": {"min_addr": 0x200000, "max_addr": 0x10000000, "align": 0x200000,
                                       "preference": "low"}}}}, kernel)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{kernel}"\nplatform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    doc = load_json(recipe)
    image = next(p for p in doc["placements"] if p["name"] == "relocatable image")
    assert image["start"] == 0x200000


# ---------------------------------------------------------------- bad input

def _recipe(tmp_path, body):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    return p


def test_unknown_key(tmp_path):
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel"\nplatform = "qemu-pc-seabios:256M"\n'
                          'loader = "grub-pc-mb2"\nkernal_args = "x"\n')
    assert_one_line_error(run_bootforge("load", p), str(p), "unknown key(s): kernal_args")


def test_unknown_module_key(tmp_path):
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel"\nplatform = "qemu-pc-seabios:256M"\n'
                          f'loader = "grub-pc-mb2"\n[[load.modules]]\npath = "{ROOT}/boot/mod1"\nsize = 3\n')
    assert_one_line_error(run_bootforge("load", p), "unknown key(s): size")


def test_missing_files(tmp_path):
    p = _recipe(tmp_path, '[load]\nkernel = "nope.elf"\nplatform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    assert_one_line_error(run_bootforge("load", p), "nope.elf")
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel"\nplatform = "qemu-pc-seabios:256M"\n'
                          'loader = "grub-pc-mb2"\n[[load.modules]]\npath = "missing.bin"\n')
    assert_one_line_error(run_bootforge("load", p), "missing.bin")
    assert_one_line_error(run_bootforge("load", tmp_path / "none.toml"), "none.toml")


def test_module_larger_than_ram(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(300 << 20)                       # sparse: 300 MiB on a 256 MiB machine
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel"\nplatform = "qemu-pc-seabios:256M"\n'
                          f'loader = "grub-pc-mb2"\n[[load.modules]]\npath = "{big}"\n')
    assert_one_line_error(run_bootforge("load", p), str(p), "couldn't find suitable memory target")


@pytest.mark.parametrize("reloc,words", [
    ({"min_addr": 0x10000000, "max_addr": 0x200000, "align": 0x1000}, "invalid min/max address"),
    ({"min_addr": 0x200000, "max_addr": 0x10000000, "align": 0}, "align 0"),
])
def test_impossible_relocation(tmp_path, reloc, words):
    from conftest import require
    require(str(REPO / "build" / "stubs" / "mbdump.elf"))
    from bootforge.multiboot.build import build_kernel_recipe
    kernel = tmp_path / "reloc.elf"
    build_kernel_recipe(tmp_path / "k.toml", {"kernel": {
        "input": str(REPO / "build" / "stubs" / "mbdump.elf"), "protocol": "multiboot2",
        "multiboot2": {"relocatable": reloc}, "testing": {"allow_refusal": True}}}, kernel)
    p = _recipe(tmp_path, f'[load]\nkernel = "{kernel}"\nplatform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    assert_one_line_error(run_bootforge("load", p), str(p), words)


@pytest.mark.parametrize("platform,words", [
    ("qemu-pc-seabios", "needs a memory size"), ("qemu-pc-seabios:lots", "cannot read the memory size"),
    ("qemu-pc-seabios:8M", "at least 16 MiB"), ("mars-efi", "unknown platform"),
])
def test_bad_platform(platform, words):
    assert_one_line_error(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--platform", platform), words)


def test_bad_loader_and_refusals():
    assert_one_line_error(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--loader", "lilo"),
                          "unknown loader 'lilo'")
    # QEMU refuses a kernel without a Multiboot1 header, in its own words.
    assert_one_line_error(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--loader", "qemu-mb1"),
                          "Error loading uncompressed kernel without PVH ELF Note")


def test_bad_config_forms(tmp_path):
    p = _recipe(tmp_path, f'[load]\ngrub_cfg = "{ROOT}/boot/grub/grub.cfg"\nentry = "nope"\n'
                          'platform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    assert_one_line_error(run_bootforge("load", p), "no menuentry 'nope'")
    p = _recipe(tmp_path, '[load]\nqemu_args = "-append x"\nplatform = "qemu-pc-seabios:256M"\nloader = "qemu-mb1"\n')
    assert_one_line_error(run_bootforge("load", p), "no -kernel")
    p = _recipe(tmp_path, '[load]\nplatform = "qemu-pc-seabios:256M"\nloader = "qemu-mb1"\n')
    assert_one_line_error(run_bootforge("load", p), "needs exactly one of kernel")
    p = _recipe(tmp_path, "[load\n")
    assert_one_line_error(run_bootforge("load", p), "not valid TOML")


# ---------------------------------------------------------------- EFI platforms, Xen

XEN = "/boot/xen-4.17-amd64.gz"


def test_xen_efi_matches_recorded_xen(tmp_path):
    """Xen 4.17's own console output (tests/data/load-xen-4.17-ovmf-q35-512m.txt, recorded by
    the fidelity harness on the same OVMF map) against the prediction; the live boot is in
    tests/test_load_fidelity.py."""
    from conftest import require
    require(XEN)
    text = (DATA / "load-xen-4.17-ovmf-q35-512m.txt").read_text()
    doc = load_json("recipes/load-xen-efi.toml")
    image = next(p for p in doc["placements"] if p["name"].startswith("Xen image"))
    assert "Xen image load base address: 0x1dc00000" in text
    assert image["start"] - 0x200000 == 0x1DC00000
    printed = []
    for line in text.split("EFI RAM map:", 1)[1].splitlines()[1:]:
        if "[" not in line:
            break
        a, b = line.split("[", 1)[1].split("]", 1)[0].split(", ")
        printed.append((int(a, 16), int(b, 16) + 1 - int(a, 16)))
    assert [(e["start"], e["size"]) for e in doc["mbi"]["mmap"]] == printed
    assert all(c["ok"] for c in doc["checks"])


def test_xen_efi_r820_trampoline_by_map_scan():
    from conftest import require
    require(XEN)
    doc = load_json("recipes/load-xen-efi.toml", "--platform", "r820-efi")
    tramp = next(p for p in doc["placements"] if p["name"].startswith("trampoline"))
    # Boot services own all of the first 640 KiB: AllocateMaxAddress fails, the map scan takes
    # the top of the highest boot-services region ending <= 1 MiB.
    assert tramp["start"] == 0x9D000 and tramp["rule"].startswith("map scan")
    image = next(p for p in doc["placements"] if p["name"].startswith("Xen image"))
    assert image["start"] % (2 << 20) == 0 and image["end"] <= 1 << 32
    assert len(load_json("recipes/load-xen-efi.toml", "--platform", "r820-efi")["maps"]["efi-at-exit"]["entries"]) > 200


def test_no_memory_for_trampoline(tmp_path):
    from conftest import require
    require(XEN)
    m = tmp_path / "high-only.json"
    m.write_text(json.dumps({"family": "efi", "entries": [
        {"start": 0, "size": 0x100000, "type": "reserved", "attributes": 0},
        {"start": 0x100000, "size": 0x3FF00000, "type": "conventional", "attributes": 15}]}))
    assert_one_line_error(run_bootforge("load", "recipes/load-xen-efi.toml", "--platform", m),
                          "No memory for trampoline")


def test_r820_platform_is_generated():
    from bootforge.loader.platforms import PLATFORM_DIR, build_r820_map
    from bootforge.memmap.io import map_to_json
    doc = json.loads((PLATFORM_DIR / "r820-efi.json").read_text())
    assert doc["entries"] == map_to_json(build_r820_map())["entries"]
    assert len(doc["entries"]) >= 200
    assert all(e["type"].startswith("boot-services") for e in doc["entries"][:3])


def test_limine_rules():
    # Observed with the real Limine 11.4.1 on SeaBIOS at 256M (issue 13): MBI at 0x10000 of
    # 0x338 bytes, the modules after the kernel's three symbol-table pages.
    doc = load_json("recipes/load-grub-pc-mb2.toml", "--loader", "limine-mb2")
    assert doc["mbi"]["address"] == 0x10000
    assert doc["mbi"]["size"] == 0x338
    assert [m["start"] for m in doc["mbi"]["modules"]] == [0x106000, 0x107000]
    assert_one_line_error(run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--loader", "limine-mb1"),
                          "multiboot1: Invalid magic")


def test_linux_efi_stub_e820():
    # The stub starts a Linux kernel only (issue 14): Debian's, as recipes/uki-load-ovmf.toml names it.
    from conftest import require
    require("/boot/vmlinuz-6.1.0-57-amd64")
    doc = load_json("recipes/uki-load-ovmf.toml", "--platform", "r820-efi")
    from bootforge.loader.platforms import build_r820_map
    from bootforge.memmap.convert import efi_to_e820
    want = [(r.start, r.size, r.type) for r in efi_to_e820(build_r820_map(), "linux").ranges]
    assert [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]] == want
    assert doc["mbi"]["mmap"][0] == {"start": 0, "size": 0x9F000, "type": 1}


# After a Multiboot exec iPXE has unhooked INT 15h: E820 is SeaBIOS's own again (the PXE probe saw
# it after PXENV_STOP_UNDI, which shuts down the same way); only san-boot keeps its ranges hidden.
@pytest.mark.parametrize("outcome,hidden_after", [("boot", 0), ("boot-failure", 0), ("san-boot", 3)])
def test_ipxe_self_placement_and_outcomes(tmp_path, outcome, hidden_after):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{ROOT}/boot/kernel-mb1"\ncmdline = "x"\nplatform = "qemu-pc-seabios:256M"\n'
                      f'loader = "ipxe-pcbios-mb1"\n[load.options]\nipxe_outcome = "{outcome}"\n'
                      f'ipxe_old_start = 0x12345\n[[load.modules]]\npath = "{ROOT}/boot/mod1"\n')
    doc = load_json(recipe)
    text = next(p for p in doc["placements"] if p["name"] == "iPXE text/data (relocated)")
    assert text["end"] <= 0xFFE0000 and text["start"] % 4096 == 0x345           # keeps addr mod 4096
    running = doc["maps"]["e820-while-ipxe-runs"]["entries"]
    usable = [(e["start"], e["start"] + e["size"]) for e in running if e["type"] == "ram"]
    assert not any(a < text["end"] and text["start"] < b for a, b in usable)      # hidden while iPXE runs
    assert (0, 625 * 1024) in usable                          # 40:13 lowered 639 -> 625 (the PXE probe saw it)
    after = doc["maps"][f"e820-after-{outcome}"]["entries"]
    ram_after = sum(e["size"] for e in after if e["type"] == "ram")
    ram_before = sum(e["size"] for e in doc["maps"]["input-retyped"]["entries"]) and \
        sum(s for _a, s, t in [(e["start"], e["size"], e["type"]) for e in doc["mbi"]["mmap"]])
    assert (ram_after == ram_before) == (hidden_after == 0)
    assert all(c["ok"] for c in doc["checks"])


def test_bad_options(tmp_path):
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel-mb1"\nplatform = "qemu-pc-seabios:256M"\n'
                          'loader = "ipxe-pcbios-mb1"\n[load.options]\nipxe_outcome = "reboot"\n')
    assert_one_line_error(run_bootforge("load", p), "ipxe_outcome must be one of")
    p = _recipe(tmp_path, f'[load]\nkernel = "{ROOT}/boot/kernel-mb1"\nplatform = "qemu-pc-seabios:256M"\n'
                          'loader = "ipxe-pcbios-mb1"\n[load.options]\nspeed = 3\n')
    assert_one_line_error(run_bootforge("load", p), "unknown key(s): speed")


def test_readme_svg_is_current(tmp_path):
    """tests/data/load-grub-pc-mb2.svg (shown in the README) is what the command draws today."""
    out = tmp_path / "now.svg"
    run_bootforge("load", "recipes/load-grub-pc-mb2.toml", "--svg", out, check=0)
    assert out.read_text() == (DATA / "load-grub-pc-mb2.svg").read_text()
