"""`bootforge load` for images: the LoadRequest of one entry of an image file or of an [image] recipe.

An image is read as it is: the loader is the one whose configuration is
in it (grub.cfg, isolinux.cfg, limine.conf), the entry's kernel and
modules are the files in the image, the policy is the loader's for the
firmware asked (--firmware, default the first the image boots with).
"""

import hashlib
import tomllib
from dataclasses import replace
from pathlib import Path

from bootforge.errors import BootforgeError, FormatError, LimitError, RecipeError
from bootforge.fileio import read_input
from bootforge.formats import eltorito as et
from bootforge.formats import gpt as gfmt
from bootforge.image.read import MAX_KERNEL, fs_file, open_image, pick_entry, read_fs_file
from bootforge.image.recipe import DEFAULT_PLATFORM, policy_for, read_image_table
from bootforge.image.sniff import is_disk_image
from bootforge.loader import grub_heap
from bootforge.loader.image import KernelImage, read_kernel
from bootforge.loader.policies import POLICIES
from bootforge.loader.policies.linux_efi_stub import is_uki_bytes
from bootforge.bootloaders import BOOTLOADERS
from bootforge.loader.platforms import resolve
from bootforge.machines import FIRMWARES, MACHINES, platform_syntax
from bootforge.loader.ovmf_media import EfiMedium
from bootforge.loader.result import LoadRequest, ModuleSpec
from bootforge.pe import read_pe_facts

FIRMWARE_NAMES = {"bios": "bios", "uefi": "uefi", "efi": "uefi"}
REMOVABLE_EFI = "/EFI/BOOT/BOOTX64.EFI"    # UEFI 2.x 3.5.1.1: x64's removable-media boot file


def image_firmwares(view):
    """The firmware an image boots with: El Torito entries, else an ESP / BIOS boot code."""
    out = []
    if view.catalog:
        plats = {e["platform_id"] for e in view.catalog["entries"]}
        if et.PLATFORM_X86 in plats:
            out.append("bios")
        if et.PLATFORM_EFI in plats:
            out.append("uefi")
    else:
        if view.mbr_code not in (None, "unknown"):
            out.append("bios")
        if view.esp is not None and view.esp.lookup(REMOVABLE_EFI) is not None:
            out.append("uefi")
    return out or ["bios"]


def image_request(path, platform=None, loader=None, entry=None, firmware=None):
    """A LoadRequest when *path* is an image or an [image] recipe; None for a [load] recipe. Of a
    recipe, from its entries alone (no image: a UEFI loader's pages are then the platform
    template's); `load` of a recipe predicts from the image it builds (built_image_request)."""
    p = Path(path)
    head = _head(p)
    if is_disk_image(head):
        return _from_image(p, platform, loader, entry, firmware)
    table = _image_table(p, head)
    if table is not None:
        try:
            return _from_recipe(p, table, platform, loader, entry, firmware)
        except BootforgeError as exc:
            raise exc.located(path=path)
    return None


BUILT_NOTE = ("predicted from the image this recipe builds (built into a private temporary directory, "
              "removed at exit; the recipe's output is not written)")


def built_image_request(path, platform=None, loader=None, entry=None, firmware=None):
    """The LoadRequest of `load IMAGE` of the image the [image] recipe *path* builds, when *path* is
    an [image] recipe; None otherwise (a bootable image or a [load] recipe: image_request)."""
    built = built_image(path, platform, loader, entry, firmware)
    return built[0] if built is not None else None


def built_image(path, platform=None, loader=None, entry=None, firmware=None):
    """(built_image_request's LoadRequest, the path of the image it reads) for an [image] recipe
    *path*, None otherwise: verify boots that very image.

    A recipe alone does not give what UEFI firmware and the loader see: the image's BOOTX64.EFI
    (the loader's pages under OVMF follow its size and SizeOfImage) and the medium its ESP is
    on (grub_efi._with_grub_image, ovmf_media.EfiMedium). The build is the same bytes whatever
    the directory (image/build.py), so the image built here is the one the recipe's output would
    be; files are copied in by copy_file_range and holes stay holes (image/content.py), so a large
    module costs little. The image lives until the process exits (the request's kernel and
    modules name files in it)."""
    p = Path(path)
    head = _head(p)
    table = None if is_disk_image(head) else _image_table(p, head)
    if table is None:
        return None
    # Function-level imports: tempfile brings random and weakref; only a load of a recipe needs them.
    import atexit
    import shutil
    import tempfile
    # Function-level import: the build and its writers, not on the way to a load of an image.
    from bootforge.image.build import build_image_recipe
    image = None
    try:
        spec = read_image_table(p, table)
        work = Path(tempfile.mkdtemp(prefix="bootforge-load-"))
        atexit.register(shutil.rmtree, work, True)
        image = work / ("image.iso" if spec.format == "iso" else "image.img")
        build_image_recipe(p, table, image)
        # The recipe's own platform and loader (of the [image] table or of the entry the image's
        # configuration picks: the configuration lists the recipe's entries in its order) stand
        # for --platform / --loader when those are not given, as for `load RECIPE` before.
        index = _image_entry_index(image, entry)
        e = spec.entries[index] if index is not None and index < len(spec.entries) else None
        req = _from_image(image, platform or (e.platform if e else None) or spec.platform,
                          loader or (e.loader if e else None), entry, firmware, p.parent)
    except BootforgeError as exc:
        if image is not None and isinstance(exc.message, str):
            # The private image is gone when the line is read: it is the recipe's image.
            exc.message = exc.message.replace(f"{image}: ", "its image: ").replace(str(image), "its image")
            if exc.path is not None and str(exc.path) == str(image):
                exc.path, exc.message = None, f"its image: {exc.message}"
        raise exc.located(path=path)
    return req, image


def _head(p):
    """The first bytes of *p*: enough to tell an image (is_disk_image) from a recipe."""
    try:
        with open(p, "rb") as f:
            return f.read(0x8010)
    except OSError as exc:
        raise RecipeError(exc.strerror or str(exc), path=str(p)) from None


def _image_table(p, head):
    """The parsed recipe when *p* (starting with *head*, no image) is an [image] recipe, else None."""
    try:
        table = tomllib.loads(head.decode("utf-8") if len(head) < 0x8010 else p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return table if "image" in table else None


def _image_entry_index(image, entry):
    """The index of the entry `load IMAGE --entry` picks; None for an image without a configuration
    (a bare UKI as BOOTX64.EFI)."""
    view = open_image(image)
    try:
        if view.loader is None:
            return None
        index, _ = pick_entry(view, entry)
        return index
    finally:
        view.image.close()


def _firmware(firmware, available, where, platform=None):
    named = MACHINES.get(platform.partition(":")[0]) if isinstance(platform, str) else None
    if firmware is None and named is not None and named.firmware in available:
        return named.firmware          # the platform names the machine, and so the firmware
    if firmware is None:
        return available[0]
    fw = FIRMWARE_NAMES.get(firmware)
    if fw not in available:
        raise RecipeError(f"{where} boots with {', '.join(available)}, not {firmware}")
    return fw


def _check_platform(plat, fw, where):
    """A platform of the other firmware is refused naming the machines of the firmware asked."""
    have = plat.firmware
    if have in FIRMWARES and have != fw:
        raise RecipeError(f"{where}: --firmware {fw} boots a {fw.upper()} machine, but the platform {plat.name} is "
                          f"{have.upper()}: give --platform {platform_syntax(fw).replace(', ', ' or ')}")
    return plat


def _from_recipe(path, table, platform, loader, entry, firmware):
    spec = read_image_table(path, table)
    e = None
    if entry is None:
        e = spec.entries[0]
    elif entry.isdigit() and int(entry) < len(spec.entries):
        e = spec.entries[int(entry)]
    else:
        e = next((x for x in spec.entries if x.title == entry), None)
        if e is None:
            raise RecipeError(f"no entry {entry!r} (entries: {', '.join(repr(x.title) for x in spec.entries)})")
    fw = _firmware(firmware, spec.firmware, "the image", platform)
    name = loader or e.loader or policy_for(spec.loader, fw, e.protocol, "the image")
    plat = _check_platform(resolve(platform or e.platform or spec.platform or DEFAULT_PLATFORM[fw], path.parent),
                           fw, "the image")
    kernel = _kernel(name, e.kernel_source, read_input(e.kernel_source))
    mods = [ModuleSpec(m.source, m.loader_path, m.cmdline, m.content.size) for m in e.modules]
    return LoadRequest(kernel, e.loader_path, e.cmdline, mods, plat, name)


def _kernel(policy_name, path, data):
    """The kernel as policy *policy_name* takes it: a Linux policy reads the file itself (as a
    [load] recipe's), the others an ELF or a.out-kludge Multiboot kernel."""
    if policy_name in POLICIES and POLICIES.get(policy_name).protocol == "linux":
        return KernelImage(str(path), data, len(data), None, 64, 0, [(0x1000000, len(data), len(data))])
    return read_kernel(path, data)


def _removable_uki(view, path, platform, loader, firmware, base=None):
    """An ESP with no loader configuration whose removable-media file (EFI/BOOT/BOOTX64.EFI) is a UKI:
    the firmware starts it, with the policy its bootloader declares. None when it is not that."""
    # The bootloader declaring the firmware's removable-media path as its boot file (no configuration).
    removable = next((b for b in BOOTLOADERS.values() if getattr(b, "removable_path", None)), None)
    f = fs_file(view, removable.removable_path) if removable is not None and view.esp is not None else None
    if f is None:
        return None
    data, _ = read_fs_file(view, removable.removable_path, MAX_KERNEL)
    if data[:2] != b"MZ" or not is_uki_bytes(data):
        return None
    fw = _firmware(firmware, ("uefi",), "the image", platform)
    plat = _check_platform(resolve(platform or DEFAULT_PLATFORM[fw], base), fw, "the image")
    name = loader or removable.policy_for(fw, "linux", str(path))
    kernel = _kernel(name, f"{path}:{removable.removable_path}", data)
    return LoadRequest(kernel, removable.removable_path, "", [], plat, name)


ARM64_DEFAULT_PLATFORM = "qemu-virt-aarch64:1G"


def _removable_arm64(view, path, platform, loader, base=None):
    """An ESP with no loader configuration whose AArch64 removable-media file (EFI/BOOT/BOOTAA64.EFI)
    is an EFI-stub arm64 Image (MZ and "ARM\\x64" at 0x38) or a UKI: AAVMF starts it itself, with
    the policy its bootloader declares."""
    removable = next((b for b in BOOTLOADERS.values() if getattr(b, "aarch64_removable_path", None)), None)
    f = fs_file(view, removable.aarch64_removable_path) if removable is not None and view.esp is not None else None
    if f is None:
        return None
    removable_aa64 = removable.aarch64_removable_path
    data, _ = read_fs_file(view, removable_aa64, MAX_KERNEL)
    if data[:2] != b"MZ" or (data[0x38:0x3C] != b"ARM\x64" and not is_uki_bytes(data)):
        return None
    plat = resolve(platform or ARM64_DEFAULT_PLATFORM, base)
    name = loader or removable.aarch64_policy
    kernel = _kernel(name, f"{path}:{removable_aa64}", data)
    return LoadRequest(kernel, removable_aa64, "", [], plat, name, efi_medium=_efi_medium(view))


def _from_image(path, platform, loader, entry, firmware, base=None):
    """*base*: the directory a platform file is relative to (an [image] recipe's; else the current one)."""
    view = open_image(path)
    try:
        if view.loader is None:
            bare = (_removable_uki(view, path, platform, loader, firmware, base)
                    or _removable_arm64(view, path, platform, loader, base))
            if bare is not None:
                return bare
            raise RecipeError(f"{path}: no loader configuration found (grub.cfg, isolinux.cfg, limine.conf)")
        _, e = pick_entry(view, entry)
        if e.protocol is None:
            raise RecipeError(f"{path}: entry {e.title!r}: {e.note or 'no multiboot/multiboot2 line: not a Multiboot entry'}")
        if not e.kernel:        # e.g. limine.conf's `path:` with no value (the load-image fuzz harness's input)
            raise RecipeError(f"entry {e.title!r} in {view.config_path} names no kernel file", path=path)
        fw = _firmware(firmware, image_firmwares(view), "the image", platform)
        name = loader or policy_for(view.loader, fw, e.protocol, str(path))
        plat = _check_platform(resolve(platform or DEFAULT_PLATFORM[fw], base), fw, "the image")
        data, _ = read_fs_file(view, e.kernel, MAX_KERNEL)
        kernel = _kernel(name, f"{path}:{e.kernel}", data)
        mods = []
        for mpath, args in e.modules:
            f = fs_file(view, mpath)
            if f is None:
                raise RecipeError(f"{path}: module {mpath} (named in {view.config_path}) is not in the image")
            mods.append(ModuleSpec(f"{path}:{mpath}", mpath, args, f.size, _compressed_module(view, f)))
        return LoadRequest(kernel, e.kernel, e.cmdline, mods, plat, name, boot_device=_boot_device(view),
                           efi_application=_efi_application(view) if fw == "uefi" else None,
                           efi_medium=_efi_medium(view) if fw == "uefi" else None,
                           grub_heap=_grub_heap(view) if name.startswith("grub-pc-mb") else None)
    finally:
        view.image.close()


COMPRESSED_MODULE_MAGICS = (b"\x1f\x8b", b"\xfd7zXZ\x00")     # gzip (RFC 1952), xz (.xz file format 2.2)


def _compressed_module(view, f):
    """The bytes of a gzip or xz module in the image: GRUB's module/module2 unpack them, and
    grub_pc.grub_module_size reads them from ModuleSpec.data (an image's file has no path of its
    own to open); None for any other file, whose size is what is loaded."""
    if f.size < 6 or f.size > MAX_KERNEL:
        return None
    fs = view.file_system()
    if not fs.read_file(replace(f, size=6), 6).startswith(COMPRESSED_MODULE_MAGICS):
        return None
    return fs.read_file(f, MAX_KERNEL)


def _grub_heap(view):
    """The bytes GRUB i386-pc holds at its heap's top on a bootforge image (the modules of its core:
    grub_heap.image_held): the El Torito core at BIOS_CORE of an ISO, or the core.img in a GPT
    disk's BIOS boot partition (bootloaders/grub.py image_parts puts it at the partition's start).
    None for another medium or a core that is not GRUB's (Limine's stage 2): the policy's own."""
    if view.iso is not None and fs_file(view, BIOS_CORE) is not None:
        (data, _), fmt, where = read_fs_file(view, BIOS_CORE, MAX_KERNEL), "iso", BIOS_CORE
    else:
        bios_boot = next((p for p in (view.gpt or {}).get("partitions", ())
                          if p["type_guid"] == gfmt.GPT_TYPE_BIOS_BOOT), None)
        if bios_boot is None:
            return None
        size = min((bios_boot["last_lba"] + 1 - bios_boot["first_lba"]) * 512, MAX_KERNEL)
        data, fmt = view.image.read(bios_boot["first_lba"] * 512, size), "disk"
        where = f"GPT partition {bios_boot['number']} (BIOS boot)"
    try:
        names = [grub_heap.module_heap(m).name for m in grub_heap.core_img_modules(data, where)]
    except FormatError:
        return None
    return grub_heap.image_held(names, fmt)[1]


BIOS_CORE = "/boot/grub/i386-pc-eltorito.img"     # where bootloaders/grub.py image_parts puts it


def _efi_application(view):
    """(file size, SizeOfImage) of the ESP's EFI/BOOT/BOOTX64.EFI, which UEFI firmware starts
    from removable media; None when the ESP has none or it is no PE image (the loader's own
    medium is predicted then)."""
    try:
        f = view.esp.lookup(REMOVABLE_EFI) if view.esp is not None else None
        if f is None or f.is_dir:
            return None
        data = view.esp.read_file(f, MAX_KERNEL)
        return f.size, read_pe_facts(data).size_of_image
    except (FormatError, LimitError):
        return None


def _efi_medium(view):
    """The medium UEFI firmware starts the image's ESP from (ovmf_media.EfiMedium): an ISO 9660
    image is attached as a CD-ROM (qemu/media.py image_medium) and its El Torito UEFI image is the
    ESP; any other image is a disk whose ESP is a partition, beside its other partitions. None
    without an ESP."""
    if view.esp is None:
        return None
    entry = view.image.read(view.esp_offset + 446, 16)
    self_partition = len(entry) == 16 and entry[4] != 0 and int.from_bytes(entry[12:16], "little") != 0
    if view.iso is not None:
        return EfiMedium("cdrom", view.esp.fat_type, 0, self_partition)
    parts = len(view.gpt["partitions"]) if view.gpt else sum(1 for p in view.mbr.partitions if p.type)
    return EfiMedium("disk", view.esp.fat_type, parts, self_partition)


def _boot_device(view):
    """(BIOS drive, 0-based partition) of the volume holding the entries when the image is a
    disk (the first hard disk, 0x80; GRUB's root is that partition, as grub_get_root_biosnumber
    and the partition map number it); None for an ISO 9660 volume, booted as the CD-ROM."""
    if view.config_fs is None or view.config_fs is view.iso or view.esp_partition is None:
        return None
    return (0x80, view.esp_partition)


def inner_sha256(name):
    """sha256 of a file inside an image, named "IMAGE:/path" (the ModuleSpec paths of image loads)."""
    image, _, inner = str(name).rpartition(":")
    view = open_image(image)
    try:
        f = fs_file(view, inner)
        if f is None:
            raise RecipeError(f"{image}: {inner} is not in the image")
        fs = view.file_system()
        h = hashlib.sha256()
        if hasattr(fs, "offset_of"):           # ISO 9660: one extent, read in chunks
            base, left = fs.offset_of(f), f.size
            while left:
                chunk = view.image.read(base, min(left, 1 << 20))
                if not chunk:
                    raise RecipeError(f"{image}: {inner} runs past the end of the image")
                h.update(chunk)
                base, left = base + len(chunk), left - len(chunk)
        else:
            h.update(fs.read_file(f, 1 << 30))
        return h.hexdigest()
    finally:
        view.image.close()
