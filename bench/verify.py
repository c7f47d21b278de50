"""bench/verify: `bootforge verify`'s boot against a bare QEMU boot of the same medium to
the kernel's entry (goals: SeaBIOS <= 1.5x, OVMF <= 1.2x), ratios measured in one run.

    .venv/bin/python bench/verify.py [--runs N]

Per firmware: the dump kernel with two modules (recipes/load-grub-pc-mb2.toml; on OVMF
the same kernel and modules on qemu-q35-ovmf:256M through GRUB x86_64-efi). The medium
is built once. "bare" boots it with the same runner, machine and memory and no
gdbstub, and stops when the dump kernel's first byte reaches port 0xE9 (its first
instruction writes there: the kernel's entry). "verify" is what verify does after the
medium exists: QEMU halted with the gdbstub, breakpoint at the entry, continue, read the
MBI and everything it points to, hash each module's guest memory, compare with the
prediction. Medians of N runs, wall-clock seconds; "verify total" also builds the
medium (grub-mkrescue) and predicts, as a user's `bootforge verify` does.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bootforge.loader.policies import policy  # noqa: E402
from bootforge.loader.recipe import read_recipe  # noqa: E402
from bootforge.qemu.media import BootFile, build_medium  # noqa: E402
from bootforge.qemu.runner import QemuRun  # noqa: E402
from bootforge.verify.capture import capture, entry_point  # noqa: E402
from bootforge.verify.run import compare_rows, machine_for, refusal_reader, verify  # noqa: E402

RECIPE = REPO / "recipes" / "load-grub-pc-mb2.toml"
CASES = [("SeaBIOS", "qemu-pc-seabios:256M", "grub-pc-mb2", 1.5), ("OVMF", "qemu-q35-ovmf:256M", "grub-efi-mb2", 1.2)]


def bare(machine, medium, work):
    with QemuRun(machine, medium, workdir=work, firmware_log=False) as run:
        run.start()
        run.wait_until(lambda r: r.debugcon_path.exists() and r.debugcon_path.stat().st_size > 0, 120, poll=0.005)
        return run.elapsed()


def verify_boot(machine, medium, work, req, res, entry, kind):
    t = time.monotonic()
    with QemuRun(machine, medium, workdir=work, firmware_log=False, gdb=True) as run:
        run.start()
        cap = capture(run, entry, 120, refusal_reader(kind))
    rows = compare_rows(res, cap, req, entry)
    assert cap.status == "entry" and all(r.ok for r in rows if r.counted), [r.name for r in rows if not r.ok]
    return time.monotonic() - t


def main(argv):
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    print(f"{'firmware':<8} {'bare (s)':>9} {'verify (s)':>10} {'ratio':>6} {'goal':>5} {'verify total (s)':>16}")
    for name, platform, loader, goal in CASES:
        req = read_recipe(RECIPE, platform, loader)
        res = policy(loader)(req)
        machine, kind = machine_for(req.platform, loader)
        entry, _how, _others = entry_point(req.kernel, res, req.platform.memory_bytes)
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
            tmp = Path(tmp)
            medium = build_medium(kind, tmp / "medium", BootFile(Path(req.kernel.path), req.kernel_loader_path,
                                                                 req.cmdline),
                                  [BootFile(Path(m.path), m.loader_path, m.cmdline) for m in req.modules],
                                  res.protocol)
            b, v, total = [], [], []
            n = runs if name == "SeaBIOS" else max(2, runs // 2)
            for i in range(n):     # interleaved, so both see the same machine load
                b.append(bare(machine, medium, tmp / f"b{i}"))
                v.append(verify_boot(machine, medium, tmp / f"v{i}", req, res, entry, kind))
            t = time.monotonic()
            report = verify(RECIPE, platform, loader)
            total.append(time.monotonic() - t)
            assert report.ok
        mb, mv = statistics.median(b), statistics.median(v)
        print(f"{name:<8} {mb:9.2f} {mv:10.2f} {mv / mb:6.2f} {goal:5.1f} {statistics.median(total):16.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
