"""`[fit]` recipes: a FIT image (U-Boot doc/usage/fit/source_file_format.rst) built the
way mkimage builds one from an .its, with the same bytes every time (the timestamp is
the recipe's, 0 unless given; no clock, directory or host name enters the output).

    [fit]
    description = "Debian arm64 on virt"
    default = "conf-1"               # default: the first configuration
    external = false                 # true: data after the DTB, as `mkimage -E` writes it
    [[fit.images]]
    name = "kernel-1"
    path = "Image"                   # relative to the recipe
    type = "kernel"                  # kernel, flat_dt, ramdisk, ... (U-Boot's short names)
    arch = "arm64"
    os = "linux"
    load = 0x40200000
    entry = 0x40200000
    hashes = ["sha256"]              # crc32, md5, sha1, sha256, sha384, sha512
    [[fit.configurations]]
    name = "conf-1"
    kernel = "kernel-1"
    fdt = ["fdt-1"]
    ramdisk = "ramdisk-1"

Layout (as mkimage 2023.01 writes it, so `mkimage -l` and `dumpimage` read it the same):
root: timestamp, description, #address-cells; each image: description, data (or
data-size + data-offset), type, arch, os, compression, load, entry, then hash-N nodes
(value, algo); /configurations: default, then each configuration. External data:
each image's bytes padded to 4, from ALIGN(totalsize, 4) (tools/fit_image.c
fit_extract_data).
"""

from pathlib import Path

from bootforge.errors import RecipeError
from bootforge.fdt.build import build_dtb
from bootforge.fdt.tree import DeviceTree, FdtNode, FdtProperty
from bootforge.fdtboot.fit import fit_hash
from bootforge.fileio import read_input, write_atomic
from bootforge.formats.uimage import FIT_EXTERNAL_ALIGN, FIT_HASH_SIZES, UImageArch, UImageCompression, \
    UImageOs, UImageType
from bootforge.schema import REQUIRED, Field, recipe_file, validate

FIT_FIELDS = (
    Field("description", str, None, "the FIT's description"),
    Field("timestamp", int, 0, "the root timestamp (seconds since the epoch; fixed for the same bytes)",
          min=0, max=0xFFFFFFFF),
    Field("default", str, None, "the default configuration (default: the first)"),
    Field("external", bool, False, "data after the DTB (mkimage -E) instead of inside it"),
    Field("output", str, None, "the output file, relative to the recipe", text="path"),
    Field("images", list, REQUIRED, "[[fit.images]] tables"),
    Field("configurations", list, REQUIRED, "[[fit.configurations]] tables"),
)
IMAGE_FIELDS = (
    Field("name", str, REQUIRED, "the image node's name (kernel-1, fdt-1, ramdisk-1)"),
    Field("path", str, REQUIRED, "the file whose bytes are the image's data", text="path"),
    Field("type", str, REQUIRED, "U-Boot's image type", choices=tuple(UImageType.by_fit_name())),
    Field("arch", str, None, "U-Boot's architecture name", choices=tuple(UImageArch.by_fit_name())),
    Field("os", str, None, "U-Boot's OS name", choices=tuple(UImageOs.by_fit_name())),
    Field("compression", str, "none", "how the data is compressed",
          choices=tuple(UImageCompression.by_fit_name())),
    Field("load", int, None, "load address", min=0, max=(1 << 64) - 1),
    Field("entry", int, None, "entry address", min=0, max=(1 << 64) - 1),
    Field("description", str, None, "the image's description"),
    Field("hashes", list, None, "hash algorithms, one hash-N node each", items=Field(
        "hash", str, choices=tuple(FIT_HASH_SIZES))),
)
CONFIG_FIELDS = (
    Field("name", str, REQUIRED, "the configuration node's name (conf-1)"),
    Field("description", str, None, "the configuration's description"),
    Field("kernel", str, None, "the kernel image's name"),
    Field("fdt", list, None, "device-tree image names", items=Field("fdt", str)),
    Field("ramdisk", str, None, "the ramdisk image's name"),
    Field("loadables", list, None, "loadable image names", items=Field("loadable", str)),
    Field("compatible", str, None, "the board compatible this configuration is for"),
)
IMAGE_STRINGS = ("type", "arch", "os", "compression")
MAX_IMAGES = 1024


def _string(value):
    return value.encode("utf-8") + b"\0"


def _strings(values):
    return b"".join(_string(v) for v in values)


def _cells(value, cells):
    return value.to_bytes(4 * cells, "big")


def build_fit(images, configurations, *, description=None, timestamp=0, default=None, external=False):
    """The FIT bytes. *images*: [(fields, data)] with IMAGE_FIELDS values; *configurations*:
    [fields] with CONFIG_FIELDS values."""
    wide = any((f.get(k) or 0) >> 32 for f, _ in images for k in ("load", "entry"))
    cells = 2 if wide else 1
    root = FdtNode("")
    root.properties.append(FdtProperty("timestamp", timestamp.to_bytes(4, "big")))
    if description is not None:
        root.properties.append(FdtProperty("description", _string(description)))
    root.properties.append(FdtProperty("#address-cells", cells.to_bytes(4, "big")))
    images_node = FdtNode("images")
    root.children.append(images_node)
    external_parts = []
    external_size = 0
    data_props = []
    for fields, data in images:
        node = FdtNode(fields["name"])
        if fields.get("description") is not None:
            node.properties.append(FdtProperty("description", _string(fields["description"])))
        if external:
            size_prop = FdtProperty("data-size", len(data).to_bytes(4, "big"))
            offset_prop = FdtProperty("data-offset", external_size.to_bytes(4, "big"))
            node.properties += [size_prop, offset_prop]
            external_parts.append(data)
            external_size += (len(data) + FIT_EXTERNAL_ALIGN - 1) & ~(FIT_EXTERNAL_ALIGN - 1)
        else:
            prop = FdtProperty("data", data)
            node.properties.append(prop)
            data_props.append(prop)
        for key in IMAGE_STRINGS:
            if fields.get(key) is not None:
                node.properties.append(FdtProperty(key, _string(fields[key])))
        for key in ("load", "entry"):
            if fields.get(key) is not None:
                node.properties.append(FdtProperty(key, _cells(fields[key], cells)))
        for i, algo in enumerate(fields.get("hashes") or (), 1):
            node.children.append(FdtNode(f"hash-{i}", [FdtProperty("value", fit_hash(algo, data)),
                                                       FdtProperty("algo", _string(algo))]))
        images_node.children.append(node)
    confs = FdtNode("configurations")
    default = default or (configurations[0]["name"] if configurations else None)
    if default is not None:
        confs.properties.append(FdtProperty("default", _string(default)))
    for c in configurations:
        node = FdtNode(c["name"])
        if c.get("description") is not None:
            node.properties.append(FdtProperty("description", _string(c["description"])))
        for key in ("kernel", "ramdisk", "compatible"):
            if c.get(key) is not None:
                node.properties.append(FdtProperty(key, _string(c[key])))
        for key in ("fdt", "loadables"):
            if c.get(key):
                node.properties.append(FdtProperty(key, _strings(c[key])))
        confs.children.append(node)
    root.children.append(confs)
    blob = build_dtb(DeviceTree(root=root), fresh_layout=True)
    if not external:
        return blob
    pad = -len(blob) % FIT_EXTERNAL_ALIGN
    out = [blob, bytes(pad)]
    for data in external_parts:
        out += [data, bytes(-len(data) % FIT_EXTERNAL_ALIGN)]
    return b"".join(out)


def build_fit_recipe(recipe_path, recipe, out_path):
    """Build the FIT a [fit] recipe describes, write it to *out_path*, return the summary."""
    recipe_path = Path(recipe_path)
    t = validate(recipe.get("fit"), FIT_FIELDS, "fit")
    base = recipe_path.parent
    if not t["images"] or len(t["images"]) > MAX_IMAGES:
        raise RecipeError(f"[fit] images: give 1 to {MAX_IMAGES} [[fit.images]] tables")
    images, names = [], set()
    for i, table in enumerate(t["images"]):
        where = f"fit.images {i}"
        fields = validate(table, IMAGE_FIELDS, where)
        if fields["name"] in names or "/" in fields["name"] or not fields["name"]:
            raise RecipeError(f"[{where}] name {fields['name']!r} is empty, has a '/' or is used twice")
        names.add(fields["name"])
        images.append((fields, read_input(recipe_file(base, fields["path"], where, "path"))))
    configurations, conf_names = [], set()
    for i, table in enumerate(t["configurations"]):
        where = f"fit.configurations {i}"
        c = validate(table, CONFIG_FIELDS, where)
        for ref in [c.get("kernel"), c.get("ramdisk"), *(c.get("fdt") or ()), *(c.get("loadables") or ())]:
            if ref is not None and ref not in names:
                raise RecipeError(f"[{where}] names image {ref!r}, which [[fit.images]] lacks")
        if c["name"] in conf_names:
            raise RecipeError(f"[{where}] name {c['name']!r} is used twice")
        conf_names.add(c["name"])
        configurations.append(c)
    if t.get("default") is not None and t["default"] not in conf_names:
        raise RecipeError(f"[fit] default {t['default']!r} names no configuration")
    data = build_fit(images, configurations, description=t.get("description"), timestamp=t["timestamp"],
                     default=t.get("default"), external=t["external"])
    write_atomic(out_path, data)
    return {"format": "FIT" + (" (external data)" if t["external"] else ""), "size": len(data),
            "fit_images": [{"name": f["name"], "type": f["type"], "size": len(d)} for f, d in images],
            "configurations": [c["name"] for c in configurations]}
