"""The [image] recipe: entries with the same keys as [load], a loader, firmware, a format.

    [image]
    format = "iso"                 # iso | disk
    loader = "grub"                # grub | limine | syslinux
    firmware = ["bios", "uefi"]
    output = "os.iso"              # relative to the recipe
    # limine_dir = "..."           # else $BOOTFORGE_LIMINE_DIR
    # size = "64M"                 # disk: the whole disk; iso: a ceiling
    # timeout = 0                  # seconds the loader's menu waits
    # volume_id = "..."            # default: derived from the content
    [[image.entries]]
    title = "my os"
    kernel = "build/kernel.elf"
    loader_path = "/boot/kernel.elf"   # default /boot/<file name>
    protocol = "multiboot2"        # multiboot1 | multiboot2
    cmdline = "console=ttyS0"
    [[image.entries.modules]]
    path = "build/initrd.tar"
    loader_path = "/boot/initrd.tar"
    cmdline = "initrd"
    [[image.files]]
    source = "README.txt"
    path = "/README.txt"
"""

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from bootforge.errors import RecipeError
from bootforge.image.content import FileContent

IMAGE_KEYS = {"format", "loader", "firmware", "output", "limine_dir", "entries", "files", "size", "timeout",
              "volume_id", "platform"}
ENTRY_KEYS = {"title", "kernel", "loader_path", "protocol", "cmdline", "modules", "platform", "loader"}
MODULE_KEYS = {"path", "loader_path", "cmdline"}
FILE_KEYS = {"source", "path"}
FORMATS = ("iso", "disk")
IMAGE_LOADERS = ("grub", "limine", "syslinux")
FIRMWARES = ("bios", "uefi")
PROTOCOLS = ("multiboot1", "multiboot2")
MAX_ENTRIES = 256
MAX_FILES = 10000

# (image loader, firmware, protocol) -> the bootforge load policy that predicts it.
POLICY_FOR = {
    ("grub", "bios", "multiboot1"): "grub-pc-mb1",
    ("grub", "bios", "multiboot2"): "grub-pc-mb2",
    ("grub", "uefi", "multiboot2"): "grub-efi-mb2",
    ("syslinux", "bios", "multiboot1"): "syslinux-mb1",
    ("limine", "bios", "multiboot1"): "limine-mb1",
    ("limine", "bios", "multiboot2"): "limine-mb2",
    ("limine", "uefi", "multiboot1"): "limine-mb1",
    ("limine", "uefi", "multiboot2"): "limine-mb2",
}
DEFAULT_PLATFORM = {"bios": "qemu-pc-seabios:256M", "uefi": "qemu-q35-ovmf:256M"}
# The verdict (bootforge.multiboot.verdicts) of each loader and protocol.
VERDICT_FOR = {("grub", "multiboot1"): "grub-mb1", ("grub", "multiboot2"): "grub-mb2",
               ("limine", "multiboot1"): "limine-mb1", ("limine", "multiboot2"): "limine-mb2",
               ("syslinux", "multiboot1"): "syslinux-mb1"}


@dataclass
class ModuleEntry:
    content: FileContent
    source: str
    loader_path: str
    cmdline: str


@dataclass
class BootEntry:
    title: str
    kernel: FileContent
    kernel_source: str
    loader_path: str
    protocol: str
    cmdline: str
    modules: list = field(default_factory=list)
    platform: str | None = None     # `load` of the recipe: this entry's platform / policy, if given
    loader: str | None = None


@dataclass
class ImageSpec:
    recipe: Path
    format: str
    loader: str
    firmware: list
    output: str | None
    entries: list
    files: dict                     # image path -> (FileContent, source)
    size: int | None
    timeout: int
    volume_id: str | None
    limine_dir: str | None
    platform: str | None


def parse_size(value, where):
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", value, re.I)
        if m:
            return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]
    raise RecipeError(f"[{where}] size must be a number of bytes or like \"64M\", not {value!r}")


def image_path(text, where):
    """A normalised absolute path inside the image."""
    if not isinstance(text, str) or not text:
        raise RecipeError(f"[{where}] path in the image must be a non-empty string, not {text!r}")
    if "\\" in text or "\0" in text:
        raise RecipeError(f"[{where}] path in the image {text!r} has a backslash or NUL")
    norm = posixpath.normpath("/" + text.lstrip("/"))
    if ".." in norm.split("/") or norm == "/":
        raise RecipeError(f"[{where}] path in the image {text!r} leaves the image root")
    return norm


def _str(t, key, where, default=None, required=False):
    v = t.get(key, default)
    if v is None and required:
        raise RecipeError(f"[{where}] {key} is required")
    if v is not None and not isinstance(v, str):
        raise RecipeError(f"[{where}] {key} must be a string, not {v!r}")
    return v


def _check_table(value, where, keys, known=None):
    """*value* must be a table holding only *keys* (*known*: how the message lists them;
    default: sorted)."""
    if not isinstance(value, dict):
        raise RecipeError(f"[{where}] must be a table")
    bad = sorted(set(value) - keys)
    if bad:
        raise RecipeError(f"[{where}] unknown key(s): {', '.join(bad)} (known: {known or ', '.join(sorted(keys))})")


def read_image_table(recipe, table):
    """An ImageSpec from the parsed recipe *table* (paths relative to the recipe's directory)."""
    recipe = Path(recipe)
    base = recipe.parent
    t = table.get("image")
    _check_table(t, "image", IMAGE_KEYS)
    fmt_ = _str(t, "format", "image", "iso")
    if fmt_ not in FORMATS:
        raise RecipeError(f"[image] format must be one of {', '.join(FORMATS)}, not {fmt_!r}")
    loader = _str(t, "loader", "image", required=True)
    if loader not in IMAGE_LOADERS:
        raise RecipeError(f"[image] loader must be one of {', '.join(IMAGE_LOADERS)}, not {loader!r}")
    firmware = t.get("firmware", ["bios", "uefi"] if loader != "syslinux" else ["bios"])
    if isinstance(firmware, str):
        firmware = [firmware]
    if not isinstance(firmware, list) or not firmware or any(f not in FIRMWARES for f in firmware) \
            or len(set(firmware)) != len(firmware):
        raise RecipeError(f"[image] firmware must be a list of distinct {', '.join(FIRMWARES)}, not {firmware!r}")
    firmware = [f for f in FIRMWARES if f in firmware]
    if loader == "syslinux" and "uefi" in firmware:
        raise RecipeError("[image] loader syslinux: bootforge builds Syslinux images for BIOS only "
                          "(isolinux + mboot.c32); use grub or limine for UEFI")
    if loader == "syslinux" and fmt_ == "disk":
        raise RecipeError("[image] loader syslinux: format \"disk\" is not supported (the iso format is a hybrid "
                          "image that also boots as a disk)")
    timeout = t.get("timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 3600:
        raise RecipeError(f"[image] timeout must be whole seconds 0..3600, not {timeout!r}")
    size = parse_size(t["size"], "image") if "size" in t else None
    volume_id = _str(t, "volume_id", "image")
    if volume_id is not None and not re.fullmatch(r"[A-Z0-9_]{1,32}", volume_id):
        raise RecipeError(f"[image] volume_id must be 1-32 characters A-Z 0-9 _ (ISO 9660 d-characters), "
                          f"not {volume_id!r}")
    limine_dir = _str(t, "limine_dir", "image")
    if limine_dir is not None:
        limine_dir = str(base / limine_dir)
    elif loader == "limine":
        limine_dir = os.environ.get("BOOTFORGE_LIMINE_DIR")
        if not limine_dir:
            raise RecipeError("[image] loader limine needs limine_dir in the recipe or BOOTFORGE_LIMINE_DIR "
                              "(a Limine binary release directory)")

    entries_t = t.get("entries")
    if not isinstance(entries_t, list) or not entries_t:
        raise RecipeError("[image] needs at least one [[image.entries]]")
    if len(entries_t) > MAX_ENTRIES:
        raise RecipeError(f"[image] {len(entries_t)} entries (limit {MAX_ENTRIES})")
    entries, titles = [], set()
    for i, e in enumerate(entries_t):
        where = f"image.entries {i}"
        _check_table(e, where, ENTRY_KEYS)
        kernel = _str(e, "kernel", where, required=True)
        title = _str(e, "title", where, default=f"entry {i}")
        if title in titles:
            raise RecipeError(f"[{where}] title {title!r} is used twice")
        if any(c in title for c in "\n\r\"'\\"):
            raise RecipeError(f"[{where}] title {title!r} has a quote, backslash or line break")
        titles.add(title)
        protocol = _str(e, "protocol", where, "multiboot2")
        if protocol not in PROTOCOLS:
            raise RecipeError(f"[{where}] protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if loader == "syslinux" and protocol != "multiboot1":
            raise RecipeError(f"[{where}] loader syslinux boots Multiboot kernels through mboot.c32, which speaks "
                              "Multiboot 1 only: protocol = \"multiboot1\"")
        cmdline = _str(e, "cmdline", where, "")
        _check_cmdline(cmdline, where)
        src = str(base / kernel)
        content = FileContent.from_file(src, "kernel")
        lpath = image_path(_str(e, "loader_path", where, "/boot/" + Path(kernel).name), where)
        mods = []
        mods_t = e.get("modules", [])
        if not isinstance(mods_t, list):
            raise RecipeError(f"[{where}] modules must be an array of tables")
        for j, m in enumerate(mods_t):
            mwhere = f"{where} module {j}"
            _check_table(m, mwhere, MODULE_KEYS)
            mp = _str(m, "path", mwhere, required=True)
            msrc = str(base / mp)
            margs = _str(m, "cmdline", mwhere, "")
            _check_cmdline(margs, mwhere)
            mods.append(ModuleEntry(FileContent.from_file(msrc, "module"), msrc,
                                    image_path(_str(m, "loader_path", mwhere, "/boot/" + Path(mp).name), mwhere),
                                    margs))
        entries.append(BootEntry(title, content, src, lpath, protocol, cmdline, mods,
                                 _str(e, "platform", where), _str(e, "loader", where)))

    files = {}
    files_t = t.get("files", [])
    if not isinstance(files_t, list) or len(files_t) > MAX_FILES:
        raise RecipeError(f"[image] files must be an array of at most {MAX_FILES} tables")
    for i, f in enumerate(files_t):
        where = f"image.files {i}"
        _check_table(f, where, FILE_KEYS, known="source, path")
        source = str(base / _str(f, "source", where, required=True))
        files_path = image_path(_str(f, "path", where, required=True), where)
        if files_path in files:
            raise RecipeError(f"[{where}] two files map to one path in the image: {files_path}")
        files[files_path] = (FileContent.from_file(source, "file"), source)
    return ImageSpec(recipe, fmt_, loader, firmware, _str(t, "output", "image"), entries, files, size, timeout,
                     volume_id, limine_dir, _str(t, "platform", "image"))


def _check_cmdline(text, where):
    if any(c in text for c in "\n\r\0"):
        raise RecipeError(f"[{where}] cmdline has a line break or NUL")
