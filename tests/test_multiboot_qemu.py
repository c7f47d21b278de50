"""Real loaders decide: the dump kernel booted by GRUB (i386-pc and x86_64-efi), QEMU -kernel
and Syslinux mboot.c32, and the refusals bootforge's verdicts predict."""

import json
import subprocess

import pytest

import mboracle as oracle
from bootforge.qemu import host
from bootforge.multiboot.dump import decode_dump
from conftest import BUILD, DATA, REPO, require, run_bootforge

pytestmark = pytest.mark.qemu
STUB = BUILD / "stubs" / "mbdump.elf"
OVMF = host.OVMF_CODE
SIZES = [size for _, size, _ in oracle.MODULES]
STRINGS = [args for _, _, args in oracle.MODULES]


def kernel(tmp_path, recipe):
    require(str(STUB))
    out = tmp_path / f"{recipe}.elf"
    run_bootforge("build", REPO / f"recipes/kernel-mbdump-{recipe}.toml", "-o", out, check=0)
    return out


def boot(tmp_path, loader, path, **kw):
    tools = {"grub-pc": ["grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC],
             "grub-efi": ["grub-mkrescue", "xorriso", "mformat", host.GRUB_X86_64_EFI, OVMF],
             "qemu": [], "syslinux": ["xorriso", host.ISOLINUX_BIN,
                                      f"{host.SYSLINUX_BIOS_MODULES}/mboot.c32"]}[loader]
    require("qemu-system-x86_64", *tools)
    work = tmp_path / loader
    work.mkdir()
    return oracle.boot(loader, path, work, **kw)


def decoded(dump_bytes, fixture=None):
    assert dump_bytes.rstrip().endswith(b"DONE"), dump_bytes[-200:]
    doc, problems = decode_dump(dump_bytes)
    assert problems == []
    if fixture is not None:      # the capture in tests/data still decodes the same way
        fdoc, _ = decode_dump((DATA / fixture).read_bytes())
        assert fdoc["protocol"] == doc["protocol"]
    return doc


def mb2_tags(doc):
    tags = {}
    for t in doc["multiboot2"]["tags"]:
        tags.setdefault(t["type"], []).append(t)
    return tags


def test_grub_pc_multiboot2(tmp_path):
    dump, serial, _ = boot(tmp_path, "grub-pc", kernel(tmp_path, "mb2"))
    doc = decoded(dump, "mb-grub-pc-mb2.dump")
    assert doc["eax"] == 0x36D76289
    tags = mb2_tags(doc)
    assert tags[1][0]["string"] == oracle.KERNEL_CMDLINE
    assert [m["string"] for m in tags[3]] == STRINGS and [m["mod_size"] for m in tags[3]] == SIZES
    assert tags[6][0]["entries"] and tags[6][0]["entry_size"] == 24
    assert doc["multiboot2"]["tags"][0]["type"] == 21          # GRUB sends the load base first
    fixture = mb2_tags(decode_dump((DATA / "mb-grub-pc-mb2.dump").read_bytes())[0])
    assert [m["mod_start"] for m in tags[3]] == [m["mod_start"] for m in fixture[3]]


def test_grub_pc_multiboot2_gzip_both_headers(tmp_path):
    image = kernel(tmp_path, "both")                         # gzip-compressed: GRUB gunzips it
    assert image.read_bytes()[:2] == b"\x1f\x8b"
    doc = decoded(boot(tmp_path, "grub-pc", image)[0])
    assert doc["eax"] == 0x36D76289
    assert [m["mod_size"] for m in mb2_tags(doc)[3]] == SIZES


def test_grub_efi_multiboot2_has_efi_mmap(tmp_path):
    dump, serial, _ = boot(tmp_path, "grub-efi", kernel(tmp_path, "efi"))
    doc = decoded(dump, "mb-grub-efi-mb2.dump")
    tags = mb2_tags(doc)
    efi = tags[17][0]
    assert efi["descr_size"] >= 40 and len(efi["descriptors"]) > 10
    assert any(d["type_name"] == "Conventional" for d in efi["descriptors"])
    assert [m["mod_size"] for m in tags[3]] == SIZES and tags[1][0]["string"] == oracle.KERNEL_CMDLINE


@pytest.mark.parametrize("loader", ["grub-pc", "grub-efi", "qemu", "syslinux"])
def test_multiboot1_loaders(tmp_path, loader):
    dump, _, _ = boot(tmp_path, loader, kernel(tmp_path, "mb1"), mb1=True)
    fixture = {"grub-pc": "mb-grub-pc-mb1.dump", "grub-efi": "mb-grub-efi-mb1.dump",
               "qemu": "mb-qemu-mb1.dump", "syslinux": "mb-syslinux-mb1.dump"}[loader]
    doc = decoded(dump, fixture)
    m = doc["multiboot1"]
    assert doc["eax"] == 0x2BADB002
    assert m["cmdline"].endswith(oracle.KERNEL_CMDLINE)
    assert [x["mod_size"] for x in m["modules"]] == SIZES
    assert all(x["string"].endswith(want) for x, want in zip(m["modules"], STRINGS))
    assert m["mmap"] and m["mem_lower"] == (640 if loader == "grub-efi" else 639)
    if loader == "qemu":
        assert doc["ebx"] == 0x9500 and m["boot_loader_name"] == "qemu"


def test_multiboot1_kludge_image_under_qemu_and_grub(tmp_path):
    image = kernel(tmp_path, "kludge")
    for loader in ("qemu", "grub-pc"):
        dump, _, _ = boot(tmp_path, loader, image, mb1=True)
        doc = decoded(dump)
        assert [x["mod_size"] for x in doc["multiboot1"]["modules"]] == SIZES


def test_header_past_32k_refused_by_grub_and_by_the_verdict(tmp_path):
    far = kernel(tmp_path, "far")
    dump, serial, _ = boot(tmp_path, "grub-pc", far, stop_on=("you need to load the kernel",))
    assert b"BFMBDUMP" not in dump
    assert "error: no multiboot header found." in serial
    doc = json.loads(run_bootforge("inspect", "--json", far, check=1).stdout)
    verdict = doc["loaders"]["grub-mb2"]
    assert verdict["words"] == "no multiboot header found" and not verdict["ok"]
    assert "magic at 0x9000" in verdict["reason"]      # and where the header bootforge found lies


def test_elf64_refused_by_qemu_and_by_the_verdict(tmp_path):
    require("objcopy", str(STUB))
    elf64 = tmp_path / "mbdump64.elf"
    subprocess.run(["objcopy", "-I", "elf32-i386", "-O", "elf64-x86-64", STUB, elf64], check=True)
    recipe = tmp_path / "k64.toml"
    recipe.write_text(f'[kernel]\ninput = "{elf64}"\nprotocol = "multiboot1"\n')
    out = tmp_path / "k64.elf"
    run_bootforge("build", recipe, "-o", out, check=0)
    dump, _, err = boot(tmp_path, "qemu", out)
    assert not dump and "Cannot load x86-64 image, give a 32bit one." in err
    doc = json.loads(run_bootforge("inspect", "--json", out, check=0).stdout)
    assert doc["loaders"]["qemu-mb1"] == {"subject": "qemu-mb1", "ok": False, "severity": "error", "reason": "Cannot load x86-64 image, give a 32bit one.", "words": "Cannot load x86-64 image, give a 32bit one.", "facts": {}}


def test_syslinux_boots_an_elf32_without_any_header_as_the_verdict_says(tmp_path):
    far = kernel(tmp_path, "far")                     # no header in reach of any loader
    doc = json.loads(run_bootforge("inspect", "--json", far, check=1).stdout)
    assert doc["loaders"]["syslinux-mb1"]["ok"] and not doc["loaders"]["grub-mb1"]["ok"]
    dump, _, _ = boot(tmp_path, "syslinux", far)
    assert decoded(dump)["eax"] == 0x2BADB002


def test_default_ld_layout_kernel_boots_under_qemu(tmp_path):
    require("ld", str(BUILD / "stubs" / "mbdump.o"))
    from test_multiboot_build import default_linked_stub
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{default_linked_stub(tmp_path)}"\nprotocol = "multiboot1"\n')
    out = tmp_path / "k.elf"
    run_bootforge("build", recipe, "-o", out, check=0)
    doc = decoded(boot(tmp_path, "qemu", out)[0])
    assert [x["mod_size"] for x in doc["multiboot1"]["modules"]] == SIZES


@pytest.mark.parametrize("extra,grub_says", [
    ("information_request = [1, 13]", "unsupported information tag: 0xd"),      # SMBIOS
    ("extra_tags = [{ type = 11 }]", "unsupported tag: 0xb"),
])
def test_grub_refusals_match_the_verdict(tmp_path, extra, grub_says):
    require(str(STUB))
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{STUB}"\nprotocol = "multiboot2"\n[kernel.multiboot2]\n{extra}\n')
    out = tmp_path / "k.elf"
    # build refuses a kernel GRUB's verdict refuses, in GRUB's words (issue 15 item 11) ...
    refused = run_bootforge("build", recipe, "-o", out, check=2)
    assert f'would be refused by grub-mb2: "{grub_says}"' in refused.stderr and not out.exists()
    # ... unless the recipe asks for the refused kernel on purpose, as this test does
    recipe.write_text(recipe.read_text() + "[kernel.testing]\nallow_refusal = true\n")
    run_bootforge("build", recipe, "-o", out, check=0)
    inspected = run_bootforge("inspect", "--json", out)
    doc = json.loads(inspected.stdout)
    assert inspected.returncode == (0 if doc["loaders"]["limine-mb2"]["ok"] else 1)   # Limine may still take it
    assert doc["loaders"]["grub-mb2"] == {"subject": "grub-mb2", "ok": False, "severity": "error", "reason": grub_says, "words": grub_says, "facts": {}}
    dump, serial, _ = boot(tmp_path, "grub-pc", out, stop_on=("you need to load the kernel",))
    assert not dump and f"error: {grub_says}." in serial


def test_qemu_without_header_says_what_the_verdict_says(tmp_path):
    far = kernel(tmp_path, "far")
    message = json.loads(run_bootforge("inspect", "--json", far, check=1).stdout)["loaders"]["qemu-mb1"]["reason"]
    dump, _, err = boot(tmp_path, "qemu", far)
    assert not dump and message in err


def test_syslinux_refuses_memtest_as_the_verdict_says(tmp_path):
    require("/boot/memtest86+x64.bin")
    # memtest86+x64.bin is detected as a Linux bzImage now; its Multiboot verdicts are asked for by format.
    doc = json.loads(run_bootforge("inspect", "--json", "--format", "multiboot-image", "/boot/memtest86+x64.bin",
                                   check=0).stdout)
    message = doc["loaders"]["syslinux-mb1"]["reason"]
    assert message == "Invalid Multiboot image: neither ELF header nor a.out kludge found"
    dump, serial, _ = boot(tmp_path, "syslinux", "/boot/memtest86+x64.bin", stop_on=("boot:",))
    assert not dump and message in serial


@pytest.mark.parametrize("image", ["/boot/xen-4.17-amd64.gz", "/boot/xen-4.17-amd64.efi"])
@pytest.mark.parametrize("mb1", [False, True])
def test_grub_on_the_xen_images_agrees_with_the_verdict(tmp_path, image, mb1):
    require(image)
    # inspect exits 1 when no modelled loader of the kernel's protocols loads it (xen.efi)
    inspected = run_bootforge("inspect", "--json", image)
    loaders = json.loads(inspected.stdout)["loaders"]
    assert inspected.returncode == (0 if any(v["ok"] for v in loaders.values()) else 1)
    verdict = loaders["grub-mb1" if mb1 else "grub-mb2"]
    dump, serial, _ = boot(tmp_path, "grub-pc", image, mb1=mb1, stop_on=("(XEN)", "you need to load the kernel"),
                           cmdline="console=com1 com1=115200,8n1")
    if verdict["ok"]:
        assert "(XEN)" in serial                      # GRUB gunzipped and started Xen
    else:
        assert f"error: {verdict['reason']}." in serial and "(XEN)" not in serial


def test_grub_decompresses_xz_only_with_xzio(tmp_path):
    require(str(STUB))
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[kernel]\ninput = "{STUB}"\nprotocol = "multiboot2"\ncompress = "xz"\n')
    image = tmp_path / "k.xz"
    run_bootforge("build", recipe, "-o", image, check=0)
    verdict = json.loads(run_bootforge("inspect", "--json", image, check=0).stdout)["loaders"]["grub-mb2"]
    assert verdict["ok"] and verdict["facts"]["requires"] == "insmod xzio"
    dump, serial, _ = boot(tmp_path, "grub-pc", image, stop_on=("you need to load the kernel",))
    assert not dump and "error: no multiboot header found." in serial
    (tmp_path / "grub-pc").rename(tmp_path / "without-xzio")
    dump, _, _ = boot(tmp_path, "grub-pc", image, preamble=("insmod xzio",))
    assert decoded(dump)["magic"] == 0x36D76289
