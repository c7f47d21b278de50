"""verify's working directory for one boot: the media it builds, QEMU's files and logs.
A temporary directory unless the user gave --keep DIR, which is then named in the report."""

import shutil
import tempfile
from pathlib import Path


def open_workdir(keep):
    """A new temporary directory, or *keep* (made when missing)."""
    work = Path(tempfile.mkdtemp(prefix="bootforge-verify-")) if keep is None else Path(keep)
    work.mkdir(parents=True, exist_ok=True)
    return work


def close_workdir(work, keep, report):
    """Removes the temporary directory; a kept one is named in the report (report.kept)."""
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        report.kept = str(work)
