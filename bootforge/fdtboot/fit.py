"""FIT images (U-Boot doc/usage/fit/source_file_format.rst, boot/image-fit.c): a DTB
whose root holds /images (each image node: data, or data-offset/data-size after the
DTB as `mkimage -E` writes them, or data-position from the file's start; type, arch,
os, compression, load, entry; hash-N and signature-N subnodes) and /configurations
(default; each configuration names kernel, fdt, ramdisk, loadables).

read_fit() returns the model with every hash recomputed over the image's data, the
way fit_image_verify() does (boot/image-fit.c fit_image_check_hash: the hash of the
data as stored, before decompression). Signatures are listed; checking one needs the
public key from U-Boot's own control DTB, so they are reported, not verified.
"""

import hashlib
import zlib
from dataclasses import dataclass, field

from bootforge.errors import FormatError
from bootforge.fdt.parse import parse_dtb
from bootforge.formats.uimage import FIT_EXTERNAL_ALIGN, FIT_HASH_SIZES


def fit_hash(algo, data):
    """The digest U-Boot's hash_calculate() gives for *algo*; None for an algorithm it lacks."""
    if algo == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algo in ("md5", "sha1", "sha256", "sha384", "sha512"):
        return hashlib.new(algo, data).digest()
    return None


def looks_like_fit(data):
    """A DTB with an "images" node right under the root (cheap: the token and name bytes)."""
    return data[:4] == b"\xd0\x0d\xfe\xed" and b"\x00\x00\x00\x01images\x00" in data[:0x10000]


@dataclass
class FitImage:
    name: str
    props: dict                     # string properties (description, type, arch, os, compression)
    load: int | None
    entry: int | None
    data_offset: int | None         # file offset of external data (None: embedded in the DTB)
    data_size: int
    storage: str                    # "embedded", "external" (data-offset) or "position" (data-position)
    data: bytes = b""               # the image's bytes (a memoryview of the file for external data)
    hashes: list = field(default_factory=list)       # [{name, algo, value, computed, ok}]
    signatures: list = field(default_factory=list)   # [{name, algo, key_name_hint}]


@dataclass
class FitConfiguration:
    name: str
    description: str | None
    kernel: str | None
    fdt: list
    ramdisk: str | None
    loadables: list
    compatible: str | None
    signatures: list = field(default_factory=list)
    hashes: list = field(default_factory=list)


@dataclass
class Fit:
    tree: object
    description: str | None
    timestamp: int | None
    images: list
    configurations: list
    default: str | None
    external_base: int              # where data-offset counts from
    problems: list = field(default_factory=list)

    def image(self, name):
        return next((i for i in self.images if i.name == name), None)

    def configuration(self, name=None):
        name = self.default if name is None else name
        return next((c for c in self.configurations if c.name == name), None)


def _string(node, name):
    return node.string(name)


def _strings(node, name):
    value = node.prop(name)
    if not value:
        return []
    return [s.decode("latin-1") for s in value.rstrip(b"\0").split(b"\0")]


def _address(node, name, path, where):
    value = node.prop(name)
    if value is None:
        return None
    if len(value) not in (4, 8):
        raise FormatError(f"{where}: {name} is {len(value)} bytes (want 1 or 2 cells)", path=path)
    return int.from_bytes(value, "big")


def _u32(node, name, path, where):
    value = node.prop(name)
    if value is None:
        return None
    if len(value) != 4:
        raise FormatError(f"{where}: {name} is {len(value)} bytes (want one cell)", path=path)
    return int.from_bytes(value, "big")


def read_fit(data, path=None):
    """The FIT in *data*; FormatError when it is no FIT or its data lies outside the file."""
    tree = parse_dtb(data, path)
    images_node = tree.node("/images")
    if images_node is None:
        raise FormatError("DTB has no /images node: not a FIT", path=path, offset=0)
    total = tree.layout.totalsize if tree.layout else len(data)
    external_base = (total + FIT_EXTERNAL_ALIGN - 1) & ~(FIT_EXTERNAL_ALIGN - 1)
    problems = []
    images = []
    hash_nodes = []             # (image, hash node, its data, where): hashed after the walk, side by side
    view = memoryview(data)      # external data is hashed in place, never copied
    for node in images_node.children:
        where = f"/images/{node.name}"
        inline = node.prop("data")
        offset = _u32(node, "data-offset", path, where)
        position = _u32(node, "data-position", path, where)
        size = _u32(node, "data-size", path, where)
        if inline is not None:
            start, size, storage = None, len(inline), "embedded"
        elif offset is not None or position is not None:
            if size is None:
                raise FormatError(f"{where}: data-offset/data-position without data-size", path=path)
            start = position if position is not None else external_base + offset
            storage = "position" if position is not None else "external"
            if start + size > len(data):
                raise FormatError(f"{where}: external data [{start:#x}, {start + size:#x}) runs past the "
                                  f"{len(data):#x}-byte file", path=path, offset=start)
        else:
            problems.append(f"{where}: no data, data-offset or data-position")
            start, size, storage = None, 0, "none"
        content = inline if inline is not None else view[start:start + size] if start is not None else b""
        img = FitImage(node.name, {k: _string(node, k) for k in
                                   ("description", "type", "arch", "os", "compression")
                                   if node.prop(k) is not None},
                       _address(node, "load", path, where), _address(node, "entry", path, where),
                       start, size, storage, content)
        for sub in node.children:
            if sub.name.startswith("hash"):
                hash_nodes.append((img, sub, content, f"{where}/{sub.name}"))
            elif sub.name.startswith("signature"):
                img.signatures.append(_signature(sub))
        images.append(img)
    digests = _digests([(_string(sub, "algo") or "", content) for _, sub, content, _ in hash_nodes])
    for (img, sub, _, where), computed in zip(hash_nodes, digests):
        img.hashes.append(_check_hash(sub, computed, where, problems))
    configurations = []
    default = None
    conf_node = tree.node("/configurations")
    if conf_node is None:
        problems.append("no /configurations node (bootm needs one to pick the images)")
    else:
        default = _string(conf_node, "default")
        for node in conf_node.children:
            conf = FitConfiguration(node.name, _string(node, "description"), _string(node, "kernel"),
                                    _strings(node, "fdt"), _string(node, "ramdisk"), _strings(node, "loadables"),
                                    _string(node, "compatible"))
            for sub in node.children:
                if sub.name.startswith("signature"):
                    conf.signatures.append(_signature(sub))
            for ref in [conf.kernel, conf.ramdisk, *conf.fdt, *conf.loadables]:
                if ref is not None and not any(i.name == ref for i in images):
                    problems.append(f"/configurations/{node.name} names image {ref!r}, which /images lacks")
            configurations.append(conf)
        if default is not None and not any(c.name == default for c in configurations):
            problems.append(f"/configurations default {default!r} names no configuration")
    root = tree.root
    return Fit(tree, _string(root, "description"), _u32(root, "timestamp", path, "/"), images, configurations,
               default, external_base, problems)


# Images at least this large are hashed each in a thread of its own: hashlib and zlib.crc32
# release the GIL over large buffers, so a 32 MiB kernel and an 8 MiB initrd hash on two cores
# at once (bench/fit.py's 40 MiB FIT: 23 ms of SHA-256 in a row, 19 ms side by side).
PARALLEL_HASH_MIN = 1 << 20


def _digests(jobs):
    """fit_hash(algo, data) of each (algo, data) in *jobs*, in their order."""
    out = [None] * len(jobs)

    def run(i, algo, data):
        out[i] = fit_hash(algo, data)

    threads = []
    for i, (algo, data) in enumerate(jobs):
        if len(data) >= PARALLEL_HASH_MIN and len(jobs) > 1:
            # Function-level import: threads only when a large image is among several hashes.
            import threading
            threads.append(threading.Thread(target=run, args=(i, algo, data)))
            threads[-1].start()
        else:
            run(i, algo, data)
    for thread in threads:
        thread.join()
    return out


def _check_hash(node, computed, where, problems):
    """The hash node's report, given the digest *computed* over its image's data (None: an
    algorithm U-Boot lacks)."""
    algo = _string(node, "algo") or ""
    value = node.prop("value") or b""
    ok = computed is not None and computed == value
    if computed is None:
        problems.append(f"{where}: hash algorithm {algo!r} is not one U-Boot computes")
    elif not value:
        problems.append(f"{where}: no value (mkimage fills it in)")
    elif len(value) != FIT_HASH_SIZES.get(algo, len(value)) or not ok:
        problems.append(f"{where}: {algo} value {value.hex()} does not match the data "
                        f"({computed.hex()})")
    return {"name": node.name, "algo": algo, "value": value.hex(),
            "computed": computed.hex() if computed is not None else None, "ok": ok}


def _signature(node):
    return {"name": node.name, "algo": _string(node, "algo"), "key_name_hint": _string(node, "key-name-hint"),
            "sign_images": _strings(node, "sign-images"), "signed": node.prop("value") is not None,
            "value_size": len(node.prop("value") or b"")}
