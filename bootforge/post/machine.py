"""A machine with devices: `[[load.devices]]` recipe entries and `--device MODEL[=ROMFILE]`,
turned into the PostMachine SeaBIOS's POST model runs (bootforge.post.seabios)."""

from pathlib import Path

from bootforge.errors import RecipeError
from bootforge.loader.platforms import QEMU_PC_MODELS, memory_size
from bootforge.post.seabios import QEMU_PCI_MODELS, STD_VGA, Device, PostMachine
from bootforge.schema import REQUIRED, Field, validate

DEVICE_FIELDS = (
    Field("device", str, REQUIRED, "a QEMU PCI device model", choices=tuple(QEMU_PCI_MODELS)),
    Field("romfile", str, None, "its option ROM, relative to the recipe (default QEMU's efi-<model>.rom; "
          "\"\": none)", text="path"),
    Field("bootindex", int, None, "QEMU's bootindex (lower boots first)", min=0, max=0xFFFF),
)
VGA_CHOICES = ("std", "none")
MAX_DEVICES = 28            # PCI slots 00:03-00:1f on QEMU's pc bus 0


def devices_from_table(entries, base):
    """[Device] from the [[load.devices]] tables (validated against DEVICE_FIELDS)."""
    if len(entries) > MAX_DEVICES:
        raise RecipeError(f"[[load.devices]]: {len(entries)} devices; QEMU's pc bus 0 has {MAX_DEVICES} free slots")
    out = []
    for i, entry in enumerate(entries):
        v = validate(entry, DEVICE_FIELDS, f"load.devices[{i}]")
        rom = v.get("romfile")
        if rom:
            rom = str(Path(base) / rom)
        out.append(Device(QEMU_PCI_MODELS[v["device"]], rom, v.get("bootindex")))
    return out


def device_from_option(spec):
    """A Device from `--device MODEL[=ROMFILE]` (ROMFILE relative to the current directory)."""
    name, sep, rom = spec.partition("=")
    table = {"device": name}
    if sep:
        table["romfile"] = rom
    return devices_from_table([table], Path.cwd())[0]


def post_machine(platform, devices, vga="std"):
    """The PostMachine of a qemu-pc-seabios platform string with *devices*."""
    if not isinstance(platform, str) or ":" not in platform or platform.partition(":")[0] not in QEMU_PC_MODELS:
        raise RecipeError(f"devices are modelled on QEMU's pc machine with SeaBIOS: platform "
                          f"qemu-pc-seabios:<mem>, not {platform!r}")
    if vga not in VGA_CHOICES:
        raise RecipeError(f"vga must be one of {', '.join(VGA_CHOICES)}, not {vga!r}")
    name, _, mem = platform.partition(":")
    ram = memory_size(mem, platform)
    if ram < 16 << 20 or ram % (1 << 20):
        raise RecipeError(f"{platform}: QEMU's pc machine needs at least 16 MiB, in whole MiB")
    return PostMachine(ram, devices, STD_VGA if vga == "std" else None)
