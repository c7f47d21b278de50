"""bench/dts_compile: compiling Linux 6.1's arm64/arm DTS files, bootforge (in-process,
bootforge.fdt.dts_compile) against dtc (a process, as Kbuild runs it), in the same run, best
of N per file. Goal: <= 3x dtc's time per file and over the corpus.

    .venv/bin/python bench/dts_compile.py [--files 300|all] [--runs N]

Files are preprocessed first (cpp as scripts/Makefile.lib; not timed). Each file's bootforge
blob is checked against dtc's before it is timed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import dts_linux  # noqa: E402
from bootforge.fdt.dts_compile import DtcOptions, compile_dts  # noqa: E402
from bootforge.fdt.dts_lexer import DtsError  # noqa: E402


def interleaved(argv, cwd, fn, runs):
    """Best of *runs* for dtc (a process) and bootforge (*fn*, in-process), alternating so both
    see the same load: (dtc wall, bootforge wall, dtc CPU, bootforge CPU) in seconds. CPU is
    user + system time (dtc's from wait4, the whole process), which a shared machine disturbs
    less than wall time."""
    walls_d, walls_b, cpus_d, cpus_b = [], [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        walls_d.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0
        cpus_d.append(usage.ru_utime + usage.ru_stime)
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls_b.append(time.perf_counter() - start)
        cpus_b.append(time.process_time() - cpu)
    return min(walls_d), min(walls_b), min(cpus_d), min(cpus_b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="300", help="how many files (spread over the sorted list), or all")
    parser.add_argument("--runs", type=int, default=3, help="best of N, per file and tool")
    args = parser.parse_args()
    if not dts_linux.SOURCE_TAR.exists():
        sys.exit(f"{dts_linux.SOURCE_TAR} is missing (make deps)")
    tree = dts_linux.linux_tree()
    names = dts_linux.all_dts(tree)
    if args.files != "all":
        names = dts_linux.sample(names, int(args.files))
    rows = []
    cpu_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dtc.dtb"
        for rel in names:
            pre = dts_linux.preprocess(tree, rel, tmp)
            if pre is None:
                continue
            blob, _ = dts_linux.dtc(tree, pre, out, rel=rel)
            if blob is None:
                continue            # refused by dtc: nothing to time
            data = pre.read_bytes()
            includes = dts_linux.search_path(tree, rel)
            options = DtcOptions(quiet=1, outname=str(out), search_path=includes)
            try:
                assert compile_dts(data, str(pre), options).dtb == blob, rel
            except DtsError as exc:
                sys.exit(f"{rel}: bootforge refuses what dtc compiles: {exc}")

            argv = ["dtc", "-q", "-I", "dts", "-O", "dtb", *[f"-i{d}" for d in includes], "-o", str(out), str(pre)]
            t_dtc, t_bf, c_dtc, c_bf = interleaved(argv, tree, lambda: compile_dts(data, str(pre), options),
                                                   args.runs)
            cpu_rows.append((c_dtc, c_bf))
            rows.append((rel, len(data), t_dtc, t_bf))
            pre.unlink()
    if not rows:
        sys.exit("no file compiled")
    ratios = sorted(bf / d for _, _, d, bf in rows)
    total_dtc = sum(r[2] for r in rows)
    total_bf = sum(r[3] for r in rows)
    print(f"  {len(rows)} Linux DTS compiled (best of {args.runs}); source {sum(r[1] for r in rows) / 1e6:.1f} MB "
          "after cpp")
    print(f"  corpus (wall): dtc {total_dtc:.2f} s, bootforge {total_bf:.2f} s: {total_bf / total_dtc:.2f}x dtc")
    print(f"  per file bootforge/dtc: median {statistics.median(ratios):.2f}x, "
          f"p90 {ratios[int(0.9 * (len(ratios) - 1))]:.2f}x, max {ratios[-1]:.2f}x")
    worst = max(rows, key=lambda r: r[3] / r[2])
    print(f"  slowest relative: {worst[0]} ({worst[1] / 1e3:.0f} kB): {worst[3] * 1e3:.1f} ms vs dtc "
          f"{worst[2] * 1e3:.1f} ms")
    cpu_ratios = sorted(b / d for d, b in cpu_rows)
    cpu_total = sum(b for _, b in cpu_rows) / sum(d for d, _ in cpu_rows)
    print(f"  CPU time (user+sys): corpus {cpu_total:.2f}x dtc; per file median {statistics.median(cpu_ratios):.2f}x, "
          f"p90 {cpu_ratios[int(0.9 * (len(cpu_ratios) - 1))]:.2f}x, max {cpu_ratios[-1]:.2f}x")
    verdict = "ok" if total_bf / total_dtc <= 3 and statistics.median(ratios) <= 3 else "MISSED"
    print(f"  goal <= 3x dtc per file (median) and over the corpus (wall): {verdict}")
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
