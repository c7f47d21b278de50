"""verify compares the whole boot information byte for byte with what `load` predicts
(its --mbi-out bytes) and, for Multiboot1, every structure the info points to; bytes the
firmware decides (APM, RSDP/XSDP and SMBIOS copies, EFI pointers and handles, VBE blocks, a
linear framebuffer's address) or the loader never writes (GRUB's tag padding) are listed with
the reason and not counted. The observed bytes here are what the real loaders wrote: the
Limine 11.4.1 dumps in tests/data and real boots through QEMU's gdbstub."""

from types import SimpleNamespace

import pytest

from conftest import DATA, REPO, require
from bootforge.qemu import host
from bootforge.verify.compare import mbi_bytes_comparison, mbi_bytes_problems


def _limine(name, tmp_path):
    import test_limine_policy as T
    from bootforge.multiboot.dump import parse_dump
    T._needs_kernels()
    regions = parse_dump((DATA / name).read_bytes())[2]
    res = T.predict(*T.FIXTURES[name], tmp_path)
    mbi = next(r for r in regions if r.name == "mbi").data
    # The dump kernel's region names, as the guest-memory decoder names the same structures.
    names = {"loader": "boot_loader_name", "shdr": "elf_section_headers"}
    structures = {names.get(r.name, r.name): (r.address, r.data) for r in regions if r.name not in ("mbi", "modcmd")}
    for i, r in enumerate(r for r in regions if r.name == "modcmd"):
        structures[f"module {i} string"] = (r.address, r.data)
    return res, mbi, structures


def _tag_offset(info, ttype):
    pos = 8
    while pos + 8 <= len(info):
        t, s = int.from_bytes(info[pos:pos + 4], "little"), int.from_bytes(info[pos + 4:pos + 8], "little")
        if t == ttype:
            return pos
        pos += s + (-s % 8)
    raise KeyError(ttype)


def test_limine_mb2_bios_is_byte_exact_and_a_changed_byte_is_named(tmp_path):
    res, mbi, _s = _limine("limine-seabios-mb2-256M-mods3-1m.dump", tmp_path)
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=mbi, structures={}))
    assert c["match"] and c["differing"] == [] and c["observed_size"] == len(mbi)
    assert {"tag 14 (acpi_old) RSDP copy", "tag 13 (smbios) SMBIOS entry point copy"} <= \
        {f["name"] for f in c["firmware_data"]}
    at = _tag_offset(mbi, 6)                  # the mmap: loader-decided, counted
    bad = bytearray(mbi)
    bad[at + 16 + 24 + 8] ^= 1                # entry 1's length
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=bytes(bad), structures={}))
    assert not c["match"] and [d["name"] for d in c["differing"]] == ["tag 6 (mmap) entries +0x20"]
    at = _tag_offset(mbi, 14)                 # the RSDP copy: firmware data, not counted
    fw = bytearray(mbi)
    fw[at + 8 + 9] ^= 0xFF
    assert mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=bytes(fw), structures={}))["match"]


def test_limine_mb1_structures_are_compared_too(tmp_path):
    res, mbi, structures = _limine("limine-seabios-mb1-256M-mods3-1m.dump", tmp_path)
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=mbi, structures=structures))
    assert c["match"], mbi_bytes_problems(c)
    assert {s["name"] for s in c["structures"]} >= {"mmap", "mods", "cmdline", "boot_loader_name",
                                                     "module 0 string", "elf_section_headers"}
    addr, mmap = structures["mmap"]
    structures["mmap"] = (addr, mmap[:-1] + b"\x09")       # the last entry's type
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=mbi, structures=structures))
    assert not c["match"] and mbi_bytes_problems(c) == "mmap: +0xa7..+0xa8"


def test_mb1_sizes_and_hashes_are_of_the_bytes_the_flags_define(tmp_path):
    """Limine 11.4.1 writes its whole 116-byte struct (the dump kernel saved all of it); without
    the framebuffer flag the info the kernel is handed is 88 bytes, as verify's guest-memory
    capture reads it: the row's sizes agree, the rest is counted apart, and a prediction
    shorter than what the loader gave differs."""
    import hashlib
    res, dumped, structures = _limine("limine-seabios-mb1-256M-mods3-1m.dump", tmp_path)
    flags = int.from_bytes(dumped[:4], "little")
    assert len(dumped) == len(res.mbi_bytes) == 116 and not flags & 0x1000
    mbi = dumped[:88]
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=mbi, structures=structures))
    assert c["match"] and c["predicted_size"] == c["observed_size"] == 88
    assert c["predicted_sha256"] == c["observed_sha256"] == hashlib.sha256(mbi).hexdigest()
    assert c["predicted_bytes_past_the_flags"] == 28
    res.mbi_bytes = bytes(res.mbi_bytes[:80])
    c = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=mbi, structures=structures))
    assert not c["match"] and c["predicted_size"] == 80


@pytest.mark.qemu
def test_verify_reports_mbi_bytes_for_grub():
    """One real boot (GRUB i386-pc, the dump kernel's recipe), its report as JSON and text."""
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    from bootforge.verify.run import verify
    report = verify(str(REPO / "recipes" / "load-grub-pc-mb2.toml"))
    doc = report.to_json()
    assert doc["ok"], doc["mismatches"]
    m = doc["mbi_bytes"]
    assert m["match"] and m["differing"] == [] and len(m["observed_sha256"]) == 64
    names = {f["name"] for f in m["firmware_data"]}
    assert "tag 10 (apm) APM table" in names and "tag 14 (acpi_old) RSDP copy" in names
    assert any(n.endswith("padding") for n in names)
    text = report.render_text()
    row = next(line for line in text.splitlines() if line.strip().startswith("mbi bytes"))
    assert row.rstrip().endswith("ok")
    assert "not counted" in text
