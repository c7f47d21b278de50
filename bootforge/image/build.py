"""`bootforge build` of an [image] recipe: a hybrid ISO or a GPT disk image.

Layouts (what each byte range is, so inspect and the tests can say it back):

iso   sectors 0-15: MBR (boot code of the loader's hybrid MBR; with UEFI a
      protective 0xEE entry + GPT whose ESP partition is the El Torito EFI
      image inside the ISO, else one active 0x17 entry over the whole ISO)
      and the primary GPT; 16: PVD; 17: El Torito boot record; 18:
      terminator; path tables; directories; boot catalog; BIOS boot image;
      ESP FAT image; files. With GPT the backup GPT is in the image's last
      33 512-byte sectors, after the ISO's volume space.
disk  protective MBR (GRUB boot.img with BIOS), GPT, [BIOS boot partition
      holding GRUB's core.img at 1 MiB], ESP (FAT) with EFI/BOOT/BOOTX64.EFI,
      the loader's configuration, the kernels, modules and extra files; backup GPT.

Every date is SOURCE_DATE_EPOCH (or 1980-01-01); volume id, FAT serial,
GPT GUIDs and the MBR signature are derived from the content digest (the recipe's facts, the
configuration, each file's path, size and CRC-32: FileContent.fingerprint says why not SHA-256).
"""

import hashlib
import os
import struct
import threading
from pathlib import Path

from bootforge.bootloaders import BOOTLOADERS, ConfigEntry, ImageRequest
from bootforge.errors import BootforgeError, BuildError, RecipeError
from bootforge.fileio import AtomicOutput, read_input
from bootforge.formats.multiboot import MB2_SEARCH
from bootforge.image.content import FileContent, source_date_epoch, utc
from bootforge.image.recipe import read_image_table, verdict_for

MIB_SECTORS = 2048
GPT_TAIL = 33 * 512


class FatContent:
    """A FAT volume to be written in place (an ESP image inside an ISO)."""

    def __init__(self, writer):
        self.writer = writer
        self.size = writer.size
        self.data = None

    def copy_to(self, out, offset):
        self.writer.write(out, offset)


def check_verdicts(spec):
    """Refuse a kernel the chosen loader refuses, in the verdict's words (the verdict its policy
    declares for the entry's protocol, on each firmware the image boots with), unless the recipe
    says allow_refusal (test images)."""
    # Function-level imports: the verdicts, the decompressors and the writers' modules are imported
    # here, while GRUB's core image is compressed (_beside), not on the way to starting it.
    from bootforge.compress.streams import unpack
    from bootforge.multiboot import headers, verdicts
    for e in spec.entries:
        data = read_input(e.kernel_source)
        if e.protocol == "linux":
            # A bzImage (or UKI) is no Multiboot file: its loader's policy reads the setup header.
            if data[0x202:0x206] != b"HdrS" and data[:2] != b"MZ":
                raise BuildError(f"entry {e.title!r}: {e.kernel_source}: protocol = 'linux', but the kernel has "
                                 "no Linux setup header ('HdrS' at 0x202)")
            continue
        compressed, raw = unpack(data)
        if spec.allow_refusal:
            continue
        for name in dict.fromkeys(verdict_for(spec.loader, e.protocol, fw) for fw in spec.firmware):
            if name is None:
                continue
            v = verdicts.verdicts(data, raw, compressed)[name]
            if not v.ok:
                raise BuildError(f"entry {e.title!r}: {e.kernel_source}: {spec.loader} ({name}) would refuse it: "
                                 f"{v.words or v.reason}")
        # A loader that boots a header-less ELF anyway (mboot.c32) hands the kernel the entry's
        # protocol's magic: a kernel without that protocol's header gets a magic it does not expect.
        find = headers.find_mb1 if e.protocol == "multiboot1" else headers.find_mb2
        if find(raw) is None:
            raise BuildError(f"entry {e.title!r}: {e.kernel_source}: protocol = {e.protocol!r}, but the kernel has "
                             f"no {'Multiboot1' if e.protocol == 'multiboot1' else 'Multiboot2'} header: "
                             f"{spec.loader} would start it with the {e.protocol} magic, which it does not expect")


def config_entries(spec):
    """The recipe's entries as the bootloader's configuration writer takes them."""
    return [ConfigEntry(e.title, e.protocol, e.loader_path, e.cmdline,
                        [(m.loader_path, m.cmdline) for m in e.modules], extra=e.grub_extra) for e in spec.entries]


def _asks_for_video(spec):
    """Whether a Multiboot kernel of a GRUB image asks for a framebuffer (GRUB then gets its video
    drivers: bootloaders/grub.py VIDEO_MODULES)."""
    asks_for_video = BOOTLOADERS[spec.loader].asks_for_video     # the loader's own rule
    if asks_for_video is None:
        return False
    def head(path):         # the headers lie in the first 32 KiB (MB2_SEARCH), of a gzip/xz stream too
        with open(path, "rb") as f:
            return f.read(8 * MB2_SEARCH)
    return any(asks_for_video(head(e.kernel_source)) for e in spec.entries
               if e.protocol in ("multiboot1", "multiboot2"))


def _tree(spec):
    """{image path: FileContent} of kernels, modules and extra files; refuses two sources on one path."""
    files, origin = {}, {}

    def put(path, content, source):
        if path in files and origin[path] != source:
            raise RecipeError(f"two files map to one path in the image: {path} ({origin[path]} and {source})")
        files[path] = content
        origin[path] = source
    for e in spec.entries:
        put(e.loader_path, e.kernel, e.kernel_source)
        for m in e.modules:
            put(m.loader_path, m.content, m.source)
    for path, (content, source) in spec.files.items():
        put(path, content, source)
    lowered = {}
    for path in files:
        other = lowered.setdefault(path.lower(), path)
        if other != path and spec.format == "disk":
            raise RecipeError(f"two files map to one FAT name (FAT ignores case): {other} and {path}")
    return files


def content_digest(spec, files, config):
    h = hashlib.sha256()
    h.update(f"{spec.format}\0{spec.loader}\0{','.join(spec.firmware)}\0{spec.size}\0".encode())
    h.update(config.encode())
    for path in sorted(files):
        h.update(path.encode() + b"\0" + str(files[path].size).encode() + b"\0" + files[path].fingerprint())
    return h.digest()


def build_image_recipe(recipe, table, output, sha256=False):
    """Build the image of *table* (a parsed recipe) into *output*; returns the summary. With
    *sha256*, the summary also gives the SHA-256 of the image (`build --sha256`): not by
    default, since for a large image that hash costs more CPU than writing it (2 GiB: ~1.3 s
    here, against xorriso's whole run of ~0.5-0.9 s user); the ids in the image do not come
    from it, so the bytes are the same either way."""
    spec = read_image_table(recipe, table)
    files = _tree(spec)
    loader = BOOTLOADERS[spec.loader]
    config_name, config_text = loader.config_path, loader.write(config_entries(spec), spec.timeout)
    if config_name in files:
        raise RecipeError(f"{config_name} is the generated {spec.loader} configuration; a file cannot go there")
    if config_name is not None:         # a loader with no configuration (a UKI as BOOTX64.EFI) writes none
        files[config_name] = FileContent.from_bytes(config_text.encode())
    digest = content_digest(spec, files, config_text)
    dt = utc(source_date_epoch())
    volume_id = spec.volume_id or "BOOTFORGE_" + digest[:4].hex().upper()
    # The bootloader's files, boot images and MBR code, before any output exists.
    req = ImageRequest(spec.format, tuple(spec.firmware), frozenset(spec.protocols), digest, spec.limine_dir,
                       video=_asks_for_video(spec), grub_modules=spec.grub_modules,
                       grub_extra=tuple(x for e in spec.entries for x in e.grub_extra))
    parts = _beside(lambda: loader.image_parts(req), lambda: (check_verdicts(spec), _writers()))
    for path, source in parts.files.items():
        files[path] = _content(source)
    for path, source in parts.efi_files.items():
        files[path] = _efi_binary(spec, source)
    try:
        target = AtomicOutput(output, make_parents=True, durable=False)   # an image is rebuilt, not kept safe
    except BootforgeError as exc:       # the recipe's error, naming the output
        raise RecipeError(f"{output}: {exc.message}") from None
    with target as out:
        if spec.format == "iso":
            layout = _build_iso(spec, parts, files, digest, dt, volume_id, out, sha256)
        else:
            layout = _build_disk(spec, parts, files, digest, dt, out)
        out.flush()
        written = layout.pop("sha256", None)       # the writer's hash of the file, when it made one
        after = loader.after_write(req, target.tmp) if loader.after_write else None
        if after is not None:
            written = None                          # the step rewrote the image (limine bios-install)
            layout[f"{spec.loader}_bios_install"] = after
        size = os.fstat(out.fileno()).st_size
        if spec.size is not None and spec.format == "iso" and size > spec.size:
            raise RecipeError(f"the image needs {size} bytes, more than the size {spec.size}")
    if sha256 and written is None:
        with open(output, "rb") as f:
            h = hashlib.sha256()
            while chunk := f.read(1 << 20):
                h.update(chunk)
        written = h.hexdigest()
    return {"format": f"{spec.format} image", "size": size, **({"sha256": written} if sha256 else {}),
            "loader": spec.loader, "firmware": spec.firmware, "configuration_path": config_name, "configuration": config_text,
            "entries": [{"title": e.title, "protocol": e.protocol, "kernel": e.loader_path, "cmdline": e.cmdline,
                         "modules": [{"path": m.loader_path, "cmdline": m.cmdline} for m in e.modules]}
                        for e in spec.entries],
            "source_date_epoch": int(dt.timestamp()), **layout}


def _beside(work, check):
    """*work*() in a thread while *check*() runs here; *work*'s result, or *check*'s error
    first (it was the first to run before), then *work*'s. The bootloader's parts are mostly
    LZMA compression of GRUB's core image (bootloaders/grub_core.py; liblzma releases the
    GIL), the verdict check mostly imports the loader policies (about as long as every other
    import of a build): on a BIOS-only ISO these two are most of the run, and they need not
    wait for each other."""
    out = {}

    def run():
        try:
            out["value"] = work()
        except BaseException as exc:    # noqa: BLE001 -- handed to the caller below
            out["error"] = exc
    thread = threading.Thread(target=run, name="image-parts")
    thread.start()
    try:
        check()
    finally:
        thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _writers():
    # Function-level imports: the image writers' modules, imported while GRUB's core image is
    # compressed (_beside) instead of before; _build_iso and _build_disk then find them imported.
    from bootforge.image import disk, fat, iso  # noqa: F401


def _efi_binary(spec, source):
    """The file content of an EFI binary put on the image (bytes, or a file's path): signed with
    the [image] secureboot_* keys when the recipe gives them (spec.sign)."""
    if spec.sign is None:
        return FileContent.from_bytes(source) if isinstance(source, bytes) else FileContent.from_file(source)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return FileContent.from_bytes(spec.sign(data, None if isinstance(source, bytes) else source))


def _content(source):
    """FileContent of bytes or of a file on this machine."""
    return FileContent.from_bytes(source) if isinstance(source, bytes) else FileContent.from_file(source)


def _build_iso(spec, made, files, digest, dt, volume_id, out, sha256=False):
    # Function-level imports: the writers (_writers says why).
    from bootforge.formats import eltorito as et, gpt as gfmt, mbr as mfmt
    from bootforge.image.disk import GptPartition, content_guid, content_id, mbr_bytes, write_gpt
    from bootforge.image.fat import FatWriter
    # Function-level import: the ISO writer, as above.
    from bootforge.image.iso import BootImage, IsoWriter
    layout = {"volume_id": volume_id, **made.layout}
    boots = []
    for b in made.boot_images:
        if b.esp is not None:           # an ESP image made of the bootloader's EFI binaries
            # The El Torito ESP is a volume outside any partition: mformat's self-partition entry,
            # as in the efi.img grub-mkrescue and Limine's CD carry (fat._self_partition_entry).
            esp = FatWriter({p: _efi_binary(spec, src) for p, src in b.esp.items()}, dt,
                            int.from_bytes(content_id(digest, "esp-serial", 4), "little"), self_partition=True)
            esp.layout()
            content = FatContent(esp)
        elif b.data is not None:
            content = FileContent.from_bytes(b.data)
        else:
            content = FileContent.from_file(b.source)
        platform = et.PLATFORM_X86 if b.firmware == "bios" else et.PLATFORM_EFI
        boots.append(BootImage(platform, content, b.load_sectors, boot_info_table=b.boot_info_table,
                               grub2_boot_info=b.grub2_boot_info, path=b.path) if b.load_sectors is not None
                     else BootImage(platform, content, boot_info_table=b.boot_info_table,
                                    grub2_boot_info=b.grub2_boot_info, path=b.path))
    mbr_code = made.mbr_code
    iso = IsoWriter(files, volume_id, dt)
    for b in boots:
        iso.add_boot(b)
    sectors = iso.layout()
    if made.iso_padding:            # zeros inside the volume after the last file (xorriso -padding)
        sectors = iso.sectors = sectors + -(-made.iso_padding // 2048)
    iso_bytes = sectors * 2048
    gpt = "uefi" in spec.firmware and made.gpt       # Limine: an MBR-only hybrid (see its image_parts)
    total = iso_bytes + (-(-GPT_TAIL // 2048) * 2048 if gpt else 0)
    if spec.size is not None and total > spec.size:       # refused before a byte is written
        raise RecipeError(f"the image needs {total} bytes, more than the size {spec.size}")
    out.truncate(total)
    disk_sectors = total // 512
    signature = int.from_bytes(content_id(digest, "mbr-signature", 4), "little")
    bios = next((b for b in boots if b.platform == et.PLATFORM_X86), None)
    code = bytearray(mbr_code.ljust(440, b"\0"))
    if bios is not None and made.mbr_pointer is not None:
        offset, fmt, add = made.mbr_pointer
        struct.pack_into(fmt, code, offset, bios.lba * 4 + add)
    if gpt:
        efi = next(b for b in boots if b.platform == et.PLATFORM_EFI)
        parts = [GptPartition(gfmt.GPT_TYPE_ESP, efi.lba * 4, efi.lba * 4 + -(-efi.content.size // 512) - 1,
                              "EFI system partition", content_guid(digest, "gpt-esp"))]
        write_gpt(out, disk_sectors, parts, content_guid(digest, "gpt-disk"), first_usable=34,
                  last_usable=disk_sectors - 34)
        table = [(0, mfmt.MBR_TYPE_GPT_PROTECTIVE, 1, min(disk_sectors - 1, 0xFFFFFFFF))]
        layout["gpt"] = {"disk_guid": content_guid(digest, "gpt-disk"),
                         "esp": {"first_lba": parts[0].first_lba, "last_lba": parts[0].last_lba}}
    elif "uefi" in spec.firmware:
        efi = next(b for b in boots if b.platform == et.PLATFORM_EFI)
        table = [(0, mfmt.MBR_TYPE_EFI_SYSTEM, efi.lba * 4, -(-efi.content.size // 512))]
    else:
        table = [(0x80, mfmt.MBR_TYPE_ISOHYBRID, 0, disk_sectors)]
    os.pwrite(out.fileno(), mbr_bytes(bytes(code), signature, table), 0)
    # The ISO last, front to back after the system area and GPT: asked for the summary's sha256,
    # it hashes the whole file as it writes it (without reading the image back).
    layout["sha256"] = iso.write(out, total if sha256 else None)
    layout["mbr_signature"] = f"{signature:08x}"
    layout["el_torito"] = [{"platform": et.PLATFORMS[b.platform], "lba": b.lba, "size": b.content.size}
                           for b in boots]
    return layout


def _build_disk(spec, made, files, digest, dt, out):
    # Function-level imports: the writers (_writers says why).
    from bootforge.formats import gpt as gfmt, mbr as mfmt
    from bootforge.image.disk import GptPartition, content_guid, content_id, mbr_bytes, write_gpt
    from bootforge.image.fat import FatWriter
    layout = dict(made.layout)
    core = made.core
    mbr_code = made.mbr_code
    esp = FatWriter(files, dt, int.from_bytes(content_id(digest, "esp-serial", 4), "little"))
    first = MIB_SECTORS
    parts = []
    if core is not None or made.bios_boot_partition:
        # GRUB's core.img goes here; `limine bios-install` looks for this partition for its
        # stage 2 and refuses a GPT disk without one (limine.c: "no BIOS boot partition").
        core_sectors = -(-len(core) // 512) if core is not None else 1
        bios_sectors = -(-core_sectors // MIB_SECTORS) * MIB_SECTORS
        parts.append(GptPartition(gfmt.GPT_TYPE_BIOS_BOOT, first, first + bios_sectors - 1, "BIOS boot partition",
                                  content_guid(digest, "gpt-bios-boot")))
        core_lba = first
        first += bios_sectors
    if spec.size is not None:
        disk_sectors = spec.size // 512
        esp_last = (disk_sectors - 34) // MIB_SECTORS * MIB_SECTORS - 1
        if esp_last < first:
            raise RecipeError(f"size {spec.size} leaves no room for the ESP")
        esp.layout(esp_last - first + 1)
    else:
        esp.layout()
        esp_sectors = -(-esp.size // 512 // MIB_SECTORS) * MIB_SECTORS
        esp.layout(esp_sectors)
        esp_last = first + esp_sectors - 1
        disk_sectors = esp_last + 1 + MIB_SECTORS
    parts.append(GptPartition(gfmt.GPT_TYPE_ESP, first, esp_last, "EFI system partition",
                              content_guid(digest, "gpt-esp")))
    out.truncate(disk_sectors * 512)
    esp.write(out, first * 512)
    if core is not None:
        core, mbr_code = made.place_core(core, mbr_code, core_lba)   # the bootloader's own patches
        os.pwrite(out.fileno(), core, core_lba * 512)
    signature = int.from_bytes(content_id(digest, "mbr-signature", 4), "little")
    os.pwrite(out.fileno(), mbr_bytes(mbr_code, signature,
                                      [(0, mfmt.MBR_TYPE_GPT_PROTECTIVE, 1, min(disk_sectors - 1, 0xFFFFFFFF))]), 0)
    write_gpt(out, disk_sectors, parts, content_guid(digest, "gpt-disk"))
    layout["mbr_signature"] = f"{signature:08x}"
    layout["gpt"] = {"disk_guid": content_guid(digest, "gpt-disk"),
                     "partitions": [{"name": p.name, "first_lba": p.first_lba, "last_lba": p.last_lba}
                                    for p in parts]}
    layout["esp"] = {"type": f"FAT{esp.geometry.fat_type}", "bytes": esp.size}
    return layout
