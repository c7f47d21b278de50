"""`bootforge load RECIPE` of an [image] recipe is `load IMAGE` of the image that recipe builds:
the image is built into a private temporary directory (the build is the same bytes wherever it
is made), so the UEFI loaders' pages follow its BOOTX64.EFI and the medium its ESP is on, as
they do under OVMF; the recipe's own output is not written.

Checked against real boots kept by other subjects: the MBIs GRUB x86_64-efi and Limine handed the
dump kernel from bootforge's GPT disk (tests/data/uefi-disk/, images.json names the images'
sha256) and the zero pages GRUB x86_64-efi's `linux` handed Debian's kernel
(tests/data/linux-grub-efi/gdb-stop-*.json), where a prediction from the recipe's entries alone
placed the initrd (512M) and the EFI map (3G) elsewhere."""

import hashlib
import json
from types import SimpleNamespace

import pytest

from conftest import REPO, assert_one_line_error, require, run_bootforge

PREDICTED_FROM_THE_IMAGE = "predicted from the image this recipe builds"


def cli_load(source, *args, mbi_out=None):
    """`bootforge load SOURCE ARGS --json` (and its --mbi-out bytes when asked)."""
    extra = ("--mbi-out", mbi_out) if mbi_out is not None else ()
    proc = run_bootforge("load", source, *args, "--json", *extra, check=None)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return json.loads(proc.stdout), (mbi_out.read_bytes() if mbi_out is not None else None)


def assert_same_as_image(recipe_doc, image_doc):
    """The recipe's report is the image's, but one first note saying where it came from."""
    notes = recipe_doc.pop("notes")
    assert notes[0].startswith(PREDICTED_FROM_THE_IMAGE)
    assert not any("not known here" in n for n in notes)
    assert notes[1:] == image_doc.pop("notes")
    assert recipe_doc == image_doc


def _output_state(path):
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


# ---------------------------------------------------------------- the repository's GRUB disk recipe

def test_the_grub_disk_recipe_loads_as_its_image_on_both_firmwares(tmp_path):
    """recipes/image-grub-disk.toml (the dump kernel of recipes/kernel-mbdump-mb2.toml): `load` of
    it equals `load` of the image `build -o` makes of it, under UEFI (grub-efi-mb2) and BIOS, and
    its own output (build/images/os-grub.img) is left as it was."""
    require("ld", "cc", "grub-mkimage", "/usr/lib/grub/x86_64-efi", "mformat")
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", check=0)
    recipe = REPO / "recipes" / "image-grub-disk.toml"
    own_output = REPO / "build" / "images" / "os-grub.img"
    before = _output_state(own_output)
    image = tmp_path / "os-grub.img"
    run_bootforge("build", recipe, "-o", image, check=0)
    for firmware, loader in (("uefi", "grub-efi-mb2"), ("bios", "grub-pc-mb2")):
        a, pa = cli_load(recipe, "--firmware", firmware, mbi_out=tmp_path / f"r-{firmware}.mbi")
        b, pb = cli_load(image, "--firmware", firmware, mbi_out=tmp_path / f"i-{firmware}.mbi")
        assert a["loader"] == loader
        assert pa == pb
        assert_same_as_image(a, b)
    assert _output_state(own_output) == before


def test_a_gzip_module_in_the_image_is_loaded_gunzipped(tmp_path):
    """GRUB's module2 gunzips a gzip module (grub_pc.grub_module_size): read from the image's ESP,
    as from the recipe's file before, its size is the uncompressed data's, on both firmwares."""
    import gzip
    require("ld", "cc", "grub-mkimage", "/usr/lib/grub/x86_64-efi", "mformat")
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", check=0)
    payload = b"module payload " * 5000
    (tmp_path / "m.gz").write_bytes(gzip.compress(payload, mtime=0))
    recipe = tmp_path / "r.toml"
    recipe.write_text('[image]\nformat = "disk"\nloader = "grub"\nfirmware = ["bios", "uefi"]\noutput = "o.img"\n'
                      f'[[image.entries]]\ntitle = "k"\nkernel = "{REPO / "build" / "kernels" / "mbdump-mb2.elf"}"\n'
                      'protocol = "multiboot2"\n[[image.entries.modules]]\npath = "m.gz"\nloader_path = "/boot/m.gz"\n')
    for firmware in ("bios", "uefi"):
        doc, _ = cli_load(recipe, "--firmware", firmware)
        assert [m["end"] - m["start"] for m in doc["mbi"]["modules"]] == [len(payload)]


def test_an_entry_is_picked_as_in_the_image_with_its_own_platform(tmp_path):
    """--entry by index or title picks the image's entry; the recipe entry's platform key stands for
    --platform (and so the firmware: OVMF); an entry the image has not is one line naming the
    recipe, not the private image."""
    require("ld", "cc", "grub-mkimage", "/usr/lib/grub/x86_64-efi", "mformat")
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", check=0)
    kernel = REPO / "build" / "kernels" / "mbdump-mb2.elf"
    recipe = tmp_path / "r.toml"
    recipe.write_text('[image]\nformat = "disk"\nloader = "grub"\nfirmware = ["bios", "uefi"]\noutput = "o.img"\n'
                      f'[[image.entries]]\ntitle = "one"\nkernel = "{kernel}"\nprotocol = "multiboot2"\n'
                      'loader_path = "/boot/one.elf"\ncmdline = "first"\n'
                      f'[[image.entries]]\ntitle = "two"\nkernel = "{kernel}"\nprotocol = "multiboot2"\n'
                      'loader_path = "/boot/two.elf"\ncmdline = "second"\nplatform = "qemu-q35-ovmf:512M"\n')
    image = tmp_path / "built.img"
    run_bootforge("build", recipe, "-o", image, check=0)
    b, _ = cli_load(image, "--entry", "two", "--platform", "qemu-q35-ovmf:512M")
    for entry in ("1", "two"):
        a, _ = cli_load(recipe, "--entry", entry)
        assert (a["loader"], a["mbi"]["cmdline"]) == ("grub-efi-mb2", "second")
        assert_same_as_image(a, dict(b, notes=list(b["notes"])))
    proc = run_bootforge("load", recipe, "--entry", "nope")
    assert_one_line_error(proc, str(recipe), "no entry 'nope'", "'one'", "'two'")
    assert "bootforge-load-" not in proc.stderr


# ---------------------------------------------------------------- GRUB and Limine under OVMF: real MBIs

@pytest.fixture(scope="module")
def mb2_disks(tmp_path_factory):
    """The dump-kernel disks of tests/test_uefi_disk.py whose boots are kept (GRUB, Limine)."""
    from test_uefi_disk import LIMINE_DIR, build_image
    require("ld", "cc", "grub-mkimage", "/usr/lib/grub/x86_64-efi", "mformat", str(LIMINE_DIR / "BOOTX64.EFI"))
    tmp = tmp_path_factory.mktemp("mb2-disks")
    return {name: build_image(tmp, name) for name in ("grub-disk", "limine-disk")}


@pytest.mark.parametrize("capture,loader", [("grub-disk-256M", "grub-efi-mb2"), ("limine-disk-256M", "limine-mb2")])
def test_recipe_predicts_the_real_mbi_under_ovmf(mb2_disks, tmp_path, capture, loader):
    """`load RECIPE` under OVMF: the MBI the real loader handed over, tag 17 (OVMF's exit map after
    its disk stack read the ESP) counted, and the same report as `load IMAGE`."""
    from bootforge.image.load import built_image_request
    from bootforge.loader.policies import policy
    from bootforge.verify.compare import mbi_bytes_comparison
    from test_uefi_disk import CAPTURES, tag17
    name, memory = capture.rsplit("-", 1)
    image = mb2_disks[name]
    booted = json.loads((CAPTURES / "images.json").read_text())
    assert hashlib.sha256(image.read_bytes()).hexdigest() == booted[name], "the capture is of another image"
    recipe = image.with_suffix(".toml")
    platform = ("--platform", f"qemu-q35-ovmf:{memory}")
    a, predicted = cli_load(recipe, *platform, mbi_out=tmp_path / "r.mbi")
    b, _ = cli_load(image, *platform)
    assert a["loader"] == loader
    seen = (CAPTURES / f"{capture}.mbi").read_bytes()
    req = built_image_request(str(recipe), f"qemu-q35-ovmf:{memory}")      # the CLI's request, in process
    res = policy(req.loader)(req)
    assert bytes(res.mbi_bytes) == predicted
    got = mbi_bytes_comparison(res, SimpleNamespace(mbi_raw=seen, structures={}))
    assert got["match"], got["differing"]
    assert tag17(predicted)[0] == tag17(seen)[0] != []
    assert_same_as_image(a, b)


# ---------------------------------------------------------------- GRUB x86_64-efi `linux`: real zero pages

@pytest.fixture(scope="module")
def grub_efi_linux(tmp_path_factory):
    from test_linux_grub_efi import image_recipe
    from test_uki_build import KERNEL
    require(KERNEL, "grub-mkimage", "/usr/lib/grub/x86_64-efi", "mformat")
    d = tmp_path_factory.mktemp("grub-efi-linux")
    recipe = image_recipe(d)
    run_bootforge("build", recipe, check=0)
    return recipe, d / "grub-efi-linux.img"


@pytest.mark.parametrize("memory", ["512M", "3G"])
def test_grub_efi_linux_recipe_is_the_real_zero_page(grub_efi_linux, tmp_path, memory):
    """The initrd GRUB placed (512M: below its heap in the image's pages, not the template's) and
    the EFI map and zero page it handed over (3G), from the recipe, as from the image; the old
    note that the recipe cannot know BOOTX64.EFI and the medium is gone."""
    from test_linux_grub_efi import kept
    recipe, image = grub_efi_linux
    platform = ("--platform", f"qemu-q35-ovmf:{memory}")
    a, predicted = cli_load(recipe, *platform, mbi_out=tmp_path / "r.bin")
    b, from_image = cli_load(image, *platform, mbi_out=tmp_path / "i.bin")
    seen = kept(memory)
    params = seen["params"]
    assert a["loader"] == "grub-efi-linux"
    assert (a["linux"]["ramdisk_image"], a["linux"]["ramdisk_size"]) == (params["ramdisk_image"],
                                                                        params["ramdisk_size"])
    assert seen["registers"]["rip"] == a["linux"]["code32_start"]
    exit_map = a["maps"]["efi-at-exit"]["entries"]
    assert [[r["efi_type"], r["start"], r["size"] // 4096, r["attributes"]] for r in exit_map] == \
        seen["efi_map"]["descriptors"]
    page = bytes.fromhex(seen["zero_page"])
    declared = {i for d in a["linux"]["zero_page"]["declared"] for i in range(d["offset"], d["offset"] + d["size"])}
    assert [i for i in range(len(predicted)) if predicted[i] != page[i] and i not in declared] == []
    assert predicted == from_image
    assert_same_as_image(a, b)


# ---------------------------------------------------------------- a bare UKI and systemd-boot

@pytest.mark.parametrize("which", ["uki", "systemd-boot"])
def test_uki_recipes_load_as_their_images(tmp_path, which):
    """A bare UKI as BOOTX64.EFI and a UKI systemd-boot starts from /EFI/Linux: the recipe's report
    is the built disk's (linux-efi-stub on the UKI read from the image's ESP)."""
    from test_linux_uki_esp import image_recipe as uki_recipe
    from test_uki_build import KERNEL, STUB
    if which == "uki":
        require(KERNEL, STUB)
        recipe, name = uki_recipe(tmp_path), "direct.img"
    else:
        from bootforge.bootloaders import systemd_boot
        from test_linux_sdboot import image_recipe as sdboot_recipe
        require(KERNEL, STUB, systemd_boot.EFI)
        recipe, name = sdboot_recipe(tmp_path), "sdboot.img"
    image = tmp_path / "built" / name
    run_bootforge("build", recipe, "-o", image, check=0)
    platform = ("--platform", "qemu-q35-ovmf:512M")
    a, _ = cli_load(recipe, *platform)
    b, _ = cli_load(image, *platform)
    assert a["loader"] == "linux-efi-stub"
    assert_same_as_image(a, b)
    assert not (tmp_path / name).exists()            # the recipe's own output is not written


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kernel,words", [("absent.elf", "No such file"),
                                          ("text.elf", "would refuse it")])
def test_an_input_that_cannot_be_built_is_one_line_and_nothing_is_left(tmp_path, kernel, words):
    """A kernel the recipe names that is not there, or that the build refuses (no Multiboot2
    header: refused while the private image is being built): one line naming the recipe and the
    file, exit 2; no output and no temporary image left (TMPDIR is this test's directory)."""
    import os
    import subprocess
    import sys
    work = tmp_path / "tmp"
    work.mkdir()
    (tmp_path / "text.elf").write_text("not a kernel\n" * 100)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[image]\nformat = "disk"\nloader = "grub"\nfirmware = ["uefi"]\noutput = "out.img"\n'
                      f'[[image.entries]]\ntitle = "k"\nkernel = "{kernel}"\nprotocol = "multiboot2"\n')
    proc = subprocess.run([sys.executable, "-m", "bootforge", "load", str(recipe), "--firmware", "uefi"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "TMPDIR": str(work)})
    assert_one_line_error(proc, str(recipe), kernel, words)
    assert not (tmp_path / "out.img").exists() and list(work.iterdir()) == []


def test_verify_of_the_grub_disk_recipe_boots_the_image_it_builds(tmp_path):
    """verify RECIPE of a Multiboot [image] recipe boots the image the recipe builds (not a medium of
    its own) and predicts as `load RECIPE` does: GRUB i386-pc from recipes/image-grub-disk.toml
    under SeaBIOS, every predicted field and the MBI bytes equal to what the dump kernel got, and
    the placements the ones `load RECIPE` printed."""
    require("ld", "cc", "grub-mkimage", "mformat", "qemu-system-x86_64")
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-mb2.toml", check=0)
    recipe = REPO / "recipes" / "image-grub-disk.toml"
    proc = run_bootforge("verify", recipe, "--json", check=None)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout[-3000:]
    assert report["medium"].startswith(f"the image built from {recipe}")
    rows = {r["name"]: r for r in report["fields"]}
    assert rows["mbi bytes"]["counted"] and rows["mbi bytes"]["match"]
    loaded, _ = cli_load(recipe, "--firmware", "bios")
    module = next(p for p in loaded["placements"] if p["name"].startswith("module 0"))
    assert (rows["module 0 start"]["observed"], rows["module 0 end"]["observed"]) == (module["start"], module["end"])
    assert rows["mbi address"]["observed"] == next(p["start"] for p in loaded["placements"] if p["kind"] == "mbi")
