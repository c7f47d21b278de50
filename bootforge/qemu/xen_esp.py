"""The xen-esp medium: a GPT disk whose ESP holds Xen's xen.efi as EFI/BOOT/BOOTX64.EFI, the
BOOTX64.cfg the xen-efi-esp policy writes and dom0's files beside them (Xen's EFI loader reads
them from its own directory). OVMF's BdsDxe starts the removable-media path itself.

The disk is fixed (a 64 MiB FAT ESP at 1 MiB, FAT dates 1980-01-01, constant serial, GUIDs and
MBR signature) because OVMF's own allocations before and while Xen runs depend on the medium
(the captures bootforge/data/ovmf-pages/esp-xen-*.json were made on it): a superfloppy FAT on
virtio-blk put dom0's kernel 8 pages higher.
"""

import datetime
import os
from pathlib import Path

from bootforge import machines
from bootforge.formats import gpt as gfmt
from bootforge.formats import mbr as mfmt
from bootforge.image.content import FileContent
from bootforge.image.disk import GptPartition, mbr_bytes, write_gpt
from bootforge.image.fat import FatWriter
from bootforge.loader.policies.xen_efi import ESP_CFG, ESP_DIR, ESP_IMAGE, esp_cfg, esp_name
from bootforge.qemu.runner import Medium

ESP_MIB = 64
ESP_SERIAL = 0x12345678
ESP_DISK_GUID = "11111111-2222-4333-8444-666666666666"
ESP_PART_GUID = "11111111-2222-4333-8444-555555555555"
ESP_MBR_SIGNATURE = 0x1234
SECTOR = 512
FIRST_LBA = 2048


def esp_disk(path, files):
    """Write the disk to *path*: {ESP path: bytes or host file}."""
    dt = datetime.datetime(1980, 1, 1, tzinfo=datetime.timezone.utc)
    esp = FatWriter({k: FileContent.from_bytes(v) if isinstance(v, bytes) else FileContent.from_file(v)
                     for k, v in files.items()}, dt, ESP_SERIAL)
    sectors = ESP_MIB << 20 >> 9
    esp.layout(sectors)         # RecipeError when the files need more
    last = FIRST_LBA + sectors - 1
    total = last + 1 + FIRST_LBA
    with open(path, "wb") as out:
        out.truncate(total * SECTOR)
        esp.write(out, FIRST_LBA * SECTOR)
        os.pwrite(out.fileno(), mbr_bytes(b"", ESP_MBR_SIGNATURE, [(0, mfmt.MBR_TYPE_GPT_PROTECTIVE, 1, total - 1)]), 0)
        write_gpt(out, total, [GptPartition(gfmt.GPT_TYPE_ESP, FIRST_LBA, last, "EFI system partition",
                                            ESP_PART_GUID)], ESP_DISK_GUID)
    return path


def xen_esp(workdir, kernel, modules, *, machine=None, **_):
    """The medium for *kernel* (a media.BootFile: xen.efi, its args Xen's command line) and
    *modules* (dom0's kernel and ramdisk, their args dom0's command line), attached as *machine*
    (a bootforge.machines.Machine; default qemu-q35-ovmf) attaches a disk."""
    machine = machine or machines.machine("qemu-q35-ovmf")
    files = {ESP_IMAGE: kernel.source, ESP_CFG: esp_cfg(kernel.args, [(m.name, m.args) for m in modules]),
             **{ESP_DIR + esp_name(m.name): m.source for m in modules}}
    disk = esp_disk(Path(workdir) / "xen-esp.img", files)
    return Medium(machine.medium_args("disk", str(disk)),
                  f"xen-esp disk {disk} (GPT, ESP: {', '.join(sorted(files))})", files=dict(files))
