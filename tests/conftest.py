"""Shared test helpers.

Real tools decide in these tests. When one is missing, a test skips locally
with the reason, but under CI (CI=true) it fails: CI never passes by skipping.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
BUILD = REPO / "build"
IN_CI = os.environ.get("CI") == "true"
# The Limine release the tests boot: the project's oracle copy beside the repository
# (../shared/oracles/limine-11.4.1); bootforge itself only reads $BOOTFORGE_LIMINE_DIR.
os.environ.setdefault("BOOTFORGE_LIMINE_DIR", str(REPO.parent / "shared" / "oracles" / "limine-11.4.1"))


def unavailable(reason):
    """What a test cannot check here: a skip locally, a failure under CI=true (CI never passes
    by skipping)."""
    if IN_CI:
        pytest.fail(reason + " under CI=true", pytrace=False)
    pytest.skip(reason)


def require(*things):
    """Skip (locally) or fail (in CI) unless every program or path in *things* exists."""
    missing = [t for t in things if not (Path(t).exists() if "/" in t else shutil.which(t))]
    if missing:
        unavailable("missing " + ", ".join(missing) + " (run `make deps`)")


def require_module(name):
    """Import *name*; a missing module skips locally and fails under CI, like require()."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python module {name} is not installed (pip install -e '.[test]')")


def run_bootforge(*args, input=None, check=None):
    """Run the real CLI in a subprocess, as a user would; return CompletedProcess (text)."""
    proc = subprocess.run([sys.executable, "-m", "bootforge", *map(str, args)],
                          capture_output=True, text=True, input=input, cwd=REPO)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def assert_one_line_error(proc, *fragments):
    """Bad input: exit 2, exactly one line on stderr, no traceback, naming each fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
