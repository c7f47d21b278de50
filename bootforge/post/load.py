"""`bootforge load` of a machine with devices and no kernel: the recipe's [load] platform,
vga and [[load.devices]] (plus --device options), or the command line alone."""

import tomllib
from dataclasses import replace
from pathlib import Path

from bootforge.errors import BootforgeError, RecipeError
from bootforge.fileio import read_input
from bootforge.loader.policies.ipxe_pcbios import OPTIONS as IPXE_OPTIONS, ipxe_build_of
from bootforge.loader.recipe import LOAD_FIELDS, MAX_RECIPE, SOURCES, is_toml_text
from bootforge.post.machine import device_from_option, devices_from_table, post_machine
from bootforge.post.seabios import run_post
from bootforge.schema import validate


def post_request(recipe, platform, device_specs, vga):
    """The PostMachine to model, or None when this is not a machine without a kernel (then
    `load` goes on as before). *recipe* may be None (devices from the command line only)."""
    cli_devices = [device_from_option(s) for s in device_specs]
    if recipe is None:
        if not cli_devices:
            raise RecipeError("load needs a RECIPE, an image or a KERNEL (or --device with --platform for a "
                              "machine without a kernel)")
        return post_machine(platform, cli_devices, vga or "std")
    path = Path(recipe)
    if not is_toml_text(path):
        return None
    raw = read_input(path)
    if len(raw) > MAX_RECIPE:
        return None
    table = tomllib.loads(raw.decode("utf-8"))
    t = table.get("load")
    if set(table) != {"load"} or not isinstance(t, dict) or any(k in t for k in SOURCES):
        return None
    if "devices" not in t and not cli_devices:
        return None
    try:
        validate(t, LOAD_FIELDS, "load")
        devices = devices_from_table(t.get("devices", []), path.parent) + cli_devices
        plat = platform or t.get("platform")
        if plat is None:
            raise RecipeError("[load] platform is required")
        return post_machine(plat, devices, vga or t.get("vga") or "std")
    except BootforgeError as exc:
        raise exc.located(path=path)


def recipe_options(recipe):
    """A devices recipe's [load.options] (validated against ipxe-pcbios-mb1's options, the
    policy verify compares the PXE probe with), or {}."""
    path = Path(recipe)
    if not is_toml_text(path):
        return {}
    t = tomllib.loads(read_input(path).decode("utf-8")).get("load", {})
    try:
        return validate(t.get("options", {}), IPXE_OPTIONS, "load.options")
    except BootforgeError as exc:
        raise exc.located(path=path)


def with_devices(recipe, platform, req):
    """A kernel recipe whose [load] also has devices: (the request with the iPXE facts of the
    booting ROM filled in where the recipe gives none, the PostResult), or (req, None).
    ipxe-pcbios-mb1 then takes its relocated size and base memory from the ROM's own prefix
    code and its old start from SeaBIOS's PMM decompression area (bootforge.post.seabios)."""
    if recipe is None or not is_toml_text(Path(recipe)):
        return req, None
    t = tomllib.loads(read_input(Path(recipe)).decode("utf-8")).get("load")
    if not isinstance(t, dict) or "devices" not in t:
        return req, None
    try:
        devices = devices_from_table(t["devices"], Path(recipe).parent)
        machine = post_machine(platform or t.get("platform"), devices, t.get("vga") or "std")
        post = run_post(machine)
    except BootforgeError as exc:
        raise exc.located(path=recipe)
    if req.loader != "ipxe-pcbios-mb1":
        return req, post
    derived = {}
    bev = next((b for b in post.boot_entries if b.kind == "bev"), None)
    rom = next((r for r in post.option_roms if bev is not None and r.device == bev.device
                and r.address is not None and f"{r.segment:04x}" == bev.vector.split(":")[0]), None)
    build = ipxe_build_of(rom.rom.data) if rom is not None and rom.rom is not None else None
    if build is not None:
        fbms_old = post.bda_fbms_kib
        derived["ipxe_textdata_size"] = build.textdata_size
        derived["ipxe_basemem_kib"] = fbms_old - ((fbms_old * 64 - build.data16_paragraphs
                                                   - build.text16_paragraphs) >> 6)
    decompress = next((c.result for c in post.pmm if c.purpose == "decompression area" and c.result), None)
    if decompress is not None:
        derived["ipxe_old_start"] = (decompress + 0xFFF) // 0x1000 * 0x1000    # romprefix.S rounds up
    return replace(req, options={**derived, **req.options}), post
