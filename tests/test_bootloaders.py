"""The bootloader registry (bootforge.bootloaders): one parser and one writer per
configuration, its policies as their declarations say, its console's refusals."""

import json
from types import SimpleNamespace

import pytest

from bootforge.bootloaders import BOOTLOADERS, PACKAGES, ConfigEntry, bootloader_of_medium, grub, limine, syslinux
from bootforge.loader.policies import POLICIES
from bootforge.qemu import host, media
from conftest import DATA, run_bootforge



@pytest.mark.parametrize("line,words", [
    # yylex.l: COMMENT is tried only between tokens; `#` is a CHAR inside a WORD.
    ("multiboot2 /boot/kernel console=ttyS0 # serial", ["multiboot2", "/boot/kernel", "console=ttyS0"]),
    ("multiboot2 /k a#b c", ["multiboot2", "/k", "a#b", "c"]),
    ("# a comment line", []),
    ("   #indented comment", []),
    ("module2 /m '#not a comment' x", ["module2", "/m", "#not a comment", "x"]),
    ('menuentry "my os" --class x {', ["menuentry", "my os", "--class", "x", "{"]),
    ('set a="q\\"uote \\$HOME"', ["set", 'a=q"uote $HOME']),
    ("a\\ b c\\#d \\#e", ["a b", "c#d", "#e"]),
    ("multiboot /k  x\ty", ["multiboot", "/k", "x", "y"]),
    ("x 'it'\\''s'", ["x", "it's"]),
])
def test_grub_words_as_grubs_lexer_splits_them(line, words):
    assert grub.words(line) == words


def test_grub_cfg_recipe_and_image_reader_agree_on_a_comment(tmp_path):
    """The [load] grub_cfg reader and the image reader are one parser: `# serial` is a comment
    (it used to reach the [load] prediction as part of the command line)."""
    root = tmp_path / "root"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "kernel").write_bytes((DATA / "load-root" / "boot" / "kernel").read_bytes())
    (root / "boot" / "grub" / "grub.cfg").write_text(
        "menuentry 'k' {\n  multiboot2 /boot/kernel console=ttyS0 # serial\n  boot\n}\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[load]\ngrub_cfg = "root/boot/grub/grub.cfg"\nplatform = "qemu-pc-seabios:256M"\n'
                      'loader = "grub-pc-mb2"\n')
    doc = json.loads(run_bootforge("load", "--json", recipe, check=0).stdout)
    assert doc["mbi"]["cmdline"] == "console=ttyS0"
    (entry,) = grub.parse((root / "boot" / "grub" / "grub.cfg").read_text())
    assert (entry.protocol, entry.kernel, entry.cmdline) == ("multiboot2", "/boot/kernel", "console=ttyS0")


def test_grub_options_only_before_the_file():
    """grub-core/loader/multiboot.c takes --quirk-*/--nounzip before the file; later words are arguments."""
    (e,) = grub.parse("menuentry x {\n multiboot --quirk-modules-after-kernel /k --not-an-option a\n"
                      " module --nounzip /m --x\n}\n")
    assert (e.protocol, e.kernel, e.cmdline, e.modules) == ("multiboot1", "/k", "--not-an-option a", [("/m", "--x")])


ENTRIES = [
    ConfigEntry("first os", "multiboot2", "/boot/k.elf", "console=ttyS0 a=b $x 'q' #h c#d",
                [("/boot/initrd.tar", "initrd"), ("/boot/m2", "")]),
    ConfigEntry("second", "multiboot1", "/boot/k1", "", [("/boot/m", "two words")]),
]


@pytest.mark.parametrize("name", [n for n, b in BOOTLOADERS.items() if b.write is not None and b.parse is not None])
def test_each_writer_is_read_back_by_its_parser(name):
    b = BOOTLOADERS[name]
    entries = [e for e in ENTRIES if (name != "syslinux" or e.protocol == "multiboot1")]
    if name == "syslinux":                      # mboot.c32 splits on whitespace: words, not quoting
        entries = [ConfigEntry("second", "multiboot1", "/boot/k1", "a=b c", [("/boot/m", "two words")])]
    if name == "systemd-boot":                  # loader.conf names one Type #2 UKI, which brings its own cmdline
        entries = [ConfigEntry("k.efi", "linux", "/EFI/Linux/k.efi", "")]
    got = b.parse(b.write(entries, 5))
    assert [(e.title, e.protocol, e.kernel, e.cmdline, e.modules) for e in got] == \
        [(e.title, e.protocol, e.kernel, e.cmdline, e.modules) for e in entries]


def test_verify_media_write_with_the_image_builders_writers(tmp_path):
    k = media.BootFile(tmp_path / "k", "/boot/kernel", "kernel-args a=b")
    mods = [media.BootFile(tmp_path / "m", "/boot/mod1", "mod1 args")]
    for text, parser in ((media.grub_cfg("multiboot2", k, mods), grub.parse),
                         (media.limine_conf("multiboot2", k, mods), limine.parse),
                         (media.isolinux_cfg(k, mods), syslinux.parse)):
        (e,) = parser(text)
        assert (e.kernel, e.cmdline, e.modules) == ("/boot/kernel", "kernel-args a=b", [("/boot/mod1", "mod1 args")])


@pytest.mark.parametrize("name", list(BOOTLOADERS))
def test_each_bootloaders_policies_are_declared_so(name):
    """Each (firmware, protocol) pair names a policy of that protocol, on that firmware, booted by
    one of the bootloader's media when verify boots it: the verdict is the policy's own."""
    b = BOOTLOADERS[name]
    assert b.policies
    for (firmware, protocol), policy in b.policies.items():
        p = POLICIES.get(policy)
        assert p.protocol == protocol and firmware in p.firmware, (name, firmware, protocol)
        assert firmware in b.firmware
        if p.boot_medium is not None:       # a policy verify boots: on one of this bootloader's media
            assert p.boot_medium in b.media
            assert bootloader_of_medium(p.boot_medium) is b


def test_one_package_table():
    """Every bootloader file's Debian package is declared by its bootloader, once; qemu.host's
    table holds them and adds QEMU's, the firmware's and the tools'."""
    assert all(host.PACKAGES[path] == pkg for path, pkg in PACKAGES.items())
    assert host.PACKAGES[host.GRUB_I386_PC] == "grub-pc-bin" and host.PACKAGES[host.ISOLINUX_BIN] == "isolinux"


def _run(serial="", stderr="", exited=False):
    return SimpleNamespace(serial=lambda: serial, qemu_stderr=lambda: stderr, exited=lambda: exited)


def test_refusals_read_from_real_consoles():
    """Each bootloader reads its own refusal: GRUB i386-pc's and Limine's consoles as captured."""
    from bootforge.verify.run import refusal_reader
    grub_serial = (DATA / "grub-pc-mb2-bad-checksum.serial").read_text("latin-1")
    assert refusal_reader("grub-pc-iso")(_run(grub_serial)) == "no multiboot header found."
    limine_serial = (DATA / "limine-ovmf-ega-console-refusal.serial").read_text("latin-1")
    assert refusal_reader("limine-iso")(_run(limine_serial)) == \
        "multiboot2: OS requested EGA text mode, but UEFI does not support it"
    assert refusal_reader("grub-efi-iso")(_run("error: no suitable video mode found.\n")) is None
    assert refusal_reader("qemu-kernel")(_run(stderr="qemu-system-i386: invalid kernel header\n",
                                              exited=True)) == "invalid kernel header"
    assert refusal_reader("isolinux-iso")(_run("mboot.c32 /k\r\nNot a Multiboot kernel\r\nboot: ")) == \
        "Not a Multiboot kernel"
    assert refusal_reader("ipxe-tftp")(_run("Could not boot image: Exec format error (http://ipxe.org/x)\n")) \
        .startswith("Could not boot image: Exec format error")
    assert refusal_reader("no-such-medium") is None


def test_limine_config_paths_follow_limines_search_order():
    assert BOOTLOADERS["limine"].config_paths == tuple(
        f"/{d}/limine.conf".replace("//", "/") for d in limine.CONF_DIRS)
    assert BOOTLOADERS["limine"].config_path == "/boot/limine/limine.conf"


READERS_OF_THE_REGISTRY = ("image/build.py", "image/read.py", "image/recipe.py", "image/load.py", "image/inspect.py",
                           "verify/run.py", "verify/capture.py", "verify/compare.py")


@pytest.mark.parametrize("module", READERS_OF_THE_REGISTRY)
def test_the_image_code_and_verify_name_no_bootloader_policy_or_firmware(module):
    """They read the registries: no string in them is a bootloader's, a policy's or a firmware's name."""
    import ast
    from conftest import REPO
    names = set(BOOTLOADERS) | set(POLICIES.names()) | {"seabios", "ovmf"}
    tree = ast.parse((REPO / "bootforge" / module).read_text())
    found = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names})
    assert found == [], f"{module} names {found}"
