"""Run fuzz harnesses for a time budget each and print executions, crash classes and
hangs per family. See README.md. Usage:

    nice -n 19 .venv/bin/python tests/fuzz/run.py [--seconds 150] [--plain] [FAMILY ...]
"""

import argparse
import re
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
            "signatures": "fuzz_signatures.py", "varstore": "fuzz_varstore.py"}
MAX_LEN = {"rom": 262144, "multiboot": 400000, "fdt": 262144, "efi-compress": 16384, "images": 1 << 20,
           "pe": 1 << 20, "configs": 65536, "dts": 65536, "fit": 65536, "signatures": 65536, "varstore": 1 << 20}


def run_family(family, seconds, timeout, plain):
    deadline = time.monotonic() + seconds
    runs = hangs = ooms = starts = 0
    log = WORK / family / "run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as logf:
        while (left := int(deadline - time.monotonic())) > 5:
            starts += 1
            cmd = [sys.executable, str(HERE / FAMILIES[family]), f"-max_total_time={left}", f"-timeout={timeout}",
                   "-rss_limit_mb=3072", "-print_final_stats=1"]
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
    return {"family": family, "seconds": seconds, "executions": runs, "crash_classes": classes,
            "hangs": hangs, "out_of_memory": ooms, "starts": starts}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--timeout", type=int, default=20, help="seconds one input may take before it is a hang")
    ap.add_argument("--plain", action="store_true", help="random mutation, no atheris")
    args = ap.parse_args()
    for family in args.families:
        r = run_family(family, args.seconds, args.timeout, args.plain)
        print(f"{r['family']:<13} {r['executions']:>9} executions in {r['seconds']} s, "
              f"{len(r['crash_classes'])} crash classes, {r['hangs']} hangs, {r['out_of_memory']} OOM "
              f"({r['starts']} start(s))", flush=True)
        for c in r["crash_classes"]:
            print(f"    {c}", flush=True)


if __name__ == "__main__":
    main()
