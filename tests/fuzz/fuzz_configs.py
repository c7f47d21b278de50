"""Loader configurations: limine.conf, grub.cfg and isolinux.cfg through bootforge's one
parser of each (bootforge/bootloaders/: limine.read_entries / multiboot_entries, grub.parse,
syslinux.parse), then the load recipe's readers (loader/recipe.py parse_grub_cfg,
parse_isolinux_cfg; loader/limine_conf.py) on the same text as a file. The first byte picks
the dialect, so one corpus holds all three.

Seeds: the configurations in bootforge's own images and recipes' trees (tests/data/load-root),
grub-mkrescue's and Debian's (iPXE, Syslinux) files, Limine's example, and the
configurations bootforge writes for every loader."""

from common import attempt, files, instrumented, main, scratch_path

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.bootloaders import grub, limine, syslinux
    from bootforge.loader import recipe as load_recipe

FAMILY = "configs"
SCRATCH = scratch_path("configs")
DIALECTS = ("grub", "syslinux", "limine")


def seeds():
    found = files("tests/data/**/grub.cfg", "tests/data/**/*.cfg", "tests/data/**/limine.conf",
                  "tests/data/**/*.conf", "recipes/**/*.cfg", "/usr/share/doc/limine*/**/*.conf",
                  "/work/shared/oracles/**/*.conf", "/usr/lib/syslinux/**/*.cfg", max_size=65536)
    out = []
    for name, data in found:
        dialect = 1 if name.endswith((".cfg",)) and "isolinux" in name or "syslinux" in name else \
            2 if name.endswith(".conf") else 0
        out.append((name, bytes([dialect]) + data))
    # What bootforge writes, for each loader (the generators' output is what the images carry).
    from bootforge.bootloaders import ConfigEntry
    entries = [ConfigEntry("seed one", "multiboot2", "/boot/kernel", "a=b c='d e'", [("/boot/m1", "one"),
                                                                                       ("/boot/m2", "")]),
               ConfigEntry("seed two", "multiboot1", "/boot/kernel1", "", [])]
    for k, mod in enumerate((grub, syslinux, limine)):
        text = attempt(mod.write, entries, 3)
        if text:
            out.append((f"generated-{DIALECTS[k]}", bytes([k]) + text.encode()))
    return out


def target(data):
    if not data:
        return
    dialect = DIALECTS[data[0] % 3]
    text = data[1:].decode("utf-8", "replace")
    SCRATCH.mkdir(exist_ok=True)
    if dialect == "grub":
        attempt(grub.parse, text)
        path = SCRATCH / "boot" / "grub" / "grub.cfg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        attempt(load_recipe.parse_grub_cfg, path, None)
    elif dialect == "syslinux":
        attempt(syslinux.parse, text)
        path = SCRATCH / "isolinux" / "isolinux.cfg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        attempt(load_recipe.parse_isolinux_cfg, path, None)
    else:
        attempt(limine.parse, text)
        attempt(limine.read_entries, text, "fuzz limine.conf", True)
        attempt(limine.read_entries, text, "fuzz limine.conf", False)
        attempt(limine.multiboot_entries, text)


if __name__ == "__main__":
    main(FAMILY, seeds, target, scratch=SCRATCH)
