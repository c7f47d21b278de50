"""bench/inspect_latency: what `bootforge inspect` costs per file, against
the floor any construct + click tool pays (`python -c "import construct, click"`),
both measured here in the same run. Goal: <= 1.5x the floor.

    .venv/bin/python bench/inspect_latency.py [--runs N]
"""

import argparse
import glob
import statistics
import subprocess
import sys
import time

CORPUS = sorted(glob.glob("/usr/lib/ipxe/qemu/*.rom")) + sorted(glob.glob("/usr/share/seabios/vgabios*.bin"))


def seconds(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def median_seconds(cmd, runs):
    return statistics.median(seconds(cmd) for _ in range(runs))


def paired(cmd, floor_cmd, runs):
    """Median of cmd and of the floor, timed alternately so both see the same machine load."""
    pairs = [(seconds(floor_cmd), seconds(cmd)) for _ in range(runs)]
    return statistics.median(p[1] for p in pairs), statistics.median(p[0] for p in pairs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if not CORPUS:
        sys.exit("bench: no corpus (apt-get install ipxe-qemu seabios)")
    py = sys.executable
    bare = median_seconds([py, "-c", "pass"], args.runs)
    floor = median_seconds([py, "-c", "import construct, click"], args.runs)
    print(f"python -c pass                    {bare * 1000:7.1f} ms")
    print(f"floor: import construct, click    {floor * 1000:7.1f} ms")
    print(f"{'file':34}{'median':>9}{'ratio':>8}")
    ratios = []
    floor_cmd = [py, "-c", "import construct, click"]
    for path in CORPUS:
        t, f = paired([py, "-m", "bootforge", "inspect", path], floor_cmd, args.runs)
        ratios.append(t / f)
        print(f"{path.rsplit('/', 1)[-1]:34}{t * 1000:7.1f} ms{t / f:7.2f}x")
    whole = median_seconds([py, "-m", "bootforge", "inspect", "--json", *CORPUS], max(3, args.runs // 3))
    print(f"median ratio {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x (goal <= 1.5x)")
    print(f"whole corpus ({len(CORPUS)} files) in one process: {whole * 1000:.1f} ms "
          f"= {whole / floor:.2f}x the floor, {(whole - floor) / len(CORPUS) * 1000:.2f} ms per file above it")


if __name__ == "__main__":
    main()
