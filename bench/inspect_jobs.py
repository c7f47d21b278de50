"""bench/inspect_jobs: `bootforge inspect --jobs N FILE...` against N single-process
`bootforge inspect --jobs 1` runs over the same files split in N slices, run at once, and
against one process (--jobs 1), on a corpus of 1,476 DTBs and on the ROM corpus of
bench/inspect_latency.py. N is the number of cores. Interleaved, best of --runs, wall time and
CPU time (user + sys of every process: on a machine whose cores others share, wall time
cannot show a parallel speed-up, CPU time shows what each way costs).
The --jobs N output (JSON and text) must equal the one-process output byte for byte.

    .venv/bin/python bench/inspect_jobs.py [--runs N]

The DTB corpus (build/dtb-corpus/, made once with dtc, never committed): QEMU's four DTBs
and tests/data/fdt-reserved.dtb, each decompiled and compiled again with dtc in variants
(a /chosen node with its own bootargs and a memory node of its own size), 1,476 files.
Debian's linux-image-amd64 ships no DTBs.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from inspect_latency import CORPUS as ROM_CORPUS
from inspect_latency import compile_bootforge

REPO = Path(__file__).resolve().parent.parent
DTB_DIR = REPO / "build" / "dtb-corpus"
DTB_COUNT = 1476
BASES = ["/usr/share/qemu/bamboo.dtb", "/usr/share/qemu/canyonlands.dtb", "/usr/share/qemu/petalogix-ml605.dtb",
         "/usr/share/qemu/petalogix-s3adsp1800.dtb", str(REPO / "tests" / "data" / "fdt-reserved.dtb")]


def dtb_corpus():
    files = sorted(DTB_DIR.glob("*.dtb")) if DTB_DIR.exists() else []
    if len(files) == DTB_COUNT:
        return [str(f) for f in files]
    DTB_DIR.mkdir(parents=True, exist_ok=True)
    sources = [subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", b], check=True, capture_output=True,
                              text=True).stdout for b in BASES if Path(b).exists()]
    for i in range(DTB_COUNT):
        dts = sources[i % len(sources)] + (
            f'\n/ {{\n\tchosen {{ bootargs = "console=ttyS0 variant={i}"; }};\n'
            f'\tmemory@{0x80000000 + i * 0x100000:x} {{ device_type = "memory"; '
            f'reg = <0x{0x80000000 + i * 0x100000:x} 0x{(i % 64 + 1) << 20:x}>; }};\n}};\n')
        subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(DTB_DIR / f"v{i:04d}.dtb")],
                       input=dts, text=True, check=True)
    return [str(f) for f in sorted(DTB_DIR.glob("*.dtb"))]


def wall(cmds):
    """(wall seconds, CPU seconds user + sys of all of them and their children, stdouts) for
    *cmds* started together, all finished."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for c in cmds]
    # Every output is read at once (a thread each): read one after the other, the second
    # process stopped on its full pipe until the first had ended, so N single processes ran
    # one at a time whenever their output passed the pipe's 64 KiB (the DTB --json corpus).
    outs = [b""] * len(procs)

    def read(i):
        outs[i] = procs[i].stdout.read()
    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(procs))]
    for r in readers:
        r.start()
    cpu = 0.0
    for r, p in zip(readers, procs):
        r.join()
        _, _, usage = os.wait4(p.pid, 0)
        p.returncode = 0
        cpu += usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, outs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compile_bootforge()
    n = len(os.sched_getaffinity(0))
    py = [sys.executable, "-m", "bootforge", "inspect"]
    worst = 0.0
    print(f"{n} cores; best of {args.runs}, interleaved; load average {os.getloadavg()[0]:.1f}")
    for name, files in (("1,476 DTBs", dtb_corpus()), (f"{len(ROM_CORPUS)} ROMs", ROM_CORPUS)):
        for mode in ("--json", None):
            extra = [mode] if mode else []
            slices = [files[k * len(files) // n:(k + 1) * len(files) // n] for k in range(n)]
            jobs, split, one = [], [], []
            for _ in range(args.runs):
                t, c, (out_jobs,) = wall([py + extra + ["--jobs", str(n)] + files])
                jobs.append((t, c))
                t, c, _ = wall([py + extra + ["--jobs", "1"] + s for s in slices])
                split.append((t, c))
                t, c, (out_one,) = wall([py + extra + ["--jobs", "1"] + files])
                one.append((t, c))
                assert out_jobs == out_one, f"--jobs {n} output differs from one process ({name}, {mode})"
            (jw, jc), (sw, sc), (ow, oc) = (tuple(map(min, zip(*x))) for x in (jobs, split, one))
            worst = max(worst, jw / sw, jc / sc)
            print(f"{name:12} {mode or 'text':6}  wall: --jobs {n} {jw:6.2f} s, {n} single processes {sw:6.2f} s, "
                  f"one process {ow:6.2f} s: ratio {jw / sw:.2f}x  |  cpu: {jc:6.2f} s, {sc:6.2f} s, {oc:6.2f} s: "
                  f"ratio {jc / sc:.2f}x", flush=True)
    print(f"load average now {os.getloadavg()[0]:.1f}")
    print(f"worst --jobs / N single processes (wall or cpu): {worst:.2f}x (goal < 1.0x): "
          f"{'ok' if worst < 1 else 'OVER'}")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
