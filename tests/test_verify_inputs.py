"""What `bootforge verify` accepts and boots: an image's other entry (a snapshot copy with the
loader's default changed, the image itself untouched), and the same inputs as `load`. Every
value asserted as observed is what the real loader handed the dump kernel in QEMU."""

import hashlib
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO, require, run_bootforge
from bootforge.qemu import host

LIMINE_DIR = REPO.parent / "shared" / "oracles" / "limine-11.4.1"
LOAD_ROOT = REPO / "tests" / "data" / "load-root" / "boot"
MB1_MAGIC, MB2_MAGIC = 0x2BADB002, 0x36D76289


def run_in(cwd, *args):
    """The real CLI run from *cwd* (relative names as a user types them there)."""
    return subprocess.run([sys.executable, "-m", "bootforge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def verify_json(*args, rc=0, cwd=REPO):
    proc = run_in(cwd, "verify", "--json", "-q", *args)
    assert proc.returncode == rc, (proc.returncode, proc.stdout[-3000:], proc.stderr)
    return json.loads(proc.stdout)


def fields(doc):
    return {f["name"]: f for f in doc["fields"]}


def two_entry_image(tmp, loader, extra="", fmt="iso"):
    """A bootforge-built image (ISO or disk) of *loader* with two entries of the dump kernel
    (MB2; MB1 for Syslinux, BIOS only) that differ in their command line and module (entry 1 is
    not the configuration's default)."""
    mb = "mb1" if loader == "syslinux" else "mb2"
    kernel = tmp / "k.elf"
    run_bootforge("build", REPO / "recipes" / f"kernel-mbdump-{mb}.toml", "-o", kernel, check=0)
    (tmp / "m0").write_bytes(b"first module\n" * 10)
    (tmp / "m1").write_bytes(b"second module\n" * 300)
    entries = "".join(
        f'[[image.entries]]\ntitle = "{title}"\nkernel = "k.elf"\nloader_path = "/boot/k{i}.elf"\n'
        f'protocol = "multiboot{mb[-1]}"\ncmdline = "{title} entry"\n'
        f'[[image.entries.modules]]\npath = "m{i}"\nloader_path = "/boot/m{i}"\ncmdline = "mod of {title}"\n'
        for i, title in enumerate(("first", "second")))
    firmware = '["bios"]' if loader == "syslinux" else '["bios", "uefi"]'
    (tmp / "img.toml").write_text(f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = {firmware}\n'
                                  f'output = "two.iso"\n{extra}{entries}')
    run_bootforge("build", tmp / "img.toml", check=0)
    return tmp / "two.iso"  # the output name, whatever the format


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.qemu
@pytest.mark.parametrize("loader, fmt", [("grub", "iso"), ("limine", "iso"), ("grub", "disk"), ("syslinux", "iso")])
def test_entry_1_of_a_two_entry_image_boots_entry_1_from_a_snapshot_copy(tmp_path, loader, fmt):
    """The generated configuration boots entry 0 (GRUB `set default=0`, Limine's default 1st
    entry): verify --entry 1 boots a copy whose default is entry 1 (the configuration rewritten
    in its ISO 9660 extent, or in its ESP's FAT clusters on the disk image), and the real loader
    hands the kernel entry 1's command line and module; the image's bytes are the same afterwards."""
    if loader == "grub":
        require("qemu-system-x86_64", "grub-mkimage", host.GRUB_I386_PC, host.GRUB_X86_64_EFI)
        image = two_entry_image(tmp_path, "grub", fmt=fmt)
    elif loader == "syslinux":
        require("qemu-system-x86_64", host.ISOLINUX_BIN, f"{host.SYSLINUX_BIOS_MODULES}/mboot.c32")
        image = two_entry_image(tmp_path, "syslinux", fmt=fmt)
    else:
        require("qemu-system-x86_64", str(LIMINE_DIR / "limine.c"), "cc")
        image = two_entry_image(tmp_path, "limine", f'limine_dir = "{LIMINE_DIR}"\n', fmt=fmt)
    before = sha256(image)
    entry = "second" if fmt == "disk" else "1"        # by title, as `load --entry` takes it, too
    doc = json.loads(run_bootforge("verify", "--json", "-q", image, "--entry", entry).stdout)
    f = fields(doc)
    magic = MB1_MAGIC if loader == "syslinux" else MB2_MAGIC
    assert doc["status"] == "entry" and doc["registers"]["rax"] & 0xFFFFFFFF == magic
    # This test claims the entry booted; the whole MBI is claimed on the ISOs (a GRUB disk's
    # tag 5, biosdev 0x80 and its partition, is not what `load IMAGE` predicts: see the notes).
    assert doc["ok"] or fmt == "disk", doc["mismatches"]
    # mboot.c32 hands over each file's name before its arguments (com32/mboot/mboot.c).
    named = (lambda name, args: f"{name} {args}") if loader == "syslinux" else (lambda name, args: args)
    assert f["cmdline"]["observed"] == named("/boot/k1.elf", "second entry") and f["cmdline"]["match"]
    assert f["module 0 string"]["observed"] == named("/boot/m1", "mod of second")
    assert f["module 0 bytes"]["match"]
    assert "snapshot copy" in doc["medium"] and "entry 1 'second'" in doc["medium"]
    assert sha256(image) == before


def test_each_loader_sets_its_default_and_the_text_keeps_its_length():
    """The rewritten configuration reads back (each loader's own parser) with the same
    entries, and fits the file's bytes: comments go, newlines pad."""
    from bootforge.bootloaders import ConfigEntry, grub, limine, syslinux
    from bootforge.image.snapshot import fit
    entries = [ConfigEntry(t, "multiboot2", f"/boot/{t}", "", []) for t in ("a b", "c")]
    g = grub.write(entries)
    assert "set default=1" in grub.set_default(g, entries, 1) and "set default=0" not in grub.set_default(g, entries, 1)
    assert grub.set_default("menuentry x {\n}\n", entries, 1).startswith("set default=1\n")
    lim = limine.write(entries)
    new = limine.set_default(lim, entries, 1)
    assert new.startswith("default_entry: 2\n") and limine.parse(new) == limine.parse(lim)
    assert limine.set_default(new, entries, 0).count("default_entry") == 1
    s_entries = syslinux.parse(syslinux.write([ConfigEntry(t, "multiboot1", f"/{t}", "", []) for t in ("x", "y")]))
    s = syslinux.write(s_entries)
    assert "DEFAULT y" in syslinux.set_default(s, s_entries, 1) and "DEFAULT x" not in syslinux.set_default(s, s_entries, 1)
    data = fit(new, len(lim.encode()), "limine.conf")
    assert len(data) == len(lim.encode()) and limine.parse(data.decode()) == limine.parse(lim)
    assert b"# Generated" not in data and data.decode().startswith("default_entry: 2")
    with pytest.raises(Exception, match="no room to change it in place"):
        fit("default_entry: 2\n" + "x" * 10, 11, "limine.conf")


@pytest.mark.qemu
def test_a_bare_kernel_with_cmdline_and_modules_as_load_takes_it(tmp_path):
    """`verify KERNEL --platform P --loader L --cmdline S --module FILE=STRING`: the names are
    bare file names, which GRUB's medium puts in /boot (said); the real GRUB i386-pc hands over
    the command line and the module with its string."""
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    for name in ("kernel-mb1", "mod1"):
        (tmp_path / name).write_bytes((LOAD_ROOT / name).read_bytes())
    doc = verify_json("kernel-mb1", "--platform", "qemu-pc-seabios:256M", "--loader", "grub-pc-mb1",
                      "--cmdline", "a=b c", "--module", "mod1=the string", cwd=tmp_path)
    f = fields(doc)
    assert doc["ok"] and doc["registers"]["rax"] & 0xFFFFFFFF == MB1_MAGIC
    assert f["cmdline"]["observed"] == "a=b c" and f["module 0 string"]["observed"] == "the string"
    assert f["module 0 bytes"]["match"]
    assert any("/boot/kernel-mb1" in line for line in doc["default_names"])
    assert any("/boot/mod1" in line for line in doc["default_names"])


@pytest.mark.qemu
def test_a_load_recipe_without_loader_path_boots_at_the_mediums_default_path(tmp_path):
    """A [load] recipe without loader_path (load names the file by its name): Limine's medium
    puts it at /boot/<name>, says so, and the real Limine BIOS boot matches the prediction."""
    require("qemu-system-x86_64", "xorriso", str(LIMINE_DIR / "limine.c"), "cc")
    r = tmp_path / "r.toml"
    r.write_text(f'[load]\nkernel = "{LOAD_ROOT / "kernel-mb1"}"\ncmdline = "la=1"\n'
                 f'platform = "qemu-pc-seabios:256M"\nloader = "limine-mb1"\n'
                 f'[[load.modules]]\npath = "{LOAD_ROOT / "mod1"}"\ncmdline = "m1"\n')
    proc = run_bootforge("verify", "-q", r)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "kernel: the loader is given /boot/kernel-mb1" in proc.stdout
    assert "module 0: the loader is given /boot/mod1" in proc.stdout
    assert re.search(r"cmdline\s+'la=1'\s+'la=1'\s+ok", proc.stdout)
    assert re.search(r"module 0 string\s+'m1'\s+'m1'\s+ok", proc.stdout)


@pytest.mark.qemu
def test_qemu_kernel_recipe_naming_the_kernel_by_its_own_relative_path_and_a_relative_keep(tmp_path):
    """loader_path = the kernel's own path from the recipe ('../k/kernel-mb1'): QEMU is given
    that very name (its MB1 command line starts with it), and a relative --keep DIR works
    (QEMU runs in the -kernel stage; its log files are named absolutely)."""
    require("qemu-system-x86_64")
    (tmp_path / "k").mkdir()
    (tmp_path / "r").mkdir()
    for name in ("kernel-mb1", "mod1"):
        (tmp_path / "k" / name).write_bytes((LOAD_ROOT / name).read_bytes())
    (tmp_path / "r" / "q.toml").write_text(
        '[load]\nkernel = "../k/kernel-mb1"\nloader_path = "../k/kernel-mb1"\ncmdline = "qa=1"\n'
        'platform = "qemu-pc-seabios:128M"\nloader = "qemu-mb1"\n'
        '[[load.modules]]\npath = "../k/mod1"\nloader_path = "../k/mod1"\ncmdline = "m1"\n')
    doc = verify_json("q.toml", "--keep", "kept", cwd=tmp_path / "r")
    f = fields(doc)
    assert doc["ok"] and f["cmdline"]["observed"] == "../k/kernel-mb1 qa=1"
    assert f["module 0 string"]["observed"] == "../k/mod1 m1" and f["module 0 bytes"]["match"]
    assert doc["kept"] == "kept" and (tmp_path / "r" / "kept" / "serial.txt").exists()


def test_cmdline_with_a_recipe_is_one_line_exit_2():
    from conftest import assert_one_line_error
    assert_one_line_error(run_bootforge("verify", REPO / "recipes" / "load-grub-pc-mb2.toml", "--cmdline", "x"),
                          "--cmdline and --module go with a kernel")


def test_medium_names():
    from bootforge.qemu.media import medium_name
    assert medium_name("grub-pc-iso", "kernel") == "/boot/kernel"
    assert medium_name("limine-iso", "/x/k") == "/x/k" and medium_name("grub-efi-iso", "a/k") == "a/k"
    assert medium_name("ipxe-tftp", "kernel") == "kernel" and medium_name("qemu-kernel", "../k") == "../k"


@pytest.mark.qemu
def test_a_relocatable_kernel_entered_elsewhere_costs_one_extra_boot_at_4k_alignment(tmp_path, monkeypatch):
    """A 4 KiB-aligned relocatable kernel (tens of thousands of candidate bases: too many
    breakpoints for QEMU's TCG) whose predicted base is wrong -- here made wrong by moving the
    policy's prediction 5 pages up -- is still stopped at the entry where the real GRUB i386-pc
    put it, after exactly one more boot, and the difference is named."""
    require("qemu-system-x86_64", "grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
    from dataclasses import replace
    from bootforge.qemu import runner
    from bootforge.verify import run as verify_run
    (tmp_path / "k.toml").write_text(
        f'[kernel]\ninput = "{REPO / "build" / "stubs" / "mbdump.elf"}"\nprotocol = "multiboot2"\noutput = "k.elf"\n'
        '[kernel.multiboot2]\ninformation_request = [1, 3, 6]\nmodule_alignment = true\n'
        'relocatable = { min_addr = 0x100000, max_addr = 0x8000000, align = 0x1000, preference = "low" }\n')
    run_bootforge("build", tmp_path / "k.toml", check=0)
    r = tmp_path / "r.toml"
    r.write_text(f'[load]\nkernel = "{tmp_path / "k.elf"}"\nloader_path = "/boot/k.elf"\ncmdline = "x"\n'
                 'platform = "qemu-pc-seabios:256M"\nloader = "grub-pc-mb2"\n')
    shift = 0x5000
    real_policy = verify_run.policy

    def shifted(name):
        def predict(req):
            res = real_policy(name)(req)
            res.load_base += shift
            if res.entry is not None:
                res.entry = replace(res.entry, address=res.entry.address + shift)
            return res
        return predict
    boots = []
    real_start = runner.QemuRun.start
    monkeypatch.setattr(verify_run, "policy", shifted)
    monkeypatch.setattr(runner.QemuRun, "start", lambda self: boots.append(1) or real_start(self))
    report = verify_run.verify(r, timeout=60)
    rows = {row.name: row for row in report.rows}
    assert report.status == "entry" and report.registers["rax"] & 0xFFFFFFFF == MB2_MAGIC
    assert len(boots) == 2 == report.boots
    assert rows["load base (tag 21)"].predicted - shift == rows["load base (tag 21)"].observed
    assert rows["kernel entry"].observed == rows["kernel entry"].predicted - shift == report.registers["rip"]
    assert not rows["kernel entry"].ok and rows["cmdline"].ok


@pytest.mark.qemu
def test_ipxe_words_on_the_vga_screen_only_are_read(tmp_path):
    """iPXE refuses xen.gz (it does not gunzip) with "Could not select: Exec format error",
    printed through the BIOS console only (nothing on serial): verify reads the VGA text
    screen through QEMU's monitor and ends with those words, the predicted refusal."""
    xen = "/boot/xen-4.17-amd64.gz"
    require("qemu-system-x86_64", host.IPXE_PXE_E1000, xen)
    r = tmp_path / "x.toml"
    r.write_text(f'[load]\nkernel = "{xen}"\nloader_path = "tftp://10.0.2.2/xen.gz"\ncmdline = "console=com1"\n'
                 'platform = "qemu-pc-seabios:256M"\nloader = "ipxe-pcbios-mb1"\n')
    doc = verify_json(r, "--keep", tmp_path / "kept")
    assert doc["status"] == "refused" and doc["ok"]
    assert doc["loader_words"].startswith("Could not select: Exec format error")
    assert "Could not select" not in (tmp_path / "kept" / "serial.txt").read_text(errors="replace")


def test_vga_text_cells_read_as_rows():
    from bootforge.qemu.monitor import screen_lines
    cells = bytearray(b" \x07" * 80 * 25)
    for i, c in enumerate(b"Could not select: Exec format error"):
        cells[2 * (80 * 3 + i)] = c
    rows = screen_lines(bytes(cells))
    assert len(rows) == 25 and rows[3] == "Could not select: Exec format error" and rows[0] == ""


# The start of QEMU's translation log of a real run (GRUB 2.06 i386-pc booting the 4 KiB-aligned
# relocatable dump kernel of the test above; -d in_asm -dfilter 0x100000..0x7fff000): GRUB's own
# code runs at 0x100000 before the kernel is copied there, then the kernel's entry (cli; cld).
GRUB_THEN_KERNEL_LOG = """----------------
IN: 
0x00100000:  89 8e 41 00 00 00        movl     %ecx, 0x41(%esi)
0x00100006:  89 be 45 00 00 00        movl     %edi, 0x45(%esi)

----------------
IN: 
0x00102ab2:  b8 00 10 00 00           movl     $0x1000, %eax

----------------
IN: 
0x00100000:  fa                       cli      
0x00100001:  fc                       cld      
"""


def test_translation_log_takes_only_the_kernels_entry_bytes(tmp_path):
    from bootforge.verify.relocation import translated_candidates
    log = tmp_path / "translated.log"
    log.write_text(GRUB_THEN_KERNEL_LOG)
    candidates = range(0x100000, 0x8000000, 0x1000)
    assert translated_candidates(log, candidates) == [0x100000]      # 0x102ab2 is no candidate entry
    assert translated_candidates(log, candidates, b"\xfa\xfc\xbc") == [0x100000]
    assert translated_candidates(log, candidates, b"\x90\x90") == []            # GRUB's block is not taken
    assert translated_candidates(tmp_path / "absent.log", candidates) == []


@pytest.mark.qemu
def test_a_timeout_says_what_the_vga_screen_shows(tmp_path):
    """When the entry is not reached in time, the report also gives the VGA text screen's last
    lines (read through QEMU's monitor while QEMU still runs): SeaBIOS's and iPXE's banners."""
    require("qemu-system-x86_64", host.IPXE_PXE_E1000)
    r = tmp_path / "r.toml"
    r.write_text(f'[load]\nkernel = "{LOAD_ROOT / "kernel-mb1"}"\nloader_path = "tftp://10.0.2.2/k"\n'
                 'platform = "qemu-pc-seabios:256M"\nloader = "ipxe-pcbios-mb1"\n')
    doc = verify_json(r, "--timeout", "1", rc=1)
    assert doc["status"] == "timeout" and doc["last_serial"] == ""
    assert "SeaBIOS" in doc["last_screen"] or "iPXE" in doc["last_screen"], doc["last_screen"]
