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
    # Function-level import: cryptography and asn1crypto load only when a file is signed.
    from bootforge.errors import BootforgeError
    from bootforge.pe.sign import load_signer, sign_image_parts

    if output and in_place:
        raise BootforgeError("give -o OUT or --in-place, not both", path=file)
    target = file if in_place else (output or f"{file}.signed")
    key, cert = load_signer(key_path, cert_path, key_passphrase_file)
    source, source_fd = _mapped(file)
    data = source if source is not None else read_input(file)
    parts, facts = sign_image_parts(data, key, cert, path=file)
    # Not fsynced: the output is rebuilt from its inputs (AtomicOutput durable=False); the
    # replace stays atomic, as sbsign's write is (it does not fsync either).
    with AtomicOutput(target, durable=False) as f:
        head, middle, *rest = parts
        f.write(head)
        if source is not None:
            # The unchanged bulk of the image (the kernel and initrd of a UKI) is copied by the
            # kernel from the input file: writing 60 MiB from Python took 5x sbsign's whole run.
            f.flush()
            _copy_range(source_fd, f.fileno(), len(head), len(middle))
            f.seek(len(head) + len(middle))
        else:
            f.write(middle)
        for part in rest:
            f.write(part)
    what = "added a signature to an already signed image" if facts["appended"] else "signed"
    click.echo(f"{target}: {what}; Authenticode SHA-256 {facts['authenticode_sha256']}")


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
    import os
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src, dst, count - done, offset + done)
            if not n:
                break
            done += n
    except OSError:
        pass
    if done < count:                 # no copy_file_range here (or a short copy): plain reads and writes
        os.lseek(src, offset + done, os.SEEK_SET)
        while done < count:
            chunk = os.read(src, min(count - done, 1 << 24))
            os.write(dst, chunk)
            done += len(chunk)
