"""bench/inspect_latency: what `bootforge inspect` costs per file (ROM corpus, then the
Xen kernels of bench/multiboot_inspect.py), against
the floor any construct + click tool pays (`python -c "import construct, click"`),
both measured here in the same run. Goal: <= 1.5x the floor.

    .venv/bin/python bench/inspect_latency.py [--runs N]
"""

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = sorted(glob.glob("/usr/lib/ipxe/qemu/*.rom")) + sorted(glob.glob("/usr/share/seabios/vgabios*.bin"))


def compile_bootforge():
    """Byte-compile bootforge as `pip install .` does. The floor's construct and click come
    with their .pyc files; an editable tree run with PYTHONDONTWRITEBYTECODE=1 (as here)
    would otherwise compile every bootforge module on every run (a quarter of inspect's
    time on xen.efi, cProfile: builtins.compile), which no installed bootforge pays."""
    import compileall
    compileall.compile_dir(os.path.join(REPO, "bootforge"), quiet=1)


def timed(cmd):
    """(wall seconds, CPU seconds user+sys) of one run of cmd."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def seconds(cmd):
    return timed(cmd)[0]


def median_seconds(cmd, runs):
    return statistics.median(seconds(cmd) for _ in range(runs))


def paired(cmd, floor_cmd, runs):
    """Medians (wall, CPU) of cmd and of the floor, run alternately so both see the same load.
    CPU time (user + sys) is what a loaded, shared machine distorts least."""
    pairs = [(timed(floor_cmd), timed(cmd)) for _ in range(runs)]
    med = statistics.median
    return (med(p[1][0] for p in pairs), med(p[0][0] for p in pairs),
            med(p[1][1] for p in pairs), med(p[0][1] for p in pairs))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if not CORPUS:
        sys.exit("bench: no corpus (apt-get install ipxe-qemu seabios)")
    compile_bootforge()
    py = sys.executable
    bare = median_seconds([py, "-c", "pass"], args.runs)
    floor = median_seconds([py, "-c", "import construct, click"], args.runs)
    print(f"python -c pass                    {bare * 1000:7.1f} ms")
    print(f"floor: import construct, click    {floor * 1000:7.1f} ms")
    print(f"{'file':34}{'wall':>9}{'ratio':>8}{'cpu':>10}{'ratio':>8}")
    ratios, cpu_ratios = [], []
    floor_cmd = [py, "-c", "import construct, click"]
    for path in CORPUS:
        t, f, c, fc = paired([py, "-m", "bootforge", "inspect", path], floor_cmd, args.runs)
        ratios.append(t / f)
        cpu_ratios.append(c / fc)
        print(f"{path.rsplit('/', 1)[-1]:34}{t * 1000:7.1f} ms{t / f:7.2f}x{c * 1000:7.1f} ms{c / fc:7.2f}x")
    whole = median_seconds([py, "-m", "bootforge", "inspect", "--json", *CORPUS], max(3, args.runs // 3))
    met = max(ratios) <= 1.5
    print(f"wall: median ratio {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x (goal <= 1.5x): "
          f"{'ok' if met else 'MISSED'}")
    print(f"cpu:  median ratio {statistics.median(cpu_ratios):.2f}x, worst {max(cpu_ratios):.2f}x")
    print(f"whole corpus ({len(CORPUS)} files) in one process: {whole * 1000:.1f} ms "
          f"= {whole / floor:.2f}x the floor, {(whole - floor) / len(CORPUS) * 1000:.2f} ms per file above it")
    print("Xen images (issue 5): inspect against the floor plus gunzip, and readelf -lh")
    from multiboot_inspect import xen_section

    xen_met = xen_section(args.runs)
    return 0 if met and xen_met else 1


if __name__ == "__main__":
    sys.exit(main())
