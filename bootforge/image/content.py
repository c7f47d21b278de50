"""File contents placed in an image: from a file on disk (copied in chunks) or from bytes.

Everything written into an image goes through FileContent.copy_to, so a 2 GiB module is
never held in memory: os.copy_file_range when the kernel offers it, else 1 MiB reads. A
writer that writes front to back (the ISO writer) hands an OutputHash to copy_to instead:
the file's bytes then pass through two 4 MiB buffers once, hashed for the image's sha256
while the next chunk is read and written, so the image is never read back.
"""

import hashlib
import os
import threading
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
                self._stream_hash(h)
            self._digest = h.digest()
        return self._digest

    def _stream_hash(self, h):
        buf = bytearray(COPY_CHUNK)
        view = memoryview(buf)
        with open(self.path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])

    def head(self, n):
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def copy_to(self, out, offset, hasher=None):
        """Write the contents into the open file *out* at *offset*; with an OutputHash, also
        hash them as the bytes at *offset* of the output."""
        if self.data is not None:
            _pwrite_all(out.fileno(), self.data, offset)
            if hasher is not None:
                hasher.feed(offset, self.data)
            return
        if hasher is not None:
            self._copy_hashed(out.fileno(), offset, hasher)
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

    def _copy_hashed(self, fd, offset, hasher):
        # Two buffers: one is hashed (by the hasher's thread) while the other is filled and
        # written. The buffer refilled here was fed two chunks ago: feed() of the other one
        # waited for its hash, so it is free.
        buffers = [bytearray(COPY_CHUNK), bytearray(COPY_CHUNK)]
        left, dst, k = self.size, offset, 0
        with open(self.path, "rb", buffering=0) as f:
            while left > 0:
                view = memoryview(buffers[k])[:min(COPY_CHUNK, left)]
                n = f.readinto(view)
                if not n:
                    raise RecipeError(f"{self.path} shrank while the image was written")
                _pwrite_all(fd, view[:n], dst)
                hasher.feed(dst, view[:n])
                left, dst, k = left - n, dst + n, k ^ 1


COPY_CHUNK = 4 << 20


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class OutputHash:
    """sha256 of an output file written front to back, without reading it back: each write
    is handed over (feed) and hashed by one worker thread (hashlib releases the GIL), which
    overlaps the next read and write; bytes between two writes (holes, what another writer
    put there) are read back from the file (read_back). At most one buffer is in flight:
    feed() waits for the previous one, so a caller alternating two buffers may refill the one
    it fed before last."""

    def __init__(self, fd):
        self.fd = fd
        self.pos = 0
        self.sha = hashlib.sha256()
        self._work = None
        self._ready = threading.Semaphore(0)
        self._done = threading.Semaphore(1)
        self._thread = threading.Thread(target=self._worker, daemon=True)
        self._thread.start()

    def _worker(self):
        while True:
            self._ready.acquire()
            view = self._work
            if view is None:
                return
            self.sha.update(view)
            self._done.release()

    def wait(self):
        self._done.acquire()
        self._done.release()

    def feed(self, offset, data):
        if offset < self.pos:
            raise ValueError(f"output hash: write at {offset} before the hashed end {self.pos}")
        self.read_back(offset)
        view = memoryview(data)
        self._done.acquire()            # the previous buffer is hashed
        if len(view) < 1 << 16:
            self.sha.update(view)
            self._done.release()
        else:
            self._work = view
            self._ready.release()
        self.pos = offset + len(view)

    def read_back(self, end):
        """Hash the file's bytes from the hashed end to *end* as they are in the file now."""
        self.wait()
        while self.pos < end:
            chunk = os.pread(self.fd, min(COPY_CHUNK, end - self.pos), self.pos)
            if not chunk:
                raise ValueError(f"output hash: file ends at {self.pos}, before {end}")
            self.sha.update(chunk)
            self.pos += len(chunk)

    def hexdigest(self, end):
        self.read_back(end)
        self._done.acquire()
        self._work = None               # ends the worker
        self._ready.release()
        self._thread.join()
        return self.sha.hexdigest()
