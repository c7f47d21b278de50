"""Limine as a Multiboot1 / Multiboot2 loader (Limine-Bootloader/Limine
common/protos/multiboot1.c, multiboot2.c, common/lib/elsewhere.c,
common/mm/pmm.s2.c; the facts in shared/reference/multiboot.md, section
"Limine"). NOT VERIFIED: no real Limine is available on this project's
machines (Debian 12 does not package it), so no fidelity scenario checks
these rules; they follow the reference text only.

Rules:
- Refusals in Limine's words (bootforge.multiboot.verdicts.limine: limine-mb1/mb2).
- The kernel is one contiguous range [lowest p_paddr, highest end).
- The MBI goes to 0x10000; modules at ALIGN_UP(highest end so far, 4 KiB),
  always above the kernel and the MBI, in order; a module that would
  collide with reserved memory moves past it.
- Limine passes the firmware's E820 as read (unsanitized on BIOS);
  mem_lower = the usable memory below 1 MiB, mem_upper = the sum of usable
  memory above 1 MiB (both KiB). More than 256 entries: Limine panics.
- Command lines as configured (no path in front).
"""

import struct

from bootforge.errors import RecipeError
from bootforge.loader import mbi
from bootforge.loader.alloc import align_up
from bootforge.loader.policies.common import MIB, e820_entries, free_space, ram_intervals, standard_checks
from bootforge.loader.policies import loader_policy
from bootforge.loader.result import LoadResult

SOURCE = "Limine common/protos/multiboot{1,2}.c (reference facts only; not verified against a real Limine)"
MBI_TARGET = 0x10000
MAX_ENTRIES = 256


def _load(req, protocol):
    k = req.kernel      # firmware and verdict checked by run_policy from the @loader_policy declaration
    entries = e820_entries(req.platform.memory_map)
    if len(entries) > MAX_ENTRIES:
        raise RecipeError(f"multiboot: too many memory map entries ({len(entries)} > {MAX_ENTRIES})")
    res = LoadResult(req.loader, protocol, req.platform, SOURCE)
    free = free_space(req.platform.memory_map, 0, 1 << 32)
    lo, hi = k.low, k.high
    if not free.is_free(lo, hi - lo):
        raise RecipeError(f"multiboot: kernel range [{lo:#x}, {hi:#x}) is not usable memory")
    free.take(lo, hi - lo)
    res.place("kernel (one range)", lo, hi - lo, 1, "lowest p_paddr to highest end", "kernel")
    top = max(hi, MBI_TARGET)
    mods = []
    for i, m in enumerate(req.modules):
        at = free.lowest(m.size, 4096, align_up(top, 4096))
        if at is None:
            raise RecipeError(f"multiboot: not enough memory for module {i}")
        free.take(at, m.size)
        top = at + m.size
        mods.append({"start": at, "end": at + m.size, "cmdline": m.cmdline})
        res.place(f"module {i} {m.loader_path}", at, m.size, 4096, "ALIGN_UP(highest end so far, 4 KiB)", "module")
    res.modules = mods
    res.mmap = entries
    usable = ram_intervals(req.platform.memory_map)
    res.mem_lower = sum(min(b, MIB) - a for a, b in usable if a < MIB) // 1024
    res.mem_upper = sum(b - max(a, MIB) for a, b in usable if b > MIB) // 1024
    res.cmdline = req.cmdline
    if protocol == "multiboot1":
        res.mbi_bytes = mbi.mb1_info(mbi.MB1_FLAG["mem"] | mbi.MB1_FLAG["cmdline"] | mbi.MB1_FLAG["mods"]
                                     | mbi.MB1_FLAG["mmap"] | mbi.MB1_FLAG["loader"],
                                     min(res.mem_lower, 0xFFFFFFFF), min(res.mem_upper, 0xFFFFFFFF),
                                     mods_count=len(mods), mmap_length=24 * len(entries))
    else:
        tags = [mbi.mb2_string(1, req.cmdline), mbi.mb2_string(2, "Limine")]
        tags += [mbi.mb2_tag(3, struct.pack("<II", m["start"], m["end"]) + m["cmdline"].encode() + b"\0")
                 for m in mods]
        tags += [mbi.mb2_tag(4, struct.pack("<II", res.mem_lower, min(res.mem_upper, 0xFFFFFFFF))),
                 mbi.mb2_mmap(entries)]
        res.mbi_bytes = mbi.mb2_info(tags)
    res.mbi_address = MBI_TARGET
    res.place("multiboot information", MBI_TARGET, len(res.mbi_bytes), 8, "Limine's MBI target 0x10000", "mbi")
    res.notes.append("limine: rules from the reference text, not checked against a real Limine")
    standard_checks(res, req.platform.memory_map)
    return res


@loader_policy("limine-mb1", firmware="bios", protocol="multiboot1", verdict="limine-mb1", source=SOURCE,
               verified=False, boot_medium=None, wrong_firmware="limine-* is modelled on BIOS platforms only",
               summary="Limine `protocol: multiboot1`")
def load_mb1(req):
    return _load(req, "multiboot1")


@loader_policy("limine-mb2", firmware="bios", protocol="multiboot2", verdict="limine-mb2", source=SOURCE,
               verified=False, boot_medium=None, wrong_firmware="limine-* is modelled on BIOS platforms only",
               summary="Limine `protocol: multiboot2`")
def load_mb2(req):
    return _load(req, "multiboot2")
