"""What `bootforge verify` accepts and boots: an image's other entry (a snapshot copy with the
loader's default changed, the image itself untouched), and the same inputs as `load`. Every
value asserted as observed is what the real loader handed the dump kernel in QEMU."""

import hashlib
import json

import pytest

from conftest import REPO, require, run_bootforge
from bootforge.qemu import host

LIMINE_DIR = REPO.parent / "shared" / "oracles" / "limine-11.4.1"
LOAD_ROOT = REPO / "tests" / "data" / "load-root" / "boot"
MB1_MAGIC, MB2_MAGIC = 0x2BADB002, 0x36D76289


def verify_json(*args, rc=0):
    proc = run_bootforge("verify", "--json", "-q", *args)
    assert proc.returncode == rc, (proc.returncode, proc.stdout[-3000:], proc.stderr)
    return json.loads(proc.stdout)


def fields(doc):
    return {f["name"]: f for f in doc["fields"]}


def two_entry_image(tmp, loader, extra=""):
    """A bootforge-built hybrid ISO of *loader* with two entries of the MB2 dump kernel that
    differ in their command line and module (entry 1 is not the configuration's default)."""
    kernel = tmp / "k.elf"
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", "-o", kernel, check=0)
    (tmp / "m0").write_bytes(b"first module\n" * 10)
    (tmp / "m1").write_bytes(b"second module\n" * 300)
    entries = "".join(
        f'[[image.entries]]\ntitle = "{title}"\nkernel = "k.elf"\nloader_path = "/boot/k{i}.elf"\n'
        f'protocol = "multiboot2"\ncmdline = "{title} entry"\n'
        f'[[image.entries.modules]]\npath = "m{i}"\nloader_path = "/boot/m{i}"\ncmdline = "mod of {title}"\n'
        for i, title in enumerate(("first", "second")))
    (tmp / "img.toml").write_text(f'[image]\nformat = "iso"\nloader = "{loader}"\nfirmware = ["bios", "uefi"]\n'
                                  f'output = "two.iso"\n{extra}{entries}')
    run_bootforge("build", tmp / "img.toml", check=0)
    return tmp / "two.iso"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.qemu
@pytest.mark.parametrize("loader", ["grub", "limine"])
def test_entry_1_of_a_two_entry_image_boots_entry_1_from_a_snapshot_copy(tmp_path, loader):
    """The generated configuration boots entry 0 (GRUB `set default=0`, Limine's default 1st
    entry): verify --entry 1 boots a copy whose default is entry 1, and the real loader hands
    the kernel entry 1's command line and module; the image's bytes are the same afterwards."""
    if loader == "grub":
        require("qemu-system-x86_64", "grub-mkimage", host.GRUB_I386_PC, host.GRUB_X86_64_EFI)
        image = two_entry_image(tmp_path, "grub")
    else:
        require("qemu-system-x86_64", str(LIMINE_DIR / "limine.c"), "cc")
        image = two_entry_image(tmp_path, "limine", f'limine_dir = "{LIMINE_DIR}"\n')
    before = sha256(image)
    doc = verify_json(image, "--entry", "1")
    f = fields(doc)
    assert doc["ok"] and doc["status"] == "entry", doc["mismatches"]
    assert doc["registers"]["rax"] & 0xFFFFFFFF == MB2_MAGIC
    assert f["cmdline"]["observed"] == "second entry"
    assert f["module 0 string"]["observed"] == "mod of second"
    assert f["module 0 bytes"]["match"]
    assert "snapshot copy" in doc["medium"] and "entry 1 'second'" in doc["medium"]
    assert sha256(image) == before
    # By title, as `load --entry` takes it: the same entry (and the text output says so).
    proc = run_bootforge("verify", "-q", image, "--entry", "second")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "a snapshot copy" in proc.stdout and "'second'" in proc.stdout and "result: all" in proc.stdout
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
