"""bootforge build of [image] recipes: hybrid ISOs and GPT disks, reproducible to the byte, checked by
independent tools (xorriso, isoinfo, sgdisk, fsck.fat, mtools), read back by inspect and load, and
images bootforge did not make (grub-mkrescue, xorriso + isolinux, Limine's README recipe, Debian's
ipxe.iso) read by inspect."""

import hashlib
import json
import os
import shutil
import struct
import subprocess

import pytest

from bootforge.qemu import media
from mboracle import module_bytes
from conftest import BUILD, DATA, REPO, assert_one_line_error, require, run_bootforge

STUB = BUILD / "stubs" / "mbdump.elf"
LIMINE_DIR = REPO.parent / "shared" / "oracles" / "limine-11.4.1"
GRUB_TOOLS = ("grub-mkimage", "/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tree(d, protocol="multiboot2"):
    """A kernel (the dump kernel with a header) and two modules in *d*."""
    require(str(STUB))
    recipe = "mb2" if protocol == "multiboot2" else "mb1"
    run_bootforge("build", REPO / f"recipes/kernel-mbdump-{recipe}.toml", "-o", d / "kernel.elf", check=0)
    (d / "mod1").write_bytes(module_bytes("mod1", 3000))
    (d / "initrd.tar").write_bytes(module_bytes("initrd", 70001))
    (d / "README.txt").write_text("hello\n")


def recipe_text(fmt="iso", loader="grub", firmware=("bios", "uefi"), protocol="multiboot2", extra="", output=None):
    return (f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = {json.dumps(list(firmware))}\n'
            f'output = "{output or "os." + ("iso" if fmt == "iso" else "img")}"\n{extra}'
            f'[[image.entries]]\ntitle = "my os"\nkernel = "kernel.elf"\nprotocol = "{protocol}"\n'
            f'cmdline = "console=ttyS0 a=b"\n'
            f'[[image.entries.modules]]\npath = "mod1"\ncmdline = "mod1-args"\n'
            f'[[image.entries.modules]]\npath = "initrd.tar"\nloader_path = "/boot/Initrd.tar"\ncmdline = "initrd"\n'
            f'[[image.files]]\nsource = "README.txt"\npath = "/README.txt"\n')


def build(d, text, *args, check=0):
    (d / "r.toml").write_text(text)
    return run_bootforge("build", d / "r.toml", *args, check=check)


@pytest.fixture(scope="module")
def grub_images(tmp_path_factory):
    require(*GRUB_TOOLS)
    d = tmp_path_factory.mktemp("grub")
    write_tree(d)
    out = {}
    for fmt in ("iso", "disk"):
        build(d, recipe_text(fmt))
        out[fmt] = d / ("os.iso" if fmt == "iso" else "os.img")
    return out


# ---------------------------------------------------------------- reproducible

def test_same_bytes_whatever_the_clock_umask_mtimes_and_directory(tmp_path):
    """Two builds with other input mtimes and modes, umask, time zone, working directory and
    recipe path, SOURCE_DATE_EPOCH unset in both (and run at different clock times): same bytes."""
    import sys
    require(*GRUB_TOOLS)
    hashes = []
    for i, (umask, mtime, tz) in enumerate(((0o022, 1_000_000_000, "UTC"), (0o077, 1_700_000_000, "Asia/Kolkata"))):
        d = tmp_path / f"run{i}" / ("deep" * (i + 1))
        d.mkdir(parents=True)
        write_tree(d)
        for f in d.iterdir():
            os.utime(f, (mtime, mtime))
            f.chmod(0o600 if i else 0o644)
        for fmt in ("iso", "disk"):
            (d / f"{fmt}.toml").write_text(recipe_text(fmt))
            env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
            env.update(TZ=tz, PYTHONPATH=str(REPO))
            old = os.umask(umask)
            try:
                # Run from the recipe's directory once and from its grandparent once.
                cwd, recipe = (d, f"{fmt}.toml") if i == 0 else (d.parent.parent, str(d / f"{fmt}.toml"))
                proc = subprocess.run([sys.executable, "-m", "bootforge", "build", recipe], cwd=cwd, env=env,
                                      capture_output=True, text=True)
            finally:
                os.umask(old)
            assert proc.returncode == 0, proc.stderr
        assert oct((d / "os.iso").stat().st_mode & 0o777) == "0o644"
        hashes.append((sha(d / "os.iso"), sha(d / "os.img")))
    assert hashes[0] == hashes[1]


def test_source_date_epoch_is_honoured(tmp_path):
    require(*GRUB_TOOLS, "xorriso")
    write_tree(tmp_path)
    (tmp_path / "r.toml").write_text(recipe_text("iso"))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    import sys
    proc = subprocess.run([sys.executable, "-m", "bootforge", "build", str(tmp_path / "r.toml"), "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source_date_epoch"] == 1700000000
    info = subprocess.run(["xorriso", "-indev", str(tmp_path / "os.iso"), "-pvd_info"], capture_output=True,
                          text=True).stdout
    assert "Creation Time: 2023111422132000" in info       # 1700000000 is 2023-11-14 22:13:20 UTC


# ---------------------------------------------------------------- independent checkers

def test_xorriso_reads_both_el_torito_entries_and_the_gpt(grub_images):
    require("xorriso")
    out = subprocess.run(["xorriso", "-indev", str(grub_images["iso"]), "-report_el_torito", "plain",
                          "-report_system_area", "plain"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout
    assert "Boot record  : El Torito , MBR protective-msdos-label grub2-mbr cyl-align-off GPT" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("El Torito boot img :")]
    assert [(x[5], x[6], x[7]) for x in lines] == [("1", "BIOS", "y"), ("2", "UEFI", "y")]
    assert "El Torito img path :   1  /boot/grub/i386-pc-eltorito.img" in out
    assert "GPT type GUID      :   1  28732ac11ff8d211ba4b00a0c93ec93b" in out     # ESP


def test_grub_isos_end_with_xorrisos_padding(tmp_path):
    """Every GRUB ISO with a BIOS image has 300 KiB of zeros inside its volume after the last file
    (grub-mkrescue's xorriso -padding 300k; GRUB i386-pc misread a kernel in a CD's last 32 KiB,
    tests/test_image_qemu.py), the BIOS-only one too; xorriso lists every file's extent."""
    require(*GRUB_TOOLS, "xorriso")
    write_tree(tmp_path)
    for firmware in (("bios",), ("bios", "uefi")):
        build(tmp_path, recipe_text("iso", firmware=firmware, output="p.iso"))
        iso = tmp_path / "p.iso"
        out = subprocess.run(["xorriso", "-indev", str(iso), "-find", "/", "-exec", "report_lba"],
                             capture_output=True, text=True).stdout
        ends = [(int(x[4]) + int(x[5])) * 2048 for x in (line.replace(",", " ").split()
                                                          for line in out.splitlines()
                                                          if line.startswith("File data lba:"))]
        data = iso.read_bytes()
        volume = struct.unpack_from("<I", data, 16 * 2048 + 80)[0] * 2048
        assert ends and volume - max(ends) >= 300 * 1024, (firmware, volume, max(ends))
        assert not any(data[max(ends):volume])


def test_isoinfo_sees_rock_ridge_and_the_catalog(grub_images):
    require("isoinfo")
    info = subprocess.run(["isoinfo", "-d", "-i", str(grub_images["iso"])], capture_output=True, text=True).stdout
    assert "Rock Ridge signatures version 1 found" in info and "Bootid 88 (bootable)" in info
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(grub_images["iso"])], capture_output=True,
                             text=True).stdout.split()
    assert {"/boot/Initrd.tar", "/boot/kernel.elf", "/boot/mod1", "/boot/grub/grub.cfg", "/README.txt"} <= set(listing)


def test_sgdisk_verifies_both_images(grub_images):
    require("sgdisk")
    for image in grub_images.values():
        proc = subprocess.run(["sgdisk", "-v", str(image)], capture_output=True, text=True)
        assert "No problems found." in proc.stdout, proc.stdout


def test_fsck_fat_and_mtools_read_the_esps(grub_images, tmp_path):
    require("fsck.fat", "mdir")
    doc = json.loads(run_bootforge("inspect", "--json", grub_images["disk"], check=0).stdout)
    esp = next(p for p in doc["gpt"]["partitions"] if p["type"] == "EFI system partition")
    part = tmp_path / "esp.img"
    with open(grub_images["disk"], "rb") as f:
        f.seek(esp["first_lba"] * 512)
        part.write_bytes(f.read((esp["last_lba"] - esp["first_lba"] + 1) * 512))
    proc = subprocess.run(["fsck.fat", "-n", str(part)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(part), "::"], capture_output=True, text=True).stdout
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing and "::/boot/Initrd.tar" in listing
    got = subprocess.run(["mtype", "-i", str(part), "::/boot/Initrd.tar"], capture_output=True).stdout
    assert got == module_bytes("initrd", 70001)
    # The ISO's El Torito EFI image is a FAT volume too.
    iso_doc = json.loads(run_bootforge("inspect", "--json", grub_images["iso"], check=0).stdout)
    efi = next(e for e in iso_doc["el_torito"]["entries"] if e["platform"] == "UEFI")
    img = tmp_path / "efi.img"
    with open(grub_images["iso"], "rb") as f:
        f.seek(efi["load_rba"] * 2048)
        img.write_bytes(f.read(efi["sector_count"] * 512))
    assert subprocess.run(["fsck.fat", "-n", str(img)], capture_output=True).returncode == 0


def test_hybrid_mbr_points_grub_at_its_core(grub_images):
    """boot_hybrid.img's core sector (0x1B0) = El Torito image LBA * 4 + 4, and the image's own
    copy of its LBA * 4 + 5 at 2548: what grub-mkrescue's xorriso run writes (--grub2-mbr,
    --grub2-boot-info)."""
    data = grub_images["iso"].read_bytes()
    boot_hybrid = open("/usr/lib/grub/i386-pc/boot_hybrid.img", "rb").read()
    assert data[:432] == boot_hybrid[:432]
    catalog_lba = struct.unpack_from("<I", data, 17 * 2048 + 0x47)[0]
    bios_lba = struct.unpack_from("<I", data, catalog_lba * 2048 + 32 + 8)[0]
    assert struct.unpack_from("<Q", data, 0x1B0)[0] == bios_lba * 4 + 4
    assert struct.unpack_from("<Q", data, bios_lba * 2048 + 2548)[0] == bios_lba * 4 + 5


# ---------------------------------------------------------------- build output, inspect, load

def test_build_shows_the_generated_configuration(tmp_path):
    require(*GRUB_TOOLS)
    write_tree(tmp_path)
    text = build(tmp_path, recipe_text("iso")).stdout
    assert "multiboot2 /boot/kernel.elf console=ttyS0 a=b" in text and "module2 /boot/Initrd.tar initrd" in text
    assert "sha256" not in text           # only asked for: hashing a large image costs more than writing it
    doc = json.loads(build(tmp_path, recipe_text("iso"), "--json").stdout)
    assert "sha256" not in doc
    doc = json.loads(build(tmp_path, recipe_text("iso"), "--json", "--sha256").stdout)
    assert doc["configuration_path"] == "/boot/grub/grub.cfg"
    assert "menuentry 'my os' {" in doc["configuration"]
    assert doc["sha256"] == sha(tmp_path / "os.iso")
    assert "multiboot2" in doc["grub_modules_bios"] and "iso9660" in doc["grub_modules_uefi"]


def test_inspect_reads_back_what_build_wrote(grub_images):
    doc = json.loads(run_bootforge("inspect", "--json", grub_images["iso"], check=0).stdout)
    assert doc["format"] == "image" and doc["loader"] == "grub"
    assert doc["mbr"]["boot_code"] == "GRUB boot.img / boot_hybrid.img"
    g = doc["gpt"]
    assert g["header"]["header_crc_ok"] and g["header"]["entries_crc_ok"] and g["backup"]["matches_primary"]
    assert [e["platform"] for e in doc["el_torito"]["entries"]] == ["x86 BIOS", "UEFI"]
    assert [e["identity"] for e in doc["el_torito"]["entries"]] == ["GRUB cdboot.img (i386-pc-eltorito)", "FAT image"]
    assert [f["path"] for f in doc["esp"]["files"]] == ["/EFI/BOOT/BOOTX64.EFI"]
    (entry,) = doc["entries"]
    assert entry["kernel"] == "/boot/kernel.elf" and entry["verdict"]["subject"] == "grub-mb2"
    assert entry["verdict"]["ok"]
    # The kernel as read from inside the image says what the kernel file itself says.
    direct = json.loads(run_bootforge("inspect", "--json", grub_images["iso"].parent / "kernel.elf", check=0).stdout)
    assert entry["multiboot2_header_offset"] == direct["multiboot2"]["offset"] and entry["kernel_kind"] == "ELF32"
    assert entry["verdict"] == direct["loaders"]["grub-mb2"]
    assert [(m["path"], m["size"]) for m in entry["modules"]] == [("/boot/mod1", 3000), ("/boot/Initrd.tar", 70001)]
    disk = json.loads(run_bootforge("inspect", "--json", grub_images["disk"], check=0).stdout)
    assert [p["type"] for p in disk["gpt"]["partitions"]] == ["BIOS boot partition", "EFI system partition"]
    assert disk["entries"][0]["modules"][1]["size"] == 70001


def test_load_predicts_from_inside_the_image(grub_images, tmp_path):
    for fmt, image in grub_images.items():
        for fw, loader in (("bios", "grub-pc-mb2"), ("uefi", "grub-efi-mb2")):
            doc = json.loads(run_bootforge("load", image, "--firmware", fw, "--json", check=0).stdout)
            assert doc["loader"] == loader, doc
            assert doc["mbi"]["cmdline"] == "console=ttyS0 a=b"
            assert [m["end"] - m["start"] for m in doc["mbi"]["modules"]] == [3000, 70001]


def test_load_of_the_recipe_equals_load_of_the_image(tmp_path):
    require(*GRUB_TOOLS)
    write_tree(tmp_path)
    build(tmp_path, recipe_text("iso"))
    a = json.loads(run_bootforge("load", tmp_path / "r.toml", "--json", check=0).stdout)
    b = json.loads(run_bootforge("load", tmp_path / "os.iso", "--json", check=0).stdout)
    assert a["loader"] == b["loader"] == "grub-pc-mb2"
    assert a["mbi"] == b["mbi"]


def test_bad_gpt_crc_is_a_defect_and_a_catalog_past_the_end_is_bad_input(grub_images, tmp_path):
    bad = tmp_path / "bad-crc.iso"
    shutil.copyfile(grub_images["iso"], bad)
    with open(bad, "r+b") as f:
        f.seek(512 + 16)
        f.write(b"\0\0\0\0")
    proc = run_bootforge("inspect", bad)
    assert proc.returncode == 1 and "GPT header CRC32" in proc.stdout
    past = tmp_path / "past.iso"
    shutil.copyfile(grub_images["iso"], past)
    with open(past, "r+b") as f:
        f.seek(17 * 2048 + 0x47)
        f.write(struct.pack("<I", 0x7FFFFFF))
    assert_one_line_error(run_bootforge("inspect", past), str(past), "El Torito catalog", "past the end")


# ---------------------------------------------------------------- images bootforge did not make

def test_inspect_grub_mkrescue_image(tmp_path):
    require("grub-mkrescue", "xorriso", "mformat", str(STUB))
    write_tree(tmp_path)
    k = media.BootFile(tmp_path / "kernel.elf", "/boot/kernel", "a=b")
    mods = [media.BootFile(tmp_path / "mod1", "/boot/mod1", "mod1-args")]
    iso = tmp_path / "grub.iso"
    media.grub_iso(tmp_path, "multiboot2", k, mods)
    doc = json.loads(run_bootforge("inspect", "--json", iso, check=0).stdout)
    assert doc["loader"] == "grub" and doc["mbr"]["boot_code"] == "GRUB boot.img / boot_hybrid.img"
    assert doc["el_torito"]["entries"][0]["image"] == "/boot/grub/i386-pc/eltorito.img"
    assert doc["el_torito"]["entries"][0]["identity"] == "GRUB cdboot.img (i386-pc-eltorito)"
    assert doc["esp"]["files"][0]["path"].lower() == "/efi/boot/bootx64.efi"
    assert doc["entries"][0]["verdict"]["ok"] and doc["entries"][0]["modules"][0]["size"] == 3000
    load = json.loads(run_bootforge("load", iso, "--json", check=0).stdout)
    assert load["loader"] == "grub-pc-mb2"


def test_inspect_xorriso_isolinux_isohybrid(tmp_path):
    require("xorriso", "/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/ISOLINUX/isohdpfx.bin", str(STUB))
    write_tree(tmp_path, "multiboot1")
    root = media.isolinux_tree(tmp_path / "s", tmp_path / "kernel.elf")
    (root / "mod1").write_bytes(b"m" * 100)
    (root / "isolinux" / "isolinux.cfg").write_text(
        "DEFAULT k\nLABEL k\n  KERNEL mboot.c32\n  APPEND /kernel.elf args --- /mod1 m1\n")
    iso = tmp_path / "s.iso"
    media.run_tool(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-isohybrid-mbr",
                     "/usr/lib/ISOLINUX/isohdpfx.bin", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
                     "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", str(root)])
    doc = json.loads(run_bootforge("inspect", "--json", iso, check=0).stdout)
    assert doc["mbr"]["boot_code"] == "syslinux isohdpfx.bin (isohybrid)"
    assert doc["loader"] == "syslinux" and doc["el_torito"]["entries"][0]["identity"] == "ISOLINUX"
    e = doc["entries"][0]
    assert (e["protocol"], e["kernel"], e["cmdline"]) == ("multiboot1", "/kernel.elf", "args")
    assert e["modules"] == [{"path": "/mod1", "cmdline": "m1", "size": 100, "present": True}]
    assert e["verdict"]["subject"] == "syslinux-mb1" and e["verdict"]["ok"]


def test_inspect_limine_iso_made_as_limines_readme_says(tmp_path):
    require("xorriso", "cc", str(LIMINE_DIR / "limine.c"), str(STUB))
    write_tree(tmp_path)
    iso_root = tmp_path / "iso"
    (iso_root / "boot" / "limine").mkdir(parents=True)
    (iso_root / "EFI" / "BOOT").mkdir(parents=True)
    shutil.copyfile(tmp_path / "kernel.elf", iso_root / "boot" / "kernel")
    for name in ("limine-bios.sys", "limine-bios-cd.bin", "limine-uefi-cd.bin"):
        shutil.copyfile(LIMINE_DIR / name, iso_root / "boot" / "limine" / name)
    shutil.copyfile(LIMINE_DIR / "BOOTX64.EFI", iso_root / "EFI" / "BOOT" / "BOOTX64.EFI")
    (iso_root / "boot" / "limine" / "limine.conf").write_text(
        "timeout: 0\n/k\n    protocol: multiboot2\n    path: boot():/boot/kernel\n    cmdline: a=b\n")
    iso = tmp_path / "lim.iso"
    media.run_tool(["xorriso", "-as", "mkisofs", "-R", "-r", "-J", "-b", "boot/limine/limine-bios-cd.bin",
                     "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "-hfsplus", "-apm-block-size",
                     "2048", "--efi-boot", "boot/limine/limine-uefi-cd.bin", "-efi-boot-part", "--efi-boot-image",
                     "--protective-msdos-label", str(iso_root), "-o", str(iso)])
    from bootforge.bootloaders import limine
    subprocess.run([limine.tool(str(LIMINE_DIR)), "bios-install", str(iso)], check=True, capture_output=True)
    doc = json.loads(run_bootforge("inspect", "--json", iso, check=0).stdout)
    assert doc["loader"] == "limine" and doc["config_path"] == "/boot/limine/limine.conf"
    e = doc["entries"][0]
    assert (e["protocol"], e["kernel"], e["cmdline"]) == ("multiboot2", "/boot/kernel", "a=b")
    assert e["verdict"]["subject"] == "limine-mb2" and e["verdict"]["ok"]
    assert doc["el_torito"]["entries"][0]["identity"] == "Limine"


def test_inspect_debian_ipxe_iso():
    require("/usr/lib/ipxe/ipxe.iso")
    proc = run_bootforge("inspect", "--json", "/usr/lib/ipxe/ipxe.iso", check=0)
    doc = json.loads(proc.stdout)
    assert doc["mbr"]["boot_code"] == "syslinux isohdpfx.bin (isohybrid)"
    assert [e["platform"] for e in doc["el_torito"]["entries"]] == ["x86 BIOS", "UEFI"]
    assert doc["el_torito"]["entries"][0]["image"] == "/isolinux.bin"
    assert doc["loader"] == "syslinux" and doc["config_path"] == "/isolinux.cfg"
    assert doc["entries"][0]["protocol"] is None and doc["entries"][0]["kernel"] == "ipxe.krn"
    assert doc["esp"]["files"][0]["path"].lower() == "/efi/boot/bootx64.efi"
    assert_one_line_error(run_bootforge("load", "/usr/lib/ipxe/ipxe.iso"), "ipxe.lkrn", "not a Multiboot entry")


# ---------------------------------------------------------------- bad input: one line, exit 2, no output

@pytest.mark.parametrize("change,fragments", [
    (lambda t: t.replace('path = "mod1"', 'path = "missing.bin"'), ["missing.bin", "No such file"]),
    (lambda t: t.replace('kernel = "kernel.elf"', 'kernel = "nokernel.elf"'), ["nokernel.elf"]),
    (lambda t: t.replace('path = "/README.txt"', 'path = "/boot/mod1"'), ["two files map to one path", "/boot/mod1"]),
    (lambda t: t.replace('path = "/README.txt"', 'path = "/BOOT/MOD1"').replace('format = "iso"', 'format = "disk"'),
     ["two files map to one", "FAT"]),
    (lambda t: t + '[[image.files]]\nsource = "README.txt"\npath = "/a-b.txt"\n'
     '[[image.files]]\nsource = "README.txt"\npath = "/a_b.txt"\n', ["ISO 9660 name A_B.TXT;1", "/a_b.txt"]),
    (lambda t: t.replace('[image]\n', '[image]\nsize = "64K"\n'), ["size"]),
    (lambda t: t.replace('loader = "grub"', 'loader = "limine"\nlimine_dir = "nolimine"'), ["nolimine"]),
])
def test_bad_recipes_exit_2_with_no_output(tmp_path, change, fragments):
    require(*GRUB_TOOLS)
    write_tree(tmp_path)
    proc = build(tmp_path, change(recipe_text("iso")), check=None)
    assert_one_line_error(proc, *fragments)
    assert not any(p.suffix in (".iso", ".img") or p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_limine_dir_missing_a_file_is_named(tmp_path):
    require(*GRUB_TOOLS)
    write_tree(tmp_path)
    lim = tmp_path / "lim"
    lim.mkdir()
    for name in ("limine-bios-cd.bin", "limine-bios.sys", "BOOTX64.EFI"):
        (lim / name).write_bytes(b"x")
    proc = build(tmp_path, recipe_text("iso", "limine", extra='limine_dir = "lim"\n'), check=None)
    assert_one_line_error(proc, "limine-uefi-cd.bin")


def test_kernel_the_loader_refuses_is_refused_in_its_words(tmp_path):
    require(*GRUB_TOOLS, str(STUB))
    write_tree(tmp_path)
    shutil.copyfile(STUB, tmp_path / "kernel.elf")                # no Multiboot header at all
    proc = build(tmp_path, recipe_text("iso"), check=None)
    assert_one_line_error(proc, "grub-mb2", "no multiboot header found")
    assert not (tmp_path / "os.iso").exists()


def test_syslinux_needs_multiboot1(tmp_path):
    write_tree(tmp_path)
    proc = build(tmp_path, recipe_text("iso", "syslinux", ["bios"]), check=None)
    assert_one_line_error(proc, "mboot.c32", "Multiboot 1")


def test_syslinux_and_limine_images_are_reproducible(tmp_path):
    """limine bios-install writes a random MBR id when it converts an ISO's GPT (limine.c
    srand(time(NULL))): bootforge gives Limine an MBR-only hybrid, so two builds are equal."""
    require("/usr/lib/ISOLINUX/isolinux.bin", "cc", str(LIMINE_DIR / "limine.c"))
    hashes = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        write_tree(d, "multiboot1")
        for f in d.iterdir():
            os.utime(f, (1_000_000_000 * (i + 1),) * 2)
        build(d, recipe_text("iso", "syslinux", ["bios"], "multiboot1", output="s.iso"))
        build(d, recipe_text("iso", "limine", protocol="multiboot1", extra=f'limine_dir = "{LIMINE_DIR}"\n',
                             output="l.iso"))
        hashes.append((sha(d / "s.iso"), sha(d / "l.iso")))
    assert hashes[0] == hashes[1]
    doc = json.loads(run_bootforge("inspect", "--json", tmp_path / "run0" / "l.iso", check=0).stdout)
    assert doc["mbr"]["boot_code"] == "Limine MBR (limine bios-install)" and doc["loader"] == "limine"
    assert [(p["type"], p["sectors"]) for p in doc["mbr"]["partitions"]] == \
        [(0xEF, doc["el_torito"]["entries"][1]["sector_count"])]
    doc = json.loads(run_bootforge("inspect", "--json", tmp_path / "run0" / "s.iso", check=0).stdout)
    assert doc["mbr"]["boot_code"] == "syslinux isohdpfx.bin (isohybrid)" and doc["loader"] == "syslinux"


def test_a_loader_directory_that_is_not_there_names_its_debian_package(tmp_path, monkeypatch):
    require(str(STUB))
    from bootforge.errors import ToolError
    from bootforge.image import build as image_build
    from bootforge.bootloaders import grub
    import tomllib
    write_tree(tmp_path)
    (tmp_path / "r.toml").write_text(recipe_text("iso"))
    monkeypatch.setattr(grub, "PC_DIR", str(tmp_path / "no-i386-pc"))
    with pytest.raises(ToolError, match="install the Debian package grub-pc-bin"):
        image_build.build_image_recipe(tmp_path / "r.toml", tomllib.loads((tmp_path / "r.toml").read_text()),
                                       tmp_path / "os.iso")
    assert not any(p.name.endswith((".iso", ".tmp")) for p in tmp_path.iterdir())


def test_a_disk_of_a_given_size_larger_than_inspect_would_read_whole(tmp_path):
    """size = "3G": a FAT32 ESP fills the disk (the file is sparse); inspect reads it by offset."""
    require(*GRUB_TOOLS, "sgdisk")
    write_tree(tmp_path)
    build(tmp_path, recipe_text("disk", extra='size = "3G"\n'))
    image = tmp_path / "os.img"
    assert image.stat().st_size == 3 << 30
    assert "No problems found." in subprocess.run(["sgdisk", "-v", str(image)], capture_output=True, text=True).stdout
    doc = json.loads(run_bootforge("inspect", "--json", image, check=0).stdout)
    assert doc["esp"]["type"] == "FAT32" and doc["gpt"]["partitions"][1]["last_lba"] > (2 << 30) // 512
    assert doc["entries"][0]["modules"][1]["size"] == 70001
    proc = build(tmp_path, recipe_text("disk", extra='size = "1M"\n'), check=None)
    assert_one_line_error(proc, "size")


def test_two_entries_one_image_load_picks_by_index_or_title(tmp_path):
    require(*GRUB_TOOLS)
    write_tree(tmp_path)
    run_bootforge("build", REPO / "recipes/kernel-mbdump-mb1.toml", "-o", tmp_path / "k1.elf", check=0)
    text = recipe_text("iso") + ('[[image.entries]]\ntitle = "old"\nkernel = "k1.elf"\nprotocol = "multiboot1"\n'
                                 'cmdline = "one"\n')
    build(tmp_path, text)
    cfg = json.loads(run_bootforge("inspect", "--json", tmp_path / "os.iso", check=0).stdout)
    assert [(e["title"], e["protocol"]) for e in cfg["entries"]] == [("my os", "multiboot2"), ("old", "multiboot1")]
    first = json.loads(run_bootforge("load", tmp_path / "os.iso", "--json", check=0).stdout)
    by_index = json.loads(run_bootforge("load", tmp_path / "os.iso", "--entry", "1", "--json", check=0).stdout)
    by_title = json.loads(run_bootforge("load", tmp_path / "os.iso", "--entry", "old", "--platform",
                                        "qemu-pc-seabios:1G", "--json", check=0).stdout)
    assert first["loader"] == "grub-pc-mb2" and by_index["loader"] == by_title["loader"] == "grub-pc-mb1"
    assert by_index["mbi"]["cmdline"].endswith("one") and by_title["platform"]["memory_bytes"] == 1 << 30
    # GRUB x86_64-efi's `multiboot` (grub-efi-mb1) for the Multiboot 1 entry on UEFI.
    efi = json.loads(run_bootforge("load", tmp_path / "os.iso", "--entry", "old", "--firmware", "uefi", "--json",
                                   check=0).stdout)
    assert efi["loader"] == "grub-efi-mb1" and efi["mbi"]["cmdline"].endswith("one")
    nope = run_bootforge("load", tmp_path / "os.iso", "--entry", "nope")
    assert_one_line_error(nope, f"{tmp_path / 'os.iso'}: no entry 'nope'")
    assert nope.stderr.count(str(tmp_path / "os.iso")) == 1, nope.stderr


@pytest.mark.parametrize("capture", ["image-grub-iso-seabios-cdrom", "image-grub-iso-ovmf-cdrom",
                                     "image-grub-disk-ovmf-disk", "image-syslinux-iso-seabios-disk"])
def test_captured_boots_of_our_images_equal_load(tmp_path, capture):
    """Without QEMU: the same images rebuilt, `load IMAGE` against what the real loaders handed the dump
    kernel when these images were booted (tests/data/image-*.dump, python tests/test_image_qemu.py)."""
    require(*GRUB_TOOLS, "/usr/lib/ISOLINUX/isolinux.bin", str(STUB))
    from test_image_qemu import CAPTURES, build_images, decoded
    from bootforge.image.load import image_request
    from bootforge.loader.policies import policy
    from bootforge.verify.compare import observed_fields, predicted_fields
    image, firmware, _how = CAPTURES[capture]
    images = build_images(tmp_path)
    seen = observed_fields(decoded((DATA / f"{capture}.dump").read_bytes()))
    req = image_request(images[image], firmware="uefi" if firmware == "ovmf" else "bios")
    want = predicted_fields(policy(req.loader)(req))
    assert {k: (want[k], seen.get(k)) for k in want if want[k] != seen.get(k)} == {}


@pytest.mark.parametrize("capture, biosdev, partition", [
    ("image-grub-disk-seabios-disk", 0x80, 1),              # the ESP, GPT partition 2
    ("image-grub-iso-seabios-cdrom", 0xE0, 0xFFFFFFFF)])
def test_grub_hands_over_the_device_it_booted_from(tmp_path, capture, biosdev, partition):
    """MB2 tag 5: GRUB i386-pc's root device, the first hard disk's partition holding the entries
    on a disk image, the whole CD-ROM for an ISO; the real GRUB's tag (the capture) equals the
    tag `load IMAGE` predicts, byte for byte."""
    require(*GRUB_TOOLS, str(STUB))
    from test_image_qemu import CAPTURES, build_images
    from bootforge.image.load import image_request
    from bootforge.loader.policies import policy
    from bootforge.multiboot.dump import parse_dump
    from bootforge.multiboot.mbi2 import decode_mb2_info
    image, _firmware, _how = CAPTURES[capture]
    regions = parse_dump((DATA / f"{capture}.dump").read_bytes())[2]
    seen = next(t for t in decode_mb2_info(next(r for r in regions if r.name == "mbi").data)["tags"]
                if t["type"] == 5)
    assert (seen["biosdev"], seen["partition"], seen["sub_partition"]) == (biosdev, partition, 0xFFFFFFFF)
    req = image_request(build_images(tmp_path)[image], firmware="bios")
    want = next(t for t in decode_mb2_info(policy(req.loader)(req).mbi_bytes)["tags"] if t["type"] == 5)
    assert {k: want[k] for k in ("biosdev", "partition", "sub_partition")} == \
        {k: seen[k] for k in ("biosdev", "partition", "sub_partition")}


def test_corrupted_images_give_a_report_or_one_error_never_a_traceback(grub_images, tmp_path):
    """Random bytes in the MBR, GPT, descriptors, catalog, root directory and ESP boot sector of our
    images (and truncations): inspect and load end in a report or a BootforgeError, nothing else."""
    import random
    from bootforge.errors import BootforgeError
    from bootforge.image.inspect import inspect_image
    from bootforge.image.load import image_request
    rng = random.Random(12)
    for image in grub_images.values():
        base = image.read_bytes()
        hot = [(0, 512), (512, 1024), (1024, 1536), (16 * 2048, 18 * 2048 + 64), (21 * 2048, 25 * 2048),
               (102 * 2048, 102 * 2048 + 512), (2048 * 512, 2048 * 512 + 512), (4096 * 512, 4096 * 512 + 512)]
        for i in range(25):
            data = bytearray(base)
            if i % 5 == 4:
                data = data[:rng.randrange(len(data))]
            else:
                for _ in range(rng.randint(1, 6)):
                    a, b = rng.choice([(a, b) for a, b in hot if b <= len(data)])
                    data[rng.randrange(a, min(b, len(data)))] = rng.choice((0, 0xFF, rng.randrange(256)))
            bad = tmp_path / "bad.img"
            bad.write_bytes(data)
            for action in (inspect_image, image_request):
                try:
                    action(bad)
                except BootforgeError:
                    pass


# ---------------------------------------------------------------- what new users met (the image builder)

def test_an_entry_whose_kernel_lacks_its_protocols_header_is_refused(tmp_path):
    """mboot.c32 boots a header-less ELF anyway (syslinux-mb1 loads it), so an MB2-only kernel
    under protocol = "multiboot1" would start with a magic it does not check for: refused,
    unless allow_refusal (test images)."""
    require("/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/mboot.c32")
    write_tree(tmp_path)                     # kernel.elf: Multiboot2 only
    text = recipe_text("iso", "syslinux", ["bios"], protocol="multiboot1")
    assert_one_line_error(build(tmp_path, text, check=None), "protocol = 'multiboot1'",
                          "no Multiboot1 header")
    assert not (tmp_path / "os.iso").exists()
    build(tmp_path, text.replace('[image]\n', '[image]\nallow_refusal = true\n'))
    assert (tmp_path / "os.iso").exists()


def test_the_loaders_verdict_is_run_unless_allow_refusal(tmp_path):
    require(*GRUB_TOOLS, str(STUB))
    write_tree(tmp_path)
    shutil.copyfile(STUB, tmp_path / "kernel.elf")                # no Multiboot header at all
    text = recipe_text("iso", firmware=["bios"])
    assert_one_line_error(build(tmp_path, text, check=None), "grub-mb2", "no multiboot header found")
    build(tmp_path, text.replace('[image]\n', '[image]\nallow_refusal = true\n'))
    assert (tmp_path / "os.iso").exists()


def test_the_verdict_index_is_every_policys_own_declaration():
    """verdict_for reads the registry's VERDICTS index instead of importing the policy's module:
    the index must say, for every registered policy and no other name, what the policy declares,
    and a policy whose declaration disagrees is refused when it registers."""
    from bootforge.bootloaders import BOOTLOADERS
    from bootforge.image.recipe import verdict_for
    from bootforge.loader.policies import POLICIES, VERDICTS, loader_policy
    assert VERDICTS == {name: p.verdict for name, p in POLICIES.items()}
    for b in BOOTLOADERS.values():
        for (fw, proto), name in b.policies.items():
            assert verdict_for(b.name, proto, fw) == POLICIES.get(name).verdict
    with pytest.raises(ValueError, match="grub-pc-mb2: verdict 'qemu-mb1'"):
        loader_policy("grub-pc-mb2", firmware="bios", protocol="multiboot2", verdict="qemu-mb1", source="",
                      verified=False, boot_medium=None)


def test_limine_dir_defaults_to_the_environment_and_a_written_key_wins(tmp_path, monkeypatch):
    """recipes/image-limine.toml works from any clone: it names no limine_dir, so
    $BOOTFORGE_LIMINE_DIR is used; a limine_dir the user writes wins over it."""
    import tomllib
    from bootforge.image.recipe import read_image_table
    recipe = REPO / "recipes" / "image-limine.toml"
    table = tomllib.loads(recipe.read_text())
    assert "limine_dir" not in table["image"]
    write_tree(tmp_path)
    text = recipe_text("iso", "limine")
    monkeypatch.setenv("BOOTFORGE_LIMINE_DIR", str(tmp_path / "from-env"))
    assert read_image_table(tmp_path / "r.toml", tomllib.loads(text)).limine_dir == str(tmp_path / "from-env")
    written = tomllib.loads(text.replace('[image]\n', '[image]\nlimine_dir = "mine"\n'))
    assert read_image_table(tmp_path / "r.toml", written).limine_dir == str(tmp_path / "mine")
    monkeypatch.delenv("BOOTFORGE_LIMINE_DIR")
    with pytest.raises(Exception, match="BOOTFORGE_LIMINE_DIR"):
        read_image_table(tmp_path / "r.toml", tomllib.loads(text))


def test_recipe_comments_name_recipes_that_exist_and_image_recipes_their_own_name():
    """Each `bootforge build recipes/X.toml` in a recipe's comments names a recipe in recipes/;
    an [image] recipe's "then: bootforge build ..." line names itself (image-grub-disk.toml
    said image-grub.toml)."""
    import re
    for recipe in sorted((REPO / "recipes").glob("*.toml")):
        comments = "\n".join(line for line in recipe.read_text().splitlines() if line.startswith("#"))
        named = re.findall(r"bootforge build recipes/([\w.-]+\.toml)", comments)
        assert all((REPO / "recipes" / n).is_file() for n in named), (recipe.name, named)
        then = re.findall(r"then:.*bootforge build recipes/([\w.-]+\.toml)", comments)
        assert all(n == recipe.name for n in then), (recipe.name, then)


def test_load_of_an_image_on_the_other_firmwares_machine_names_the_right_machines(grub_images):
    proc = run_bootforge("load", "--firmware", "uefi", "--platform", "qemu-pc-seabios:256M", grub_images["iso"])
    assert_one_line_error(proc, "--firmware uefi", "qemu-pc-seabios:256M is BIOS", "give --platform qemu-q35-ovmf:<mem>")
    proc = run_bootforge("load", "--firmware", "bios", "--platform", "qemu-q35-ovmf:256M", grub_images["iso"])
    assert_one_line_error(proc, "give --platform qemu-pc-seabios:<mem> or qemu-pc-seabios-i386:<mem>")
    doc = json.loads(run_bootforge("load", "--json", "--platform", "qemu-q35-ovmf:256M", grub_images["iso"],
                                   check=0).stdout)
    assert doc["loader"] == "grub-efi-mb2"          # the machine named the firmware


def test_an_image_inspect_rejects_leaves_no_descriptor_open(tmp_path):
    """A rejected image's descriptor is closed: one left per rejected image ran the images fuzzer
    out of descriptors (EMFILE) after a few thousand inputs (harness: tests/fuzz/fuzz_images.py)."""
    from bootforge.errors import FormatError
    from bootforge.image.inspect import inspect_image
    bad = tmp_path / "bad-gpt.img"
    head = bytearray(1024)
    head[510:512] = b"\x55\xaa"          # an MBR, so the GPT header at LBA 1 is read
    head[512:520] = b"EFI PART"          # with its HeaderSize left 0
    bad.write_bytes(head)
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(FormatError, match=r"GPT header size 0 \(must be 92\.\.512\)"):
            inspect_image(bad)
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_a_gpt_header_cut_short_by_the_end_of_the_file_is_one_line(tmp_path):
    """An MBR and "EFI PART" at LBA 1 with the file ending 3 bytes later (found by the images
    fuzzer: the header's parse ran off the data)."""
    from bootforge.errors import FormatError
    from bootforge.image.inspect import inspect_image
    bad = tmp_path / "short-gpt.img"
    head = bytearray(523)
    head[510:512] = b"\x55\xaa"
    head[512:520] = b"EFI PART"
    bad.write_bytes(head)
    with pytest.raises(FormatError, match=r"GPT header cut short by the end of the file \(11 of 92 bytes\)") as info:
        inspect_image(bad)
    assert info.value.offset == 523


def test_an_entry_whose_kernel_path_is_empty_is_one_line(tmp_path):
    """A Limine ISO whose limine.conf says `path:` with nothing after it (the load-image fuzz
    harness's input: an AttributeError escaped `load`, reading the kernel None): one line naming the
    entry and the configuration."""
    require("cc", str(LIMINE_DIR / "limine.c"))
    write_tree(tmp_path, "multiboot1")
    build(tmp_path, recipe_text("iso", "limine", protocol="multiboot1", extra=f'limine_dir = "{LIMINE_DIR}"\n',
                                output="l.iso"))
    data = (tmp_path / "l.iso").read_bytes()
    line = b"path: boot():/boot/kernel.elf"
    assert data.count(line) == 1
    bad = tmp_path / "no-path.iso"
    bad.write_bytes(data.replace(line, b"path:" + b" " * (len(line) - 5)))
    assert_one_line_error(run_bootforge("load", bad, "--firmware", "uefi"), "no-path.iso",
                          "in /boot/limine/limine.conf names no kernel file")


@pytest.mark.parametrize("field, value, problem", [
    (72, 1 << 62, "GPT backup header's entry array at LBA 4611686018427387904 (128 entries of 128 bytes) runs "
                  "past the end of the image"),
    (84, 1 << 31, "GPT backup header's entry array at LBA 8159 (128 entries of 2147483648 bytes) runs past the "
                  "end of the image"),
])
def test_a_backup_header_pointing_its_entries_outside_the_disk_is_a_defect(grub_images, tmp_path, field, value,
                                                                           problem):
    """The backup GPT header at the last LBA, CRC made good, with PartitionEntryLBA 2^62 (found by the
    load-image fuzzer: the read's offset overflowed a C long) or an entry size of 2 GiB (which would
    have sized the read): inspect reports the backup's defect, exit 1, and load still reads the disk
    through the primary."""
    import zlib
    bad = tmp_path / "backup.img"
    data = bytearray(grub_images["disk"].read_bytes())
    at = len(data) - 512
    assert data[at:at + 8] == b"EFI PART"
    struct.pack_into("<Q" if field == 72 else "<I", data, at + field, value)
    struct.pack_into("<I", data, at + 16, 0)
    struct.pack_into("<I", data, at + 16, zlib.crc32(data[at:at + 92]))
    bad.write_bytes(data)
    proc = run_bootforge("inspect", bad, "--json")
    assert proc.returncode == 1, proc.stderr
    assert problem in proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["gpt"]["backup"]["header_crc_ok"] and not doc["gpt"]["backup"]["entries_crc_ok"]
    assert run_bootforge("load", bad, "--firmware", "uefi").returncode == 0


def test_image_reads_past_the_end_are_short_whatever_the_offset_or_length(tmp_path):
    """An image is read by offsets and lengths taken from its own fields: one past 2^63 (which
    os.pread cannot take) reads nothing, and a length of 1 TiB reads what the file holds."""
    from bootforge.image.read import ImageFile
    f = tmp_path / "small.img"
    f.write_bytes(bytes(range(256)) * 4)
    img = ImageFile(f)
    try:
        assert img.read(1 << 63, 16) == b"" and img.read(1024, 1) == b""
        assert img.read(1000, 1 << 40) == (bytes(range(256)) * 4)[1000:]
        assert img.window(512, 1 << 62)(0, 1 << 50) == (bytes(range(256)) * 4)[512:]
    finally:
        img.close()
