"""Benchmark: `bootforge build` of a UKI with a 60 MiB initrd against the equivalent
objcopy command (issue 14: at most 1.5x), side by side in one run.

Both make the same sections from the same files (Debian's kernel and systemd-stub,
.osrel, .cmdline, .uname, a 60 MiB .initrd, .linux last) at the same addresses:
the objcopy command gets bootforge's section addresses, so the outputs differ only
in what objcopy rewrites on its own. Each command runs as a user runs it (a new
process: bootforge's Python start-up counts), alternating, best and median of
--runs wall times. Run: .venv/bin/python bench/uki.py [--runs N]
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"
STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
INITRD_MIB = 60


def wall(cmd, cwd):
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for f in (KERNEL, STUB):
        if not Path(f).exists():
            sys.exit(f"bench/uki.py: {f} missing (make deps: linux-image-amd64, systemd-boot-efi)")
    with tempfile.TemporaryDirectory(prefix="bench-uki-") as tmp:
        tmp = Path(tmp)
        (tmp / "initrd.img").write_bytes(random.Random(14).randbytes(INITRD_MIB << 20))
        (tmp / "os-release").write_text('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n')
        (tmp / "cmdline.txt").write_text("console=ttyS0 quiet")
        (tmp / "uki.toml").write_text(f'[uki]\nkernel = "{KERNEL}"\ninitrd = ["initrd.img"]\n'
                                      'cmdline = "console=ttyS0 quiet"\nos_release = "os-release"\n'
                                      'uname = "6.1.0-57-amd64"\noutput = "bootforge.efi"\n')
        (tmp / "uname.txt").write_text("6.1.0-57-amd64")
        bootforge = [sys.executable, "-m", "bootforge", "build", "--json", "uki.toml"]
        summary = json.loads(subprocess.run(bootforge, cwd=tmp, check=True, capture_output=True, text=True).stdout)
        objcopy = ["objcopy"]
        files = {".osrel": "os-release", ".cmdline": "cmdline.txt", ".uname": "uname.txt", ".initrd": "initrd.img",
                 ".linux": KERNEL}
        for s in summary["sections"]:
            objcopy += ["--add-section", f"{s['name']}={files[s['name']]}",
                        "--change-section-vma", f"{s['name']}={s['virtual_address']:#x}"]
        objcopy += [STUB, "objcopy.efi"]
        times = {"bootforge": [], "objcopy": []}
        for _ in range(args.runs):
            times["bootforge"].append(wall(bootforge, tmp))
            times["objcopy"].append(wall(objcopy, tmp))
        size = (tmp / "bootforge.efi").stat().st_size
        print(f"UKI with a {INITRD_MIB} MiB initrd: bootforge {size} bytes, objcopy "
              f"{(tmp / 'objcopy.efi').stat().st_size} bytes; {args.runs} runs each, alternating")
        for name, ts in times.items():
            print(f"  {name:9}  best {min(ts):.3f} s  median {statistics.median(ts):.3f} s")
        best = min(times["bootforge"]) / min(times["objcopy"])
        median = statistics.median(times["bootforge"]) / statistics.median(times["objcopy"])
        met = best <= 1.5
        print(f"  ratio bootforge / objcopy: best {best:.2f}x, median {median:.2f}x (goal <= 1.5x): "
              f"{'ok' if met else 'MISSED'}")
        return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
