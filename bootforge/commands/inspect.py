import os
import sys

import click

from bootforge.errors import BootforgeError
from bootforge.fileio import read_input


class InspectCommand(click.Command):
    """`inspect --help` lists the names --format and --check accept, read from the registries
    only when help is asked for."""

    def format_epilog(self, ctx, formatter):
        from bootforge.inspect import format_names
        from bootforge.multiboot.verdicts import KERNEL_LOADERS
        with formatter.section("--format names"):
            formatter.write_text(", ".join(format_names()))
        with formatter.section("--check loaders (kernel loader verdicts)"):
            formatter.write_dl([(name, f"{v.protocol}: {v.source}") for name, v in KERNEL_LOADERS.items()])


@click.command("inspect", cls=InspectCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON document: an object for one file, a list for several.")
@click.option("--format", "format_name", metavar="NAME",
              help="Read the files as this format instead of detecting it (needed for formats without magic).")
@click.option("--check", "check_loader", metavar="LOADER",
              help="Only answer whether LOADER (a kernel loader verdict such as grub-mb2, listed below) "
                   "loads each kernel: exit 0 yes, 1 no, nothing printed unless --verbose or --json.")
@click.option("-v", "--verbose", is_flag=True, help="With --check: print each file's verdict line.")
@click.option("--db", "db", multiple=True, type=click.Path(dir_okay=False),
              help="PE images: judge Secure Boot with this certificate in db (repeatable).")
@click.option("--dbx", "dbx", multiple=True, metavar="HASH|CERT",
              help="PE images: a SHA-256 image hash (64 hex digits) or certificate in dbx (repeatable).")
@click.option("--secureboot-vars", "vars_file", type=click.Path(dir_okay=False),
              help="PE images: judge Secure Boot with the PK/db/dbx of this OVMF VARS file (Debian: "
                   "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd, OVMF_VARS_4M.ms.fd).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Inspect the files in N worker processes (default: the number of cores, when there "
                   "are 16 files or more per core); output order and JSON are those of one process.")
@click.option("-O", "--output-format", "output_format", type=click.Choice(["dts"]),
              help="dts: print only the DTS of each DTB, as dtc -I dtb -O dts does (also --format dts).")
@click.option("--pcrs", is_flag=True, help="UKIs: predict PCR 11 (systemd-stub 252) and PCR 4 (OVMF), every bank; with "
              "--secureboot-vars also PCR 7 (OVMF's Secure Boot policy: that store and the db entry "
              "that allows the UKI).")
def inspect_command(files, as_json, format_name, check_loader, verbose, db, dbx, vars_file, jobs,
                    output_format, pcrs):
    """Decode every header of FILES, check every checksum, and say what real loaders will do.

    Exit status: 0 all fine, 1 defects found (for a kernel: also when no modelled loader of
    its header's protocol loads it), 2 unusable input. With --check LOADER: 0 when LOADER
    loads every file, 1 when it refuses one, 2 unusable input.
    """
    if output_format == "dts" or format_name == "dts":
        from bootforge.commands.fdt import print_dts
        sys.exit(print_dts(files))
    if check_loader is not None:
        from bootforge.multiboot.verdicts import KERNEL_LOADERS
        if check_loader not in KERNEL_LOADERS.names():
            raise click.BadParameter(f"{check_loader!r} is not one of {', '.join(KERNEL_LOADERS.names())}",
                                     param_hint="--check")
    if pcrs:
        from bootforge.uki.measure import WANTED
        WANTED.set(True)
    if db or dbx or vars_file:
        from bootforge.secureboot import ACTIVE
        from bootforge.secureboot.policy import policy_from_files, policy_from_varstore
        # A bad VARS/db/dbx file is a BootforgeError: the CLI says it in one line (and, with
        # --json, as the error document), exit 2.
        policy = policy_from_varstore(read_input(vars_file), vars_file) if vars_file else None
        extra = policy_from_files(db, dbx, read_input)
        if policy is None:
            policy = extra
        else:
            policy.db_certs += extra.db_certs
            policy.dbx_certs += extra.dbx_certs
            policy.dbx_hashes |= extra.dbx_hashes
            policy.source += " + --db/--dbx" if db or dbx else ""
        ACTIVE.set(policy)

    status = 0
    documents = []
    options = (format_name, check_loader, verbose, as_json, len(files) > 1)
    for file_status, events, document in _inspect_all(files, options, jobs):
        status = max(status, file_status)
        for to_stderr, text in events:
            # _Written: what a worker made of several events, newlines included (_Chunk).
            click.echo(text, err=to_stderr, nl=not isinstance(text, _Written))
        if document is not None:
            documents.append(document if len(files) == 1 or isinstance(document, _Listed) else _listed(document))
    if as_json and documents:
        # Each document comes as its json.dumps(indent=2) text (made in the worker): a list of
        # them is that text indented by two spaces, as json.dump(list, indent=2) writes it
        # (JSON strings hold no raw newline).
        if len(files) == 1:
            sys.stdout.write(documents[0])
        else:
            sys.stdout.write("[\n" + ",\n".join(documents) + "\n]")
        sys.stdout.write("\n")
    sys.exit(status)


class _Listed(str):
    """JSON documents as they stand in the list of several (indented, joined by a comma and a newline)."""


class _Written(bytes):
    """Bytes exactly as click.echo would have written them, events and newlines included."""


def _listed(document):
    return _Listed("  " + document.replace("\n", "\n  "))


# Below this many files per core, the default is one process: the workers' start costs more than
# they save (26 ROMs: one process 0.27-0.54 s, two workers 0.35-0.84 s; bench/inspect_jobs.py).
MIN_FILES_PER_WORKER = 16


def _inspect_all(files, options, jobs):
    """(status, output events, JSON document or None) per file, in the order of *files*; with
    more than one file and job, from *jobs* processes: this one and forked workers (they inherit
    the Secure Boot policy set above). The files go in chunks, each taken by whichever process
    is free (_forked), so each worker pays its start-up once: one item per chunk, its events
    already written out as bytes and its documents already listed (_Chunk)."""
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if len(files) < MIN_FILES_PER_WORKER * jobs:
            jobs = 1
    jobs = min(jobs, len(files))
    if jobs <= 1 or not hasattr(os, "fork"):
        yield from (_inspect_one(path, options) for path in files)
        return
    import gc

    # The first file in this process: its reader's modules are then imported once, before the
    # fork, not once per worker (a corpus is mostly of one kind).
    yield _inspect_one(files[0], options)
    # What the workers inherit (modules, tables) goes to the collector's permanent generation:
    # their collections then never walk it, nor write to its pages (no copy-on-write), as the
    # gc module's documentation advises before a fork.
    gc.freeze()
    try:
        yield from _forked(_Chunk(options, _plain_text()), _chunks(files[1:], jobs), jobs)
    finally:
        gc.unfreeze()


def _forked(work, chunks, jobs):
    """work(chunk) for each of *chunks*, yielded in order, computed by this process and jobs - 1
    forked children. os.fork and pipes, not multiprocessing's Pool: importing multiprocessing and
    starting a pool of two cost ~37 ms here, more than a whole 26-ROM corpus takes in one process
    (bench/inspect_jobs.py); a fork costs ~2 ms. Each process takes the next chunk not yet taken
    (a counter in shared memory, its lock a one-byte token in a pipe), so a slow file holds up
    no other process's work; a child sends each result, marshalled, through its own pipe, which
    a thread here drains at once, so a child never waits for this process to get to it."""
    import marshal
    import mmap
    import threading

    counter = mmap.mmap(-1, 8)              # shared with the children: MAP_SHARED, anonymous
    lock_r, lock_w = os.pipe()
    os.write(lock_w, b"\0")

    def take():
        os.read(lock_r, 1)
        try:
            index = int.from_bytes(counter[:8], "little")
            counter[:8] = (index + 1).to_bytes(8, "little")
        finally:
            os.write(lock_w, b"\0")
        return index if index < len(chunks) else None

    done, ready = {}, threading.Condition()
    children, readers, finished = [], [], False
    # The drain threads must get the GIL from this busy process as soon as a child has written,
    # or the child waits on a full pipe: every 0.5 ms instead of the default 5 (a 1,476-DTB
    # --json corpus took as long with two processes as with one, each child's pipe full while
    # this process did its own chunks), and a pipe of 1 MiB where Linux allows it.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, 0.0005))
    try:
        for _ in range(jobs - 1):
            read_end, write_end = os.pipe()
            _widen(write_end)
            pid = os.fork()
            if pid == 0:                    # the child: work, send, and leave without cleanup
                os.close(read_end)
                code = 0
                try:
                    _worker_start()
                    while (index := take()) is not None:
                        _send(write_end, marshal.dumps((index, _plain(work(chunks[index])))))
                except BaseException:     # noqa: BLE001 -- said to the parent, which raises it
                    import traceback
                    _send(write_end, marshal.dumps((-1, traceback.format_exc())))
                    code = 1
                os._exit(code)
            os.close(write_end)
            children.append(pid)
            reader = threading.Thread(target=_drain, args=(read_end, done, ready), daemon=True)
            reader.start()
            readers.append(reader)
        for index in range(len(chunks)):
            yield _next_result(index, chunks, work, take, done, ready, readers)
        finished = True
    finally:
        for pid in children:
            if not finished:            # the reader stopped early, or a chunk failed: stop them
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            os.waitpid(pid, 0)
        os.close(lock_r)
        os.close(lock_w)
        counter.close()
        sys.setswitchinterval(switch)


def _widen(fd):
    """Make the pipe *fd* hold 1 MiB (Linux's default pipe-max-size), if this system lets it."""
    import fcntl
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass


def _next_result(index, chunks, work, take, done, ready, readers):
    """The result of chunk *index*: a child's when it has come (or when nothing is left to take,
    once it comes), else this process takes chunks and does them until it has done this one."""
    while True:
        with ready:
            if index in done:
                return _unplain(done.pop(index))
        mine = take()
        if mine is not None:
            item = work(chunks[mine])
            if mine == index:
                return item
            with ready:
                done[mine] = _plain(item)
            continue
        with ready:
            while index not in done and -1 not in done and any(r.is_alive() for r in readers):
                ready.wait(0.5)
            if -1 in done:
                raise RuntimeError(f"an inspect worker failed:\n{done[-1]}")
            if index not in done:
                raise RuntimeError(f"an inspect worker ended without sending chunk {index}")


def _send(fd, payload):
    """One length-prefixed message to a pipe (os.write may write less than it is given)."""
    view = memoryview(len(payload).to_bytes(8, "little") + payload)
    while view:
        view = view[os.write(fd, view):]


def _drain(fd, done, ready):
    """A child's messages, (chunk index, result) each, into *done* as they come, until it closes."""
    import marshal
    with open(fd, "rb") as pipe:
        while (head := pipe.read(8)) and len(head) == 8:
            body = pipe.read(int.from_bytes(head, "little"))
            index, result = marshal.loads(body)
            with ready:
                done[index] = result
                ready.notify_all()
    with ready:
        ready.notify_all()


def _plain(item):
    """A _Chunk result as built-in types only (marshal keeps no subclass): tagged as a list."""
    status, events, document = item
    return (status, [(to_stderr, isinstance(text, _Written), bytes(text) if isinstance(text, _Written) else text)
                     for to_stderr, text in events], None if document is None else str(document))


def _unplain(plain):
    status, events, document = plain
    return (status, [(to_stderr, _Written(text) if written else text) for to_stderr, written, text in events],
            None if document is None else _Listed(document))


def _chunks(files, jobs):
    """*files* in chunks that shrink towards the end (a quarter of what is left per worker, at
    most 64, at least 4 files): few messages while there is much to do, and the workers finish
    within a few files of each other instead of one waiting out the other's last 64."""
    out, at = [], 0
    while at < len(files):
        n = max(4, min(64, (len(files) - at) // (jobs * 4)))
        out.append(files[at:at + n])
        at += n
    return out


def _plain_text():
    """Whether a str event may be written as its ASCII bytes (ANSI codes aside): true when
    standard output's encoding, the one click.echo writes with, writes ASCII as ASCII."""
    probe = "==> a <==\n"
    try:
        return probe.encode(click.get_text_stream("stdout").encoding) == probe.encode("ascii")
    except (LookupError, TypeError):
        return False


def _worker_start():
    """A worker collects garbage once after each file (_Chunk), not every 700 allocations:
    a device tree's nodes and properties point at each other, so each file leaves its tree as
    cyclic garbage, and the allocation-driven collections walked it two or three times while it
    was being built (one process over bench/inspect_jobs.py's 1,476 DTBs, measured with
    gc.get_stats() and gc.callbacks: 2,175 + 197 + 17 collections, a fifth to a quarter of its
    CPU time)."""
    import gc
    gc.disable()


class _Chunk:
    """A worker's job: _inspect_one of each file of a chunk, with the command's options bound
    (picklable, for the pool); one (status, events, document) for the chunk. Consecutive events
    of one stream are joined into the bytes click.echo writes for them (_Written: bytes as
    given, a str of ASCII without an escape character as its ASCII bytes when *plain* says that
    is what click.echo writes, each with its newline); other str events are left to click.echo
    (a terminal's ANSI codes, other encodings). The documents are joined as they stand in the
    list of several (_Listed)."""

    def __init__(self, options, plain):
        self.options = options
        self.plain = plain

    def __call__(self, paths):
        import gc
        status, events, documents, run = 0, [], [], None     # run: the bytes of the last event so far
        for path in paths:
            try:
                file_status, file_events, document = _inspect_one(path, self.options)
            finally:
                # The young generations only: what outlived a file (caches, modules it
                # imported) is not walked again after every later one.
                gc.collect(1)
            status = max(status, file_status)
            for to_stderr, text in file_events:
                if isinstance(text, str):
                    if not (self.plain and text.isascii() and "\x1b" not in text):
                        events.append((to_stderr, text))
                        run = None
                        continue
                    text = text.encode("ascii")
                if run is None or events[-1][0] != to_stderr:
                    run = []
                    events.append((to_stderr, run))
                run += (text, b"\n")
            if document is not None:
                documents.append(_listed(document))
        events = [(to_stderr, _Written(b"".join(text)) if isinstance(text, list) else text)
                  for to_stderr, text in events]
        return status, events, _Listed(",\n".join(documents)) if documents else None


def _inspect_one(path, options):
    """Inspect one file: (exit status, [(to_stderr, text or bytes)] to print, the text of its JSON
    document or None)."""
    status, events, document = _inspect_file(path, options)
    if document is not None:
        # Function-level import: json only for --json.
        import json
        document = json.dumps(document, indent=2)
    return status, events, document


def _inspect_file(path, options):
    from bootforge.image.sniff import image_head
    from bootforge.inspect import input_data, inspect_data

    format_name, check_loader, verbose, as_json, several = options
    events = []
    try:
        # Bootable images (ISO, partitioned disks) are read by offset, not loaded whole.
        if format_name in (None, "image") and image_head(path) is not None:
            from bootforge.image.inspect import inspect_image_file
            report = inspect_image_file(path, None)
        else:
            report = inspect_data(path, input_data(path, format_name), format_name)
    except BootforgeError as exc:
        exc.located(path=path)
        events.append((True, f"bootforge: error: {exc}"))
        document = None
        if as_json:
            # Every file named gets its entry, in order: a failed one carries the error document
            # every --json command prints (bootforge/cli.py).
            document = {"file": str(path), "error": {"file": str(path), "offset": exc.offset,
                                                     "message": exc.message}}
        return 2, events, document
    if check_loader is not None:
        loaders = report.to_json().get("loaders") if report.format == "multiboot-kernel" else None
        if loaders is None:
            message = f"--check {check_loader}: not a kernel ({report.format})"
            events.append((True, f"bootforge: error: {path}: {message}"))
            return 2, events, ({"file": str(path), "error": {"file": str(path), "offset": None, "message": message}}
                               if as_json else None)
        verdict = loaders[check_loader]
        document = None
        if as_json:
            document = {"file": str(path), "loader": check_loader, **verdict}
        elif verbose:
            events.append((False, f"{path}: {check_loader}: {'loads' if verdict['ok'] else 'REFUSES'}: "
                                  f"{verdict['reason']}"))
        return 0 if verdict["ok"] else 1, events, document
    if as_json:
        return report.exit_status, events, {"file": str(path), "format": report.format, **report.to_json(),
                                            "problems": list(report.problems)}
    if several:
        events.append((False, f"==> {path} <=="))
    events.append((False, report.render_bytes()))     # bytes: a DTB's names as dtc prints them
    return report.exit_status, events, None
