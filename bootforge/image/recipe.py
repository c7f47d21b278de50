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

from bootforge.bootloaders import BOOTLOADERS, FIRMWARES, IMAGE_LOADERS, PROTOCOLS, bootloader
from bootforge.errors import RecipeError
from bootforge.image.content import FileContent
from bootforge.schema import REQUIRED, Field, validate

FORMATS = ("iso", "disk")
MAX_ENTRIES = 256
MAX_FILES = 10000
PATH = {"text": "path"}

# The [image] recipe's keys: validation (bootforge.schema.validate) and `build --help` read these.
# A new key is one Field here.
IMAGE_FIELDS = (
    Field("format", str, "iso", "iso: a hybrid ISO 9660 image (CD and USB disk); disk: a GPT disk image",
          choices=FORMATS),
    Field("loader", str, REQUIRED, "the bootloader installed", choices=IMAGE_LOADERS),
    Field("firmware", (list, str), None, "firmware the image boots with: bios, uefi or both (default: every "
          "firmware the loader supports)"),
    Field("output", str, None, "output path, relative to the recipe", **PATH),
    Field("limine_dir", str, None, "Limine's binary release directory, relative to the recipe "
          "(default: $BOOTFORGE_LIMINE_DIR)", **PATH),
    Field("size", (int, str), None, "disk: the whole disk; iso: a ceiling (a bare number is bytes; "
          "\"64M\", \"1G\")", text="size", min=1),
    Field("timeout", int, 0, "seconds the loader's menu waits", min=0, max=3600),
    Field("volume_id", str, None, "ISO 9660 volume id: 1-32 characters A-Z 0-9 _ (default: derived from the "
          "content)"),
    Field("platform", str, None, "`load` of this recipe: the platform (default qemu-pc-seabios:256M for bios, "
          "qemu-q35-ovmf:256M for uefi)"),
    Field("entries", list, None, "[[image.entries]]: the boot menu's entries, in order"),
    Field("files", list, [], "[[image.files]]: further files copied into the image"),
    Field("allow_refusal", bool, False, "tests only: build even when the loader's verdict refuses a kernel"),
    Field("secureboot_private_key", str, None, "RSA key signing every EFI binary put on the image for Secure Boot "
          "(Authenticode, as `bootforge sign`)", **PATH),
    Field("secureboot_certificate", str, None, "the X.509 certificate of secureboot_private_key", **PATH),
    Field("secureboot_key_passphrase_file", str, None, "file whose first line decrypts secureboot_private_key",
          **PATH),
    Field("grub_modules", list, [], "loader grub: further GRUB modules put in its core images (e.g. all_video), "
          "beside those the entries need (the video drivers are added when a kernel asks for a framebuffer)"),
)
ENTRY_FIELDS = (
    Field("title", str, None, "the menu entry's title (default \"entry N\")"),
    Field("kernel", str, REQUIRED, "the kernel file, relative to the recipe", **PATH),
    Field("loader_path", str, None, "its path in the image (default /boot/<file name>)"),
    Field("protocol", str, "multiboot2", "how the loader boots it", choices=PROTOCOLS),
    Field("cmdline", str, "", "the kernel's command line"),
    Field("modules", list, [], "[[image.entries.modules]]: modules, in order (protocol linux: the initrds, "
          "concatenated by the loader)"),
    Field("platform", str, None, "`load` of this entry: its platform"),
    Field("loader", str, None, "`load` of this entry: the loader policy"),
    Field("grub_extra", list, [], "loader grub: grub.cfg lines put in this entry before its kernel line "
          "(e.g. \"set gfxpayload=keep\")"),
)
MODULE_FIELDS = (
    Field("path", str, REQUIRED, "the module file, relative to the recipe", **PATH),
    Field("loader_path", str, None, "its path in the image (default /boot/<file name>)"),
    Field("cmdline", str, "", "the module's string"),
)
FILE_FIELDS = (
    Field("source", str, REQUIRED, "the file to copy, relative to the recipe", **PATH),
    Field("path", str, REQUIRED, "its path in the image"),
)

DEFAULT_PLATFORM = {"bios": "qemu-pc-seabios:256M", "uefi": "qemu-q35-ovmf:256M"}


def policy_for(loader, firmware, protocol, where="the image"):
    """The loader policy predicting bootloader *loader* booting *protocol* under *firmware*
    (the bootloader's declaration)."""
    return bootloader(loader).policy_for(firmware, protocol, where)


def verdict_for(loader, protocol, firmware=None):
    """The kernel loader verdict (bootforge.multiboot.verdicts) of bootloader *loader* for
    *protocol*: the one its policy declares (under *firmware*, else the first firmware that
    boots the protocol); None when the loader has no policy for it."""
    # Function-level import: the policy registry (and the verdicts under it) only when a verdict
    # is asked for; a build asks beside GRUB's core image (image/build.py _beside), not before it.
    # Read from the registry's index (VERDICTS), not the policy: that would import its module.
    from bootforge.loader.policies import POLICIES, VERDICTS
    for (fw, proto), name in bootloader(loader).policies.items():
        if proto == protocol and firmware in (None, fw):
            return VERDICTS[name] if name in VERDICTS else POLICIES.get(name).verdict
    return None


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
    grub_extra: tuple = ()          # grub.cfg lines before the kernel line ([[image.entries]] grub_extra)


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
    allow_refusal: bool = False     # tests only: build even when the loader's verdict refuses a kernel
    sign: object = None             # bytes -> signed bytes for the EFI binaries ([image] secureboot_* keys)
    grub_modules: tuple = ()        # [image] grub_modules: further modules in GRUB's core images

    @property
    def protocols(self):
        return {e.protocol for e in self.entries}


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


def read_image_table(recipe, table):
    """An ImageSpec from the parsed recipe *table* (paths relative to the recipe's directory)."""
    recipe = Path(recipe)
    base = recipe.parent
    t = validate(table.get("image"), IMAGE_FIELDS, "image")
    fmt_, loader = t["format"], t["loader"]
    declared = bootloader(loader)
    firmware = t.get("firmware", list(declared.firmware))
    if isinstance(firmware, str):
        firmware = [firmware]
    if not isinstance(firmware, list) or not firmware or any(f not in FIRMWARES for f in firmware) \
            or len(set(firmware)) != len(firmware):
        raise RecipeError(f"[image] firmware must be a list of distinct {', '.join(FIRMWARES)}, not {firmware!r}")
    firmware = [f for f in FIRMWARES if f in firmware]
    # What the bootloader's declaration does not take is refused in its own words (Bootloader.limits).
    for what in [f for f in firmware if f not in declared.firmware] + ([fmt_] if fmt_ not in declared.image_formats
                                                                        else []):
        raise RecipeError(f"[image] loader {loader}: {declared.limits.get(what) or f'{what} is not supported'}")
    volume_id = t.get("volume_id")
    if volume_id is not None and not re.fullmatch(r"[A-Z0-9_]{1,32}", volume_id):
        raise RecipeError(f"[image] volume_id must be 1-32 characters A-Z 0-9 _ (ISO 9660 d-characters), "
                          f"not {volume_id!r}")
    limine_dir = t.get("limine_dir")
    if limine_dir is not None:
        limine_dir = str(base / limine_dir)
    elif declared.release_env:          # a loader Debian does not package: its release directory
        limine_dir = os.environ.get(declared.release_env)
        if not limine_dir:
            raise RecipeError(f"[image] loader {loader} needs limine_dir in the recipe or {declared.release_env} "
                              f"(a {declared.title.split()[0]} binary release directory)")

    entries_t = t.get("entries")
    if not entries_t:
        raise RecipeError("[image] needs at least one [[image.entries]]")
    if len(entries_t) > MAX_ENTRIES:
        raise RecipeError(f"[image] {len(entries_t)} entries (limit {MAX_ENTRIES})")
    entries, titles = [], set()
    for i, e in enumerate(entries_t):
        where = f"image.entries {i}"
        e = validate(e, ENTRY_FIELDS, where)
        kernel = e["kernel"]
        title = e.get("title", f"entry {i}")
        if title in titles:
            raise RecipeError(f"[{where}] title {title!r} is used twice")
        if any(c in title for c in "\n\r\"'\\"):
            raise RecipeError(f"[{where}] title {title!r} has a quote, backslash or line break")
        titles.add(title)
        protocol = e["protocol"]
        if not any((fw, protocol) in declared.policies for fw in firmware):
            raise RecipeError(f"[{where}] loader {loader} "
                              f"{declared.limits.get(protocol) or f'has no policy for {protocol}'}")
        cmdline = e["cmdline"]
        _check_cmdline(cmdline, where)
        src = str(base / kernel)
        content = FileContent.from_file(src, "kernel")
        lpath = image_path(e.get("loader_path", "/boot/" + Path(kernel).name), where)
        mods = []
        for j, m in enumerate(e["modules"]):
            mwhere = f"{where} module {j}"
            m = validate(m, MODULE_FIELDS, mwhere)
            mp = m["path"]
            msrc = str(base / mp)
            margs = m["cmdline"]
            _check_cmdline(margs, mwhere)
            mods.append(ModuleEntry(FileContent.from_file(msrc, "module"), msrc,
                                    image_path(m.get("loader_path", "/boot/" + Path(mp).name), mwhere), margs))
        extra = _grub_words(e["grub_extra"], "grub_extra", where, loader, r"[^\n\r\0]*")
        entries.append(BootEntry(title, content, src, lpath, protocol, cmdline, mods, e.get("platform"),
                                 e.get("loader"), extra))

    files = {}
    files_t = t["files"]
    if len(files_t) > MAX_FILES:
        raise RecipeError(f"[image] files must be an array of at most {MAX_FILES} tables")
    for i, f in enumerate(files_t):
        where = f"image.files {i}"
        f = validate(f, FILE_FIELDS, where)
        source = str(base / f["source"])
        files_path = image_path(f["path"], where)
        if files_path in files:
            raise RecipeError(f"[{where}] two files map to one path in the image: {files_path}")
        files[files_path] = (FileContent.from_file(source, "file"), source)
    sign = None
    if any(k.startswith("secureboot_") for k in t):
        if fmt_ == "iso" and "uefi" in firmware and "secureboot-iso-uefi" in declared.limits:
            raise RecipeError(f"[image] secureboot keys: {declared.limits['secureboot-iso-uefi']}")
        # Function-level import: cryptography and asn1crypto only for a signed image.
        from bootforge.pe.sign import recipe_signer
        sign = recipe_signer(t, lambda value, key: base / value, "image")
    grub_modules = _grub_words(t["grub_modules"], "grub_modules", "image", loader, r"[A-Za-z0-9_-]{1,64}")
    return ImageSpec(recipe, fmt_, loader, firmware, t.get("output"), entries, files, t.get("size"),
                     t["timeout"], volume_id, limine_dir, t.get("platform"), t["allow_refusal"], sign, grub_modules)


def _grub_words(items, key, where, loader, pattern):
    """[image] grub_modules / [[image.entries]] grub_extra: strings matching *pattern*, GRUB only."""
    if items and key not in bootloader(loader).recipe_keys:
        owners = [b.name for b in BOOTLOADERS.values() if key in b.recipe_keys]
        raise RecipeError(f"[{where}] {key} is for loader {' or '.join(owners)}, not {loader}")
    if len(items) > MAX_ENTRIES or not all(isinstance(x, str) and re.fullmatch(pattern, x) for x in items):
        raise RecipeError(f"[{where}] {key} must be a list of at most {MAX_ENTRIES} strings "
                          f"({'module names' if key == 'grub_modules' else 'lines without line breaks'}), "
                          f"not {items!r}"[:300])
    return tuple(items)


def _check_cmdline(text, where):
    if any(c in text for c in "\n\r\0"):
        raise RecipeError(f"[{where}] cmdline has a line break or NUL")
