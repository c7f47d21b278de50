"""GRUB 2.06 x86_64-efi booting a Multiboot1 kernel (`multiboot`/`module`) on OVMF: the info
grub-core/loader/i386/multiboot_mbi.c builds on EFI (the EFI map as E820 types, no boot device,
APM or VBE fields, the GOP framebuffer for a video request), predicted by the grub-efi-mb1 policy.

Expected values are real boots of the dump kernel under real GRUB x86_64-efi on OVMF 256M, read
back by `bootforge verify` (tests/data/grub-efi-mb1, commands in its README), plain and with an MB1
video request of 1024x768x32; the two boots run again here."""

import hashlib
import json

import pytest

from conftest import BUILD, DATA, require, run_bootforge
from bootforge.formats.multiboot import MbiFlag

MBDUMP = BUILD / "stubs" / "mbdump.elf"
CASES = {"plain": None, "video-1024x768x32": (1024, 768, 32)}
FRAMEBUFFER_ADDR = slice(88, 96)        # multiboot_info framebuffer_addr: the display's BAR, firmware data


def _kernel(tmp_path, video):
    """The dump kernel as recipes/kernel-mbdump-mb1.toml builds it, with an MB1 video request."""
    from bootforge.multiboot.build import build_kernel_recipe
    require("ld", str(MBDUMP))
    opts = {"page_align_modules": True, "memory_info": True}
    if video:
        opts["video"] = dict(zip(("width", "height", "depth"), video), mode_type=0)
    out = tmp_path / "mbdump-mb1.elf"
    build_kernel_recipe(tmp_path / "k.toml", {"kernel": {"input": str(MBDUMP), "protocol": "multiboot1",
                                                          "multiboot1": opts}}, out)
    return out


def _table(kernel):
    boot = DATA / "load-root" / "boot"
    return {"load": {"kernel": str(kernel), "loader_path": "/boot/kernel", "cmdline": "kernel-args a=b",
                     "platform": "qemu-q35-ovmf:256M", "loader": "grub-efi-mb1",
                     "modules": [{"path": str(boot / "mod1"), "loader_path": "/boot/mod1", "cmdline": "mod1-args"},
                                 {"path": str(boot / "mod2"), "loader_path": "/boot/mod2",
                                  "cmdline": "mod2 args two"}]}}


def _sha(data):
    return hashlib.sha256(bytes(data)).hexdigest()


@pytest.mark.parametrize("case", CASES)
def test_prediction_equals_the_real_info_and_every_structure(tmp_path, case):
    """The whole info (as far as its flags reach) and each structure it points to, byte for byte
    and at the real address; only the framebuffer address is the firmware's."""
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_table
    real = json.loads((DATA / "grub-efi-mb1" / f"{case}.json").read_text())
    res = run_policy(POLICIES.get("grub-efi-mb1"), request_from_table(_table(_kernel(tmp_path, CASES[case])), DATA))
    seen = real["mbi_bytes"]
    assert res.mbi_address == real["boot_information"]["mbi_address"]
    pred = bytearray(res.mbi_bytes[:seen["observed_size"]])
    fb = real["boot_information"]["multiboot1"].get("framebuffer")
    if fb:
        assert bytes(pred[FRAMEBUFFER_ADDR]) == bytes(8)        # predicted 0: declared firmware data
        pred[FRAMEBUFFER_ADDR] = fb["framebuffer_addr"].to_bytes(8, "little")
    assert _sha(pred) == seen["observed_sha256"]
    got = {name: (addr, _sha(data)) for name, (addr, data) in res.structures.items()}
    assert got == {s["name"]: (s["observed_address"], s["observed_sha256"]) for s in seen["structures"]}


def test_what_grub_efi_leaves_out_of_an_mb1_info():
    """No BIOS on EFI: no boot device, drives, APM or VBE flag in either real boot; the video boot gets
    the GOP framebuffer (flag 12) without VBE info."""
    for case in CASES:
        m = json.loads((DATA / "grub-efi-mb1" / f"{case}.json").read_text())["boot_information"]["multiboot1"]
        assert not m["flags"] & (MbiFlag.BOOT_DEVICE | MbiFlag.DRIVES | MbiFlag.APM_TABLE | MbiFlag.VBE)
        assert bool(m["flags"] & MbiFlag.FRAMEBUFFER) == (CASES[case] is not None)


@pytest.mark.qemu
@pytest.mark.parametrize("case", CASES)
def test_real_grub_efi_mb1_boot_matches_byte_for_byte(tmp_path, case):
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", "/usr/share/OVMF/OVMF_CODE_4M.fd")
    kernel = _kernel(tmp_path, CASES[case])
    recipe = tmp_path / "boot.toml"
    t = _table(kernel)["load"]
    recipe.write_text("[load]\n" + "".join(f"{k} = {json.dumps(t[k])}\n" for k in t if k != "modules")
                      + "".join("\n[[load.modules]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in m.items())
                                for m in t["modules"]))
    doc = json.loads(run_bootforge("verify", "--json", "-q", recipe).stdout)
    assert doc["ok"] and doc["mbi_bytes"]["match"], (doc["mismatches"], doc["mbi_bytes"]["differing"])
    m = doc["boot_information"]["multiboot1"]
    assert m["boot_loader_name"] == "GRUB 2.06-13+deb12u2" and m["mods_count"] == 2
    fb = m.get("framebuffer") if m["flags"] & MbiFlag.FRAMEBUFFER else None
    if CASES[case]:
        assert (fb["framebuffer_width"], fb["framebuffer_height"], fb["framebuffer_bpp"],
                fb["framebuffer_pitch"]) == (1024, 768, 32, 4096)
    else:
        assert fb is None


def test_prediction_equals_the_older_oracle_capture(tmp_path):
    """tests/data/mb-grub-efi-mb1.dump (tests/mboracle.py's grub-mkrescue ISO, another day, modules
    of 3000 and 5000 bytes; command in tests/data/README.md): the info and every region it
    dumped, byte for byte."""
    from bootforge.loader.policies import POLICIES, run_policy
    from bootforge.loader.recipe import request_from_table
    from bootforge.multiboot.dump import parse_dump
    _eax, ebx, regions, _complete = parse_dump((DATA / "mb-grub-efi-mb1.dump").read_bytes())
    table = _table(_kernel(tmp_path, None))
    for m, size in zip(table["load"]["modules"], (3000, 5000)):
        m["path"] = str(tmp_path / f"mod{size}")
        (tmp_path / f"mod{size}").write_bytes(bytes(size))
    res = run_policy(POLICIES.get("grub-efi-mb1"), request_from_table(table, DATA))
    seen = {r.name: (r.address, bytes(r.data)) for r in regions if r.name != "modcmd"}
    assert (res.mbi_address, bytes(res.mbi_bytes[:len(seen["mbi"][1])])) == (ebx, seen["mbi"][1])
    names = {"cmdline": "cmdline", "mods": "mods", "mmap": "mmap", "loader": "boot_loader_name",
             "shdr": "elf_section_headers"}
    assert {n: res.structures[s] for n, s in names.items()} == {n: seen[n] for n in names}
    strings = sorted((r.address, bytes(r.data)) for r in regions if r.name == "modcmd")
    assert strings == [res.structures[f"module {i} string"] for i in range(2)]
