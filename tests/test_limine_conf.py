"""`bootforge load` reads a limine.conf entry (recipe keys limine_conf + entry) as Limine
11.4.1 does, and `bootforge verify` boots it under the real Limine."""

import shutil

import pytest

from conftest import BUILD, DATA, assert_one_line_error, require, run_bootforge
import fidelity as F
from test_limine_fidelity import require_limine

CONF = """# a comment
timeout: 0
serial: yes
${KDIR}=boot():/boot

/first entry
    protocol: multiboot2
    path: ${KDIR}/kernel
    cmdline: kernel-args a=b
    module_path: boot():/boot/mod1
    module_string: mod1-args
    module_path: boot():/boot/mod2
    module_path: boot():/boot/mod3
    module_string: mod3 args

/menu
//nested one
    protocol: multiboot
    kernel_path: boot():/boot/kernel1
    kernel_cmdline: one
"""
# What tests/data/limine-seabios-conf-aliases.dump was captured with (tests/data/README.md).
ALIASES_CONF = """timeout: 0
serial: yes

/dump
    protocol: multiboot2
    kernel_path: boot():/boot/kernel
    kernel_cmdline: via-kernel-cmdline
    module_path: boot():/boot/mod1
    module_cmdline: via-module-cmdline
"""


def _tree(tmp_path, conf=CONF):
    root = tmp_path / "iso"
    (root / "boot" / "limine").mkdir(parents=True)
    (root / "boot" / "limine" / "limine.conf").write_text(conf)
    for name in ("kernel", "kernel1", "mod1", "mod2", "mod3"):
        (root / "boot" / name).write_bytes(b"x" * 100)
    return root


def test_entries_macros_aliases_and_module_pairs(tmp_path):
    from bootforge.loader.limine_conf import parse_limine_conf
    root = _tree(tmp_path)
    cfg = root / "boot" / "limine" / "limine.conf"
    kfile, kname, cmdline, mods, proto = parse_limine_conf(cfg)      # the first entry with a protocol
    assert (kfile, kname, cmdline, proto) == (root / "boot" / "kernel", "boot():/boot/kernel", "kernel-args a=b",
                                               "multiboot2")
    # module_string pairs with the module_path before it; mod2 has none (the next path comes first).
    assert mods == [(root / "boot" / "mod1", "boot():/boot/mod1", "mod1-args"),
                    (root / "boot" / "mod2", "boot():/boot/mod2", ""),
                    (root / "boot" / "mod3", "boot():/boot/mod3", "mod3 args")]
    kfile, kname, cmdline, mods, proto = parse_limine_conf(cfg, "nested one")
    assert (kname, cmdline, mods, proto) == ("boot():/boot/kernel1", "one", [], "multiboot1")


@pytest.mark.parametrize("conf,entry,fragment", [
    (CONF, "nope", "no entry 'nope'"),
    (CONF.replace("boot():/boot/mod1", "hdd(1:1):/boot/mod1"), None, "only boot():/ paths"),
    (CONF.replace("${KDIR}/kernel", "${NOPE}/kernel"), None, "macro ${NOPE} is not defined"),
    (CONF.replace("    path: ${KDIR}/kernel\n", ""), None, "multiboot2: Executable path not specified"),
    (CONF.replace("protocol: multiboot2", "protocol: linux"), "first entry",
     "is protocol: linux, the loader is a multiboot2 policy"),
])
def test_bad_limine_conf_is_one_line(tmp_path, conf, entry, fragment):
    require(str(BUILD / "stubs" / "mbdump.elf"))
    root = _tree(tmp_path, conf)
    shutil.copyfile(BUILD / "stubs" / "mbdump.elf", root / "boot" / "kernel")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[load]\nlimine_conf = "iso/boot/limine/limine.conf"\nplatform = "qemu-pc-seabios:256M"\n'
                      'loader = "limine-mb2"\n' + (f'entry = "{entry}"\n' if entry else ""))
    assert_one_line_error(run_bootforge("load", recipe), fragment)


def test_limine_conf_and_kernel_table_agree(tmp_path):
    """The same boot described by limine.conf and by [load] kernel/modules: the same JSON."""
    require(str(BUILD / "stubs" / "mbdump.elf"), "ld")
    kernel = F.dump_kernel("1m", "mb2")
    root = _tree(tmp_path)
    shutil.copyfile(kernel, root / "boot" / "kernel")
    a = tmp_path / "conf.toml"
    a.write_text('[load]\nlimine_conf = "iso/boot/limine/limine.conf"\nentry = "first entry"\n'
                 'platform = "qemu-pc-seabios:256M"\nloader = "limine-mb2"\n')
    b = tmp_path / "table.toml"
    mods = "".join(f'[[load.modules]]\npath = "iso/boot/{n}"\nloader_path = "boot():/boot/{n}"\ncmdline = "{c}"\n'
                   for n, c in (("mod1", "mod1-args"), ("mod2", ""), ("mod3", "mod3 args")))
    b.write_text('[load]\nkernel = "iso/boot/kernel"\nloader_path = "boot():/boot/kernel"\n'
                 'cmdline = "kernel-args a=b"\nplatform = "qemu-pc-seabios:256M"\nloader = "limine-mb2"\n' + mods)
    ja, jb = run_bootforge("load", a, "--json", check=0).stdout, run_bootforge("load", b, "--json", check=0).stdout
    assert ja == jb
    assert '"start": 1073152' in ja         # module 0 at 0x106000, as the real Limine put it


def test_aliases_as_the_real_limine_reads_them(tmp_path):
    """kernel_path / kernel_cmdline are aliases of path / cmdline; module_cmdline is not a
    multiboot key: Limine 11.4.1 gave the module an empty string (the capture)."""
    from bootforge.loader.limine_conf import parse_limine_conf
    from bootforge.multiboot.dump import decode_dump
    root = _tree(tmp_path, ALIASES_CONF)
    _k, _n, cmdline, mods, _p = parse_limine_conf(root / "boot" / "limine" / "limine.conf")
    tags = decode_dump((DATA / "limine-seabios-conf-aliases.dump").read_bytes())[0]["multiboot2"]["tags"]
    assert cmdline == next(t["string"] for t in tags if t["type"] == 1) == "via-kernel-cmdline"
    assert [s for _f, _n, s in mods] == [t["string"] for t in tags if t["type"] == 3] == [""]


def test_verify_boots_a_limine_conf_recipe(tmp_path):
    """`bootforge verify` on a limine_conf recipe: the real Limine (SeaBIOS) matches every field."""
    require_limine()
    kernel = F.dump_kernel("1m", "mb2")
    root = _tree(tmp_path)
    shutil.copyfile(kernel, root / "boot" / "kernel")
    for n, size in (("mod1", 3000), ("mod2", 70001), ("mod3", 4096)):
        (root / "boot" / n).write_bytes(F.module_bytes(n, size))
    recipe = tmp_path / "conf.toml"
    recipe.write_text('[load]\nlimine_conf = "iso/boot/limine/limine.conf"\nplatform = "qemu-pc-seabios:256M"\n'
                      'loader = "limine-mb2"\n')
    proc = run_bootforge("verify", recipe, "--json")
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-1000:])
    import json
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["status"] == "entry" and not doc["mismatches"]
    names = {f["name"] for f in doc["fields"] if f["match"]}
    assert {"module 2 string", "module 1 bytes", "mbi size", "tags"} <= names


def test_load_reads_a_limine_iso_like_the_real_limine(tmp_path):
    """`bootforge load` of the ISO itself (bootforge.image reads its limine.conf): the same
    command line, module string ('' for module_cmdline) and module address as the capture
    of the real Limine booting that ISO (limine-seabios-conf-aliases.dump)."""
    require_limine()
    import json
    from bootforge.multiboot.dump import decode_dump
    from bootforge.qemu.media import BootFile, limine_iso
    kernel = F.dump_kernel("1m", "mb2")
    mod = tmp_path / "mod1"
    mod.write_bytes(F.module_bytes("mod1", 3000))
    medium = limine_iso(tmp_path, BootFile(kernel, "/boot/kernel", ""), [BootFile(mod, "/boot/mod1", "")],
                        conf=ALIASES_CONF)
    iso = medium.args[-1]
    doc = json.loads(run_bootforge("load", iso, "--platform", "qemu-pc-seabios:256M", "--json", check=0).stdout)
    tags = decode_dump((DATA / "limine-seabios-conf-aliases.dump").read_bytes())[0]["multiboot2"]["tags"]
    assert doc["loader"] == "limine-mb2"
    assert doc["mbi"]["cmdline"] == next(t["string"] for t in tags if t["type"] == 1)
    assert [(m["start"], m["end"], m["cmdline"]) for m in doc["mbi"]["modules"]] == \
        [(t["mod_start"], t["mod_end"], t["string"]) for t in tags if t["type"] == 3]


MULTIBOOT_ALIAS_CONF = """timeout: 0
serial: yes

/dump
    protocol: multiboot
    path: boot():/boot/kernel
    cmdline: alias
"""


def test_protocol_multiboot_is_multiboot1(tmp_path):
    """`protocol: multiboot` boots the kernel as Multiboot1 (the capture: EAX 0x2badb002)."""
    from bootforge.loader.limine_conf import parse_limine_conf
    from bootforge.multiboot.dump import decode_dump
    root = _tree(tmp_path, MULTIBOOT_ALIAS_CONF)
    *_rest, proto = parse_limine_conf(root / "boot" / "limine" / "limine.conf")
    doc = decode_dump((DATA / "limine-seabios-conf-multiboot-alias.dump").read_bytes())[0]
    assert proto == "multiboot1" and doc["eax"] == 0x2BADB002 and doc["multiboot1"]["cmdline"] == "alias"
