"""Linux 6.1's arm64 and arm DTS files through bootforge's DTS compiler and through dtc: the
same blob and the same warnings for each file dtc compiles, a refusal for each it refuses.

`make test` runs a sample (DTS_CORPUS_SAMPLE files, 300 by default); `make dts-corpus` runs
all of them (DTS_CORPUS_SAMPLE=all). The overlays Linux builds (base + .dtbo pairs named in
arch/arm64/boot/dts/*/Makefile) go through fdtoverlay and `bootforge fdt apply`.
"""

import os

import pytest

import dts_linux
from bootforge.fdt.dts_compile import DtcOptions, compile_dts
from bootforge.fdt.dts_lexer import DtsError
from bootforge.fdt.overlay import apply_overlays
from conftest import require


@pytest.fixture(scope="module")
def tree():
    require(str(dts_linux.SOURCE_TAR), "cpp", "dtc", "fdtoverlay")
    return dts_linux.linux_tree()


def _count():
    value = os.environ.get("DTS_CORPUS_SAMPLE", "300")
    return 1 << 30 if value == "all" else int(value)


def test_linux_dts_compile_like_dtc(tree, tmp_path):
    names = dts_linux.sample(dts_linux.all_dts(tree), _count())
    mismatches = []
    compiled = refused = 0
    for rel in names:
        pre = dts_linux.preprocess(tree, rel, tmp_path)
        if pre is None:
            continue
        out = tmp_path / "dtc.dtb"
        blob, stderr = dts_linux.dtc(tree, pre, out, rel=rel)
        try:
            result = compile_dts(pre.read_bytes(), str(pre),
                                 DtcOptions(outname=str(out), search_path=dts_linux.search_path(tree, rel)))
            mine, messages = result.dtb, "".join(m + "\n" for m in result.messages)
        except DtsError as exc:
            mine, messages = None, str(exc)
        if blob is None:
            refused += 1
            if mine is not None:
                mismatches.append(f"{rel}: dtc refuses ({stderr.splitlines()[-1]}), bootforge compiles")
            continue
        compiled += 1
        if mine != blob:
            mismatches.append(f"{rel}: {'refused: ' + messages if mine is None else 'different bytes'}")
        elif messages != stderr:
            mismatches.append(f"{rel}: different warnings")
        pre.unlink()
    print(f"{len(names)} Linux DTS: {compiled} compiled as dtc does, {refused} refused by both, "
          f"{len(mismatches)} mismatches")
    assert compiled > 0.95 * len(names)
    assert mismatches == []


def _overlay_pairs(tree):
    """(base .dts, overlay .dts) from the `x-dtbs := base.dtb overlay.dtbo` lines of Linux's Makefiles."""
    pairs = []
    for makefile in sorted((tree / "arch/arm64/boot/dts").glob("*/Makefile")):
        for line in makefile.read_text().splitlines():
            if "-dtbs :=" in line:
                parts = line.split(":=", 1)[1].split()
                if len(parts) == 2 and parts[1].endswith(".dtbo"):
                    d = makefile.parent.relative_to(tree)
                    pairs.append((f"{d}/{parts[0][:-4]}.dts", f"{d}/{parts[1][:-5]}.dts"))
    return pairs


def test_linux_overlays_apply_like_fdtoverlay(tree, tmp_path):
    import subprocess
    pairs = _overlay_pairs(tree)
    assert len(pairs) >= 10
    for base_rel, overlay_rel in pairs:
        base_pre = dts_linux.preprocess(tree, base_rel, tmp_path)
        overlay_pre = dts_linux.preprocess(tree, overlay_rel, tmp_path)
        base, _ = dts_linux.dtc(tree, base_pre, tmp_path / "base.dtb", "-@")       # Linux: -@ for bases
        overlay, _ = dts_linux.dtc(tree, overlay_pre, tmp_path / "ov.dtbo", "-@")
        # bootforge compiles the overlay source to dtc's .dtbo (fixups, local fixups, symbols) ...
        assert compile_dts(overlay_pre.read_bytes(), str(overlay_pre), DtcOptions(symbols=True)).dtb == overlay
        (tmp_path / "base.dtb").write_bytes(base)
        (tmp_path / "ov.dtbo").write_bytes(overlay)
        subprocess.run(["fdtoverlay", "-i", "base.dtb", "-o", "merged.dtb", "ov.dtbo"], cwd=tmp_path, check=True)
        # ... and applies it to the base as fdtoverlay does.
        assert apply_overlays(base, [("ov.dtbo", overlay)]) == (tmp_path / "merged.dtb").read_bytes(), overlay_rel
