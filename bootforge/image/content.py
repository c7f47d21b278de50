"""File contents placed in an image: from a file on disk (copied in chunks) or from bytes.

Everything written into an image goes through FileContent.copy_to, so a 2 GiB module is
never held in memory: os.copy_file_range when the kernel offers it, else 1 MiB reads, of the
file's data extents only (its holes stay holes in the image). When the summary's sha256 is
asked for (`build --sha256`), a writer that writes front to back (the ISO writer) hands an
OutputHash to copy_to too: the file is then copied window by window (copy_file_range: no copy
through this process) while the same window, mapped read-only, is hashed by the hasher's
thread, so the image is never read back.

The ids an image derives from its content (volume id, GPT GUIDs, MBR signature, FAT serial,
GRUB's search file) come from each file's fingerprint: its size and CRC-32, read from the
mapped file (zlib's CRC runs at ~2.4x SHA-256's speed here: the one pass over a 2 GiB module
before the image is laid out, its two halves at once: _file_crc). The ids need to be
reproducible and to change with the content, not to resist a forger; the image's own sha256
in the summary (when asked) is a SHA-256.
"""

import errno
import hashlib
import mmap
import os
import threading
import zlib
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

    def fingerprint(self):
        """Size (8 bytes, little-endian) and CRC-32 (4 bytes) of the contents, for the ids an
        image derives from its content (the module's docstring says why not a SHA-256)."""
        if self._digest is None:
            if self.data is not None:
                crc = zlib.crc32(self.data)
            else:
                crc = _file_crc(self.path, self.size)
            self._digest = self.size.to_bytes(8, "little") + crc.to_bytes(4, "little")
        return self._digest

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
            if os.fstat(f.fileno()).st_size < self.size:
                raise RecipeError(f"{self.path} shrank while the image was written")
            # The file's data extents only: its holes stay holes in the output, whose bytes there
            # are zeros already (never written: the image file was sized with ftruncate).
            for start, end in _extents(f.fileno(), self.size):
                _copy_range(f.fileno(), out.fileno(), start, offset + start, end - start, self.path)

    def _copy_hashed(self, fd, offset, hasher):
        # Window by window: the kernel copies it (copy_file_range) while the hasher's thread
        # hashes the previous window from its read-only mapping; feed() waits for that hash,
        # so at most two windows are mapped at once (what peak RSS counts of the file) and a
        # window is unmapped only once hashed.
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < self.size:
                raise RecipeError(f"{self.path} shrank while the image was written")
            src, previous = 0, None
            extents = list(_extents(f.fileno(), self.size))     # holes stay holes (copy_to)
            try:
                while src < self.size:
                    n = min(WINDOW, self.size - src)
                    window = mmap.mmap(f.fileno(), n, access=mmap.ACCESS_READ, offset=src)
                    for start, end in extents:
                        start, end = max(start, src), min(end, src + n)
                        if start < end:
                            _copy_range(f.fileno(), fd, start, offset + start, end - start, self.path)
                    hasher.feed(offset + src, window)       # returns once *previous* is hashed
                    if previous is not None:
                        previous.close()
                    previous, src = window, src + n
            finally:
                hasher.wait()
                if previous is not None:
                    previous.close()


# A file this large is CRC'd in two halves at once (zlib.crc32 releases the GIL), the halves'
# CRCs combined into the whole file's: on a 2 GiB module the one pass before the layout is
# ~0.55 s of CPU here (3.7 GB/s), and two cores halve its wall time.
SPLIT_CRC = 256 << 20


def _file_crc(path, size):
    """zlib.crc32 of the first *size* bytes of the file *path*."""
    with open(path, "rb") as f:
        if size < SPLIT_CRC:
            return _range_crc(f.fileno(), 0, size, path)
        half = size // 2 // WINDOW * WINDOW         # mmap offsets: a multiple of the granularity
        out = {}

        def second():
            try:
                out["crc"] = _range_crc(f.fileno(), half, size - half, path)
            except BaseException as exc:    # noqa: BLE001 -- raised by the caller below
                out["error"] = exc
        thread = threading.Thread(target=second, name="crc-half")
        thread.start()
        try:
            first = _range_crc(f.fileno(), 0, half, path)
        finally:
            thread.join()
    if "error" in out:
        raise out["error"]
    return crc32_combine(first, out["crc"], size - half)


def _range_crc(fd, start, size, path):
    # The whole range is asked for at once (POSIX_FADV_WILLNEED): from a cold page cache the
    # kernel then reads ahead in large requests while the CRC follows, where the mapping's own
    # fault-driven read-ahead is small (observed, a cold 2 GiB module: 1.5-2.2 s, 2.4-3.3 s
    # without); a no-op for pages already cached.
    if size > WINDOW and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, start, size, os.POSIX_FADV_WILLNEED)
    crc = 0
    for window in _windows(fd, size, path, start):
        crc = zlib.crc32(window, crc)
    return crc


# CRC-32 (zlib's, reflected: bit 31 is x^0) as polynomials over GF(2) modulo its generator.
# crc32(A + B) = crc32(A) * x^(8 len(B)) mod P xor crc32(B): the CRC register is linear in the
# message, the pre- and post-inversion cancelling between the two (the identity behind zlib's
# crc32_combine, derived here from the definition).
CRC32_POLY = 0xEDB88320
_X0 = 1 << 31                       # the polynomial 1


def _mulmod(a, b):
    """a(x) * b(x) mod P, both reflected."""
    product = 0
    bit = _X0
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ CRC32_POLY if b & 1 else b >> 1
    return product


def crc32_combine(crc_a, crc_b, len_b):
    """zlib.crc32 of A + B from zlib.crc32(A), zlib.crc32(B) and len(B)."""
    power, square, n = _X0, _X0 >> 8, len_b        # x^0, x^8 (one byte), bytes to shift by
    while n:
        if n & 1:
            power = _mulmod(power, square)
        square = _mulmod(square, square)
        n >>= 1
    return _mulmod(power, crc_a) ^ crc_b


COPY_CHUNK = 4 << 20
WINDOW = 16 << 20           # mapped at a time (a multiple of mmap.ALLOCATIONGRANULARITY)


def _windows(fd, size, path, start=0):
    """Read-only memoryviews of the file *fd* from *start* (a multiple of WINDOW), *size* bytes,
    WINDOW bytes at a time."""
    if os.fstat(fd).st_size < start + size:
        raise RecipeError(f"{path} shrank while the image was written")
    at = 0
    while at < size:
        n = min(WINDOW, size - at)
        with mmap.mmap(fd, n, access=mmap.ACCESS_READ, offset=start + at) as m:
            view = memoryview(m)
            try:
                yield view
            finally:
                view.release()
        at += n


def _extents(fd, size):
    """(start, end) of each data extent of the first *size* bytes of *fd* (SEEK_DATA/SEEK_HOLE,
    as cp --sparse=auto reads them); the whole range where the file system cannot say."""
    at = 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:            # only a hole from *at* to the end
                return
            yield at, size
            return
        if start >= size:
            return
        try:
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        except OSError:
            end = size
        yield start, end
        at = end


def _copy_range(src_fd, dst_fd, src, dst, count, path):
    """*count* bytes of *src_fd* at *src* to *dst_fd* at *dst*: copy_file_range, else pread/pwrite."""
    while count > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, count, src, dst)
        except (AttributeError, OSError):
            n = 0
        if n <= 0:
            chunk = os.pread(src_fd, min(CHUNK, count), src)
            if not chunk:
                raise RecipeError(f"{path} shrank while the image was written")
            _pwrite_all(dst_fd, chunk, dst)
            n = len(chunk)
        count, src, dst = count - n, src + n, dst + n


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
            self._work = None
            self.sha.update(view)
            view.release()              # the caller may unmap the buffer once feed() moves on
            del view
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
