"""bench/dts_print: printing the DTS of a 50,003-node DTB (bench/memmap.py's large_dts, compiled
by dtc), bootforge against `dtc -I dtb -O dts` in the same run, best of N. Goal: <= 1.5x dtc.

    .venv/bin/python bench/dts_print.py [--runs N]
"""

import argparse
import os
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
        dtc_argv = [dtc, "-q", "-I", "dtb", "-O", "dts", "-o", "/dev/null", str(dtb)]
        # Alternate the runs so both tools see the same load on a shared machine.
        walls = {"dtc": [], "inproc": [], "cli": [], "tree": []}
        cpu_dtc, cpu_inproc = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.Popen(dtc_argv)
            _, _, usage = os.wait4(proc.pid, 0)
            walls["dtc"].append(time.perf_counter() - start)
            cpu_dtc.append(usage.ru_utime + usage.ru_stime)
            start, cpu = time.perf_counter(), time.process_time()
            dtb_to_dts(data)
            walls["inproc"].append(time.perf_counter() - start)
            cpu_inproc.append(time.process_time() - cpu)
            start = time.perf_counter()
            subprocess.run(cli, stdout=subprocess.DEVNULL, check=True)
            walls["cli"].append(time.perf_counter() - start)
            start = time.perf_counter()
            to_dts(parse_dtb(data))
            walls["tree"].append(time.perf_counter() - start)
        t_dtc = min(walls["dtc"])
        rows = [("dtc -I dtb -O dts (process)", t_dtc),
                ("bootforge dtb_to_dts (in-process)", min(walls["inproc"])),
                ("bootforge inspect -O dts (process)", min(walls["cli"])),
                ("bootforge parse_dtb + to_dts (tree API)", min(walls["tree"]))]
        for name, t in rows:
            print(f"  {name:<42} {t:8.3f} s  {t / t_dtc:5.2f}x dtc")
        print(f"  CPU time (user+sys): dtb_to_dts {min(cpu_inproc) / min(cpu_dtc):.2f}x dtc's")
        met = max(rows[1][1], rows[2][1]) / t_dtc <= 1.5
        print(f"  goal <= 1.5x dtc (in-process and as a process): {'ok' if met else 'MISSED'}")
        return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
