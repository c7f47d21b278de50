"""Load recipes: a [load] table, or the loader's own configuration.

    [load]
    kernel = "build/mbdump.elf"        # paths relative to the recipe
    loader_path = "/boot/kernel"       # the name the loader is given
    cmdline = "console=ttyS0 a=b"
    platform = "qemu-pc-seabios:256M"
    loader = "grub-pc-mb2"
    [[load.modules]]
    path = "build/initrd.bin"
    loader_path = "/boot/initrd"
    cmdline = "initrd"

Instead of kernel/modules: grub_cfg + entry (multiboot/multiboot2/module/
module2 lines), isolinux_cfg + label (KERNEL mboot.c32, APPEND with ---),
limine_conf + entry (bootforge.loader.limine_conf: path, cmdline,
module_path + module_string), or
qemu_args ("-kernel F -append A -initrd 'F a,F2 b'"); `root` is the
directory their absolute paths are resolved against (default: the
configuration file's directory for grub/isolinux, the recipe's for QEMU).
"""

import shlex
import tomllib
from pathlib import Path

from bootforge.bootloaders import grub, syslinux
from bootforge.bootloaders.limine import parse_limine_conf
from bootforge.errors import BootforgeError, RecipeError
from bootforge.fileio import read_input
from bootforge.loader.image import KernelImage, read_kernel
from bootforge.machines import platform_syntax
from bootforge.loader.platforms import resolve
from bootforge.loader.policies import POLICIES
from bootforge.loader.result import LoadRequest, ModuleSpec
from bootforge.schema import REQUIRED, Field, validate

# The [load] table, declared once: validation below and `bootforge load --help` read it.
LOAD_FIELDS = (
    Field("loader", str, None, "the loader policy (--loader wins; the list below)"),
    Field("platform", str, None, f"{platform_syntax()}, r820-efi, a map file or a board's DTB "
          "(--platform wins)"),
    Field("kernel", str, None, "the kernel file, relative to the recipe"),
    Field("loader_path", str, None, "the name the loader is given for the kernel (default: its file name)"),
    Field("cmdline", str, None, "the kernel's arguments"),
    Field("modules", list, None, "[[load.modules]] tables (path, loader_path, cmdline)"),
    Field("initrd", (str, list), None, "device-tree and Linux loaders: the initrd file, or a list of them "
          "(relative to the recipe)"),
    Field("dtb", str, None, "device-tree platforms: a DTB the loader is given instead of the machine's "
          "(QEMU -dtb)", text="path"),
    Field("grub_cfg", str, None, "instead of kernel: a grub.cfg, with `entry` (a menuentry title)"),
    Field("isolinux_cfg", str, None, "instead of kernel: an isolinux.cfg running mboot.c32, with `label`"),
    Field("limine_conf", str, None, "instead of kernel: a limine.conf, with `entry`"),
    Field("qemu_args", str, None, "instead of kernel: QEMU's -kernel/-append/-initrd arguments"),
    Field("entry", str, None, "the grub.cfg menuentry or limine.conf entry (default: the first)"),
    Field("label", str, None, "the isolinux.cfg LABEL (default: the first)"),
    Field("root", str, None, "the directory a configuration's absolute paths are resolved against"),
    Field("options", dict, None, "[load.options]: the loader's options (below)"),
    Field("devices", list, None, "[[load.devices]] tables (device, romfile, bootindex): PCI devices of the "
          "qemu-pc-seabios machine; without a kernel, load predicts SeaBIOS's POST"),
    Field("vga", str, None, "QEMU's -vga for the devices' machine: std (default) or none", choices=("std", "none")),
)
MODULE_FIELDS = (
    Field("path", str, REQUIRED, "the module file, relative to the recipe"),
    Field("loader_path", str, None, "the name the loader is given (default: its file name)"),
    Field("cmdline", str, None, "the module's string after the name"),
)
SOURCES = ("kernel", "grub_cfg", "isolinux_cfg", "limine_conf", "qemu_args")
MAX_MODULES = 100000


def _str(table, key, where, default=None, required=False):
    """A validated string value (types were checked against LOAD_FIELDS / MODULE_FIELDS)."""
    v = table.get(key, default)
    if v is None and required:
        raise RecipeError(f"[{where}] {key} is required")
    return v


WHAT_LOAD_TAKES = ("load takes a [load] recipe (TOML), an [image] recipe or a bootable image, or a kernel "
                   "with --platform P --loader L [--cmdline S] [--module FILE[=STRING]]...")
MAX_RECIPE = 16 << 20       # a recipe is text: more than this is not one


def read_recipe(path, platform=None, loader=None):
    """A LoadRequest from the recipe at *path* (command-line platform/loader win)."""
    path = Path(path)
    raw = read_input(path)
    if len(raw) > MAX_RECIPE:
        raise RecipeError(f"not a [load] recipe ({len(raw)} bytes); {WHAT_LOAD_TAKES}", path=path)
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(f"not a [load] recipe (not UTF-8 text: byte {raw[exc.start]:#04x} at offset "
                          f"{exc.start:#x}); {WHAT_LOAD_TAKES}", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not a [load] recipe (not valid TOML: {exc}); {WHAT_LOAD_TAKES}", path=path) from None
    try:
        return request_from_table(table, path.parent, platform, loader)
    except BootforgeError as exc:
        raise exc.located(path=path)


def is_toml_text(path):
    """Whether *path* reads as TOML text (a recipe), without raising."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECIPE + 1)
        tomllib.loads(raw.decode("utf-8"))
        return len(raw) <= MAX_RECIPE
    except (OSError, ValueError):        # UnicodeDecodeError and TOMLDecodeError are ValueErrors
        return False


def request_from_arguments(kernel, platform, loader, cmdline=None, modules=(), initrds=(), dtb=None):
    """A LoadRequest for `bootforge load KERNEL --platform P --loader L [--cmdline S]
    [--module FILE[=STRING]]...`: the [load] table those arguments stand for, validated
    like a recipe's (paths relative to the current directory)."""
    if not platform or not loader:
        raise RecipeError(f"a kernel without a recipe needs --platform and --loader ({WHAT_LOAD_TAKES})",
                          path=kernel)
    table = {"kernel": str(kernel), "platform": platform, "loader": loader}
    if cmdline is not None:
        table["cmdline"] = cmdline
    if modules:
        table["modules"] = []
        for spec in modules:
            file, sep, string = spec.partition("=")
            if not file:
                raise RecipeError(f"--module {spec!r}: give FILE or FILE=STRING")
            table["modules"].append({"path": file, **({"cmdline": string} if sep else {})})
    if initrds:
        table["initrd"] = [str(i) for i in initrds]
    if dtb is not None:
        table["dtb"] = str(dtb)
    return request_from_table({"load": table}, Path.cwd())


def request_from_table(table, base, platform=None, loader=None):
    if set(table) != {"load"} or not isinstance(table["load"], dict):
        raise RecipeError(f"a load recipe has one top-level table [load]; found {', '.join(sorted(table)) or 'none'}")
    t = table["load"]
    validate(t, LOAD_FIELDS, "load")
    base = Path(base)
    loader = loader or _str(t, "loader", "load", required=True)
    declared = POLICIES.get(loader)      # RecipeError naming the known loaders
    plat = resolve(platform or _str(t, "platform", "load", required=True), base)
    sources = [k for k in SOURCES if k in t]
    if len(sources) != 1:
        raise RecipeError("[load] needs exactly one of kernel, grub_cfg (+ entry), isolinux_cfg (+ label), "
                          f"limine_conf (+ entry), qemu_args; found {', '.join(sources) or 'none'}")
    src = sources[0]
    if src == "kernel":
        kernel_file = base / _str(t, "kernel", "load")
        kernel_name = _str(t, "loader_path", "load", default=Path(t["kernel"]).name)
        cmdline = _str(t, "cmdline", "load", default="")
        mods = t.get("modules", [])
        modules = []
        for i, m in enumerate(mods):
            where = f"load.modules {i}"
            validate(m, MODULE_FIELDS, where)
            p = _str(m, "path", where, required=True)
            modules.append((base / p, _str(m, "loader_path", where, default=Path(p).name),
                            _str(m, "cmdline", where, default="")))
        initrds = t.get("initrd", [])
        for i, p in enumerate([initrds] if isinstance(initrds, str) else initrds):
            if not isinstance(p, str):
                raise RecipeError(f"[load] initrd {i} must be a file name (a string)")
            modules.append((base / p, Path(p).name, ""))
    else:
        for k in ("loader_path", "cmdline", "modules"):
            if k in t:
                raise RecipeError(f"[load] {k} comes from {src}; do not give both")
        if src == "grub_cfg":
            cfg = base / _str(t, "grub_cfg", "load")
            root = base / t["root"] if "root" in t else None
            kernel_file, kernel_name, cmdline, modules = parse_grub_cfg(cfg, _str(t, "entry", "load"), root)
        elif src == "isolinux_cfg":
            cfg = base / _str(t, "isolinux_cfg", "load")
            root = base / t["root"] if "root" in t else None
            kernel_file, kernel_name, cmdline, modules = parse_isolinux_cfg(cfg, _str(t, "label", "load"), root)
        elif src == "limine_conf":
            cfg = base / _str(t, "limine_conf", "load")
            root = base / t["root"] if "root" in t else None
            kernel_file, kernel_name, cmdline, modules, _proto = parse_limine_conf(
                cfg, _str(t, "entry", "load"), root, declared.protocol if loader.startswith("limine") else None)
        else:
            root = base / t["root"] if "root" in t else base
            kernel_file, kernel_name, cmdline, modules = parse_qemu_args(_str(t, "qemu_args", "load"), root)
    if len(modules) > MAX_MODULES:
        raise RecipeError(f"{len(modules)} modules (limit {MAX_MODULES})")
    if "dtb" in t:
        if plat.devicetree is None:
            raise RecipeError("[load] dtb needs a device-tree platform (qemu-virt-aarch64:<mem>, ...)")
        dtb_file = base / t["dtb"]
        plat.devicetree.user_dtb = (str(dtb_file), read_input(dtb_file))
    data = read_input(kernel_file)
    # Not a Multiboot ELF: the policy reads the file itself (Linux; xen.efi, a PE, for xen-efi-esp).
    if declared.protocol == "linux" or (declared.protocol == "xen" and data[:2] == b"MZ"):
        kernel = KernelImage(str(kernel_file), data, len(data), None, 64, 0, [(0x1000000, len(data), len(data))])
    else:
        kernel = read_kernel(kernel_file, data)
    specs = []
    for file, name, args in modules:
        try:
            size = Path(file).stat().st_size
        except OSError as exc:
            raise RecipeError(f"module {file}: {exc.strerror}") from None
        if Path(file).is_dir():
            raise RecipeError(f"module {file} is a directory")
        specs.append(ModuleSpec(str(file), name, args, size))
    # The policy declares its options (type, range, default); defaults are filled in by run_policy.
    options = validate(t.get("options", {}), declared.options, "load.options", known_note=f" for {loader}")
    given = {k: v for k, v in options.items() if k in t.get("options", {})}
    return LoadRequest(kernel, kernel_name, cmdline, specs, plat, loader, given)


def _resolve(root, name, cfg):
    p = Path(name)
    if p.is_absolute():
        # The anchor, not "/": a path may begin with "//" (POSIX keeps that root apart).
        return (root if root is not None else cfg.parent) / p.relative_to(p.anchor)
    return (root if root is not None else cfg.parent) / p


def _pick(cfg, entries, entry, what):
    """The entry titled *entry* (default: the first) of a configuration's entries."""
    if not entries:
        raise RecipeError(f"{cfg}: no {what}")
    if entry is None:
        return entries[0]
    found = next((e for e in entries if entry in (e.title, e.label)), None)
    if found is None:
        raise RecipeError(f"{cfg}: no {what} {entry!r} (found: {', '.join(repr(e.label or e.title) for e in entries)})")
    return found


def parse_grub_cfg(cfg, entry, root=None):
    """(kernel file, name, cmdline, [(file, name, args)]) from a grub.cfg menuentry, read by
    GRUB's one parser (bootforge.bootloaders.grub)."""
    text = read_input(cfg).decode("utf-8", "replace")
    if root is None:
        # grub.cfg sits in /boot/grub: the file system root is two levels up.
        root = cfg.parent.parent.parent if cfg.parent.name == "grub" and cfg.parent.parent.name == "boot" \
            else cfg.parent
    e = _pick(cfg, grub.parse(text), entry, "menuentry")
    if e.protocol is None:
        raise RecipeError(f"{cfg}: menuentry {e.title!r} has no multiboot or multiboot2 line")
    modules = [(_resolve(root, name, cfg), name, args) for name, args in e.modules]
    return _resolve(root, e.kernel, cfg), e.kernel, e.cmdline, modules


def parse_isolinux_cfg(cfg, label, root=None):
    """The same from an isolinux.cfg LABEL running mboot.c32 (APPEND kernel args --- mod args ...),
    read by Syslinux's one parser (bootforge.bootloaders.syslinux)."""
    text = read_input(cfg).decode("utf-8", "replace")
    if root is None:
        root = cfg.parent.parent if cfg.parent.name in ("isolinux", "syslinux") else cfg.parent
    e = _pick(cfg, syslinux.parse(text), label, "LABEL")
    if e.protocol is None:
        raise RecipeError(f"{cfg}: LABEL {e.label!r} does not run mboot.c32 ({e.note})")
    mods = [(_resolve(root, name, cfg), name, args) for name, args in e.modules]
    return _resolve(root, e.kernel, cfg), e.kernel, e.cmdline, mods


def parse_qemu_args(text, root):
    """The same from QEMU's -kernel/-append/-initrd arguments."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RecipeError(f"qemu_args: {exc}") from None
    kernel, append, initrd = None, "", None
    it = iter(words)
    for w in it:
        if w in ("-kernel", "-append", "-initrd"):
            try:
                v = next(it)
            except StopIteration:
                raise RecipeError(f"qemu_args: {w} needs a value") from None
            if w == "-kernel":
                kernel = v
            elif w == "-append":
                append = v
            else:
                initrd = v
    if kernel is None:
        raise RecipeError("qemu_args: no -kernel")
    mods = []
    for item in (initrd.split(",") if initrd else []):
        parts = item.strip().split(" ", 1)
        mods.append((Path(root) / parts[0], parts[0], parts[1] if len(parts) > 1 else ""))
    return Path(root) / kernel, kernel, append, mods
