"""`pip install .` (not editable) gives a bootforge that works from any directory: the
data read at run time (the built-in platform profiles) is package data read with
importlib.resources, so `bootforge load` on every built-in platform and on every
example load recipe gives, from an installed copy run elsewhere, the same output as
the development tree (issue 10 item 4; before, qemu-q35-ovmf and r820-efi ended in
FileNotFoundError / "does not exist" once installed).

Fast and offline: the source is copied without .git/.venv/build, installed with
--no-deps --no-build-isolation into a fresh venv, and the dependencies (construct,
click, pyelftools, lief) are taken from this interpreter's site-packages through a
.pth line -- a directory added that way has its own .pth files ignored, so the
development tree's editable bootforge stays invisible (checked: bootforge.__file__).
"""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO, run_bootforge

# Every built-in platform (parametric ones at a size, profiles by name) with a loader that runs on it.
PLATFORMS = [("qemu-pc-seabios:256M", "grub-pc-mb2"), ("qemu-pc-seabios:5G", "grub-pc-mb2"),
             ("qemu-q35-ovmf:1G", "grub-efi-mb2"), ("qemu-q35-ovmf:5G", "grub-efi-mb2"),
             ("r820-efi", "grub-efi-mb2"), ("qemu-q35-ovmf-512M", "grub-efi-mb2"),
             ("qemu-q35-ovmf-3072M", "grub-efi-mb2")]
# Example load recipes: their files are beside them (tests/data/load-root) or on the system.
LOAD_RECIPES = sorted(p.name for p in (REPO / "recipes").glob("load-*.toml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", "tests", "bench", "stubs"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The test venv reads this one's packages (offline: no index), ahead of its own: Python 3.11's
    # venv seeds setuptools 65, which rejects pyproject's SPDX license string (setuptools >= 77 reads it).
    Path(site, "bootforge-test-deps.pth").write_text(
        f"import sys; sys.path.insert(0, {sysconfig.get_paths()['purelib']!r})\n")
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           str(src)], capture_output=True, text=True, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(src)                      # nothing may be read from the source tree any more
    where = subprocess.run([str(py), "-c", "import bootforge; print(bootforge.__file__)"], check=True,
                           capture_output=True, text=True, cwd=tmp).stdout.strip()
    assert where.startswith(site), where    # the installed copy, not the development tree
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin" / "bootforge", elsewhere


def run_installed(installed, *args):
    exe, cwd = installed
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("platform,loader", PLATFORMS, ids=[p for p, _ in PLATFORMS])
def test_installed_load_on_every_builtin_platform(installed, platform, loader):
    recipe = REPO / "recipes" / "load-grub-pc-mb2.toml"
    args = ("load", recipe, "--platform", platform, "--loader", loader)
    got = run_installed(installed, *args)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(f"{loader} on "), got.stdout[:200]
    want = run_bootforge(*args)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout)


@pytest.mark.parametrize("name", LOAD_RECIPES)
def test_installed_load_on_every_example_recipe(installed, name):
    got = run_installed(installed, "load", "--json", REPO / "recipes" / name)
    want = run_bootforge("load", "--json", REPO / "recipes" / name)
    assert got.returncode == 0, got.stderr
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout)


def test_installed_verify_refuses_a_map_platform_in_one_line(installed):
    """verify is part of the installed package too (no QEMU needed for this answer)."""
    got = run_installed(installed, "verify", REPO / "recipes" / "load-grub-pc-mb2.toml", "--platform", "r820-efi")
    assert got.returncode == 2 and len(got.stderr.strip().splitlines()) == 1, got.stderr
    assert "qemu-pc-seabios:<mem>" in got.stderr and "qemu-q35-ovmf:<mem>" in got.stderr
