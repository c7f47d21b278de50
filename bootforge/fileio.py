"""Reading inputs and writing outputs atomically."""

import os
from pathlib import Path

from bootforge.errors import BootforgeError

# Inputs larger than this are refused before reading: nothing bootforge
# handles (ROMs, kernels, DTBs, memory maps) comes near it.
MAX_INPUT_SIZE = 1 << 30


def read_input(path, limit=MAX_INPUT_SIZE):
    """Return the bytes of *path*, refusing directories, missing files and absurd sizes."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise BootforgeError("is a directory", path=path)
        if size > limit:
            raise BootforgeError(f"file of {size} bytes is over the {limit}-byte limit", path=path)
        return p.read_bytes()
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None


def write_atomic(path, data: bytes, mode=0o644):
    """Write *data* to *path* through a temporary file in the same directory and os.replace."""
    import tempfile  # only writers pay for it

    p = Path(path)
    directory = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
