"""bench/dts_print: printing the DTS of a 50,003-node DTB (bench/memmap.py's large_dts, compiled
by dtc), bootforge against `dtc -I dtb -O dts` in the same run, best of N. Goal: <= 1.5x dtc.

    .venv/bin/python bench/dts_print.py [--runs N]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootforge.fdt import parse_dtb, to_dts  # noqa: E402
from bootforge.fdt.dts import dtb_to_dts  # noqa: E402
from memmap import large_dts  # noqa: E402


def best_of(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    dtc = shutil.which("dtc")
    if dtc is None:
        sys.exit("dtc not installed (apt-get install device-tree-compiler)")
    with tempfile.TemporaryDirectory() as tmp:
        dts, dtb = Path(tmp) / "big.dts", Path(tmp) / "big.dtb"
        dts.write_text(large_dts())
        subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(dtb), str(dts)], check=True)
        data = dtb.read_bytes()
        reference = subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                                   check=True).stdout
        assert dtb_to_dts(data).encode("latin-1") == reference, "bootforge's DTS differs from dtc's"
        cli = [sys.executable, "-m", "bootforge", "inspect", "-O", "dts", str(dtb)]
        assert subprocess.run(cli, capture_output=True, check=True).stdout == reference
        print(f"  DTB: {len(data):,} bytes, {parse_dtb(data).node_count():,} nodes")
        t_dtc = best_of(lambda: subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts", "-o", "/dev/null", str(dtb)],
                                               check=True), args.runs)
        rows = [("dtc -I dtb -O dts (process)", t_dtc),
                ("bootforge dtb_to_dts (in-process)", best_of(lambda: dtb_to_dts(data), args.runs)),
                ("bootforge inspect -O dts (process)",
                 best_of(lambda: subprocess.run(cli, stdout=subprocess.DEVNULL, check=True), args.runs)),
                ("bootforge parse_dtb + to_dts (tree API)", best_of(lambda: to_dts(parse_dtb(data)), args.runs))]
        for name, t in rows:
            print(f"  {name:<42} {t:8.3f} s  {t / t_dtc:5.2f}x dtc")
        worst = max(rows[1][1], rows[2][1]) / t_dtc
        print(f"  goal <= 1.5x dtc (in-process and as a process): {'ok' if worst <= 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
