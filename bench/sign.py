"""Benchmark, one run: signing a 60 MiB UKI with `bootforge sign` against `sbsign`, and
building that UKI with `bootforge build` against the equivalent objcopy command (target:
both <= 1.0x).

The UKI: Debian's kernel and systemd-stub, .osrel, .cmdline, .uname and a 60 MiB .initrd.
The signers get the same unsigned UKI, key and certificate (Debian's snakeoil pair, the key
decrypted with openssl: sbsign takes no passphrase); the objcopy command gets bootforge's
section addresses. Each command runs as a user runs it (a new process, Python's start-up
counted), alternating, best and median of --runs wall times; the CPU time (user + system, the
command's own child processes included; the split is the least run's) is shown beside, since
on a loaded machine the wall ratio mostly follows it. The load average is printed before and
after (2 shared cores: the wall ratios depend on it).
Run: .venv/bin/python bench/sign.py [--runs N]
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL = "/boot/vmlinuz-6.1.0-57-amd64"
STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"
CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
INITRD_MIB = 60


def cpu():
    """(user, system) CPU seconds of the waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def wall(cmd, cwd):
    """(wall seconds, (user, system) CPU seconds) of one run of *cmd*."""
    cpu_before, start = cpu(), time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, tuple(after - before for after, before in zip(cpu(), cpu_before))


def race(pairs, runs, cwd):
    times = {name: [] for name, _ in pairs}
    cpus = {name: [] for name, _ in pairs}
    for _ in range(runs):
        for name, cmd in pairs:
            seconds, cpu_seconds = wall(cmd, cwd)
            times[name].append(seconds)
            cpus[name].append(cpu_seconds)
    return times, cpus


def show(title, measured, ours, peer):
    times, cpus = measured
    print(title)
    for name, t in times.items():
        user, system = min(cpus[name], key=sum)
        print(f"  {name:<10} best {min(t):.3f} s  median {statistics.median(t):.3f} s  "
              f"(CPU best {user + system:.3f} s: user {user:.3f}, system {system:.3f})")
    print(f"  ratio {ours}/{peer}: best {min(times[ours]) / min(times[peer]):.2f}x  "
          f"median {statistics.median(times[ours]) / statistics.median(times[peer]):.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for f in (KERNEL, STUB, KEY, CERT):
        if not Path(f).exists():
            sys.exit(f"bench/sign.py: {f} missing (make deps: linux-image-amd64, systemd-boot-efi, ovmf)")
    with tempfile.TemporaryDirectory(prefix="bench-sign-") as tmp:
        tmp = Path(tmp)
        (tmp / "initrd.img").write_bytes(random.Random(20).randbytes(INITRD_MIB << 20))
        (tmp / "os-release").write_text('NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n')
        (tmp / "cmdline.txt").write_text("console=ttyS0 quiet")
        (tmp / "uname.txt").write_text("6.1.0-57-amd64")
        subprocess.run(["openssl", "pkey", "-in", KEY, "-passin", "pass:snakeoil", "-out", "key.pem"], cwd=tmp,
                       check=True, capture_output=True)
        (tmp / "uki.toml").write_text(f'[uki]\nkernel = "{KERNEL}"\ninitrd = ["initrd.img"]\n'
                                      'cmdline = "console=ttyS0 quiet"\nos_release = "os-release"\n'
                                      'uname = "6.1.0-57-amd64"\noutput = "uki.efi"\n')
        build = [sys.executable, "-m", "bootforge", "build", "--json", "uki.toml"]
        summary = json.loads(subprocess.run(build, cwd=tmp, check=True, capture_output=True, text=True).stdout)
        files = {".osrel": "os-release", ".cmdline": "cmdline.txt", ".uname": "uname.txt", ".initrd": "initrd.img",
                 ".linux": KERNEL}
        objcopy = ["objcopy"]
        for s in summary["sections"]:
            objcopy += ["--add-section", f"{s['name']}={files[s['name']]}",
                        "--change-section-vma", f"{s['name']}={s['virtual_address']:#x}"]
        objcopy += [STUB, "objcopy.efi"]
        size = (tmp / "uki.efi").stat().st_size
        sign = [sys.executable, "-m", "bootforge", "sign", "uki.efi", "--key", "key.pem", "--cert", CERT,
                "-o", "bootforge.signed.efi"]
        sbsign = ["sbsign", "--key", "key.pem", "--cert", CERT, "--output", "sbsign.signed.efi", "uki.efi"]
        load_before = os.getloadavg()[0]
        signing = race([("bootforge", sign), ("sbsign", sbsign)], args.runs, tmp)
        subprocess.run(["sbverify", "--cert", CERT, "bootforge.signed.efi"], cwd=tmp, check=True, capture_output=True)
        building = race([("bootforge", build), ("objcopy", objcopy)], args.runs, tmp)
        print(f"UKI of {size / (1 << 20):.1f} MiB ({INITRD_MIB} MiB initrd), {args.runs} runs each; "
              f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
        show("signing (bootforge sign vs sbsign):", signing, "bootforge", "sbsign")
        show("building (bootforge build vs objcopy):", building, "bootforge", "objcopy")


if __name__ == "__main__":
    main()
