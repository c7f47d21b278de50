"""Stopping a relocatable kernel at its entry wherever the loader put it, with at most one extra boot.

QEMU's TCG checks every gdbstub breakpoint (Z0 and Z1 alike: accel/tcg/cpu-exec.c
check_for_breakpoints) on every translation block it looks up, and runs any page holding
one an instruction at a time; so a breakpoint at every base the relocatable tag allows is
cheap for Xen's 2 MiB alignment (hundreds) and hopeless for 4 KiB alignment (65536 at 256 MiB:
every page single-stepped, each step scanning the whole list). Hence:

- up to FIRST_BOOT_STOPS candidate entries: all set before the first boot (no extra boot);
- more: the first boot stops at the predicted entry only, while QEMU logs the start of every
  translation block inside the candidate range (`-d in_asm -dfilter LO..HI`: only code
  translated there is logged, once per translation). The loader's jump to the kernel starts a
  block at the real entry, so when the predicted one is not reached the log names the
  candidates that ran, and one more boot has breakpoints at those alone.
"""

import re

from bootforge.errors import FormatError, LimitError
from bootforge.multiboot.headers import read_elf

FIRST_BOOT_STOPS = 1024
TRACE_LOG = "translated.log"
MAX_TRACE_LOG = 256 << 20       # the translation log read back (a loader's code in the range is logged too)
# A translation block in the log: "IN: [symbol]", then "0x00100000:  fa  cli" (address, the
# first instruction's bytes in hex, its disassembly).
_BLOCK = re.compile(rb"^IN:[^\n]*\n(?:[^\n]*:\n)?0x([0-9a-fA-F]+):((?:[ \t]+[0-9a-fA-F]{2}(?=[ \t]))*)", re.M)
ENTRY_BYTES = 16


def split(others):
    """(breakpoints for the first boot, candidates left to the translation log)."""
    return (list(others), []) if len(others) <= FIRST_BOOT_STOPS else ([], list(others))


def trace_args(log_path, candidates):
    """QEMU's arguments logging translation blocks that start in the candidates' span."""
    return ["-d", "in_asm", "-D", str(log_path), "-dfilter", f"{min(candidates):#x}..{max(candidates):#x}"]


def entry_bytes(kernel, address):
    """The kernel's bytes at its (unmoved) entry *address*, as the loader copies them from the
    file (b"" when no PT_LOAD's file bytes hold it: nothing to compare)."""
    try:
        elf = read_elf(kernel.data)
    except (FormatError, LimitError):
        return b""
    for seg in elf.loads:
        if seg.paddr <= address < seg.paddr + seg.filesz:
            at = seg.offset + address - seg.paddr
            return kernel.data[at:at + ENTRY_BYTES]
    return b""


def translated_candidates(log_path, candidates, expect=b""):
    """The candidate entries where a translation block started (in the order QEMU translated
    them) whose first instruction is *expect*'s first bytes (the kernel's entry: a loader's own
    code starting a block at such an address is not taken for the kernel)."""
    try:
        with open(log_path, "rb") as f:
            text = f.read(MAX_TRACE_LOG)
    except OSError:
        return []
    wanted, out = set(candidates), []
    for m in _BLOCK.finditer(text):
        address = int(m.group(1), 16)
        first = bytes.fromhex(m.group(2).decode())
        if expect and first and not expect.startswith(first):
            continue
        if address in wanted and address not in out:
            out.append(address)
    return out
