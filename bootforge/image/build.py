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
GPT GUIDs and the MBR signature are derived from the content digest.
"""

import hashlib
import os
import struct
from pathlib import Path

from bootforge.bootloaders import BOOTLOADERS, ConfigEntry
from bootforge.bootloaders import grub, limine, syslinux
from bootforge.compress.streams import unpack
from bootforge.errors import BootforgeError, BuildError, RecipeError
from bootforge.fileio import AtomicOutput, read_input
from bootforge.formats import eltorito as et
from bootforge.formats import gpt as gfmt
from bootforge.formats import mbr as mfmt
from bootforge.image.content import FileContent, source_date_epoch, utc
from bootforge.image.disk import GptPartition, content_guid, content_id, mbr_bytes, write_gpt
from bootforge.image.fat import FatWriter
from bootforge.image.iso import BootImage, IsoWriter
from bootforge.image.recipe import read_image_table, verdict_for
from bootforge.multiboot import headers, verdicts

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
    for e in spec.entries:
        data = read_input(e.kernel_source)
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
                        [(m.loader_path, m.cmdline) for m in e.modules]) for e in spec.entries]


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
        h.update(path.encode() + b"\0" + str(files[path].size).encode() + b"\0" + files[path].digest())
    return h.digest()


def build_image_recipe(recipe, table, output):
    """Build the image of *table* (a parsed recipe) into *output*; returns the summary."""
    spec = read_image_table(recipe, table)
    check_verdicts(spec)
    files = _tree(spec)
    loader = BOOTLOADERS[spec.loader]
    config_name, config_text = loader.config_path, loader.write(config_entries(spec), spec.timeout)
    if config_name in files:
        raise RecipeError(f"{config_name} is the generated {spec.loader} configuration; a file cannot go there")
    files[config_name] = FileContent.from_bytes(config_text.encode())
    digest = content_digest(spec, files, config_text)
    dt = utc(source_date_epoch())
    volume_id = spec.volume_id or "BOOTFORGE_" + digest[:4].hex().upper()
    try:
        target = AtomicOutput(output, make_parents=True, durable=False)   # an image is rebuilt, not kept safe
    except BootforgeError as exc:       # the recipe's error, naming the output
        raise RecipeError(f"{output}: {exc.message}") from None
    with target as out:
        if spec.format == "iso":
            layout = _build_iso(spec, files, digest, dt, volume_id, out)
        else:
            layout = _build_disk(spec, files, digest, dt, out)
        out.flush()
        written = layout.pop("sha256", None)       # the writer's hash of the file, when it made one
        if spec.loader == "limine" and "bios" in spec.firmware:
            written = None                          # bios-install rewrites the image
            layout["limine_bios_install"] = limine.bios_install(
                limine.tool(spec.limine_dir), target.tmp).strip().splitlines()[-1:]
        size = os.fstat(out.fileno()).st_size
        if spec.size is not None and spec.format == "iso" and size > spec.size:
            raise RecipeError(f"the image needs {size} bytes, more than the size {spec.size}")
    if written is None:
        with open(output, "rb") as f:
            h = hashlib.sha256()
            while chunk := f.read(1 << 20):
                h.update(chunk)
        written = h.hexdigest()
    return {"format": f"{spec.format} image", "size": size, "sha256": written, "loader": spec.loader,
            "firmware": spec.firmware, "configuration_path": config_name, "configuration": config_text,
            "entries": [{"title": e.title, "protocol": e.protocol, "kernel": e.loader_path, "cmdline": e.cmdline,
                         "modules": [{"path": m.loader_path, "cmdline": m.cmdline} for m in e.modules]}
                        for e in spec.entries],
            "source_date_epoch": int(dt.timestamp()), **layout}


def _efi_binary(spec, source):
    """The file content of an EFI binary put on the image (bytes, or a file's path): signed with
    the [image] secureboot_* keys when the recipe gives them (spec.sign)."""
    if spec.sign is None:
        return FileContent.from_bytes(source) if isinstance(source, bytes) else FileContent.from_file(source)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return FileContent.from_bytes(spec.sign(data, None if isinstance(source, bytes) else source))


def _grub_early_config(digest, files, layout):
    """The early config GRUB images get: adds the image's id-tag file to *files* (the early
    config searches for it to find the image's own volume) and records the config in *layout*."""
    tag = f"/boot/grub/bootforge-{digest[:8].hex()}.id"
    files[tag] = FileContent.from_bytes(digest.hex().encode() + b"\n")
    early = grub.early_cfg(tag)
    layout["grub_early_config"] = early
    return early


def _build_iso(spec, files, digest, dt, volume_id, out):
    layout = {"volume_id": volume_id}
    boots = []
    mbr_code = b""
    if spec.loader == "grub":
        early = _grub_early_config(digest, files, layout)
        if "bios" in spec.firmware:
            core = grub.mkimage("i386-pc-eltorito", grub.PC_DIR,
                                grub.modules(spec.protocols, "i386-pc", "iso9660"), early)
            boots.append(BootImage(et.PLATFORM_X86, FileContent.from_bytes(core), 4, boot_info_table=True,
                                   grub2_boot_info=True, path="/boot/grub/i386-pc-eltorito.img"))
            mbr_code = Path(grub.BOOTLOADER.need(f"{grub.PC_DIR}/boot_hybrid.img")).read_bytes()[:432]
            layout["grub_modules_bios"] = grub.modules(spec.protocols, "i386-pc", "iso9660")
        if "uefi" in spec.firmware:
            efi = grub.mkimage("x86_64-efi", grub.EFI_DIR,
                               grub.modules(spec.protocols, "x86_64-efi", "iso9660"), early)
            esp = FatWriter({"/EFI/BOOT/BOOTX64.EFI": _efi_binary(spec, efi)}, dt,
                            int.from_bytes(content_id(digest, "esp-serial", 4), "little"))
            esp.layout()
            boots.append(BootImage(et.PLATFORM_EFI, FatContent(esp), path="/boot/grub/efi.img"))
            layout["grub_modules_uefi"] = grub.modules(spec.protocols, "x86_64-efi", "iso9660")
    elif spec.loader == "syslinux":
        for name, path in syslinux.files().items():
            files[f"/isolinux/{name}"] = FileContent.from_file(path)
        boots.append(BootImage(et.PLATFORM_X86, FileContent.from_bytes(Path(syslinux.ISOLINUX_BIN).read_bytes()), 4,
                               boot_info_table=True, path="/isolinux/isolinux.bin"))
        mbr_code = Path(syslinux.ISOHDPFX_BIN).read_bytes()[:432]
    else:
        lim = limine.files(spec.limine_dir)
        files["/boot/limine/limine-bios.sys"] = FileContent.from_file(lim["limine-bios.sys"])
        files["/EFI/BOOT/BOOTX64.EFI"] = _efi_binary(spec, lim["BOOTX64.EFI"])
        if "bios" in spec.firmware:
            boots.append(BootImage(et.PLATFORM_X86, FileContent.from_bytes(Path(lim["limine-bios-cd.bin"]).read_bytes()),
                                   4, boot_info_table=True, path="/boot/limine/limine-bios-cd.bin"))
        if "uefi" in spec.firmware:
            boots.append(BootImage(et.PLATFORM_EFI, FileContent.from_file(lim["limine-uefi-cd.bin"]),
                                   path="/boot/limine/limine-uefi-cd.bin"))
    iso = IsoWriter(files, volume_id, dt)
    for b in boots:
        iso.add_boot(b)
    sectors = iso.layout()
    iso_bytes = sectors * 2048
    # Limine's `limine bios-install` turns an ISO's GPT into an MBR with a random disk id
    # (limine.c: "Converting to MBR for improved compatibility", srand(time(NULL))): give Limine
    # that MBR (the ESP as a 0xEF partition) from the start, with an id derived from the content.
    gpt = "uefi" in spec.firmware and spec.loader != "limine"
    total = iso_bytes + (-(-GPT_TAIL // 2048) * 2048 if gpt else 0)
    if spec.size is not None and total > spec.size:       # refused before a byte is written
        raise RecipeError(f"the image needs {total} bytes, more than the size {spec.size}")
    out.truncate(total)
    disk_sectors = total // 512
    signature = int.from_bytes(content_id(digest, "mbr-signature", 4), "little")
    bios = next((b for b in boots if b.platform == et.PLATFORM_X86), None)
    code = bytearray(mbr_code.ljust(440, b"\0"))
    if bios is not None and spec.loader == "grub":
        struct.pack_into("<Q", code, mfmt.GRUB_HYBRID_CORE_SECTOR, bios.lba * 4 + 4)
    elif bios is not None and spec.loader == "syslinux":
        struct.pack_into("<I", code, mfmt.ISOHYBRID_BOOT_SECTOR, bios.lba * 4)
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
    # The ISO last, front to back after the system area and GPT: it hashes the whole file as
    # it writes it (the summary's sha256, without reading the image back).
    layout["sha256"] = iso.write(out, total)
    layout["mbr_signature"] = f"{signature:08x}"
    layout["el_torito"] = [{"platform": et.PLATFORMS[b.platform], "lba": b.lba, "size": b.content.size}
                           for b in boots]
    return layout


def _build_disk(spec, files, digest, dt, out):
    layout = {}
    core = None
    mbr_code = b""
    if spec.loader == "grub":
        early = _grub_early_config(digest, files, layout)
        if "uefi" in spec.firmware:
            files["/EFI/BOOT/BOOTX64.EFI"] = _efi_binary(spec, grub.mkimage(
                "x86_64-efi", grub.EFI_DIR, grub.modules(spec.protocols, "x86_64-efi", "fat"), early))
            layout["grub_modules_uefi"] = grub.modules(spec.protocols, "x86_64-efi", "fat")
        if "bios" in spec.firmware:
            core = bytearray(grub.mkimage("i386-pc", grub.PC_DIR,
                                                  grub.modules(spec.protocols, "i386-pc", "fat"), early))
            mbr_code = Path(grub.BOOTLOADER.need(f"{grub.PC_DIR}/boot.img")).read_bytes()[:440]
            layout["grub_modules_bios"] = grub.modules(spec.protocols, "i386-pc", "fat")
    elif spec.loader == "limine":
        lim = limine.files(spec.limine_dir)
        files["/boot/limine/limine-bios.sys"] = FileContent.from_file(lim["limine-bios.sys"])
        files["/EFI/BOOT/BOOTX64.EFI"] = _efi_binary(spec, lim["BOOTX64.EFI"])
    else:
        raise RecipeError("syslinux disk images are not supported")
    esp = FatWriter(files, dt, int.from_bytes(content_id(digest, "esp-serial", 4), "little"))
    first = MIB_SECTORS
    parts = []
    if core is not None or (spec.loader == "limine" and "bios" in spec.firmware):
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
        # diskboot.img's blocklist (the last 12 bytes of core.img's first sector): the rest of
        # core.img, read to segment 0x820 (what grub-bios-setup writes; include/grub/offsets.h).
        core[mfmt.GRUB_DISKBOOT_BLOCKLIST:mfmt.GRUB_DISKBOOT_BLOCKLIST + 12] = mfmt.GrubBlocklist.build(
            dict(start=core_lba + 1, length=core_sectors - 1, segment=mfmt.GRUB_CORE_SEGMENT))
        os.pwrite(out.fileno(), bytes(core), core_lba * 512)
        code = bytearray(mbr_code)
        struct.pack_into("<Q", code, mfmt.GRUB_BOOT_KERNEL_SECTOR, core_lba)
        code[mfmt.GRUB_BOOT_DRIVE_CHECK:mfmt.GRUB_BOOT_DRIVE_CHECK + 2] = b"\x90\x90"
        mbr_code = bytes(code)
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
