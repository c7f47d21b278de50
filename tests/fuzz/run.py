"""Run fuzz harnesses for a budget each and print executions, CPU seconds, crash classes and
hangs per family. See README.md. Usage:

    nice -n 19 .venv/bin/python tests/fuzz/run.py [--seconds 150] [--cpu-seconds S]
        [--executions N] [--plain] [FAMILY ...]

A family stops at whichever comes first: --seconds of wall time, --cpu-seconds of the
harness's own CPU time (what a niced run on a shared machine really got), or --executions.
"""

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import WORK  # noqa: E402

FAMILIES = {"rom": "fuzz_rom.py", "mbdump": "fuzz_mbdump.py", "multiboot": "fuzz_multiboot.py",
            "memmap": "fuzz_memmap.py", "fdt": "fuzz_fdt.py", "efi-compress": "fuzz_efi_compress.py",
            "recipes": "fuzz_recipes.py", "images": "fuzz_images.py", "pe": "fuzz_pe.py",
            "configs": "fuzz_configs.py", "dts": "fuzz_dts.py", "fit": "fuzz_fit.py",
            "signatures": "fuzz_signatures.py", "varstore": "fuzz_varstore.py", "grub-core": "fuzz_grub_core.py",
            "fdt-overlay": "fuzz_fdt_overlay.py", "inspect-rest": "fuzz_inspect_rest.py",
            "load-kernel": "fuzz_load_kernel.py", "pcrs": "fuzz_pcrs.py",
            "load-image": "fuzz_load_image.py", "sign": "fuzz_sign.py"}
MAX_LEN = {"rom": 262144, "multiboot": 400000, "fdt": 262144, "efi-compress": 16384, "images": 1 << 20,
           "pe": 1 << 20, "configs": 65536, "dts": 65536, "fit": 65536, "signatures": 65536, "varstore": 1 << 20,
           "grub-core": 1 << 19, "fdt-overlay": 65536, "inspect-rest": 1 << 20,
           "load-kernel": 1 << 19, "pcrs": 1 << 19,
           "load-image": (4 << 20) + 512, "sign": 1 << 20}


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_family(family, seconds, timeout, plain, cpu_seconds=None, executions=None):
    deadline = time.monotonic() + seconds
    cpu_start = children_cpu()
    runs = hangs = ooms = starts = 0
    log = WORK / family / "run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as logf:
        while (left := int(deadline - time.monotonic())) > 5:
            if cpu_seconds is not None:
                # A process's wall time is never less than its CPU time, so a run of the CPU
                # budget's rest (at least 2 minutes: start-up instruments every module) cannot
                # overshoot it by more than that minimum.
                cpu_left = cpu_seconds - (children_cpu() - cpu_start)
                if cpu_left <= 5:
                    break
                left = min(left, max(120, int(cpu_left)))
            if executions is not None and runs >= executions:
                break
            starts += 1
            cmd = [sys.executable, str(HERE / FAMILIES[family]), f"-max_total_time={left}", f"-timeout={timeout}",
                   "-rss_limit_mb=3072", "-print_final_stats=1"]
            if executions is not None:
                cmd.append(f"-runs={executions - runs}")
            if family in MAX_LEN:
                cmd.append(f"-max_len={MAX_LEN[family]}")
            dictionary = HERE / f"{family}.dict"
            if dictionary.exists() and not plain:
                cmd.append(f"-dict={dictionary}")
            if plain:
                cmd.append("--plain")
            # The grace is for start-up: instrumenting every bootforge module takes minutes when
            # the harness runs niced on a loaded machine (a 5-minute run was killed at +200 s).
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  errors="replace", timeout=left + 4 * timeout + 900)
            logf.write(proc.stderr)
            done = re.findall(r"^Done (\d+) runs", proc.stderr, re.M)
            if done:
                runs += int(done[-1])
            else:  # stopped early (timeout / OOM): the last status line counts
                status = re.findall(r"^#(\d+)\s", proc.stderr, re.M)
                runs += int(status[-1]) if status else 0
            hangs += len(re.findall(r"ALARM: working on the last Unit", proc.stderr))
            ooms += len(re.findall(r"out-of-memory", proc.stderr))
            if proc.returncode and not (hangs or ooms) and not done:
                sys.stderr.write(proc.stderr[-3000:])
                break
    classes = sorted(p.read_text().splitlines()[0] for p in (WORK / family / "crashes").glob("*.txt"))
    return {"family": family, "seconds": seconds, "cpu_seconds": round(children_cpu() - cpu_start),
            "executions": runs, "crash_classes": classes, "hangs": hangs, "out_of_memory": ooms,
            "starts": starts}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--cpu-seconds", type=int, help="stop a family after this much of its own CPU time")
    ap.add_argument("--executions", type=int, help="stop a family after this many executions")
    ap.add_argument("--timeout", type=int, default=20, help="seconds one input may take before it is a hang")
    ap.add_argument("--plain", action="store_true", help="random mutation, no atheris")
    args = ap.parse_args()
    for family in args.families:
        r = run_family(family, args.seconds, args.timeout, args.plain, args.cpu_seconds, args.executions)
        print(f"{r['family']:<13} {r['executions']:>9} executions in {r['seconds']} s budget, "
              f"{r['cpu_seconds']} s CPU, "
              f"{len(r['crash_classes'])} crash classes, {r['hangs']} hangs, {r['out_of_memory']} OOM "
              f"({r['starts']} start(s))", flush=True)
        for c in r["crash_classes"]:
            print(f"    {c}", flush=True)


if __name__ == "__main__":
    main()
