"""Benchmark: bootforge's pure-Python UEFI decompressor against EDK2's C decompressor.

The corpus of bench/efi_compress.py (iPXE EFI drivers, memtest86+, GRUB x86_64-efi
modules) is compressed once per variant by EDK2 (uefi_firmware's EfiCompress /
TianoCompress) and by bootforge; then rounds interleave EDK2's C decompressor and
bootforge's decoder on both sets of streams (CPU time of this process, so other load
weighs less; best and median of the rounds). Prints output MB/s and how many times
longer bootforge takes than EDK2's C on the same streams; goal: >= 15 MB/s (best) on every
set (exit 1 when missed). Run:
nice .venv/bin/python bench/efi_decompress.py [--rounds N] [--grub-every N]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_compress_corpus import corpus  # noqa: E402
from uefi_firmware import efi_compressor  # noqa: E402

from bootforge.compress import compress, decompress  # noqa: E402

EDK2 = {"efi": (efi_compressor.EfiCompress, efi_compressor.EfiDecompress),
        "tiano": (efi_compressor.TianoCompress, efi_compressor.TianoDecompress)}

GOAL_MBPS = 15


def cpu_time(function, streams):
    start = time.process_time()
    results = [function(s) for s in streams]
    return results, time.process_time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--grub-every", type=int, default=1, help="use every Nth GRUB module only")
    args = parser.parse_args()
    files = [data for _, data in corpus(args.grub_every)]
    total = sum(map(len, files))
    print(f"corpus: {len(files)} files, {total} bytes; load average before: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"{'format':6} {'streams':8} {'MB/s best':>9} {'median':>7} {'EDK2 C MB/s':>11} {'(EDK2 x)':>9}")
    slowest = float("inf")
    for fmt, (edk2_compress, edk2_decompress) in EDK2.items():
        streams = {"bootforge": [compress(d, fmt) for d in files],
                   "EDK2": [edk2_compress(d, len(d)) for d in files]}
        times = {(who, decoder): [] for who in streams for decoder in ("bootforge", "C")}
        for _ in range(args.rounds):
            for who, items in streams.items():
                decoded, spent = cpu_time(lambda s: edk2_decompress(s, len(s)), items)
                assert decoded == files, f"EDK2 cannot decode the {who} streams"
                times[who, "C"].append(spent)
                decoded, spent = cpu_time(lambda s: decompress(s, fmt), items)
                assert decoded == files, f"bootforge cannot decode the {who} streams"
                times[who, "bootforge"].append(spent)
        for who in streams:
            ours, theirs = times[who, "bootforge"], times[who, "C"]
            slowest = min(slowest, total / min(ours) / 1e6)
            print(f"{fmt:6} {who:9} {total / min(ours) / 1e6:8.2f} {total / statistics.median(ours) / 1e6:7.2f} "
                  f"{total / min(theirs) / 1e6:11.1f} {min(ours) / min(theirs):8.0f}x")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("(MB/s of output; x: how many times longer pure Python takes than EDK2's C, best of each)")
    print(f"slowest set: {slowest:.2f} MB/s (goal >= {GOAL_MBPS} MB/s): {'ok' if slowest >= GOAL_MBPS else 'MISSED'}")
    return 0 if slowest >= GOAL_MBPS else 1


if __name__ == "__main__":
    sys.exit(main())
