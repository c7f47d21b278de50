"""bench/memmap: Linux-exact sanitize at 10k / 100k / 1M random overlapping E820
entries (times and growth exponent; goal <= 10 s at 1M, exponent <= 1.15), and
parsing a 50,000-node DTB (compiled by dtc) with bootforge next to
`dtc -I dtb -O dts` and the PyPI package `fdt`, in the same run, as ratios.

    .venv/bin/python bench/memmap.py [--runs N] [--seed S]

`fdt` is a bench peer only (pip install fdt); without it its rows say so.
"""

import argparse
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootforge.fdt import parse_dtb, to_dts  # noqa: E402
from bootforge.formats.e820 import E820Type  # noqa: E402
from bootforge.memmap.ops import sanitize_entries  # noqa: E402

# Types drawn at random, RAM and reserved the most often; plain ints as the readers give them.
E820_TYPES = [int(t) for t in [E820Type.RAM] * 3 + [E820Type.RESERVED] * 2
              + [E820Type.ACPI, E820Type.NVS, E820Type.UNUSABLE, E820Type.PMEM, E820Type.PRAM]]


def random_entries(n, rng):
    """n entries over a 1 TiB space, sizes up to 1 GiB: heavily overlapping."""
    return [(rng.randrange(0, 1 << 40) & ~0xFFF, rng.randrange(1, 1 << 30) & ~0xFFF or 0x1000,
             rng.choice(E820_TYPES)) for _ in range(n)]


def best_of(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_sanitize(runs, seed):
    rng = random.Random(seed)
    sizes = [10_000, 100_000, 1_000_000]
    results = {}
    for n in sizes:
        entries = random_entries(n, rng)
        out = []
        t = best_of(lambda: out.append(sanitize_entries(entries)), 1 if n >= 1_000_000 else runs)
        results[n] = (t, len(out[-1]))
        print(f"  sanitize {n:>9,} entries: {t:8.3f} s  -> {len(out[-1]):,} entries")
    exponent = math.log(results[sizes[-1]][0] / results[sizes[0]][0]) / math.log(sizes[-1] / sizes[0])
    verdict = "ok" if results[sizes[-1]][0] <= 10 and exponent <= 1.15 else "MISSED"
    print(f"  growth exponent 10k -> 1M: {exponent:.3f}  (goal <= 10 s at 1M, exponent <= 1.15: {verdict})")
    return verdict == "ok"


def large_dts(buses=500, devices=99):
    """A tree of 3 + buses * (1 + devices) nodes (50,003 with the defaults)."""
    out = ["/dts-v1/;", "/ {", "\t#address-cells = <2>;", "\t#size-cells = <2>;",
           '\tcompatible = "bootforge,bench";',
           '\tmemory@80000000 {\n\t\tdevice_type = "memory";\n\t\treg = <0x0 0x80000000 0x2 0x0>;\n\t};',
           "\tsoc {", "\t\t#address-cells = <2>;",
           "\t\t#size-cells = <2>;", "\t\tranges;"]
    for b in range(buses):
        out.append(f"\t\tbus@{b:x}00000 {{")
        out.append('\t\t\tcompatible = "simple-bus";')
        out.append("\t\t\t#address-cells = <2>;\n\t\t\t#size-cells = <2>;\n\t\t\tranges;")
        for d in range(devices):
            addr = (b << 20) | (d << 12)
            out.append(f"\t\t\tdev@{addr:x} {{")
            out.append(f'\t\t\t\tcompatible = "vendor,dev{d % 17}", "generic-dev";')
            out.append(f"\t\t\t\treg = <0x0 0x{addr:x} 0x0 0x1000>;")
            out.append(f"\t\t\t\tinterrupts = <0 {d} 4>;")
            out.append('\t\t\t\tstatus = "okay";')
            out.append("\t\t\t};")
        out.append("\t\t};")
    out += ["\t};", "};", ""]
    return "\n".join(out)


def bench_dtb(runs):
    dtc = shutil.which("dtc")
    if dtc is None:
        print("  dtc not installed: the DTB bench needs it (apt-get install device-tree-compiler)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        dts, dtb = Path(tmp) / "big.dts", Path(tmp) / "big.dtb"
        dts.write_text(large_dts())
        subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(dtb), str(dts)], check=True)
        data = dtb.read_bytes()
        tree = parse_dtb(data)
        print(f"  DTB: {len(data):,} bytes, {tree.node_count():,} nodes (compiled by {dtc})")
        reference = subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                                   text=True, check=True).stdout
        assert to_dts(tree) == reference, "bootforge's DTS differs from dtc's"

        rows = []

        def run_dtc():
            subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts", "-o", "/dev/null", str(dtb)], check=True)

        t_dtc = best_of(run_dtc, runs)
        rows.append(("dtc -I dtb -O dts (process)", t_dtc))
        rows.append(("bootforge parse_dtb", best_of(lambda: parse_dtb(data), runs)))
        rows.append(("bootforge parse_dtb + to_dts", best_of(lambda: to_dts(parse_dtb(data)), runs)))

        def run_cli():
            proc = subprocess.run([sys.executable, "-m", "bootforge", "inspect", str(dtb)],
                                  stdout=subprocess.DEVNULL)
            assert proc.returncode == 0, f"bootforge inspect exit status {proc.returncode}"

        rows.append(("bootforge inspect (process)", best_of(run_cli, runs)))
        try:
            import fdt as pyfdt
        except ImportError:
            pyfdt = None
        if pyfdt is None:
            rows.append(("PyPI fdt: NOT INSTALLED (pip install fdt)", None))
        else:
            rows.append((f"PyPI fdt {getattr(pyfdt, '__version__', '?')} parse_dtb",
                         best_of(lambda: pyfdt.parse_dtb(data), runs)))
            rows.append((f"PyPI fdt {getattr(pyfdt, '__version__', '?')} parse_dtb + to_dts",
                         best_of(lambda: pyfdt.parse_dtb(data).to_dts(), runs)))
        for name, t in rows:
            if t is None:
                print(f"  {name}")
            else:
                print(f"  {name:<42} {t:8.3f} s  {t / t_dtc:6.1f}x dtc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="best of N (1M sanitize runs once)")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    print("sanitize (Linux e820__update_table semantics):")
    ok = bench_sanitize(args.runs, args.seed)
    print("large DTB:")
    bench_dtb(args.runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
