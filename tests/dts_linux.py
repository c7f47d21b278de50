"""The Linux kernel's own DTS files (Debian's linux-source-6.1), preprocessed as Linux's
scripts/Makefile.lib does, for comparing bootforge's DTS compiler with dtc.

Only what the device trees need is extracted, once, under build/linux (never committed):
arch/arm64/boot/dts, arch/arm/boot/dts, include/dt-bindings, include/uapi, scripts/dtc/include-prefixes.
"""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_TAR = Path("/usr/src/linux-source-6.1.tar.xz")
TOP = "linux-source-6.1"
ROOT = REPO / "build" / "linux"
# include/uapi: some dt-bindings headers are links into it (input/linux-event-codes.h).
MEMBERS = ("arch/arm64/boot/dts/", "arch/arm/boot/dts/", "include/dt-bindings/", "include/uapi/",
           "scripts/dtc/include-prefixes/")
# Makefile.lib: dtc_cpp_flags = -nostdinc -I$(DTC_INCLUDE) -undef -D__DTS__, then -x assembler-with-cpp.
CPP = ["cpp", "-nostdinc", "-I", "scripts/dtc/include-prefixes", "-undef", "-D__DTS__", "-x", "assembler-with-cpp"]


def linux_tree():
    """The extracted source tree (extracting it on first use: about 15 s)."""
    tree = ROOT / TOP
    marker = ROOT / ".dts-extracted"
    wanted = " ".join(MEMBERS) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return tree
    ROOT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xJf", str(SOURCE_TAR), "-C", str(ROOT), "--wildcards",
                    *[f"{TOP}/{m}*" for m in MEMBERS]], check=True)
    marker.write_text(wanted)
    return tree


def all_dts(tree):
    """Every arm64 and arm board DTS (relative paths, sorted): what Linux builds DTBs from."""
    out = []
    for base in ("arch/arm64/boot/dts", "arch/arm/boot/dts"):
        for dirpath, _, names in os.walk(tree / base):
            out += [os.path.relpath(os.path.join(dirpath, n), tree) for n in names if n.endswith(".dts")]
    return sorted(out)


def sample(names, count):
    """*count* files spread evenly over the sorted list (the same ones on every run)."""
    if count >= len(names):
        return list(names)
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def preprocess(tree, rel, out_dir):
    """cpp's output for *rel* (run from the tree's top, as Kbuild does), written to out_dir."""
    out = Path(out_dir) / (rel.replace("/", "_") + ".tmp")
    proc = subprocess.run([*CPP, "-o", str(out), rel], cwd=tree, capture_output=True)
    return out if proc.returncode == 0 else None


def search_path(tree, rel):
    """Kbuild's dtc -i directories (Makefile.lib cmd_dtc): the source's own, then include-prefixes."""
    return [str(tree / os.path.dirname(rel)), str(tree / "scripts/dtc/include-prefixes")]


def dtc(tree, pre, out, *args, rel=None):
    """dtc on a preprocessed file, from the tree's top, with Kbuild's -i directories for *rel*:
    (blob or None, stderr text)."""
    includes = [f"-i{d}" for d in search_path(tree, rel)] if rel else []
    proc = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", *includes, *args, "-o", str(out), str(pre)],
                          capture_output=True, cwd=tree)
    blob = Path(out).read_bytes() if proc.returncode == 0 else None
    if proc.returncode == 0:
        os.unlink(out)
    return blob, proc.stderr.decode("latin-1")
