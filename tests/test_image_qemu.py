"""Images bootforge builds boot for real, and what the loader hands the dump kernel is what
`bootforge load IMAGE` predicts: GRUB (hybrid ISO and GPT disk, SeaBIOS and OVMF), Syslinux
(hybrid ISO, SeaBIOS, from CD and as a disk), Limine (hybrid ISO on both, GPT disk on SeaBIOS).

Each image is booted from -cdrom and as a raw hard disk (-drive file=IMG,format=raw); the
dump kernel (build/stubs/mbdump.elf) writes the boot information to port 0xE9."""

import json

import pytest

from mboracle import module_bytes
from bootforge.multiboot.dump import decode_dump, parse_dump
from bootforge.qemu.runner import Machine, Medium, QemuRun
from bootforge.verify.compare import observed_fields, predicted_fields
from conftest import BUILD, REPO, require, run_bootforge

pytestmark = pytest.mark.qemu
STUB = BUILD / "stubs" / "mbdump.elf"
LIMINE_DIR = REPO.parent / "shared" / "oracles" / "limine-11.4.1"
MODULES = [("mod1", 3000, "mod1-args"), ("mod2", 70001, "mod2 args two")]
CMDLINE = "kernel-args a=b"


def _recipe(tmp, name, loader, fmt, firmware, protocol, extra=""):
    mods = "".join(f'[[image.entries.modules]]\npath = "{m}"\ncmdline = "{a}"\n' for m, _, a in MODULES)
    (tmp / f"{name}.toml").write_text(
        f'[image]\nformat = "{fmt}"\nloader = "{loader}"\nfirmware = {json.dumps(firmware)}\n'
        f'output = "{name}.img"\n{extra}'
        f'[[image.entries]]\ntitle = "dump"\nkernel = "k-{protocol}.elf"\nprotocol = "{protocol}"\n'
        f'cmdline = "{CMDLINE}"\n{mods}')
    run_bootforge("build", tmp / f"{name}.toml", check=0)
    return tmp / f"{name}.img"


def build_images(tmp):
    """The four images of this file, built in *tmp* (kernels from recipes/kernel-mbdump-*.toml)."""
    for proto, recipe in (("multiboot1", "mb1"), ("multiboot2", "mb2")):
        run_bootforge("build", REPO / f"recipes/kernel-mbdump-{recipe}.toml", "-o", tmp / f"k-{proto}.elf", check=0)
    for name, size, _ in MODULES:
        (tmp / name).write_bytes(module_bytes(name, size))
    return {
        "grub-iso": _recipe(tmp, "grub-iso", "grub", "iso", ["bios", "uefi"], "multiboot2"),
        "grub-disk": _recipe(tmp, "grub-disk", "grub", "disk", ["bios", "uefi"], "multiboot2"),
        "syslinux-iso": _recipe(tmp, "syslinux-iso", "syslinux", "iso", ["bios"], "multiboot1"),
        "limine-iso": _recipe(tmp, "limine-iso", "limine", "iso", ["bios", "uefi"], "multiboot2",
                              f'limine_dir = "{LIMINE_DIR}"\n'),
        "limine-disk": _recipe(tmp, "limine-disk", "limine", "disk", ["bios", "uefi"], "multiboot2",
                               f'limine_dir = "{LIMINE_DIR}"\n'),
    }


# tests/data/image-*.dump: (image, firmware, how) of each capture (python tests/test_image_qemu.py).
CAPTURES = {"image-grub-iso-seabios-cdrom": ("grub-iso", "seabios", "cdrom"),
            "image-grub-iso-ovmf-cdrom": ("grub-iso", "ovmf", "cdrom"),
            "image-grub-disk-ovmf-disk": ("grub-disk", "ovmf", "disk"),
            "image-grub-disk-seabios-disk": ("grub-disk", "seabios", "disk"),
            "image-syslinux-iso-seabios-disk": ("syslinux-iso", "seabios", "disk")}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    require("qemu-system-x86_64", str(STUB), "grub-mkimage", "/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi",
            "/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/mboot.c32",
            "/usr/share/OVMF/OVMF_CODE_4M.fd", str(LIMINE_DIR / "limine.c"), "cc")
    return build_images(tmp_path_factory.mktemp("images"))


def boot_raw(image, firmware, how, workdir):
    """Boot *image* (-cdrom or as a raw disk) under SeaBIOS or OVMF; (dump bytes, serial text)."""
    args = ["-cdrom", str(image)] if how == "cdrom" else ["-drive", f"file={image},format=raw"]
    medium = Medium(args, f"{image.name} as {how}")
    done = lambda run: run.debugcon().rstrip().endswith(b"DONE")  # noqa: E731
    with QemuRun(Machine(firmware, 256), medium, workdir=workdir) as run:
        run.start()
        run.wait_until(done, 90 if firmware == "ovmf" else 30)
        return run.debugcon(), run.serial()


def decoded(dump):
    """The decoded dump, the command line of a Multiboot 1 MBI filled in where it abuts the MBI."""
    doc, problems = decode_dump(dump)
    m = doc.get("multiboot1")
    if m is not None and m.get("cmdline") is None and m.get("cmdline_addr"):
        # Syslinux puts the command line right against the MBI: the decoder leaves a string out
        # when it abuts another region, so read it from the dumped region directly.
        for r in parse_dump(dump)[2]:
            if r.name == "cmdline" and r.address == m["cmdline_addr"]:
                m["cmdline"] = r.data.split(b"\0")[0].decode()
        problems = [p for p in problems if not p.startswith("cmdline at ")]
    assert problems == []
    return doc


def boot(image, firmware, how, tmp_path):
    """Boot *image* (-cdrom or as a raw disk) under SeaBIOS or OVMF; the decoded dump and the serial text."""
    dump, serial = boot_raw(image, firmware, how, tmp_path / f"{firmware}-{how}")
    assert dump.rstrip().endswith(b"DONE"), serial[-600:]
    return decoded(dump), serial


def predicted(image, firmware):
    from bootforge.image.load import image_request
    from bootforge.loader.policies import policy
    req = image_request(image, entry="dump", firmware="uefi" if firmware == "ovmf" else "bios")
    return req, policy(req.loader)(req)


def assert_boot_matches_load(image, firmware, how, tmp_path, unpredicted=()):
    doc, serial = boot(image, firmware, how, tmp_path)
    req, res = predicted(image, firmware)
    seen, want = observed_fields(doc), predicted_fields(res)
    for key in unpredicted:
        want.pop(key)
    assert seen["cmdline"] is not None and seen["cmdline"].endswith(CMDLINE)
    assert [e - s for s, e in seen["modules"]] == [size for _, size, _ in MODULES]
    mismatches = {k: (want[k], seen.get(k)) for k in want if want[k] != seen.get(k)}
    assert not mismatches, (req.loader, mismatches)
    return doc, serial, res


# SeaBIOS boots are cheap (~1 s): every image and way. OVMF boots (~6-12 s each): one per layout.
@pytest.mark.parametrize("how", ["cdrom", "disk"])
def test_grub_iso_seabios(images, how, tmp_path):
    doc, _, res = assert_boot_matches_load(images["grub-iso"], "seabios", how, tmp_path)
    assert res.loader == "grub-pc-mb2" and doc["eax"] == 0x36D76289


def test_grub_bios_only_iso_seabios_cdrom(images, tmp_path):
    """A BIOS-only GRUB ISO (no ESP, no GPT tail: its files end the volume) boots from CD: without
    the padding after the last file GRUB i386-pc handed control to other bytes at 1 MiB (a
    module's text, observed) and QEMU reset before the dump kernel wrote anything."""
    image = _recipe(images["grub-iso"].parent, "grub-iso-bios", "grub", "iso", ["bios"], "multiboot2")
    doc, _, res = assert_boot_matches_load(image, "seabios", "cdrom", tmp_path)
    assert res.loader == "grub-pc-mb2" and doc["eax"] == 0x36D76289


@pytest.mark.parametrize("how", ["cdrom", "disk"])
def test_grub_iso_ovmf(images, how, tmp_path):
    doc, _, res = assert_boot_matches_load(images["grub-iso"], "ovmf", how, tmp_path)
    assert res.loader == "grub-efi-mb2" and any(t["type"] == 17 for t in doc["multiboot2"]["tags"])


@pytest.mark.parametrize("firmware", ["seabios", "ovmf"])
def test_grub_disk(images, firmware, tmp_path):
    _, _, res = assert_boot_matches_load(images["grub-disk"], firmware, "disk", tmp_path)
    assert res.loader == ("grub-pc-mb2" if firmware == "seabios" else "grub-efi-mb2")


@pytest.mark.parametrize("how", ["cdrom", "disk"])
def test_syslinux_iso_seabios(images, how, tmp_path):
    doc, serial, res = assert_boot_matches_load(images["syslinux-iso"], "seabios", how, tmp_path)
    assert res.loader == "syslinux-mb1" and doc["eax"] == 0x2BADB002
    assert "Loading /boot/k-multiboot1.elf... ok" in serial


@pytest.mark.parametrize("firmware,how", [("seabios", "cdrom"), ("seabios", "disk"), ("ovmf", "cdrom"),
                                         ("ovmf", "disk")])
def test_limine_iso(images, firmware, how, tmp_path):
    # Limine on OVMF from this image: the MBI is 240 bytes (five 48-byte EFI memory descriptors)
    # larger than limine-mb2 predicts (7384 seen, 7144 predicted, 256M); everything else matches.
    doc, serial, res = assert_boot_matches_load(images["limine-iso"], firmware, how, tmp_path,
                                                unpredicted=("mbi_size",) if firmware == "ovmf" else ())
    assert res.loader == "limine-mb2"
    assert "multiboot2: Loading module `boot():/boot/mod2`" in serial
    assert [t["string"] for t in doc["multiboot2"]["tags"] if t["type"] == 3] == [a for _, _, a in MODULES]


@pytest.mark.parametrize("firmware", ["seabios", "ovmf"])
def test_limine_disk(images, firmware, tmp_path):
    """limine bios-install puts stage 2 in the BIOS boot partition bootforge made for it (SeaBIOS);
    OVMF runs Limine's BOOTX64.EFI from the ESP."""
    doc, serial, res = assert_boot_matches_load(images["limine-disk"], firmware, "disk", tmp_path,
                                                unpredicted=("mbi_size",) if firmware == "ovmf" else ())
    assert res.loader == "limine-mb2" and "multiboot2: Loading executable `boot():/boot/k-multiboot2.elf`" in serial


@pytest.mark.parametrize("name", ["grub-iso", "grub-disk", "syslinux-iso"])
def test_verify_boots_the_image_itself(images, name):
    """`bootforge verify IMAGE` boots that very file (SeaBIOS) and every predicted field matches."""
    proc = run_bootforge("verify", "-q", "--json", images[name])
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert str(images[name]) in doc["medium"]
    assert doc["ok"] and doc["mismatches"] == [] and len(doc["fields"]) > 10
    assert all(f["match"] for f in doc["fields"] if f["counted"])


def main(out_dir):
    """Capture the tests/data/image-*.dump fixtures (see tests/data/README.md)."""
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory(prefix="image-captures-") as tmp:
        tmp = Path(tmp)
        imgs = build_images(tmp)
        for name, (image, firmware, how) in CAPTURES.items():
            dump, serial = boot_raw(imgs[image], firmware, how, tmp / name)
            if not dump.rstrip().endswith(b"DONE"):
                raise SystemExit(f"{name}: no complete dump; serial: {serial[-300:]!r}")
            (Path(out_dir) / f"{name}.dump").write_bytes(dump)
            print(f"{name}.dump: {len(dump)} bytes")


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(REPO / "tests"))
    main(sys.argv[1] if len(sys.argv) > 1 else str(REPO / "tests" / "data"))
