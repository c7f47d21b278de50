"""File contents placed in an image: from a file on disk (copied in chunks) or from bytes.

Everything written into an image goes through FileContent.copy_to, so a 2 GiB module is
never held in memory: os.copy_file_range when the kernel offers it, else 1 MiB reads.
"""

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bootforge.errors import RecipeError

CHUNK = 1 << 20
# When SOURCE_DATE_EPOCH is unset every date in an image is this one (FAT cannot store
# earlier dates): the clock never leaks into the bytes.
DEFAULT_EPOCH = 315532800          # 1980-01-01T00:00:00Z


def source_date_epoch():
    """SOURCE_DATE_EPOCH (https://reproducible-builds.org/specs/source-date-epoch/) or the default."""
    text = os.environ.get("SOURCE_DATE_EPOCH")
    if text is None or text == "":
        return DEFAULT_EPOCH
    try:
        value = int(text)
    except ValueError:
        raise RecipeError(f"SOURCE_DATE_EPOCH={text!r} is not an integer") from None
    # FAT dates run from 1980 to 2107: clamp so every file system can hold it.
    return min(max(value, DEFAULT_EPOCH), 4354819199)


def utc(epoch):
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


@dataclass
class FileContent:
    """What a file in the image holds: *path* on this machine (read at write time) or *data*."""
    size: int
    path: str | None = None
    data: bytes | None = None
    _digest: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(cls, data):
        return cls(len(data), data=bytes(data))

    @classmethod
    def from_file(cls, path, what="file"):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise RecipeError(f"{what} {path}: {exc.strerror}") from None
        if not os.path.isfile(path):
            raise RecipeError(f"{what} {path}: not a regular file")
        return cls(st.st_size, path=str(path))

    def digest(self):
        """sha256 of the contents (streamed), for ids derived from content."""
        if self._digest is None:
            h = hashlib.sha256()
            if self.data is not None:
                h.update(self.data)
            else:
                with open(self.path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
            self._digest = h.digest()
        return self._digest

    def head(self, n):
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def copy_to(self, out, offset):
        """Write the contents into the open file *out* at *offset*."""
        if self.data is not None:
            os.pwrite(out.fileno(), self.data, offset)
            return
        with open(self.path, "rb") as f:
            left, src, dst = self.size, 0, offset
            while left > 0:
                try:
                    n = os.copy_file_range(f.fileno(), out.fileno(), min(left, 1 << 30), src, dst)
                except (AttributeError, OSError):
                    n = 0
                if n <= 0:
                    break
                left, src, dst = left - n, src + n, dst + n
            while left > 0:
                chunk = os.pread(f.fileno(), min(CHUNK, left), src)
                if not chunk:
                    raise RecipeError(f"{self.path} shrank while the image was written")
                os.pwrite(out.fileno(), chunk, dst)
                left, src, dst = left - len(chunk), src + len(chunk), dst + len(chunk)
