"""Stop a QEMU run at the kernel's entry and read the boot information through the gdbstub."""

import hashlib
from dataclasses import dataclass, field

from bootforge.errors import FormatError, LimitError
from bootforge.formats import multiboot as fmt
from bootforge.bootloaders import entry_rule as bootloader_entry_rule
from bootforge.loader.owned import check
from bootforge.loader.policies import POLICIES, comparison
from bootforge.multiboot.dump import MAX_STRING, decode_mb1_info, decode_mb2_info
from bootforge.multiboot.entry import loader_entry
from bootforge.qemu.gdbremote import GdbError, GdbRemote
from bootforge.qemu.runner import last_lines

MAGICS = {fmt.MB1_BOOTLOADER_MAGIC: "multiboot1", fmt.MB2_BOOTLOADER_MAGIC: "multiboot2"}
MAX_MBI = 1 << 20       # an MB2 total_size above 1 MiB is not read (no loader writes that much)
MAX_RELOCATION_STOPS = 1 << 20    # candidate entries of a relocatable kernel (4 GiB in 4 KiB steps)
MAX_EARLY_STOPS = 10000   # breakpoint hits before the kernel is in place (firmware/loader code there)


@dataclass
class Capture:
    status: str                         # "entry", "refused", "exited", "timeout"
    seconds: float = 0.0
    registers: dict = field(default_factory=dict)
    doc: dict | None = None             # {"eax", "ebx", "protocol", "multiboot1"|"multiboot2"}
    problems: list = field(default_factory=list)
    loader_words: str | None = None     # the loader's refusal, from its console
    last_serial: str = ""
    last_screen: str = ""               # the VGA text screen's last lines, when the entry was not reached in time
    early_stops: int = 0
    module_hashes: list = field(default_factory=list)   # sha256 of guest memory [start, end)
    mbi_raw: bytes = b""                # the MBI as read (MB2: total_size bytes; MB1: the info)
    structures: dict = field(default_factory=dict)      # MB1: name -> (address, bytes) of what it points to
    owned_found: list = field(default_factory=list)     # [(OwnedRange, [(found, words)] per evidence)] at the entry


def entry_rule(loader):
    """The bootforge.multiboot.entry rule of policy *loader*: its bootloader's declaration."""
    return bootloader_entry_rule(POLICIES.get(loader).boot_medium if loader in POLICIES else None)


def entry_point(kernel, result, memory_bytes=None):
    """(linear address, how it was found, other addresses to stop at) of the instruction
    the loader jumps to.

    The policy's prediction (LoadResult.entry: the header's entry address, or e_entry
    translated through a program header as that loader does, bootforge.multiboot.entry;
    GRUB x86_64-efi keeping boot services jumps to the EFI amd64 entry tag 9). A
    relocatable MB2 kernel (tag 10) is entered at that address moved by as much as the
    loader moved the image (GRUB multiboot_elfxx.c: the entry follows the image from
    link_base_addr to load_base_addr). The breakpoint goes at the entry for the
    *predicted* load base, and also at the entry for every other base the tag allows
    inside the machine's RAM below 4 GiB (align steps; QEMU's TCG breakpoints are not
    limited to the 4 debug registers), so a loader that put the image elsewhere is still
    caught at its entry and the difference is named (observed: Xen 4.17 under GRUB i386-pc).
    """
    loader = getattr(result, "loader", "")
    declared = comparison(loader).entry          # a policy's own entry rule (grub-efi-mb2: tag 9)
    linked = declared(kernel) if declared else loader_entry(kernel, result.protocol, entry_rule(loader))
    predicted = getattr(result, "entry", None) or linked
    entry, how = predicted.address, predicted.detail()
    others = []
    rel = None
    if result.protocol == "multiboot2" and kernel.mb2:
        rel = next((t for t in kernel.mb2.get("tags", []) if t["type"] == fmt.Mb2HeaderTag.RELOCATABLE), None)
    if rel is not None:
        offset = linked.address - kernel.low
        base = result.load_base if result.load_base is not None else kernel.low
        if getattr(result, "entry", None) is None:
            entry = base + offset
            if base != kernel.low:
                how += f", moved with the relocatable image to the predicted load base {base:#x}"
        top = min(rel["max_addr"], (memory_bytes or 1 << 32) - 1, 0xFFFFFFFF)
        step = max(rel["align"], 0x1000)
        first = -(-rel["min_addr"] // step) * step
        if (top - first) // step < MAX_RELOCATION_STOPS:
            others = [b + offset for b in range(first, top + 1, step) if b != base]
    return entry & 0xFFFFFFFF, how, [a & 0xFFFFFFFF for a in others]


class GuestMemory:
    """Guest memory read through the gdbstub, with dump.Memory's interface (read, string)."""

    def __init__(self, gdb):
        self.gdb = gdb

    def read(self, addr, length):
        try:
            return self.gdb.read_memory(addr, length)
        except GdbError:
            return None

    def string(self, addr):
        data = b""
        while len(data) < MAX_STRING:
            chunk = self.read(addr + len(data), 256 - (addr + len(data)) % 256)
            if not chunk:
                return None, None
            end = chunk.find(b"\0")
            if end >= 0:
                data += chunk[:end]
                return data.decode("utf-8", "replace"), len(data) + 1
            data += chunk
        return None, None


def read_boot_information(gdb, eax, ebx, raw_out=None):
    """The boot information at EBX and what it points to, decoded as the dump decoder does:
    ({"eax", "ebx", "protocol", "multiboot1"|"multiboot2"}, problems). *raw_out*, a dict,
    receives "mbi" (the bytes read) and, for MB1, "structures" {name: (address, bytes)}."""
    mem = GuestMemory(gdb)
    doc = {"eax": eax, "ebx": ebx, "magic": eax, "mbi_address": ebx, "protocol": MAGICS.get(eax)}
    problems = []
    if eax == fmt.MB2_BOOTLOADER_MAGIC:
        head = mem.read(ebx, 8)
        if head is None:
            raise FormatError(f"the MBI at {ebx:#x} cannot be read from guest memory")
        total = int.from_bytes(head[:4], "little")
        if total > MAX_MBI:
            raise LimitError(f"MBI total_size {total:#x} at {ebx:#x} (limit {MAX_MBI:#x})")
        data = mem.read(ebx, max(total, 8))
        doc["multiboot2"] = decode_mb2_info(data)
        if raw_out is not None:
            raw_out["mbi"] = data
    else:
        spans = []
        doc["multiboot1"], problems = decode_mb1_info(mem, ebx, spans)
        if raw_out is not None:
            for name, addr, length in spans:
                raw_out.setdefault("structures", {})[name] = (addr, mem.read(addr, length) or b"")
            raw_out["mbi"] = raw_out.get("structures", {}).pop("mbi", (ebx, b""))[1]
    return doc, problems


def module_ranges(doc):
    if doc.get("multiboot2"):
        return [(t["mod_start"], t["mod_end"]) for t in doc["multiboot2"]["tags"] if t["type"] == 3]
    return [(m["mod_start"], m["mod_end"]) for m in doc.get("multiboot1", {}).get("modules", [])]


def hash_guest(gdb, start, end, limit=1 << 30):
    """sha256 of guest memory [start, end), or None when it cannot be read."""
    if end < start or end - start > limit:
        return None
    h = hashlib.sha256()
    at = start
    while at < end:
        n = min(1 << 16, end - at)
        chunk = gdb.read_memory(at, n)
        if chunk is None:
            return None
        h.update(chunk)
        at += n
    return h.hexdigest()


def capture(run, entry, timeout, refusal=None, progress=None, hash_modules=True, other_entries=(), owned=()):
    """Continue the halted QEMU *run* (started with gdb=True) to the kernel's entry and read
    what the loader handed over. *refusal(run)* returns the loader's words once its console
    shows it refused; *progress(text)* hears what the run is waiting for. *owned*: the
    policy's loader-owned ranges (bootforge.loader.owned), each evidence checked in guest
    memory at the entry."""
    out = Capture("timeout")
    gdb = GdbRemote(run.gdb_socket)
    try:
        gdb.hardware_breakpoint(entry)
        for address in other_entries:
            gdb.hardware_breakpoint(address)
        last_said, last_time = None, 0.0
        while True:
            try:
                gdb.cont()
            except GdbError:
                out.status = "exited"
                return _finish(out, run)
            reply = None
            while reply is None:
                try:
                    reply = gdb.wait_stop(0.2)
                except GdbError:                # QEMU ended (-no-reboot on a triple fault, debug-exit)
                    reply = "W"
                if reply is not None:
                    break
                words = refusal(run) if refusal else None
                if words:
                    out.status, out.loader_words = "refused", words
                    return _finish(out, run)
                if run.exited():
                    out.status = "exited"
                    return _finish(out, run)
                if run.elapsed() > timeout:
                    out.status = "timeout"
                    return _finish(out, run)
                if progress:
                    said = last_lines(run.serial(), 1, 100)
                    said = said if any(c.isalnum() for c in said) else ""   # escape leftovers only
                    if said != last_said or run.elapsed() - last_time >= 5:
                        what = (f"waiting for the entry at {entry:#x}; serial: {said}" if said else
                                "waiting for the firmware to start the loader (nothing on serial yet)")
                        progress(f"{run.elapsed():5.1f} s  {what}")
                        last_said, last_time = said, run.elapsed()
            if reply[:1] in ("W", "X"):
                out.status = "exited"
                return _finish(out, run)
            regs = gdb.registers(getattr(run, "register_layout", None))   # the machine's layout
            eax = regs["rax"] & 0xFFFFFFFF
            if eax in MAGICS:
                break
            out.early_stops += 1
            gdb.step_over(regs["rip"])
            if out.early_stops > MAX_EARLY_STOPS:
                out.status = "timeout"
                return _finish(out, run)
        out.status = "entry"
        out.registers = {k: regs[k] for k in ("rax", "rbx", "rip")}
        raw = {}
        out.doc, out.problems = read_boot_information(gdb, eax, regs["rbx"] & 0xFFFFFFFF, raw)
        out.mbi_raw, out.structures = raw.get("mbi", b""), raw.get("structures", {})
        if hash_modules:
            out.module_hashes = [hash_guest(gdb, a, b) for a, b in module_ranges(out.doc)]
        if owned:
            mem = GuestMemory(gdb)

            def read(addr, length):                 # in 64 KiB requests, as hash_guest reads
                parts = [mem.read(a, min(1 << 16, addr + length - a)) for a in range(addr, addr + length, 1 << 16)]
                return None if None in parts else b"".join(parts)
            out.owned_found = [(o, [check(e, read, regs) for e in o.evidence]) for o in owned]
        return _finish(out, run)
    finally:
        gdb.close()


def _finish(out, run):
    out.seconds = run.elapsed()
    out.last_serial = last_lines(run.serial())
    if out.status == "timeout" and hasattr(run, "screen"):      # QEMU still runs: what the screen says
        out.last_screen = last_lines("\n".join(run.screen(every=0)))
    return out
