"""bench/load: placement time against the module count (goal: <= 1 s at 1,000 modules).

    .venv/bin/python bench/load.py

Runs each policy on qemu-pc-seabios:4G with 100, 1,000 and 10,000 modules of
assorted sizes (1 B .. 64 KiB; no files are read), and prints seconds and
the growth exponent between counts.
"""

import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bootforge.fileio import read_input  # noqa: E402
from bootforge.loader.image import read_kernel  # noqa: E402
from bootforge.loader.platforms import resolve  # noqa: E402
from bootforge.loader.policies import policy  # noqa: E402
from bootforge.loader.result import LoadRequest, ModuleSpec  # noqa: E402

KERNELS = {"mb1": REPO / "tests/data/load-root/boot/kernel-mb1", "mb2": REPO / "tests/data/load-root/boot/kernel"}
LOADERS = {"grub-pc-mb2": "mb2", "grub-pc-mb1": "mb1", "qemu-mb1": "mb1", "syslinux-mb1": "mb1"}
COUNTS = (100, 1000, 10000)


def modules(n):
    return [ModuleSpec(f"/m{i}", f"/boot/m{i}", f"arg{i}", 1 + (i * 7919) % 65536) for i in range(n)]


def main():
    platform = resolve("qemu-pc-seabios:4G")
    worst = 0.0
    print(f"{'loader':<14}" + "".join(f"{n:>12,}" for n in COUNTS) + "   exponent")
    for loader, proto in LOADERS.items():
        kernel = read_kernel(KERNELS[proto], read_input(KERNELS[proto]))
        times = []
        for n in COUNTS:
            req = LoadRequest(kernel, "/boot/kernel", "a=b", modules(n), platform, loader)
            t = time.perf_counter()
            res = policy(loader)(req)
            times.append(time.perf_counter() - t)
            assert len(res.modules) == n
        worst = max(worst, times[1])
        exps = [math.log(times[i + 1] / times[i]) / math.log(COUNTS[i + 1] / COUNTS[i]) for i in range(2)]
        print(f"{loader:<14}" + "".join(f"{t:>11.3f}s" for t in times) + "   " +
              " / ".join(f"{e:.2f}" for e in exps))
    print(f"slowest at 1,000 modules: {worst:.3f} s (goal <= 1 s): {'ok' if worst <= 1 else 'MISSED'}")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
