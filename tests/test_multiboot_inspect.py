"""`bootforge inspect` on kernels and dumps: the real corpus, captured dumps, and bad input."""

import gzip
import json
import lzma
import struct

import pytest

from bootforge.formats import multiboot as fmt
from bootforge.multiboot import build
from conftest import DATA, assert_one_line_error, require, run_bootforge

LOADERS = {"grub-mb1", "grub-mb2", "qemu-mb1", "limine-mb1", "limine-mb2", "syslinux-mb1", "ipxe-mb1"}


def inspect_json(path, check=0):
    proc = run_bootforge("inspect", "--json", path, check=check)
    return json.loads(proc.stdout)


def mini_elf(cls=1, machine=3, headers=b"", paddr=0x100000, entry=0x100000, phoff=None, phnum=1):
    """A one-segment ELF whose segment starts at 0x1000 with *headers* then some code."""
    code = headers + b"\xf4" * 64
    if cls == 1:
        phoff = 52 if phoff is None else phoff
        eh = struct.pack("<16sHHIIIIIHHHHHH", b"\x7fELF\x01\x01\x01" + bytes(9), 2, machine, 1,
                         entry, phoff, 0, 0, 52, 32, phnum, 40, 0, 0)
        ph = struct.pack("<IIIIIIII", 1, 0x1000, paddr, paddr, len(code), len(code) + 0x100, 7, 0x1000)
    else:
        phoff = 64 if phoff is None else phoff
        eh = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, machine, 1,
                         entry, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
        ph = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, paddr, paddr, len(code), len(code) + 0x100, 0x1000)
    out = bytearray(0x1000 + len(code))
    out[:len(eh)] = eh
    if phoff + len(ph) <= len(out):
        out[phoff:phoff + len(ph)] = ph
    out[0x1000:] = code
    return bytes(out)


def mb2_header(*tags):
    return build.build_mb2_header([build._mb2_tag(t, b) for t, b in tags])


# ------------------------------------------------------------------ the real corpus

def test_xen_gz_both_headers_and_verdicts():
    require("/boot/xen-4.17-amd64.gz")
    doc = inspect_json("/boot/xen-4.17-amd64.gz")
    assert doc["format"] == "multiboot-kernel" and doc["compression"] == "gzip"
    assert doc["kind"] == "ELF32" and doc["entry"] == 0x200000
    assert doc["multiboot1"]["offset"] == 0x88 and doc["multiboot1"]["flags"] == 3
    mb2 = doc["multiboot2"]
    assert (mb2["offset"], mb2["architecture"], mb2["header_length"]) == (0x98, 0, 136)
    assert [t["type"] for t in mb2["tags"]] == [1, 6, 10, 4, 5, 7, 9, 0]
    reloc = mb2["tags"][2]
    assert (reloc["min_addr"], reloc["align"], reloc["preference"], reloc["optional"]) == (0x200000, 0x200000, 2, True)
    assert mb2["tags"][0]["requests"] == [4, 6]
    assert [s["paddr"] for s in doc["segments"]] == [0x200000, 0x1b6ec8]
    loaders = doc["loaders"]
    assert set(loaders) == LOADERS
    assert loaders["grub-mb1"]["ok"] and loaders["grub-mb2"]["ok"]
    assert not loaders["qemu-mb1"]["ok"] and "does not decompress" in loaders["qemu-mb1"]["reason"]
    assert loaders["syslinux-mb1"]["ok"]            # mboot.c32 gunzips (zloadfile)
    assert loaders["limine-mb1"]["reason"] == "multiboot1: Invalid magic"


def test_xen_efi_pe_carries_headers_but_grub_wants_elf():
    require("/boot/xen-4.17-amd64.efi")
    # Every modelled loader of both protocols refuses it: exit 1 (issue 15 item 10).
    doc = inspect_json("/boot/xen-4.17-amd64.efi", check=1)
    assert doc["refused_protocols"] == ["multiboot1", "multiboot2"]
    assert doc["kind"] == "PE32+" and doc["pe"]["machine"] == 0x8664
    assert doc["multiboot1"]["offset"] == 0x308 and doc["multiboot2"]["offset"] == 0x318
    assert doc["multiboot2"]["tags"][-2]["entry_addr"] == 0x626531
    for name in ("grub-mb1", "grub-mb2"):
        assert doc["loaders"][name] == {"subject": name, "ok": False, "severity": "error", "reason": "invalid arch-dependent ELF magic",
                                       "words": "invalid arch-dependent ELF magic", "facts": {}}
    assert not doc["loaders"]["qemu-mb1"]["ok"]


@pytest.mark.parametrize("name", ["memtest86+x64.bin", "memtest86+ia32.bin", "memtest86+x64.efi",
                                  "memtest86+ia32.efi"])
def test_memtest_has_no_multiboot_header(name):
    # memtest86+ speaks the Linux boot protocol ("HdrS"): inspect detects it as a Linux kernel
    # (bootforge/uki/inspect.py, issue 14); --format linux-kernel asks for the Multiboot view.
    require(f"/boot/{name}")
    doc = json.loads(run_bootforge("inspect", "--json", "--format", "linux-kernel", f"/boot/{name}", check=0).stdout)
    assert doc["multiboot1"] is None and doc["multiboot2"] is None
    assert "Linux bzImage" in doc["kind"]
    loaders = doc["loaders"]
    assert not any(v["ok"] for v in loaders.values())
    assert loaders["grub-mb1"]["reason"] == loaders["grub-mb2"]["reason"] == "no multiboot header found"
    assert "Linux boot protocol" in loaders["qemu-mb1"]["reason"]
    text = run_bootforge("inspect", "--format", "linux-kernel", f"/boot/{name}", check=0).stdout
    assert "Multiboot1 header: none" in text and "REFUSES no multiboot header found" in text


# ------------------------------------------------------------------ verdicts on synthetic kernels

def test_elf64_without_kludge_refused_by_qemu(tmp_path):
    k = tmp_path / "k64.elf"
    k.write_bytes(mini_elf(cls=2, machine=62, headers=build.build_mb1_header({})))
    doc = inspect_json(k)
    assert doc["loaders"]["qemu-mb1"] == {"subject": "qemu-mb1", "ok": False, "severity": "error", "reason": "Cannot load x86-64 image, give a 32bit one.", "words": "Cannot load x86-64 image, give a 32bit one.", "facts": {}}
    assert doc["loaders"]["grub-mb1"]["ok"]
    assert not doc["loaders"]["syslinux-mb1"]["ok"]


def test_grub_mb2_messages(tmp_path):
    cases = {
        "unsupported information tag: 0xd": mb2_header((1, dict(requests=[1, 13]))),
        "unsupported tag: 0xb": mb2_header((11, dict(payload=b""))),
        "load address tag without entry address tag": mb2_header(
            (2, dict(header_addr=0x100000, load_addr=0x100000, load_end_addr=0, bss_end_addr=0))),
    }
    for message, header in cases.items():
        k = tmp_path / "k.elf"
        k.write_bytes(mini_elf(headers=header))
        # Exit 1 exactly when no Multiboot2 loader loads it (issue 15 item 10).
        doc = json.loads(run_bootforge("inspect", "--json", k).stdout)
        mb2_loads = doc["loaders"]["limine-mb2"]["ok"] or doc["loaders"]["grub-mb2"]["ok"]
        inspect_json(k, check=0 if mb2_loads else 1)
        assert doc["loaders"]["grub-mb2"] == {"subject": "grub-mb2", "ok": False, "severity": "error", "reason": message, "words": message, "facts": {}}
    k.write_bytes(mini_elf(headers=mb2_header((11, dict(payload=b"")))).replace(
        b"\x0b\x00\x00\x00\x08\x00", b"\x0b\x00\x01\x00\x08\x00"))
    assert inspect_json(k)["loaders"]["grub-mb2"]["ok"]          # optional unknown tag: ignored


def test_grub_elf_messages(tmp_path):
    k = tmp_path / "k.elf"
    k.write_bytes(mini_elf(headers=build.build_mb1_header({}), entry=0x200000))
    assert inspect_json(k)["loaders"]["grub-mb1"]["reason"] == "entry point isn't in a segment"
    k.write_bytes(mini_elf(cls=2, machine=62, headers=build.build_mb1_header({}), paddr=0xFFFFFF00, entry=0xFFFFFF00))
    assert inspect_json(k)["loaders"]["grub-mb1"]["reason"] == "segment crosses 4 GiB border"
    k.write_bytes(mini_elf(headers=build.build_mb1_header({"video": {"width": 1}}) [:4] +
                  struct.pack("<II", 0x8, (-(fmt.MB1_MAGIC + 8)) & 0xFFFFFFFF)))
    assert inspect_json(k)["loaders"]["grub-mb1"]["reason"] == "unsupported flag: 0x8"
    elf = bytearray(mini_elf(headers=build.build_mb1_header({}))) + bytes(0x2000)
    elf[0x2100:0x2120] = elf[52:84]                                  # program headers moved past 8 KiB
    struct.pack_into("<I", elf, 28, 0x2100)
    k.write_bytes(bytes(elf))
    assert inspect_json(k)["loaders"]["grub-mb1"]["reason"] == "program header at a too high offset"
    elf = bytearray(mini_elf(headers=build.build_mb1_header({}), phnum=2))
    elf[84:116] = elf[52:84]                                         # two PT_LOADs at one address
    k.write_bytes(bytes(elf))
    doc = inspect_json(k)
    assert doc["loaders"]["grub-mb1"]["reason"] == "overlap detected"
    assert [s["type_name"] for s in doc["segments"]] == ["LOAD", "LOAD"]


# ------------------------------------------------------------------ dumps

def test_grub_pc_mb2_dump_decodes():
    doc = inspect_json(DATA / "mb-grub-pc-mb2.dump")
    assert doc["format"] == "mbdump" and doc["magic"] == 0x36D76289 and doc["complete"]
    assert doc["mbi_address"] == doc["ebx"] == doc["regions"][0]["address"]
    tags = doc["multiboot2"]["tags"]
    by = {}
    for t in tags:
        by.setdefault(t["type"], []).append(t)
    assert tags[0]["type"] == 21 and tags[-1]["type"] == 0
    assert by[1][0]["string"] == "kernel-args a=b"
    assert [(m["string"], m["mod_size"]) for m in by[3]] == [("mod1-args", 3000), ("mod2 args two", 5000)]
    assert all(m["mod_start"] % 4096 == 0 for m in by[3])
    assert any(e["base_addr"] == 0x100000 and e["type"] == 1 for e in by[6][0]["entries"])
    assert by[2][0]["string"].startswith("GRUB 2.06")


def test_grub_efi_mb2_dump_has_efi_mmap():
    doc = inspect_json(DATA / "mb-grub-efi-mb2.dump")
    tag17 = [t for t in doc["multiboot2"]["tags"] if t["type"] == 17][0]
    assert tag17["descr_size"] == 48 and len(tag17["descriptors"]) > 10
    assert any(d["type_name"] == "Conventional" for d in tag17["descriptors"])
    assert any(t["type"] == 12 for t in doc["multiboot2"]["tags"])   # EFI64 system table


@pytest.mark.parametrize("name,loader_name,cmdline_tail", [
    ("mb-grub-pc-mb1.dump", "GRUB 2.06", "kernel-args a=b"),
    ("mb-qemu-mb1.dump", "qemu", "kernel-args a=b"),
    ("mb-syslinux-mb1.dump", "ISOLINUX 6.04", "kernel-args a=b"),
])
def test_mb1_dumps_decode_fully(name, loader_name, cmdline_tail):
    doc = inspect_json(DATA / name)
    m = doc["multiboot1"]
    assert doc["eax"] == 0x2BADB002 and doc["problems"] == []
    assert m["cmdline"].endswith(cmdline_tail)
    assert m["boot_loader_name"].startswith(loader_name)
    assert [mod["mod_size"] for mod in m["modules"]] == [3000, 5000]
    assert m["modules"][0]["string"].endswith("mod1-args")
    assert m["modules"][1]["string"].endswith("mod2 args two")
    assert m["mmap"][0]["base_addr"] == 0 and all(e["size"] == 20 for e in m["mmap"])
    assert m["mem_lower"] == 639


def test_grub_mb1_dump_vbe_blocks_decode():
    vbe = inspect_json(DATA / "mb-grub-pc-mb1.dump")["multiboot1"]["vbe"]
    assert vbe["controller"]["signature"] == "VESA" and vbe["controller"]["version"] == 0x300
    assert (vbe["vbe_mode"], vbe["mode_info"]["x_resolution"], vbe["mode_info"]["y_resolution"]) == (3, 80, 25)


def test_qemu_mb1_dump_matches_qemu_layout():
    m = inspect_json(DATA / "mb-qemu-mb1.dump")["multiboot1"]
    assert doc_fields(m) == (0x24F, 0x8000FFFF, 0x9000)
    assert m["mem_upper"] == 0x1FB80


def doc_fields(m):
    return m["flags"], m["boot_device"], m["mmap_addr"]


# ------------------------------------------------------------------ bad input: one line, exit 2

def _dump(eax, regions, done=True):
    lines = ["BFMBDUMP 1", f"EAX {eax:08x}", f"EBX {regions[0][1]:08x}"]
    for name, addr, data in regions:
        lines.append(f"REGION {name} {addr:08x} {len(data):08x}")
        lines += [data[i:i + 32].hex() for i in range(0, len(data), 32)]
        lines.append("END")
    if done:
        lines.append("DONE")
    return ("\n".join(lines) + "\n").encode()


def test_bad_inputs_fail_on_one_line(tmp_path):
    cases = {}
    elf = bytearray(mini_elf(headers=build.build_mb1_header({})))
    struct.pack_into("<H", elf, 44, 500)                           # e_phnum: headers past the end
    cases["phdrs.elf"] = (bytes(elf), "program headers")
    zero = mb2_header((1, dict(requests=[1])))
    zero = zero[:20] + b"\0\0\0\0" + zero[24:]                    # tag size 0
    cases["tag0.elf"] = (mini_elf(headers=zero), "size 0")
    long = bytearray(mb2_header((1, dict(requests=[1]))))
    struct.pack_into("<I", long, 20, 200)                          # tag runs past header_length
    cases["taglong.elf"] = (mini_elf(headers=bytes(long)), "past header_length")
    cases["trunc.gz"] = (gzip.compress(mini_elf(headers=zero))[:-30], "truncated gzip")
    cases["trunc.xz"] = (lzma.compress(b"x" * 5000)[:-20], "xz")
    mbi2 = struct.pack("<II", 0x1000, 0) + struct.pack("<II", 0, 8)
    cases["total.dump"] = (_dump(0x36D76289, [("mbi", 0x10000, mbi2)]), "exceeds")
    mbi1 = bytearray(116)
    struct.pack_into("<IIIIIII", mbi1, 0, 0x8, 0, 0, 0, 0, 2, 0x10000)   # mods list = the MBI itself
    cases["cyclic.dump"] = (_dump(0x2BADB002, [("mbi", 0x10000, bytes(mbi1))]), "overlap")
    mbi1 = bytearray(116)
    struct.pack_into("<I", mbi1, 0, 0x40)
    struct.pack_into("<II", mbi1, 44, 48, 0x20000)
    cases["mmap0.dump"] = (_dump(0x2BADB002, [("mbi", 0x10000, bytes(mbi1)),
                                               ("mmap", 0x20000, bytes(48))]), "size 0")
    cases["cut.dump"] = (_dump(0x36D76289, [("mbi", 0x10000, mbi2)])[:-40], "cut off")
    for name, (data, fragment) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        proc = run_bootforge("inspect", p)
        assert_one_line_error(proc, str(p), fragment)
