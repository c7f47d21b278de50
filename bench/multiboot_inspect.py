"""bench/multiboot_inspect: `bootforge inspect` on the Xen images (xen.gz: gunzip + ELF32 with
both headers; xen.efi: PE32+ with both headers) next to `readelf -lh` on the gunzipped ELF and the
floor any construct + click tool pays (`python -c "import construct, click"`), in the same run.
Goal (issue 5): inspect <= 1.5x (floor + gunzip time).

    .venv/bin/python bench/multiboot_inspect.py [--runs N]
"""

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

from inspect_latency import compile_bootforge, paired

XEN_GZ = "/boot/xen-4.17-amd64.gz"
XEN_EFI = "/boot/xen-4.17-amd64.efi"


def gunzip_seconds(path, runs):
    data = Path(path).read_bytes()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        zlib.decompressobj(wbits=31).decompress(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def xen_section(runs):
    """Print the Xen rows; whether they meet the goal. Called by bench/inspect_latency.py too."""
    if not Path(XEN_GZ).exists() or not Path(XEN_EFI).exists():
        sys.exit("bench: no Xen images (apt-get install xen-hypervisor-4.17-amd64)")
    compile_bootforge()
    py = sys.executable
    floor_cmd = [py, "-c", "import construct, click"]
    gz = gunzip_seconds(XEN_GZ, runs)
    print(f"gunzip {Path(XEN_GZ).name} in-process       {gz * 1000:7.1f} ms")
    worst = 0.0
    for path, extra in ((XEN_GZ, gz), (XEN_EFI, 0.0)):
        t, f, _, _ = paired([py, "-m", "bootforge", "inspect", path], floor_cmd, runs)
        ratio = t / (f + extra)
        worst = max(worst, ratio)
        print(f"inspect {Path(path).name:26} {t * 1000:7.1f} ms  floor {f * 1000:6.1f} ms"
              f"{' + gunzip' if extra else '         '}  ratio {ratio:5.2f}x")
    if shutil.which("readelf"):
        with tempfile.NamedTemporaryFile(suffix=".elf") as tmp:
            tmp.write(gzip.decompress(Path(XEN_GZ).read_bytes()))
            tmp.flush()
            t, f, _, _ = paired(["readelf", "-lh", tmp.name], floor_cmd, runs)
            print(f"readelf -lh (gunzipped ELF)        {t * 1000:7.1f} ms  ({t / f:4.2f}x the floor)")
    met = worst <= 1.5
    print(f"worst ratio {worst:.2f}x (goal <= 1.5x): {'ok' if met else 'MISSED'}")
    return met


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    return 0 if xen_section(parser.parse_args().runs) else 1


if __name__ == "__main__":
    sys.exit(main())
