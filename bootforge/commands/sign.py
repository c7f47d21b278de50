"""`bootforge sign`: an Authenticode signature for any PE image (a UKI, GRUB's, Limine's or
systemd-boot's EFI binary, an EFI driver), appended to its certificate table
(bootforge/pe/sign.py says what is written and what is refused).

An image that is already signed gets one more signature after the ones it has, as sbsign
does. Exit status: 0 written, 2 bad input (nothing written)."""

import click

from bootforge.fileio import AtomicOutput, read_input


@click.command("sign")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="RSA private key, PEM or DER (encrypted: give --key-passphrase-file).")
@click.option("--cert", "cert_path", required=True, type=click.Path(dir_okay=False),
              help="X.509 certificate of the key, PEM or DER; put in the signature.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Signed image to write (default FILE.signed, as sbsign).")
@click.option("--in-place", is_flag=True, help="Replace FILE with the signed image.")
@click.option("--key-passphrase-file", type=click.Path(dir_okay=False),
              help="File whose first line is the passphrase of an encrypted key.")
def sign_command(file, key_path, cert_path, output, in_place, key_passphrase_file):
    """Sign the PE image FILE for UEFI Secure Boot (Authenticode, SHA-256, PKCS#7)."""
    from bootforge.errors import BootforgeError

    if output and in_place:
        raise BootforgeError("give -o OUT or --in-place, not both", path=file)
    target = file if in_place else (output or f"{file}.signed")
    source, source_fd = _mapped(file)
    if source is None:
        return _report(target, _sign(file, target, key_path, cert_path, key_passphrase_file, None, None, None,
                                     None))
    # A regular file: while this process imports the signing modules and parses the headers, a
    # forked child sums the file's words for the CheckSum (int.from_bytes holds the GIL: 0.06 s
    # for 68 MiB) and a thread has the kernel copy the whole file to the output (the unchanged
    # bulk: the kernel and initrd of a UKI; writing 60 MiB from Python took 5x sbsign's whole
    # run); the signed headers and the table are written over it afterwards.
    summer = _WholeSum(source)
    hasher = _EarlyHash(source)
    try:
        # Not fsynced: the output is rebuilt from its inputs (AtomicOutput durable=False); the
        # replace stays atomic, as sbsign's write is (it does not fsync either). Bad input
        # raises inside the block: the temporary file is removed, nothing is written.
        with AtomicOutput(target, durable=False) as f:
            copying = _Copy(source_fd, f.fileno(), len(source))
            try:
                facts = _sign(file, target, key_path, cert_path, key_passphrase_file, source, f,
                              lambda offset, count: copying.wait(), summer.result, hasher.result)
            finally:
                copying.wait(reraise=False)
                hasher.result()
    finally:
        summer.close()
    _report(target, facts)


def _sign(file, target, key_path, cert_path, key_passphrase_file, data, out, copy_bulk, whole_sum,
          early_hash=None):
    """Sign *data* (the input's mapping, whose bytes copy_bulk() puts in *out*), or with no
    *out* the bytes read from *file* (a pipe, stdin)."""
    # Function-level import: the signing modules load only when a file is signed.
    from bootforge.pe.sign import load_signer, sign_image_parts

    key, cert = load_signer(key_path, cert_path, key_passphrase_file)
    if out is None:
        data = read_input(file)
        with AtomicOutput(target, durable=False) as f:
            parts, facts = sign_image_parts(data, key, cert, path=file)
            for part in parts:
                f.write(part)
    else:
        parts, facts = sign_image_parts(data, key, cert, path=file, copy_bulk=copy_bulk, whole_sum=whole_sum,
                                        early_hash=early_hash)
        head, middle, *rest = parts
        out.write(head)                     # the copy is complete: sign_image_parts waited for it
        out.seek(len(head) + len(middle))
        for part in rest:
            out.write(part)
        out.truncate()
    return facts


def _report(target, facts):
    """Said once the output is in place."""
    what = "added a signature to an already signed image" if facts["appended"] else "signed"
    click.echo(f"{target}: {what}; Authenticode SHA-256 {facts['authenticode_sha256']}")


class _EarlyHash:
    """A thread hashing (SHA-256) the mapped input from its first byte to its end, less the
    CheckSum and the certificate table's directory entry, found where the PE format puts them
    (e_lfanew at 0x3C; the optional header 24 bytes after it; CheckSum at +64; the data
    directories at +96 for PE32 (magic 0x10b), +112 for PE32+ (0x20b); the table's entry is the
    fifth): the Authenticode hash of an unsigned image without gaps, started before the signing
    modules are imported. A guess: pe/sign.py uses it only when the layout it reads from the
    declared headers hashes exactly these ranges. result(): (ranges, hashlib object) or None."""

    def __init__(self, mapped):
        import hashlib
        import struct
        import threading
        self.thread = self.ranges = None
        try:
            opt = struct.unpack_from("<I", mapped, 0x3C)[0] + 24
            dirs = opt + {0x10B: 96, 0x20B: 112}[struct.unpack_from("<H", mapped, opt)[0]]
        except (struct.error, KeyError):
            return
        checksum, security = opt + 64, dirs + 4 * 8
        if mapped[:2] != b"MZ" or not (checksum + 4 <= security and security + 8 <= len(mapped)):
            return
        self.ranges = [(0, checksum), (checksum + 4, security), (security + 8, len(mapped))]
        self.hash = hashlib.sha256()
        view = memoryview(mapped)

        def run():
            for start, end in self.ranges:
                self.hash.update(view[start:end])

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self):
        if self.thread is None:
            return None
        self.thread.join()
        return self.ranges, self.hash


class _Copy:
    """A thread copying the first *count* bytes of file *src* to file *dst* (same offsets)."""

    def __init__(self, src, dst, count):
        import threading
        self.error = None

        def run():
            try:
                _copy_range(src, dst, 0, count)
            except Exception as exc:          # handed to wait(), in the command's thread
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, reraise=True):
        self.thread.join()
        if self.error is not None and reraise:
            from bootforge.errors import BootforgeError
            raise BootforgeError(f"copying the image to the output: {self.error}")


class _WholeSum:
    """The file *mapped* read as one little-endian integer, mod 0xFFFF (the PE CheckSum's
    16-bit word sum: 2**16 == 1 mod 0xFFFF), computed by a forked child while this process
    goes on; result() is None when there is no fork or the child gave nothing (the caller then
    sums itself). The pieces start at even offsets, so their integers add up to the whole's
    remainder (as pe/sign.py _word_sum)."""

    PIECE = 1 << 18

    def __init__(self, mapped):
        import os
        self.pid = None
        if not hasattr(os, "fork"):
            return
        self.read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                       # the child: sum, write two bytes, leave at once
            try:
                view, total = memoryview(mapped), 0
                for i in range(0, len(view), self.PIECE):
                    total += int.from_bytes(view[i:i + self.PIECE], "little")
                os.write(write_end, (total % 0xFFFF).to_bytes(2, "little"))
            finally:
                os._exit(0)
        os.close(write_end)

    def result(self):
        import os
        if self.pid is None:
            return None
        answer = os.read(self.read_end, 2)
        self.close()
        return int.from_bytes(answer, "little") if len(answer) == 2 else None

    def close(self):
        import os
        import signal
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        os.close(self.read_end)
        try:
            os.kill(pid, signal.SIGKILL)        # done already, or not needed (bad input)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def _mapped(path):
    """(read-only mmap, fd) of the regular file *path*, or (None, None) for a pipe, stdin, an
    empty or unreadable file (read_input then reads it, or reports the error)."""
    import mmap
    import os
    import stat

    from bootforge.fileio import is_stdin
    if is_stdin(path):
        return None, None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size:
            return mmap.mmap(fd, 0, prot=mmap.PROT_READ), fd
    except (OSError, ValueError):
        pass
    os.close(fd)
    return None, None


def _copy_range(src, dst, offset, count):
    """Copy bytes [offset, offset + count) of file *src* to the same offsets of file *dst*
    (file positions untouched: this runs in a thread while the other writes go through *dst*'s
    file object)."""
    import os
    done = 0
    copy_file_range = getattr(os, "copy_file_range", None)        # Linux only
    try:
        while copy_file_range is not None and done < count:
            n = copy_file_range(src, dst, count - done, offset + done, offset + done)
            if not n:
                break
            done += n
    except OSError:
        pass
    while done < count:              # no copy_file_range here (or a short copy): plain reads and writes
        chunk = os.pread(src, min(count - done, 1 << 24), offset + done)
        if not chunk:
            raise OSError(f"input file shrank while being copied ({offset + done:#x})")
        done += os.pwrite(dst, chunk, offset + done)
