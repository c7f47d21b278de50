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
    # Function-level import: the signing modules load only when a file is signed.
    from bootforge.errors import BootforgeError
    from bootforge.pe.sign import prepare_image, word_sum_started

    if output and in_place:
        raise BootforgeError("give -o OUT or --in-place, not both", path=file)
    target = file if in_place else (output or f"{file}.signed")
    source, source_fd = _mapped(file)
    data = source if source is not None else read_input(file)
    # The CheckSum's word sum (a child process) starts before the headers are read, so the PE
    # modules' import and the checks run beside it; then the image is checked and its hash
    # started (a thread), so the key loading and cryptography's and asn1crypto's imports
    # overlap the 60 MiB hash and copy.
    prepared = prepare_image(data, path=file, word_sum=word_sum_started(data))
    parts, facts = _write_signed(prepared, source_fd, target, key_path, cert_path, key_passphrase_file)
    what = "added a signature to an already signed image" if facts["appended"] else "signed"
    click.echo(f"{target}: {what}; Authenticode SHA-256 {facts['authenticode_sha256']}")
    _no_collection_at_exit()


def _no_collection_at_exit():
    """The interpreter's last garbage collection at exit walks every object the signing imports
    made (asn1crypto's and cryptography's classes): ~10-15 ms of a 0.25 s CPU run, measured
    (`python -c` of the same imports: 101 ms CPU, 87 ms with gc.freeze at exit, 86 ms with
    os._exit). The output is closed and in place by now, so nothing waits on that collection;
    frozen at exit, not now, so an in-process caller's garbage is collected as before."""
    import atexit
    import gc
    atexit.unregister(gc.freeze)       # once, however often the command runs in one process
    atexit.register(gc.freeze)


def _write_signed(prepared, source_fd, target, key_path, cert_path, key_passphrase_file):
    """Loads the key, signs *prepared* and writes the signed image to *target*: (parts, facts)."""
    # Function-level import: as in sign_command.
    import os
    import threading

    from bootforge.errors import BootforgeError
    from bootforge.pe.sign import load_signer

    head, middle, _pad = prepared.body
    # Not fsynced: the output is rebuilt from its inputs (AtomicOutput durable=False); the
    # replace stays atomic, as sbsign's write is (it does not fsync either).
    with AtomicOutput(target, durable=False) as f:
        out = f.fileno()
        copied = []
        # The unchanged bulk of the image (the kernel and initrd of a UKI) is copied by the
        # kernel from the input file (copy_file_range; writing 60 MiB from Python took 5x
        # sbsign's whole run), in a thread beside the hash (neither holds the GIL).
        copier = threading.Thread(target=_copy_into, args=(source_fd, middle, out, len(head), copied),
                                  name="sign-copy", daemon=True)
        copier.start()
        try:
            key, cert = load_signer(key_path, cert_path, key_passphrase_file)
            parts, facts = prepared.finish(key, cert)
        except BaseException:
            prepared.cancel()           # a refused key: the CheckSum's child is not waited for
            raise
        finally:
            copier.join()
        if copied:
            exc = copied[0]
            raise BootforgeError(f"cannot write the signed image: {getattr(exc, 'strerror', None) or exc}",
                                 path=target)
        head, middle, *rest = parts
        os.pwrite(out, head, 0)
        os.pwrite(out, b"".join(rest), len(head) + len(middle))
    return parts, facts


def _copy_into(source_fd, middle, out, offset, errors):
    """Writes *middle* (the bytes at *offset* of the input, in the file *source_fd* when that is
    not None) at *offset* of *out*; an exception goes to *errors* for the command's thread."""
    import os
    try:
        if source_fd is not None:
            _copy_range(source_fd, out, offset, len(middle))
        else:
            done = 0
            while done < len(middle):
                done += os.pwrite(out, middle[done:done + (1 << 24)], offset + done)
    except BaseException as exc:      # re-raised by the command
        errors.append(exc)


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
    """*count* bytes at *offset* of file *src* to the same offset of *dst* (explicit offsets:
    the command writes the head and the table with pwrite meanwhile)."""
    import os
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src, dst, count - done, offset + done, offset + done)
            if not n:
                break
            done += n
    except OSError:
        pass
    while done < count:              # no copy_file_range here (or a short copy): plain reads and writes
        chunk = os.pread(src, min(count - done, 1 << 24), offset + done)
        if not chunk:
            raise OSError(f"input shorter than its {offset + count:#x} bytes")
        os.pwrite(dst, chunk, offset + done)
        done += len(chunk)
