"""Bootloaders, each declared once (one module each, one line in BOOTLOADER_MODULES).

A `Bootloader` says everything bootforge knows about one loader that is not a
placement rule (those are its loader policies, bootforge.loader.policies):

- where it looks for its configuration on a volume (`config_paths`, the first is
  where bootforge writes it);
- the one parser of that configuration into `ConfigEntry`s (`parse`), which
  `[load]` recipes, image reading (`inspect IMAGE`, `load IMAGE`, `verify IMAGE`)
  all use, and the one writer (`write`), which the image builder and verify's
  boot media both use: parse(write(entries)) gives the entries back;
- the files it needs and the Debian package of each (`packages`);
- which loader policy takes each (firmware, protocol) pair (`policies`): the
  verdict is that policy's own declaration (`LoaderPolicy.verdict`);
- the boot media verify builds for it (`media`, keys of bootforge.qemu.media.MEDIA)
  and how its refusals read on the console (`read_refusal`: a QEMU run -> the
  loader's words, or None while it has not refused).

Firmware is named `bios` or `uefi` here as in recipes and on the command line.

    BOOTLOADERS["grub"].policy_for("uefi", "multiboot2")     # 'grub-efi-mb2'
    bootloader_of_medium("isolinux-iso").name                 # 'syslinux'
"""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bootforge.errors import RecipeError, ToolError

FIRMWARES = ("bios", "uefi")
PROTOCOLS = ("multiboot1", "multiboot2", "linux")      # [image] entries' protocol

# One module per bootloader, each ending in `BOOTLOADER = Bootloader(...)`; in the order an
# image's volumes are searched for a configuration.
BOOTLOADER_MODULES = (
    "limine",
    "grub",
    "syslinux",
    "ipxe",
    "qemu_kernel",
    "systemd_boot",
    "uki",
)


@dataclass
class ConfigEntry:
    """One entry of a loader's configuration, as that loader reads it."""
    title: str
    protocol: str | None            # multiboot1 | multiboot2 | linux | None (nothing bootforge boots)
    kernel: str | None              # path in the file system
    cmdline: str
    modules: list = field(default_factory=list)     # [(path, cmdline)]
    note: str = ""                  # why it is not a Multiboot entry
    label: str | None = None        # Syslinux: the LABEL typed at boot (title is its MENU LABEL)
    extra: tuple = ()               # GRUB: lines before the kernel line ([[image.entries]] grub_extra)


@dataclass
class BootImage:
    """An El Torito boot image a bootloader puts on an ISO: its bytes, a file, or an ESP (FAT)
    the image builder makes of EFI binaries."""
    firmware: str                   # bios | uefi
    path: str                       # where it is in the ISO
    data: bytes | None = None
    source: str | None = None       # a file on this machine
    esp: dict | None = None         # {path: EFI binary (bytes or a file)}: an ESP image of these
    load_sectors: int | None = None     # El Torito sector count (BIOS no-emulation: 4)
    boot_info_table: bool = False
    grub2_boot_info: bool = False


@dataclass
class ImageParts:
    """What a bootloader adds to an [image] (its `image_parts` hook); the image builder lays it
    out, writes the configuration, signs EFI binaries when asked, and writes MBR and GPT."""
    files: dict = field(default_factory=dict)       # path -> bytes or a file on this machine
    efi_files: dict = field(default_factory=dict)   # path -> an EFI binary (bytes or a file)
    boot_images: list = field(default_factory=list)     # ISO: BootImage
    mbr_code: bytes = b""           # MBR boot code (ISO: hybrid; disk: stage 1)
    mbr_pointer: tuple | None = None    # ISO: (offset, struct format, add): the BIOS boot image's
                                        # 512-byte sector + add, written into the MBR code
    core: bytes | None = None       # disk: the BIOS boot partition's contents (GRUB's core.img)
    place_core: Callable | None = None  # disk: (core, mbr_code, core_lba) -> (core, mbr_code) patched
    bios_boot_partition: bool = False   # disk: a BIOS boot partition even without a core
    gpt: bool = True                # ISO with UEFI: a GPT too (False: an MBR-only hybrid)
    iso_padding: int = 0            # ISO: bytes of zeros inside the volume after the last file
    layout: dict = field(default_factory=dict)      # facts for the build summary


@dataclass(frozen=True)
class ImageRequest:
    """What an image_parts hook is asked for."""
    format: str                     # iso | disk
    firmware: tuple                 # bios, uefi
    protocols: frozenset
    digest: bytes                   # the image's content digest (ids derived from it)
    limine_dir: str | None = None
    video: bool = False             # a kernel asks for a framebuffer (GRUB adds its video drivers)
    grub_modules: tuple = ()        # [image] grub_modules
    grub_extra: tuple = ()          # every entry's grub_extra lines (GRUB adds their commands' modules)


@dataclass(frozen=True)
class Bootloader:
    name: str                       # recipes' [image] loader
    title: str                      # in text
    firmware: tuple                 # what it boots from: bios, uefi
    policies: dict                  # (firmware, protocol) -> loader policy name
    packages: dict                  # file or program -> the Debian package that installs it
    read_refusal: Callable          # QEMU run -> the loader's words once it refused, else None
    media: tuple = ()               # verify's boot media for it (bootforge.qemu.media.MEDIA keys)
    config_paths: tuple = ()        # where it looks for its configuration (the first: where bootforge writes it)
    parse: Callable | None = None   # configuration text -> [ConfigEntry]
    write: Callable | None = None   # ([ConfigEntry], timeout=0, **extra) -> configuration text
    image_formats: tuple = ()       # [image] formats the image builder makes with it
    limits: dict = field(default_factory=dict)  # a firmware, format or protocol it does not take -> why
    entry_rule: str = "grub"        # how it turns a kernel's entry into an address (bootforge.multiboot.entry.RULES)
    release_env: str | None = None  # the environment variable naming its binary release, when Debian has none
    image_parts: Callable | None = None     # ImageRequest -> ImageParts: its ISO, disk and ESP hooks
    after_write: Callable | None = None     # (ImageRequest, image path) -> summary lines: a step on the written file
    set_default: Callable | None = None     # (config text, [ConfigEntry], index) -> the text booting that entry
    recipe_keys: tuple = ()                 # [image] / [[image.entries]] keys only this loader takes
    asks_for_video: Callable | None = None  # a kernel's first bytes -> whether its image needs video drivers

    @property
    def config_path(self):
        return self.config_paths[0] if self.config_paths else None

    def policy_for(self, firmware, protocol, where="the image"):
        """The loader policy that predicts this loader booting *protocol* under *firmware*."""
        name = self.policies.get((firmware, protocol))
        if name is None:
            known = ", ".join(f"{b.name}/{f}/{p}" for b in BOOTLOADERS.values() if b.image_formats
                              for f, p in b.policies)
            raise RecipeError(f"{where}: bootforge has no {self.name} policy for {protocol} under "
                              f"{firmware.upper()} (known: {known})")
        return name

    def need(self, path, package=None):
        """*path*, or ToolError naming the Debian package that installs it."""
        if not Path(path).exists():
            pkg = package or self.packages.get(path) or self.packages.get(str(Path(path).parent), "?")
            raise ToolError(f"{path} is not there: install the Debian package {pkg}")
        return path


BOOTLOADERS = {}
for _module in BOOTLOADER_MODULES:
    _b = importlib.import_module(f"bootforge.bootloaders.{_module}").BOOTLOADER
    BOOTLOADERS[_b.name] = _b

# Every bootloader's files and their Debian packages (bootforge.qemu.host adds QEMU's and the tools').
PACKAGES = {path: pkg for b in BOOTLOADERS.values() for path, pkg in b.packages.items()}
IMAGE_LOADERS = tuple(sorted(name for name, b in BOOTLOADERS.items() if b.image_formats))


def bootloader(name):
    """The Bootloader called *name*; RecipeError naming the known ones."""
    try:
        return BOOTLOADERS[name]
    except KeyError:
        raise RecipeError(f"unknown bootloader {name!r} (known: {', '.join(BOOTLOADERS)})") from None


def bootloader_of_medium(kind):
    """The Bootloader that verify's boot medium *kind* boots (None: no such medium)."""
    return next((b for b in BOOTLOADERS.values() if kind in b.media), None)


def entry_rule(policy_medium):
    """The entry rule of the bootloader that boots medium *policy_medium* (a policy's
    boot_medium); GRUB's for a policy no bootloader here boots."""
    b = bootloader_of_medium(policy_medium)
    return b.entry_rule if b is not None else "grub"


def read_refusal(kind):
    """run -> the words of the loader on medium *kind* once its console shows a refusal (None: no reader)."""
    b = bootloader_of_medium(kind)
    return b.read_refusal if b is not None else None
