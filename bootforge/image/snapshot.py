"""A snapshot copy of an image whose loader boots another entry by default (`verify IMAGE --entry N`).

The image itself is never written: it is copied, and in the copy the loader's configuration
file is rewritten in place (its bootloader's `set_default`: GRUB's `set default=`, Limine's
`default_entry:`, Syslinux's DEFAULT). In place means the same bytes of the image hold the new
text, so no file-system structure changes: the text keeps the file's length, made to fit by
dropping comment lines when it grew, and padded with newlines (blank lines, ignored by every
one of these parsers) when it shrank. The file's bytes are where its file system puts them:
an ISO 9660 extent, or the FAT cluster chain inside the ESP.
"""

import shutil
from pathlib import Path

from bootforge.bootloaders import BOOTLOADERS
from bootforge.errors import RecipeError
from bootforge.image.read import MAX_CONFIG, fs_file, open_image, pick_entry


def fit(text, length, where):
    """*text* as exactly *length* bytes of UTF-8: comment lines dropped (last first) while it
    is too long, then newlines appended; RecipeError when it cannot fit."""
    lines = text.split("\n")
    data = text.encode()
    while len(data) > length:
        comment = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].lstrip().startswith("#")), None)
        if comment is None:
            raise RecipeError(f"{where}: the configuration with the new default is {len(data)} bytes and the "
                              f"file holds {length}: no room to change it in place")
        del lines[comment]
        data = "\n".join(lines).encode()
    return data + b"\n" * (length - len(data))


def _extents(view, f):
    """[(offset in the image, bytes)] holding file *f* of the configuration's file system, in order."""
    fs = view.config_fs
    if hasattr(fs, "offset_of"):                        # ISO 9660: one extent
        return [(fs.offset_of(f), f.size)]
    cluster = fs.spc * fs.bps                          # FAT (the ESP): its cluster chain
    out, left = [], f.size
    for c in fs.chain(f.cluster, -(-f.size // cluster) if f.size else 1):
        n = min(cluster, left)
        out.append((view.esp_offset + fs._cluster_offset(c), n))
        left -= n
    return out


def with_default(image, entry, out):
    """Copy *image* to *out* with the loader's default set to *entry* (index or title).
    (entry index, its title, the configuration's path, the loader's name); a copy is made
    only when the default changes (else *out* is not written and the index is returned with
    None as the path)."""
    view = open_image(image)
    try:
        index, e = pick_entry(view, entry)
        loader = BOOTLOADERS[view.loader]
        if loader.set_default is None:
            raise RecipeError(f"{image}: bootforge cannot set {loader.title}'s default entry")
        f = fs_file(view, view.config_path)
        old = view.config_fs.read_file(f, MAX_CONFIG)
        new_text = loader.set_default(old.decode("utf-8", "replace"), view.entries, index)
        if new_text.encode() == old:
            return index, e.title, None, loader.title
        new = fit(new_text, len(old), f"{image}: {view.config_path}")
        extents = _extents(view, f)
        config_path = view.config_path
    finally:
        view.image.close()
    shutil.copyfile(image, out)
    with open(out, "r+b") as w:
        at = 0
        for offset, n in extents:
            w.seek(offset)
            w.write(new[at:at + n])
            at += n
    check = open_image(out)
    try:
        text = check.config_fs.read_file(fs_file(check, config_path), MAX_CONFIG)
    finally:
        check.image.close()
    if text != new:
        raise RecipeError(f"{out}: the rewritten {config_path} does not read back")
    return index, e.title, Path(out), loader.title
