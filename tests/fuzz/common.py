"""Plumbing shared by the fuzz harnesses (run by hand, see README.md; never by pytest:
no file in this directory may be named test_*.py or conftest.py).

A harness module defines
    FAMILY  -- its name, a key of run.py's FAMILIES
    seeds() -- yields (name, bytes): the real corpus it starts from
    target(data) -- feeds one input to bootforge
and calls main(). An input "passes" when target() returns or raises a
BootforgeError (bootforge's one-line, exit-2/1 answer); anything else is a
crash: its class (exception type + innermost bootforge frame) is recorded once
under the work directory with the traceback and the input, and fuzzing goes on,
so one run reports every class it meets. Hangs and runaway memory are left to
libFuzzer (-timeout, -rss_limit_mb), which stops the process; run.py restarts it.

With atheris installed (pip install atheris into .venv; it is no dependency of
bootforge or its tests) the inputs come from libFuzzer with coverage feedback.
Without it, or with --plain, a random mutator over the seeds does the same job
more slowly and prints libFuzzer's closing line ("Done N runs in S second(s)").
"""

import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Fuzz the tree this file is in (e.g. a `git archive` snapshot), not whatever the
# editable install points at.
sys.path.insert(0, str(REPO))
WORK = Path(os.environ.get("BOOTFORGE_FUZZ_DIR", "/tmp/bootforge-fuzz"))

try:  # import bootforge through atheris's instrumentation when it is there
    if "--plain" in sys.argv:
        raise ImportError
    import atheris
except ImportError:
    atheris = None


@contextlib.contextmanager
def instrumented(include=("bootforge",), exclude=()):
    """Context manager: import bootforge modules inside it so atheris sees their branches.
    *exclude* keeps slow, separately fuzzed code (the decompressor) at full speed.

    bootforge imports readers lazily (inside functions): a module first imported
    while fuzzing would run uninstrumented, so every bootforge module is imported
    here, inside the instrumentation."""
    if atheris is None:
        yield
        return
    with atheris.instrument_imports(include=list(include), exclude=list(exclude)):
        yield
        import_all(exclude)


def scratch_path(name, suffix=""):
    """/dev/shm/bootforge-fuzz-<name>-<pid><suffix>: a harness's per-process scratch file or
    directory. Those of processes that are gone are removed first: atheris.Fuzz() never returns,
    so a harness cannot clean up when libFuzzer ends it (a load-kernel start left its initrd)."""
    for old in Path("/dev/shm").glob(f"bootforge-fuzz-{name}-*{suffix}"):
        pid = old.name[len(f"bootforge-fuzz-{name}-"):len(old.name) - len(suffix)]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(old)
    return Path("/dev/shm") / f"bootforge-fuzz-{name}-{os.getpid()}{suffix}"


def _remove(path):
    """Remove a scratch file or directory tree, if there."""
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_cli(args):
    """bootforge's CLI in-process on *args*: exit 0, 1 or 2 is an answer; its output goes into a
    sink (the commands' output is not what is fuzzed). Any other exit status is a crash.
    bootforge.cli is imported by then, inside the harness's instrumented() block."""
    import click

    from bootforge.cli import cli
    sink = io.TextIOWrapper(io.BytesIO())
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            cli.main(args=args, prog_name="bootforge", standalone_mode=False)
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        pass
    except SystemExit as exc:
        if exc.code not in (0, 1, 2, None):
            raise AssertionError(f"exit status {exc.code}") from None


def import_all(exclude=()):
    import importlib
    import pkgutil

    import bootforge
    for info in pkgutil.walk_packages(bootforge.__path__, "bootforge.", onerror=lambda name: None):
        name = info.name
        if name.endswith("__main__") or any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- a tree in the middle of a refactor
            print(f"fuzz: cannot import {name}: {exc}", file=sys.stderr)


def family_dir(family):
    d = WORK / family
    (d / "corpus").mkdir(parents=True, exist_ok=True)
    (d / "crashes").mkdir(parents=True, exist_ok=True)
    return d


def write_seeds(family, seeds):
    corpus = family_dir(family) / "corpus"
    n = 0
    for name, data in seeds:
        if data:
            (corpus / f"seed-{hashlib.sha1(data).hexdigest()[:12]}-{Path(name).name[:40]}").write_bytes(data)
            n += 1
    return n


def crash_key(exc):
    """Exception type + innermost frame inside bootforge (else innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "/bootforge/" in f.filename] or frames
    f = inner[-1] if inner else None
    where = f"{Path(f.filename).name}:{f.lineno}" if f else "?"
    return f"{type(exc).__name__}@{where}"


def guarded(family, target):
    """Wrap *target* so that a BootforgeError passes and any other exception is recorded."""
    from bootforge.errors import BootforgeError

    crashes = family_dir(family) / "crashes"
    seen = {p.stem for p in crashes.glob("*.txt")}

    def one_input(data):
        try:
            target(bytes(data))
        except BootforgeError:
            pass
        except RecursionError as exc:
            record(exc, data)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 -- every other escape is what we hunt
            # SystemExit too: raised out of the target, atheris ends the process ("fuzz
            # target exited") and the class would go unrecorded.
            record(exc, data)

    def record(exc, data):
        key = crash_key(exc)
        slug = hashlib.sha1(key.encode()).hexdigest()[:10]
        if slug in seen:
            return
        seen.add(slug)
        text = f"{key}\n{''.join(traceback.format_exception(exc))}"
        try:
            (crashes / f"{slug}.bin").write_bytes(bytes(data))
            (crashes / f"{slug}.txt").write_text(text)
        except OSError as err:
            # No record (out of descriptors, disk full): the log keeps the traceback, then
            # libFuzzer ends the run and tries to write the input itself.
            print(f"\n=== NEW CRASH CLASS {key}, not recorded ({err}):\n{text}", file=sys.stderr, flush=True)
            raise
        print(f"\n=== NEW CRASH CLASS {key} -> {crashes / slug}.txt", file=sys.stderr, flush=True)

    return one_input


TOML_VALUES = [b"5", b"-1", b"0xffffffff", b"0x100000000", b'"x"', b'"\xc3\xa9"', b'"a\\u0000b"', b"true",
               b"[]", b"[1, 2]", b"{}", b"{ a = 1 }", b"1.5", b'"' + b"x" * 300 + b'"']


def mutate(rng, data, pool):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(10)
        if op == 0 and b:                                   # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:                                 # set an interesting byte
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2 and len(b) >= 4:                       # an interesting 16/32-bit word
            i = rng.randrange(len(b) - 3)
            b[i:i + 4] = rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF, rng.getrandbits(32)]
                                    ).to_bytes(4, "little")
        elif op == 3 and b:                                 # truncate
            del b[rng.randrange(len(b)):]
        elif op == 4:                                       # insert random bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = os.urandom(rng.randint(1, 16))
        elif op == 5 and len(b) > 1:                        # delete a run
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 64)]
        elif op == 6 and pool:                              # splice another seed
            other = rng.choice(pool)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b = b[:i] + other[j:j + rng.randint(1, 256)] + b[i:]
        elif op == 7 and len(b) > 8:                        # duplicate a run
            i = rng.randrange(len(b))
            b[i:i] = b[i:i + rng.randint(1, 64)]
        elif op == 8 and b.count(b"\n") > 1:               # text: a line becomes blank or cut
            lines = bytes(b).split(b"\n")
            k = rng.randrange(len(lines))
            lines[k] = rng.choice([b"", b" ", b"\t", b" \r", lines[k][:rng.randint(0, len(lines[k]))]])
            b = bytearray(b"\n".join(lines))
        elif op == 9 and b" = " in b:                         # TOML: a value of another type
            lines = bytes(b).split(b"\n")
            keyed = [k for k, line in enumerate(lines) if b" = " in line]
            k = rng.choice(keyed)
            key = lines[k].split(b" = ", 1)[0]
            lines[k] = key + b" = " + rng.choice(TOML_VALUES)
            b = bytearray(b"\n".join(lines))
    return bytes(b)


def plain_fuzz(one_input, corpus_dir, seconds, timeout):
    """The fallback: random mutations of the seeds, an alarm per input for hangs."""
    pool = [p.read_bytes() for p in sorted(Path(corpus_dir).iterdir()) if p.is_file()]
    if not pool:
        pool = [b""]
    rng = random.Random(int(os.environ.get("SEED", "1")))

    def alarm(signum, frame):
        raise TimeoutError("hang")

    signal.signal(signal.SIGALRM, alarm)
    start = time.monotonic()
    runs = hangs = 0
    while time.monotonic() - start < seconds:
        data = pool[runs % len(pool)] if runs < len(pool) else mutate(rng, rng.choice(pool), pool)
        signal.alarm(timeout)
        try:
            one_input(data)
        except TimeoutError:
            hangs += 1
            d = Path(corpus_dir).parent / "crashes"
            (d / f"timeout-{hashlib.sha1(data).hexdigest()[:10]}").write_bytes(data)
            print("ALARM: working on the last Unit for", timeout, "seconds", file=sys.stderr, flush=True)
        finally:
            signal.alarm(0)
        runs += 1
    print(f"Done {runs} runs in {int(time.monotonic() - start)} second(s)", file=sys.stderr, flush=True)


def main(family, seeds, target, scratch=None):
    """Write the seeds, then fuzz. Extra argv goes to libFuzzer (e.g. -max_total_time=150).
    `--repro FILE...` runs target() on each file with no guard: the traceback shows.
    *scratch* (a scratch_path file or directory) is removed when fuzzing returns (--plain and
    --repro; atheris.Fuzz() never returns, and scratch_path removes what dead runs left)."""
    try:
        _main(family, seeds, target)
    finally:
        if scratch is not None:
            _remove(scratch)


def _main(family, seeds, target):
    if "--repro" in sys.argv:
        from bootforge.errors import BootforgeError
        for name in sys.argv[sys.argv.index("--repro") + 1:]:
            try:
                target(Path(name).read_bytes())
                print(f"{name}: passes")
            except BootforgeError as exc:
                print(f"{name}: passes (bootforge answered: {exc})")
        return
    d = family_dir(family)
    count = write_seeds(family, seeds())
    print(f"{family}: {count} seed inputs in {d / 'corpus'}", file=sys.stderr, flush=True)
    one_input = guarded(family, target)
    args = [a for a in sys.argv if a != "--plain"]
    if atheris is None:
        seconds = timeout = None
        for a in args[1:]:
            if a.startswith("-max_total_time="):
                seconds = int(a.split("=", 1)[1])
            if a.startswith("-timeout="):
                timeout = int(a.split("=", 1)[1])
        plain_fuzz(one_input, d / "corpus", seconds or 60, timeout or 20)
        return
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.append(f"-artifact_prefix={d / 'crashes'}/")
    atheris.Setup(args + [str(d / "corpus")], one_input)
    atheris.Fuzz()


def seed_dir(name, make):
    """The lines of $BOOTFORGE_FUZZ_DIR/*name*/list, the seed files made there once: *make*(dir)
    writes them and returns the list's lines (file names, or names joined by spaces); a ".done"
    marker keeps later starts (libFuzzer restarts the harness) from making them again."""
    d = WORK / name
    d.mkdir(parents=True, exist_ok=True)
    if not (d / ".done").exists():
        (d / "list").write_text("".join(f"{line}\n" for line in make(d)))
        (d / ".done").touch()
    return d, (d / "list").read_text().splitlines()


def files(*patterns, limit=None, max_size=1 << 20):
    """(name, bytes) of the files matching the glob *patterns* (absolute or under the repo)."""
    import glob
    out = []
    for pattern in patterns:
        base = "" if pattern.startswith("/") else str(REPO) + "/"
        for name in sorted(glob.glob(base + pattern, recursive=True)):
            p = Path(name)
            if p.is_file() and p.stat().st_size <= max_size:
                out.append((name, p.read_bytes()))
    return out[:limit] if limit else out


def attempt(fn, *args, **kwargs):
    """Call fn; a BootforgeError is an answer, not a crash (the next step still runs)."""
    from bootforge.errors import BootforgeError
    try:
        return fn(*args, **kwargs)
    except BootforgeError:
        return None
