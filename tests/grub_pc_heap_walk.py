"""GRUB i386-pc's heap as it is when GRUB enters a kernel, block by block (a measuring tool, not a
test; the data behind grub_pc.py's HEAP_IN_USE):

    .venv/bin/python tests/grub_pc_heap_walk.py [--memory MIB] [--bss HEX] CMDLEN...

For each command-line length it boots, under real GRUB i386-pc (bootforge's grub-mkrescue ISO,
qemu-pc-seabios), a probe kernel: Multiboot2 with a relocatable tag (min 2 MiB, align 2 MiB,
preference high) whose code is `cli; hlt`, so memory stays as GRUB left it. When the CPU sits in
the probe, QEMU is stopped and the top 64 MiB below the end of low RAM saved (monitor pmemsave);
then kern/mm.c's blocks are walked there: a 16-byte header on i386 (mm_private.h: next, size in
16-byte cells, magic GRUB_MM_ALLOC_MAGIC 0x6db08fa4 or GRUB_MM_FREE_MAGIC 0x2d3c2808, padding)
from the lowest header to the top of the heap region. What is not a header (the relocator's
chunks carved from free blocks: its trampoline and GDT) is a gap. It prints, per boot, the
used/free/gap bytes, the 0x8010-byte blocks (GRUB's disk cache: kern/disk.c, 64-sector blocks
and a header), the lowest used block and where GRUB placed the probe.
"""

import argparse
import bisect
import collections
import json
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bootforge.qemu.media import BootFile, grub_iso, image_medium  # noqa: E402
from bootforge.qemu.monitor import PROMPT  # noqa: E402
from bootforge.qemu.runner import Machine, QemuRun  # noqa: E402

ALLOC, FREE = 0x6db08fa4, 0x2d3c2808
CELL = 16
DISK_CACHE_BLOCK = 0x8010
SAVED = 64 << 20
PROBE_LOOP = (0x31, 0x32)       # hlt, jmp: offsets of the probe's loop from its 2 MiB base
PROBE_S = """    .section .mb2, "a"
    .align 8
hdr: .long 0xe85250d6, 0, hdr_end - hdr, -(0xe85250d6 + (hdr_end - hdr))
    .align 8
    .short 10, 0
    .long 24
    .long 0x200000, 0xfffff000, 0x200000, 2
    .align 8
    .short 0, 0
    .long 8
hdr_end:
    .text
    .code32
    .globl _start
_start: cli
1:  hlt
    jmp 1b
    .bss
    .space {bss}
"""
PROBE_LD = "ENTRY(_start)\nSECTIONS {\n  . = 0x200000;\n  .text : { *(.mb2) *(.text) }\n  .bss : { *(.bss) }\n}\n"


def probe_kernel(work, bss):
    (work / "probe.S").write_text(PROBE_S.replace("{bss}", hex(bss)))
    (work / "probe.ld").write_text(PROBE_LD)
    subprocess.run(["as", "--32", "-o", str(work / "probe.o"), str(work / "probe.S")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-T", str(work / "probe.ld"), "--build-id=none", "--no-warn-rwx-segments", "-z",
                    "max-page-size=0x1000", "-o", str(work / "probe.elf"), str(work / "probe.o")], check=True)
    return work / "probe.elf"


def monitor(sock, command, timeout=60):
    with socket.socket(socket.AF_UNIX) as m:
        m.settimeout(timeout)
        m.connect(str(sock))
        seen = b""
        while not seen.endswith(PROMPT):
            seen += m.recv(4096)
        m.sendall(command.encode() + b"\n")
        seen = b""
        while not seen.endswith(PROMPT):
            seen += m.recv(65536)
        return seen.decode("latin-1")


def heap_at_entry(work, kernel, cmdline, memory_mib, before=(), image=None):
    """(probe's EIP, the saved bytes, their address); *image*: boot that image (built by
    `bootforge build` with the probe as its kernel) instead of a grub-mkrescue ISO."""
    medium = image_medium(image) if image else \
        grub_iso(work, "multiboot2", BootFile(kernel, "/boot/kernel", cmdline), [], before=before)
    top = min(memory_mib << 20, 0xB0000000)
    base = top - SAVED
    eip = None
    with QemuRun(Machine("qemu-pc-seabios", memory_mib), medium, workdir=work) as run:
        run.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and eip is None:
            time.sleep(1)
            m = re.search(r"EIP=([0-9a-f]+)", monitor(run.monitor_socket, "info registers"))
            # In the probe's hlt loop (_start = the 2 MiB base + 0x30, after the 48-byte header),
            # not in GRUB's relocator trampoline, which also runs high.
            if m and int(m.group(1), 16) >= 0x400000 and int(m.group(1), 16) & 0x1FFFFF in PROBE_LOOP:
                eip = int(m.group(1), 16)
        monitor(run.monitor_socket, "stop")
        monitor(run.monitor_socket, f'pmemsave {base:#x} {SAVED:#x} "{work / "top.bin"}"')
    return eip, (work / "top.bin").read_bytes(), base


def walk(data, base, heap_end):
    """[(address, bytes, "used" | "free" | "gap")] from the lowest block header to *heap_end*."""
    heads = {}
    for i in range(0, len(data) - CELL, CELL):
        nxt, cells, magic = struct.unpack_from("<III", data, i)
        if magic in (ALLOC, FREE):
            heads[i] = (cells, magic)
    keys = sorted(heads)
    end = heap_end - base
    pos, out = keys[0], []
    while pos < end:
        if pos in heads:
            cells, magic = heads[pos]
            out.append((base + pos, cells * CELL, "used" if magic == ALLOC else "free"))
            pos += max(cells, 1) * CELL
        else:
            j = bisect.bisect_right(keys, pos)
            nxt = keys[j] if j < len(keys) else end
            out.append((base + pos, nxt - pos, "gap"))
            pos = nxt
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memory", type=int, default=1024, help="QEMU -m in MiB (default 1024)")
    ap.add_argument("--bss", type=lambda s: int(s, 0), default=0x9000, help="probe .bss size (default 0x9000)")
    ap.add_argument("--heap-end", type=lambda s: int(s, 0), default=None,
                    help="top of GRUB's heap region (default: end of low RAM - 0x20000, SeaBIOS's top)")
    ap.add_argument("--insmod", action="append", default=[], help="a module grub.cfg loads before the entry")
    ap.add_argument("--image", type=Path, default=None,
                    help="boot this bootforge image (its kernel: a probe.elf the walker's --bss makes) instead")
    ap.add_argument("--dump", type=Path, default=None, help="write each boot's used block sizes (JSON) here")
    ap.add_argument("cmdlens", nargs="+", type=int)
    args = ap.parse_args(argv)
    heap_end = args.heap_end or min(args.memory << 20, 0xB0000000) - 0x20000
    print("cmdline  probe at    used blocks  used bytes  disk-cache blocks  free bytes  gap bytes  lowest used  span")
    with tempfile.TemporaryDirectory(prefix="bf-heap-") as tmp:
        kernel = probe_kernel(Path(tmp), args.bss)
        for k, n in enumerate(args.cmdlens):
            work = Path(tmp) / f"boot{k}"
            work.mkdir()
            cmdline = ("abcdefg " * (n // 8 + 1))[:n].strip() or "x"
            eip, data, base = heap_at_entry(work, kernel, cmdline, args.memory,
                                            tuple(f"insmod {m}" for m in args.insmod), args.image)
            blocks = walk(data, base, heap_end)
            low = min(a for a, _s, k in blocks if k == "used")
            blocks = [b for b in blocks if b[0] >= low]     # what lies between GRUB's lowest block and the top
            used = [b for b in blocks if b[2] == "used"]
            sizes = collections.Counter(s for _a, s, _k in used)
            total = {k: sum(s for _a, s, kk in blocks if kk == k) for k in ("used", "free", "gap")}
            placed = f"{eip & ~0x1fffff:#x}" if eip else "-"
            if args.dump:
                args.dump.with_suffix(".bin").write_bytes(data)
                args.dump.write_text(json.dumps({"cmdlen": n, "base": base, "insmod": args.insmod, "blocks": blocks}))
            print(f"{n:7}  {placed:10}  {len(used):11}  {total['used']:#10x}  {sizes[DISK_CACHE_BLOCK]:17}  "
                  f"{total['free']:#10x}  {total['gap']:#9x}  {low:#11x}  {heap_end - low:#x}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
