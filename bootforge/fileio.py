"""Reading inputs and writing outputs atomically.

Every command that takes a file reads it through read_input(), so the same
rules hold everywhere:
- `-` is standard input;
- a pipe, a device (/dev/zero), standard input or /dev/stdin is read once, up
  to STREAM_LIMIT bytes, and the bytes are kept: a second look at the same
  name (format sniffing, then the reader) gets the same bytes instead of an
  empty or shortened stream (issue 15 item 20);
- a regular file larger than MAX_INPUT_SIZE is refused before it is read, and
  what is read is capped at the limit too (a file may grow after stat).
"""

import errno
import os
import stat
import sys
from pathlib import Path

from bootforge.errors import BootforgeError, LimitError
from bootforge.text import human_size

# Inputs larger than this are refused before reading: nothing bootforge
# handles (ROMs, kernels, DTBs, memory maps) comes near it.
MAX_INPUT_SIZE = 1 << 30

# Pipes and devices have no size to check first (st_size is 0 for /dev/zero):
# they are read up to this many bytes and refused past it. 256 MiB holds any
# ROM, kernel, DTB or map and a large initrd.
STREAM_LIMIT = 256 << 20

STDIN_NAME = "-"

# name -> bytes read from a pipe, device or standard input (read once per run).
_streams = {}


def is_stdin(path) -> bool:
    return str(path) == STDIN_NAME


CHUNK = 1 << 20


def _read_chunks(f, limit):
    """Up to limit + 1 bytes from *f*, in chunks: read(n) would reserve n bytes up front."""
    chunks, total = [], 0
    while total <= limit:
        chunk = f.read(min(CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_stream(f, path, limit):
    data = _read_chunks(f, limit)
    if len(data) > limit:
        raise LimitError(f"not a regular file (a pipe or device) and it gave more than {human_size(limit)}; "
                         f"bootforge reads at most {human_size(limit)} from pipes and devices", path=path)
    return data


def read_input(path, limit=MAX_INPUT_SIZE):
    """Return the bytes of *path* (`-`: standard input), refusing directories, missing files
    and absurd sizes. Pipes and devices are read once and capped at STREAM_LIMIT."""
    key = str(path)
    if key in _streams:
        return _streams[key]
    if "\0" in key:  # os.stat would raise ValueError, not OSError
        raise BootforgeError("a file name cannot contain a NUL byte", path=key.replace("\0", "\\0"))
    if is_stdin(path):
        _streams[key] = _read_stream(sys.stdin.buffer, path, min(limit, STREAM_LIMIT))
        return _streams[key]
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise BootforgeError("is a directory", path=path)
        if not stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                _streams[key] = _read_stream(f, path, min(limit, STREAM_LIMIT))
            return _streams[key]
        if st.st_size > limit:
            raise BootforgeError(f"file of {st.st_size} bytes is over the {limit}-byte limit", path=path)
        with open(p, "rb") as f:
            data = f.read(st.st_size)
            if len(data) == st.st_size:  # the file may have grown since stat
                data += _read_chunks(f, limit - len(data))
        if len(data) > limit:
            raise BootforgeError(f"file grew past the {limit}-byte limit while being read", path=path)
        return data
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None


def map_input(path, limit=MAX_INPUT_SIZE):
    """A read-only map of the regular file *path*: its bytes without reading them, for readers
    that only slice and hash (a FIT's external data). Reading a 40 MiB file costs a copy and a
    page fault per page of the new buffer, 28 ms measured, more than its SHA-256 (bench/fit.py).
    Anything else (a pipe, standard input, an empty file) gets read_input()'s bytes, and a file
    over *limit* its error."""
    key = str(path)
    if key in _streams or is_stdin(path) or "\0" in key:
        return read_input(path, limit)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size > limit:
            return read_input(path, limit)          # which reads it or says why not
        # Function-level import: mmap only for the readers that map.
        import mmap
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None


def require_exists(path):
    """Raise read_input's error for a name that cannot be opened (missing, unreadable, a NUL
    in it) before anything sniffs its format: a sniffer finding nothing in a file that is not
    there would blame the format instead."""
    key = str(path)
    if key in _streams or is_stdin(path):
        return
    if "\0" in key:
        raise BootforgeError("a file name cannot contain a NUL byte", path=key.replace("\0", "\\0"))
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode) and not os.access(path, os.R_OK):
            raise PermissionError(13, os.strerror(13))
    except OSError as exc:
        raise BootforgeError(exc.strerror or str(exc), path=path) from None


def read_head(path, size):
    """The first *size* bytes of *path* for format sniffing, or None when it cannot be opened.
    A pipe or standard input is read whole (once) so the reader gets every byte afterwards;
    its errors (over the cap) are raised, not taken for "unknown format"."""
    key = str(path)
    if key in _streams:
        return _streams[key][:size]
    if "\0" in key:
        return None
    try:
        if not is_stdin(path):
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    return f.read(size)
            if stat.S_ISDIR(st.st_mode):
                return None
    except OSError:
        return None
    return read_input(path)[:size]


def _create_beside(directory, name, tries=100):
    """(fd, path) of a new file ".NAME.XXXXXXXXXXXXXXXX.tmp" in *directory*, created exclusively,
    mode 0600, as tempfile.mkstemp makes one: without importing tempfile (with random, shutil
    and weakref, ~6 ms of every writer's run)."""
    for _ in range(tries):
        path = os.path.join(directory, f".{name}.{os.urandom(8).hex()}.tmp")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no unused temporary name in {directory}")


class AtomicOutput:
    """An output file that appears whole or not at all: the bytes go to a temporary file in
    *path*'s directory (opened here, so a directory that cannot be written is an error
    before any work); leaving the `with` block normally flushes, fsyncs, gives the file
    *mode* and os.replace()s it over *path*; an exception (in the block or while
    finishing) removes the temporary file. `with` gives the file object (w+b); `.tmp` is
    the temporary file's name, for a tool that must work on the output by name before it
    is in place. *make_parents*: create *path*'s missing directories first. *durable=False*
    skips the fsync: for large outputs that are rebuilt from their inputs (images), where
    waiting for the disk costs seconds per GiB; the replace stays atomic for readers (as
    grub-mkrescue, xorriso and mkfs do, they leave write-back to the kernel)."""

    def __init__(self, path, mode=0o644, make_parents=False, durable=True):
        self.path = Path(path)
        self.mode = mode
        self.durable = durable
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            if make_parents:
                directory.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = _create_beside(directory, self.path.name)
        except OSError as exc:
            raise BootforgeError(exc.strerror or str(exc), path=path) from None
        self.file = os.fdopen(fd, "w+b")

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            with self.file:
                if exc_type is None:
                    self.file.flush()
                    if self.durable:
                        os.fsync(self.file.fileno())
            if exc_type is None:
                os.chmod(self.tmp, self.mode)
                if self.durable or not _exchange(self.tmp, self.path):
                    os.replace(self.tmp, self.path)
                return False
        except BaseException:
            self._discard()
            raise
        self._discard()
        return False

    def _discard(self):
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def _exchange(tmp, path):
    """Put *tmp* in *path*'s place by renameat2(RENAME_EXCHANGE), then remove the old file (now
    under *tmp*'s name); False (nothing done) unless *path* is a regular file and the call
    works. Why not rename(2): ext4 (auto_da_alloc, the default) starts the write-back of every
    dirty page of a file renamed over another before the rename returns (fs/ext4/namei.c
    ext4_rename -> ext4_alloc_da_blocks), which an exchange does not: 30 ms for a 64 MiB image
    here, seconds for 2 GiB. Readers of *path* still see the old file or the new one, whole."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        # Function-level import: ctypes (~2 ms) only for an image replacing an older one.
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        at_fdcwd, rename_exchange = -100, 2         # <fcntl.h>, <linux/fs.h>
        if renameat2 is None or renameat2(at_fdcwd, os.fsencode(tmp), at_fdcwd, os.fsencode(path),
                                          rename_exchange) != 0:
            return False
    except OSError:
        return False
    try:
        os.unlink(tmp)
    except OSError:
        pass
    return True


def write_atomic(path, data: bytes, mode=0o644):
    """Write *data* to *path* through a temporary file in the same directory and os.replace."""
    with AtomicOutput(path, mode) as f:
        f.write(data)
