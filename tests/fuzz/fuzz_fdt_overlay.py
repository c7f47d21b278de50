"""Device-tree overlays (fdt/overlay.py): `bootforge fdt apply BASE OVERLAY...` as libfdt's
fdt_overlay_apply does it: the fragments' targets (target = <phandle>, target-path), the
overlay's phandles moved past the base's, __fixups__ resolved through the base's __symbols__,
__local_fixups__, the merge of each __overlay__ node, the overlay's __symbols__ added to the
base's. The merged blob must read back (parse_dtb). `bootforge fdt print` (fdt/dts.py
dtb_to_dts) of the input (either side) and of the merged blob.

The first byte picks a real (base, overlay) pair: bits 1-6 its index, bit 0 which side the
rest of the input replaces (0: the overlay, 1: the base), bit 7 applies the overlay twice
(the second time onto what the first made, as `fdt apply` of two overlays does).

Seeds: the base + .dtbo pairs Linux 6.1's arm64 Makefiles name (`x-dtbs := base.dtb
overlay.dtbo`), each compiled by cpp and dtc -@ as Kbuild does (build/linux from `make
dts-corpus`'s tree; none without it), and a hand-written pair compiled by dtc -@ (labels in
the base, an overlay with target, target-path, a reference to a base label and one to its own
node), both sides of each pair."""

import functools
import subprocess
import sys
from pathlib import Path

from common import REPO, attempt, instrumented, main, seed_dir

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.errors import BootforgeError
    from bootforge.fdt.dts import dtb_to_dts
    from bootforge.fdt.overlay import apply_overlays
    from bootforge.fdt.parse import parse_dtb

FAMILY = "fdt-overlay"
PAIRS_MAX = 64

BASE_DTS = """/dts-v1/;
/ {
	#address-cells = <1>; #size-cells = <1>;
	compatible = "bootforge,fuzz";
	soc: soc { #address-cells = <1>; #size-cells = <1>; ranges;
		uart0: serial@1000 { reg = <0x1000 0x100>; status = "disabled"; };
		intc: interrupt-controller@2000 { reg = <0x2000 0x100>; interrupt-controller; #interrupt-cells = <1>; };
	};
	chosen { };
};
"""
OVERLAY_DTS = """/dts-v1/;
/plugin/;
&uart0 { status = "okay"; interrupt-parent = <&intc>; interrupts = <5>; };
&{/chosen} { stdout-path = "serial0"; };
&soc {
	added: device@3000 { reg = <0x3000 0x10>; peer = <&added>; parent = <&intc>; };
};
/ { fragment@9 { target-path = "/"; __overlay__ { extra = "yes"; }; }; };
"""


def _dtc(src, out, cwd=None, includes=()):
    proc = subprocess.run(["dtc", "-@", "-I", "dts", "-O", "dtb", *includes, "-o", str(out), str(src)],
                          capture_output=True, cwd=cwd)
    if proc.returncode:
        print(f"fuzz seeds: dtc {src}: {proc.stderr.decode(errors='replace')[-200:]}", file=sys.stderr)
    return proc.returncode == 0


def _linux_pairs(d):
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import dts_linux
    except ImportError:
        return []
    tree = dts_linux.ROOT / dts_linux.TOP
    if not (tree / "arch/arm64/boot/dts").is_dir():
        return []
    out = []
    for makefile in sorted((tree / "arch/arm64/boot/dts").glob("*/Makefile")):
        for line in makefile.read_text().splitlines():
            parts = line.split(":=", 1)[1].split() if "-dtbs :=" in line else []
            if len(parts) != 2 or not parts[1].endswith(".dtbo"):
                continue
            rel = makefile.parent.relative_to(tree)
            names = []
            for src in (f"{rel}/{parts[0][:-4]}.dts", f"{rel}/{parts[1][:-5]}.dts"):
                pre = dts_linux.preprocess(tree, src, d)
                out_path = d / (src.replace("/", "_") + ".dtb")
                if pre is None or not _dtc(pre, out_path, tree, [f"-i{p}" for p in dts_linux.search_path(tree, src)]):
                    break
                names.append(out_path.name)
            if len(names) == 2:
                out.append(tuple(names))
    return out


@functools.lru_cache(maxsize=1)
def pairs():
    """[(base bytes, overlay bytes)], made once into $BOOTFORGE_FUZZ_DIR/fdt-overlay-seeds/."""
    d, lines = seed_dir("fdt-overlay-seeds", _make_pairs)
    return [tuple((d / n).read_bytes() for n in line.split()) for line in lines]


def _make_pairs(d):
    made = []
    (d / "base.dts").write_text(BASE_DTS)
    (d / "overlay.dts").write_text(OVERLAY_DTS)
    if _dtc(d / "base.dts", d / "base.dtb") and _dtc(d / "overlay.dts", d / "overlay.dtbo"):
        made.append(("base.dtb", "overlay.dtbo"))
    made += _linux_pairs(d)
    for p in d.glob("*.tmp"):
        p.unlink()
    return [f"{b} {o}" for b, o in made[:PAIRS_MAX]]



def seeds():
    out = []
    for k, (base, overlay) in enumerate(pairs()):
        out.append((f"pair{k}.dtbo", bytes([k << 1]) + overlay))
        out.append((f"pair{k}.dtb", bytes([k << 1 | 1]) + base))
        out.append((f"pair{k}-twice.dtbo", bytes([0x80 | k << 1]) + overlay))
    return out


def target(data):
    known = pairs()
    if not data or not known:
        return
    base, overlay = known[(data[0] >> 1 & 0x3F) % len(known)]
    attempt(dtb_to_dts, data[1:], "fuzz.dtb")
    if data[0] & 1:
        base = data[1:]
    else:
        overlay = data[1:]
    overlays = [("fuzz-1.dtbo", overlay)] + ([("fuzz-2.dtbo", overlay)] if data[0] & 0x80 else [])
    merged = apply_overlays(base, overlays, base_name="fuzz.dtb")
    try:
        parse_dtb(merged, "merged.dtb")
    except BootforgeError as exc:       # bootforge's own output must read back: a bug, not bad input
        raise AssertionError(f"the merged blob does not read back: {exc}") from None
    dtb_to_dts(merged, "merged.dtb")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
