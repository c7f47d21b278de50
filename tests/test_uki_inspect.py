"""`bootforge inspect` of UKIs and EFI-stub kernels (issue 14): PE facts against objdump,
the setup header against the boot protocol's offsets read directly, sections by name
with their text, the verdicts (QEMU takes Debian's kernel under OVMF; a UKI OVMF
would refuse: exit 1), corrupted UKIs (one line, exit 2), and no lief on this path."""

import json
import struct
import subprocess
import sys
from pathlib import Path

from conftest import REPO, assert_one_line_error, require, run_bootforge
from test_uki_build import CMDLINE, KERNEL, bootforge_uki, objcopy_uki, objdump_header, objdump_sections


def inspect_json(path, status=0):
    proc = run_bootforge("inspect", "--json", path)
    assert proc.returncode == status, (proc.returncode, proc.stderr, proc.stdout[-500:])
    return json.loads(proc.stdout)


def test_debian_kernel_pe_and_setup_header():
    require(KERNEL)
    doc = inspect_json(KERNEL)
    assert doc["kind"] == "Linux EFI-stub bzImage"
    pe = doc["pe"]
    for field, key in (("SizeOfImage", "size_of_image"), ("SectionAlignment", "section_alignment"),
                       ("FileAlignment", "file_alignment"), ("AddressOfEntryPoint", "entry_point")):
        assert pe[key] == objdump_header(KERNEL, field), field
    # objdump -h shows min(VirtualSize, SizeOfRawData) for an image (.data's .bss tail is not in the file)
    assert [(n, s["virtual_address"], min(s["virtual_size"], s["raw_size"]), s["raw_offset"])
            for n, s in doc["sections"].items()] == [(n, vma, size, off) for n, size, vma, off in objdump_sections(KERNEL)]
    # The setup header at the offsets of Documentation/arch/x86/boot.rst, read here with struct.
    raw = Path(KERNEL).read_bytes()
    hdr = doc["linux"]
    version = struct.unpack_from("<H", raw, 0x206)[0]
    assert hdr["protocol_version"] == f"{version >> 8}.{version & 0xff:02d}"
    assert hdr["init_size"] == struct.unpack_from("<I", raw, 0x260)[0]
    assert hdr["pref_address"] == struct.unpack_from("<Q", raw, 0x258)[0]
    assert hdr["kernel_alignment"] == struct.unpack_from("<I", raw, 0x230)[0]
    assert hdr["relocatable"] == bool(raw[0x234])
    assert hdr["xloadflags"] == struct.unpack_from("<H", raw, 0x236)[0]
    assert hdr["handover_offset"] == struct.unpack_from("<I", raw, 0x264)[0]
    assert hdr["initrd_addr_max"] == struct.unpack_from("<I", raw, 0x22C)[0]
    # the release Debian names the file after
    assert hdr["kernel_version"].split()[0] == Path(KERNEL).name.removeprefix("vmlinuz-")
    verdicts = {v["subject"]: v for v in doc["verdicts"]}
    assert verdicts["uefi"]["ok"] and verdicts["grub-linux"]["ok"]
    # QEMU starts it under OVMF (tests/data/linux-ovmf/kernel-*.txt): not "REFUSES ... zImage"
    assert verdicts["qemu-kernel"]["ok"] and "zImage" not in verdicts["qemu-kernel"]["reason"]


def test_uki_sections_by_name(tmp_path):
    uki = bootforge_uki(tmp_path)
    doc = inspect_json(uki)
    assert doc["kind"] == "UKI"
    s = doc["sections"]
    assert list(s)[-5:] == [".osrel", ".cmdline", ".uname", ".initrd", ".linux"]
    assert s[".cmdline"]["text"] == CMDLINE
    assert s[".osrel"]["os_release"]["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert s[".uname"]["text"] == Path(KERNEL).name.removeprefix("vmlinuz-")
    assert s[".sbat"]["text"].startswith("sbat,1,")
    assert s[".sdmagic"]["text"].startswith("#### LoaderInfo: systemd-stub 252")
    import hashlib
    assert s[".linux"]["sha256"] == hashlib.sha256(Path(KERNEL).read_bytes()).hexdigest()
    for name, size, vma, off in objdump_sections(uki):
        assert (s[name]["virtual_address"], min(s[name]["virtual_size"], s[name]["raw_size"]),
                s[name]["raw_offset"]) == (vma, size, off)
    verdicts = {v["subject"]: v for v in doc["verdicts"]}
    assert all(v["ok"] for n, v in verdicts.items() if n != "qemu-kernel"), doc["verdicts"]
    # QEMU -kernel: a UKI boots under OVMF (tests/data/linux-ovmf/bootforge-uki-*), not under SeaBIOS
    assert not verdicts["qemu-kernel"]["ok"] and "-initrd" in verdicts["qemu-kernel-ovmf"]["reason"]
    assert doc["linux"]["init_size"] == struct.unpack_from("<I", Path(KERNEL).read_bytes(), 0x260)[0]
    text = run_bootforge("inspect", uki, check=0).stdout
    assert "systemd-stub     takes" in text and ".initrd" in text and CMDLINE in text


def test_objcopy_uki_warns_that_linux_is_not_last(tmp_path):
    doc = inspect_json(objcopy_uki(tmp_path))
    stub = next(v for v in doc["verdicts"] if v["subject"] == "systemd-stub")
    assert stub["ok"] and stub["severity"] == "warning" and ".initrd is above it" in stub["reason"]


def _patched(tmp_path, uki, patch):
    data = bytearray(uki.read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    patch(data, pe)
    p = tmp_path / "patched.efi"
    p.write_bytes(bytes(data))
    return p


def test_a_uki_ovmf_refuses_exits_1(tmp_path):
    uki = bootforge_uki(tmp_path, initrd=False)
    bad = _patched(tmp_path, uki, lambda d, pe: struct.pack_into("<H", d, pe + 0x18 + 0x44, 11))   # subsystem
    doc = inspect_json(bad, status=1)
    v = next(v for v in doc["verdicts"] if v["subject"] == "uefi")
    assert not v["ok"] and "subsystem 11" in v["reason"]
    small = _patched(tmp_path, uki, lambda d, pe: struct.pack_into("<I", d, pe + 0x18 + 0x38, 0x19000))  # SizeOfImage
    v = next(v for v in inspect_json(small, status=1)["verdicts"] if v["subject"] == "uefi")
    assert "past SizeOfImage 0x19000" in v["reason"]


def test_corrupted_ukis_one_line_exit_2(tmp_path):
    uki = bootforge_uki(tmp_path, initrd=False)
    data = uki.read_bytes()
    (tmp_path / "short.efi").write_bytes(data[:len(data) - 4096])        # .linux runs past the end
    assert_one_line_error(run_bootforge("inspect", tmp_path / "short.efi"), "short.efi", "section '.linux'",
                          "past the end of the file")
    lfanew = _patched(tmp_path, uki, lambda d, pe: struct.pack_into("<I", d, 0x3C, 0x7FFFFFF0))
    assert_one_line_error(run_bootforge("inspect", lfanew), "offset 0x3c", "e_lfanew")
    count = _patched(tmp_path, uki, lambda d, pe: struct.pack_into("<H", d, pe + 6, 0xFFFF))
    assert_one_line_error(run_bootforge("inspect", count), "NumberOfSections 65535")


def test_lief_is_not_imported_to_inspect_a_uki(tmp_path):
    uki = bootforge_uki(tmp_path, initrd=False)
    code = ("import sys; from bootforge.inspect import inspect_data; "
            f"r = inspect_data({str(uki)!r}, open({str(uki)!r}, 'rb').read()); "
            "assert r.format == 'uki'; assert 'lief' not in sys.modules, 'lief imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_memtest_pe32_bzimage_is_read_not_failed():
    """memtest86+ia32.efi: a PE32 (IA32) EFI image that is also a bzImage: read like the x86-64
    ones (objdump agrees), x86-64 OVMF refuses it, which is normal for its kind (exit 0)."""
    f = "/boot/memtest86+ia32.efi"
    require(f)
    doc = inspect_json(f)
    assert doc["pe"]["format"] == "PE32" and doc["pe"]["machine"] == 0x14C
    assert doc["pe"]["size_of_image"] == objdump_header(f, "SizeOfImage")
    assert [(n, doc["pe"]["image_base"] + s["virtual_address"]) for n, s in doc["sections"].items()] == \
        [(n, vma) for n, _, vma, _ in objdump_sections(f)]          # objdump shows ImageBase + RVA
    v = {v["subject"]: v for v in doc["verdicts"]}
    assert not v["uefi"]["ok"] and not v["qemu-kernel-ovmf"]["ok"] and v["qemu-kernel"]["ok"]
    assert doc["linux"]["kernel_version"].startswith("Memtest86+")


def test_a_kernel_version_string_of_spaces_has_no_uname(tmp_path):
    """The test UKI with its .linux's version string (setup header kernel_version + 0x200) made
    all spaces: `inspect` reported an IndexError from uname (found by the pcrs fuzz harness);
    now the UKI is inspected with no uname."""
    require(KERNEL)
    from bootforge.pe.image import read_pe
    uki = bootforge_uki(tmp_path)
    data = bytearray(uki.read_bytes())
    linux = read_pe(bytes(data)).section(".linux").raw_offset
    at = linux + struct.unpack_from("<H", data, linux + 0x20E)[0] + 0x200
    end = data.index(b"\0", at)
    data[at:end] = b" " * (end - at)
    blank = tmp_path / "blank-version.efi"
    blank.write_bytes(data)
    doc = inspect_json(blank)
    assert doc["linux"]["kernel_version"] == " " * (end - at) and doc["linux"]["uname"] is None
