"""The MB1 a.out kludge in an ELF file (grub-invaders' invaders.exec: ELF32 with header
flag 16, load_addr 0x100000, bss_end_addr 0x105b50, entry_addr 0x100024). GRUB 2.06
(multiboot.c) and QEMU (hw/i386/multiboot.c) take the kludge fields before the ELF
headers: the kernel occupies [load_addr, bss_end_addr), so the first module goes after the
bss, and GRUB passes no section headers (no flag 5). Real boots stopped at the entry by
`bootforge verify` with one module: GRUB i386-pc put it at 0x106000, QEMU -kernel at
0x107000 (after its page of module list and strings), every field matching."""

import json

import pytest

from conftest import require, run_bootforge
from bootforge.qemu import host

INVADERS = "/boot/invaders.exec"


def load_json(loader, module):
    proc = run_bootforge("load", "--json", INVADERS, "--platform", "qemu-pc-seabios:256M", "--loader", loader,
                         "--module", f"{module}=mod1-args")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("loader, module_at", [("grub-pc-mb1", 0x106000), ("qemu-mb1", 0x107000),
                                               ("limine-mb1", None)])
def test_kludge_places_the_kernel_to_bss_end(tmp_path, loader, module_at):
    require(INVADERS)
    mod = tmp_path / "mod1"
    mod.write_bytes(b"mod1 contents\n")
    doc = load_json(loader, mod)
    assert doc["entry"]["address"] == 0x100024 and doc["entry"]["how"] == "MB1 a.out kludge entry_addr"
    kernel = [p for p in doc["placements"] if p["kind"] == "kernel"]
    assert (min(p["start"] for p in kernel), max(p["end"] for p in kernel)) == (0x100000, 0x105B50)
    if module_at is not None:
        assert doc["mbi"]["modules"][0]["start"] == module_at
    assert doc["mbi"]["modules"][0]["start"] >= 0x105B50


def test_grub_passes_no_section_headers_for_the_kludge(tmp_path):
    require(INVADERS)
    from bootforge.formats.multiboot import MbiFlag, Multiboot1Info
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest
    k = read_kernel(INVADERS, read_input(INVADERS))
    res = policy("grub-pc-mb1")(LoadRequest(k, "/boot/invaders", "", [], resolve("qemu-pc-seabios:256M"), "grub-pc-mb1"))
    assert not Multiboot1Info.parse(res.mbi_bytes).flags & MbiFlag.ELF_SHDR


@pytest.mark.qemu
@pytest.mark.parametrize("loader", ["grub-pc-mb1", "qemu-mb1"])
def test_real_loaders_honour_the_kludge(tmp_path, loader):
    require("qemu-system-x86_64", INVADERS)
    if loader == "grub-pc-mb1":
        require("grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    mod = tmp_path / "mod1"
    mod.write_bytes(b"mod1 contents\n")
    kname, mname = ("/boot/invaders", "/boot/mod1") if loader == "grub-pc-mb1" else (INVADERS, str(mod))
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{INVADERS}"\nloader_path = "{kname}"\ncmdline = "x"\n'
                      f'platform = "qemu-pc-seabios:256M"\nloader = "{loader}"\n'
                      f'[[load.modules]]\npath = "{mod}"\nloader_path = "{mname}"\ncmdline = "mod1-args"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"] and doc["status"] == "entry", doc.get("mismatches")
    f = {r["name"]: r for r in doc["fields"]}
    assert f["module 0 start"]["observed"] == (0x106000 if loader == "grub-pc-mb1" else 0x107000)
    assert doc["registers"]["rip"] == 0x100024
