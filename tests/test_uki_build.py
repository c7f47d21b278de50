"""`bootforge build` of [uki] recipes (issue 14): the layout ukify gives (sections
after the stub's last one, each at the next multiple of SectionAlignment, .linux
last), checked with objdump and lief; reproducibility; bad input.

Also the shared helpers of the UKI tests: the real inputs (Debian's kernel and
systemd-stub), a deterministic initrd, a bootforge UKI and an objcopy UKI."""

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path


from conftest import assert_one_line_error, require, require_module, run_bootforge

KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"          # linux-image-amd64 (Debian 12), the fixtures' kernel
STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"   # systemd-boot-efi 252
CMDLINE = "console=ttyS0 earlyprintk=serial efi=debug nokaslr panic=-1"
OS_RELEASE = 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
INITRD_SIZE = 1048576 + 12345


def make_initrd(path, size=INITRD_SIZE):
    """An empty newc cpio archive (just the trailer: the kernel unpacks it, finds no /init and
    goes on to mount root, then panics) padded with a byte pattern to *size* bytes."""
    name = b"TRAILER!!!\0"
    head = b"070701" + b"".join(b"%08X" % v for v in (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, len(name), 0)) + name
    head += bytes(-len(head) % 512)
    data = head + bytes((i * 7) & 0xFF for i in range(size - len(head)))
    Path(path).write_bytes(data)
    return Path(path)


def write_recipe(directory, **keys):
    """A [uki] recipe in *directory* with the given keys (TOML strings / lists / tables)."""
    lines = ["[uki]"]
    tables = []
    for k, v in keys.items():
        if isinstance(v, dict):
            tables.append(f"[uki.{k}]\n" + "".join(f"{a} = {json.dumps(b)}\n" for a, b in v.items()))
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    p = Path(directory) / "uki.toml"
    p.write_text("\n".join(lines) + "\n" + "".join(tables))
    return p


def bootforge_uki(directory, initrd=True, **extra):
    """Build the test UKI with bootforge into *directory*; return its path."""
    require(KERNEL, STUB)
    directory = Path(directory)
    (directory / "os-release").write_text(OS_RELEASE)
    keys = {"kernel": KERNEL, "cmdline": CMDLINE, "os_release": "os-release", "output": "uki.efi"}
    if initrd:
        make_initrd(directory / "initrd.img")
        keys["initrd"] = ["initrd.img"]
    keys.update(extra)
    recipe = write_recipe(directory, **keys)
    run_bootforge("build", recipe, check=0)
    return directory / "uki.efi"


def objcopy_uki(directory, initrd=True):
    """The same UKI glued with objcopy as Debian 12 users do (no ukify): hand-picked VMAs
    (systemd 252's man page values), .initrd after .linux. Command in tests/data/README.md."""
    require("objcopy", KERNEL, STUB)
    directory = Path(directory)
    (directory / "os-release").write_text(OS_RELEASE)
    (directory / "cmdline.txt").write_text(CMDLINE)
    cmd = ["objcopy", "--add-section", f".osrel={directory / 'os-release'}", "--change-section-vma", ".osrel=0x20000",
           "--add-section", f".cmdline={directory / 'cmdline.txt'}", "--change-section-vma", ".cmdline=0x30000",
           "--add-section", f".linux={KERNEL}", "--change-section-vma", ".linux=0x2000000"]
    if initrd:
        make_initrd(directory / "initrd.img")
        cmd += ["--add-section", f".initrd={directory / 'initrd.img'}", "--change-section-vma", ".initrd=0x3000000"]
    out = directory / "objcopy-uki.efi"
    subprocess.run(cmd + [STUB, str(out)], check=True, capture_output=True)
    return out


def objdump_sections(path):
    """[(name, size, vma, file offset)] from `objdump -h`."""
    require("objdump")
    text = subprocess.run(["objdump", "-h", str(path)], check=True, capture_output=True, text=True).stdout
    return [(m.group(1), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16))
            for m in re.finditer(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", text, re.M)]


def objdump_header(path, field):
    text = subprocess.run(["objdump", "-p", str(path)], check=True, capture_output=True, text=True).stdout
    return int(re.search(rf"^{field}\s+([0-9a-fA-F]+)", text, re.M).group(1), 16)


# ---------------------------------------------------------------------------------------------- tests

def test_layout_is_ukifys(tmp_path):
    uki = bootforge_uki(tmp_path)
    stub = objdump_sections(STUB)
    secs = objdump_sections(uki)
    assert secs[:len(stub)] == stub                    # the stub's sections untouched
    added = secs[len(stub):]
    assert [s[0] for s in added] == [".osrel", ".cmdline", ".uname", ".initrd", ".linux"]
    align = objdump_header(STUB, "SectionAlignment")
    falign = objdump_header(STUB, "FileAlignment")
    prev_end = stub[-1][2] + stub[-1][1]
    for name, size, vma, off in added:
        assert vma == -(-prev_end // align) * align, name   # the next multiple of SectionAlignment
        assert off % falign == 0
        prev_end = vma + size
    assert added[-1][0] == ".linux" and max(s[2] for s in secs) == added[-1][2]
    assert objdump_header(uki, "SizeOfImage") == -(-prev_end // align) * align
    assert objdump_header(uki, "CheckSum") == 0
    assert uki.stat().st_size % falign == 0


def test_lief_reads_what_was_put_in(tmp_path):
    lief = require_module("lief")
    uki = bootforge_uki(tmp_path)
    binary = lief.PE.parse(str(uki))
    by_name = {s.name: s for s in binary.sections}
    assert bytes(by_name[".linux"].content)[:by_name[".linux"].virtual_size] == Path(KERNEL).read_bytes()
    assert bytes(by_name[".initrd"].content)[:by_name[".initrd"].virtual_size] == \
        (tmp_path / "initrd.img").read_bytes()
    assert bytes(by_name[".cmdline"].content)[:by_name[".cmdline"].virtual_size] == CMDLINE.encode()
    assert bytes(by_name[".osrel"].content)[:by_name[".osrel"].virtual_size] == OS_RELEASE.encode()
    # uname as the Debian package names the kernel (vmlinuz-<uname>), not as bootforge reads it
    assert bytes(by_name[".uname"].content)[:by_name[".uname"].virtual_size] == \
        Path(KERNEL).name.removeprefix("vmlinuz-").encode()
    assert binary.header.numberof_sections == len(binary.sections) == 13
    assert binary.optional_header.subsystem == lief.PE.OptionalHeader.SUBSYSTEM.EFI_APPLICATION
    linux = by_name[".linux"]
    assert linux.has_characteristic(lief.PE.Section.CHARACTERISTICS.CNT_CODE)
    assert by_name[".initrd"].has_characteristic(lief.PE.Section.CHARACTERISTICS.MEM_READ)


def test_reproducible_whatever_the_directory_and_clock(tmp_path):
    """Two builds from copies of the inputs with other mtimes, in other directories, under
    another TZ and SOURCE_DATE_EPOCH: the same bytes."""
    require(KERNEL, STUB)
    outs = []
    for i, (sub, env) in enumerate((("a", {}), ("deeper/b", {"TZ": "Asia/Tokyo", "SOURCE_DATE_EPOCH": "1"}))):
        d = tmp_path / sub
        d.mkdir(parents=True)
        shutil.copy(KERNEL, d / "vmlinuz")
        os.utime(d / "vmlinuz", (1000 * i, 1000 * i))
        (d / "os-release").write_text(OS_RELEASE)
        make_initrd(d / "initrd.img")
        recipe = write_recipe(d, kernel="vmlinuz", initrd=["initrd.img"], cmdline=CMDLINE, os_release="os-release",
                              output="uki.efi")
        proc = subprocess.run([sys.executable, "-m", "bootforge", "build", str(recipe)], cwd=d,
                              env={**os.environ, **env}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outs.append((d / "uki.efi").read_bytes())
    assert outs[0] == outs[1]


def test_os_release_table_uname_and_sbat(tmp_path):
    uki = bootforge_uki(tmp_path, initrd=False, os_release={"NAME": 'Bootforge "test"', "ID": "bf"},
                        uname="6.1-test", sbat="sbat,1,SBAT Version,sbat,1,https://x\nbf,1,Bootforge,bf,1,https://y\n")
    proc = run_bootforge("inspect", "--json", uki, check=0)
    inspect = json.loads(proc.stdout)
    s = inspect["sections"]
    assert s[".osrel"]["os_release"] == {"NAME": 'Bootforge "test"', "ID": "bf"}
    assert s[".uname"]["text"] == "6.1-test"
    sbat = s[".sbat"]["text"].splitlines()
    assert sbat[0].startswith("sbat,1,") and sbat[-1] == "bf,1,Bootforge,bf,1,https://y"
    assert sum(line.startswith("sbat,") for line in sbat) == 1
    assert [n for n in s][-1] == ".linux" and ".initrd" not in s
    assert objdump_sections(uki)[-1][0] == ".linux"


def _stub_with(tmp_path, patch):
    data = bytearray(Path(STUB).read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    n = struct.unpack_from("<H", data, pe + 6)[0]
    table = pe + 0x18 + struct.unpack_from("<H", data, pe + 0x14)[0]
    patch(data, pe, n, table)
    p = tmp_path / "stub.efi"
    p.write_bytes(bytes(data))
    return p


def test_bad_kernel_without_pe_header(tmp_path):
    require(KERNEL, STUB)
    data = bytearray(Path(KERNEL).read_bytes())
    data[0:2] = b"\xeb\x3c"        # what a bzImage without CONFIG_EFI_STUB starts with (no "MZ")
    (tmp_path / "bz").write_bytes(bytes(data))
    recipe = write_recipe(tmp_path, kernel="bz", output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "bz", "offset 0x0", "no PE header")
    assert not (tmp_path / "o.efi").exists()


def test_bad_stub_not_systemd(tmp_path):
    require(KERNEL, "/boot/memtest86+x64.efi")
    recipe = write_recipe(tmp_path, kernel=KERNEL, stub="/boot/memtest86+x64.efi", output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "memtest86+x64.efi", "not a systemd EFI stub")


def test_bad_sections_would_overlap(tmp_path):
    require(KERNEL, STUB)

    def swap_first_and_last(data, pe, n, table):    # the last header is .text, far below the top
        a, b = table, table + 40 * (n - 1)
        data[a:a + 40], data[b:b + 40] = data[b:b + 40], data[a:a + 40]
    stub = _stub_with(tmp_path, swap_first_and_last)
    recipe = write_recipe(tmp_path, kernel=KERNEL, stub=str(stub), output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "sections would overlap")

    def no_header_room(data, pe, n, table):     # SizeOfHeaders ends right after the section table
        struct.pack_into("<I", data, pe + 0x18 + 0x3C, table + 40 * n)
    stub = _stub_with(tmp_path, no_header_room)
    assert_one_line_error(run_bootforge("build", recipe), "sections would overlap", "no room")


def test_bad_initrd_beyond_initrd_addr_max(tmp_path):
    require(KERNEL, STUB)
    data = bytearray(Path(KERNEL).read_bytes())
    struct.pack_into("<I", data, 0x22C, 0xFFFFF)      # initrd_addr_max 1 MiB - 1
    (tmp_path / "k").write_bytes(bytes(data))
    make_initrd(tmp_path / "i.img", (1 << 20) + 1)
    recipe = write_recipe(tmp_path, kernel="k", initrd=["i.img"], output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "initrd of 1048577 bytes", "initrd_addr_max 0xfffff")


def test_unknown_key_and_missing_kernel(tmp_path):
    recipe = write_recipe(tmp_path, kernal="x", output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "unknown key", "kernal")


def test_bad_stub_alignment_refused_before_padding(tmp_path):
    """A FileAlignment of 2 GiB would pad the output to gigabytes: refused from the header."""
    require(KERNEL, STUB)

    def huge_file_alignment(data, pe, n, table):
        struct.pack_into("<I", data, pe + 0x18 + 0x24, 0x80000000)
    stub = _stub_with(tmp_path, huge_file_alignment)
    recipe = write_recipe(tmp_path, kernel=KERNEL, stub=str(stub), output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "FileAlignment 0x80000000")


def test_devicetree_and_splash_sections(tmp_path):
    """.dtb and .splash in ukify's order (.osrel .cmdline .dtb .uname .splash .initrd .linux);
    a splash that is not a BMP and a devicetree that is not a DTB are refused."""
    dtb = Path(__file__).parent / "data" / "fdt-reserved.dtb"
    bmp = tmp_path / "splash.bmp"
    pixels = b"\xff\x00\x00\x00"                  # one 1x1 pixel row, padded to 4 bytes
    bmp.write_bytes(b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54)
                    + struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0) + pixels)
    uki = bootforge_uki(tmp_path, devicetree=str(dtb), splash="splash.bmp")
    secs = objdump_sections(uki)
    assert [s[0] for s in secs][-7:] == [".osrel", ".cmdline", ".dtb", ".uname", ".splash", ".initrd", ".linux"]
    lief = require_module("lief")
    binary = lief.PE.parse(str(uki))            # kept alive: its sections point into it
    by_name = {s.name: s for s in binary.sections}
    assert bytes(by_name[".dtb"].content)[:by_name[".dtb"].virtual_size] == dtb.read_bytes()
    assert bytes(by_name[".splash"].content)[:by_name[".splash"].virtual_size] == bmp.read_bytes()
    recipe = write_recipe(tmp_path, kernel=KERNEL, splash=str(dtb), output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "fdt-reserved.dtb", "not a BMP")
    recipe = write_recipe(tmp_path, kernel=KERNEL, devicetree="splash.bmp", output="o.efi")
    assert_one_line_error(run_bootforge("build", recipe), "splash.bmp", "not a DTB")
