"""SeaBIOS's debug log (port 0x402, debug level 1 as Debian builds it) read for what POST did:
the lines of src/optionroms.c, src/malloc.c, src/boot.c, src/pmm.c and src/e820map.c that
say where option ROMs ran, what did not fit, the UMB space left, the PMM calls, the boot
sequence and the E820 map. Also iPXE's init banner on the VGA text screen, which names its
PMM blocks (src/arch/x86/prefix/romprefix.S prints them)."""

import re
from dataclasses import dataclass, field

RUNNING = re.compile(r"^Running option rom at ([0-9a-f]{4}):([0-9a-f]{4})$")
WARN_NOALLOC = re.compile(r"^WARNING - Unable to allocate resource at (\w+):(\d+)!$")
BAD_CHECKSUM = re.compile(r"^Found option rom with bad checksum: loc=(0x[0-9a-f]+) len=(\d+) sum=([0-9a-f]+)$")
UMB = re.compile(r"^Space available for UMB: ([0-9a-f]+)-([0-9a-f]+), ([0-9a-f]+)-([0-9a-f]+)$")
PMM_CALL = re.compile(r"^pmm call arg1=([0-9a-f]+)$")
E820_HEAD = re.compile(r"^e820 map has (\d+) items:$")
E820_LINE = re.compile(r"^\s*\d+: ([0-9a-f]{16}) - ([0-9a-f]{16}) = (\d+) ")
BOOTING_DEVICE = re.compile(r"^Booting from (Floppy|Hard Disk|DVD/CD|ROM)\.\.\.$")
BOOTING_VECTOR = re.compile(r"^Booting from ([0-9a-f]{4}):([0-9a-f]{4})$")
SEARCHING = re.compile(r"^Searching bootorder for: (\S+)$")
VGA_STACK = re.compile(r"^VGA stack allocated at ([0-9a-f]+)$")
EBDA_MOVED = re.compile(r"^ebda moved from ([0-9a-f]+) to ([0-9a-f]+)$")
BOOT_KINDS = {"Floppy": "floppy", "Hard Disk": "harddisk", "DVD/CD": "cdrom", "ROM": "bev"}
# romprefix.S's banner: "PMM" then, per block, '+' (allocated) or ' ' (found) and 8 hex digits.
IPXE_BANNER = re.compile(r"^iPXE \(http://ipxe\.org\) (\S+) ([0-9A-F]{4}) .*?PMM([+ ][0-9A-F]{8})([+ ][0-9A-F]{8})")


@dataclass
class PostLog:
    runs: list = field(default_factory=list)            # (segment, offset) per "Running option rom"
    events: list = field(default_factory=list)          # ("run", seg, off) / ("noalloc", func, line) / ("checksum", loc, len, sum) / ("pmm", arg1) in order
    umb: tuple | None = None                            # ((start, end), (start, end))
    e820: list = field(default_factory=list)            # (start, end, type) after POST
    boot_sequence: list = field(default_factory=list)   # ("floppy"|"harddisk"|"cdrom"|"bev", "seg:off" or None)
    searched: list = field(default_factory=list)        # bootorder globs searched, in order
    ebda_moves: list = field(default_factory=list)
    bootorder: list = field(default_factory=list)       # QEMU's bootorder file as SeaBIOS printed it
    vga_stack: int | None = None

    def pmm_calls_per_rom(self):
        """The PMM function numbers called while each ROM's init ran: {"seg": [1, 0, ...]}."""
        calls, current = {}, None
        for event in self.events:
            if event[0] == "run":
                current = f"{event[1]}"
                calls.setdefault(current, [])
            elif event[0] == "pmm" and current is not None:
                calls[current].append(event[1])
        return calls


def read_post_log(text):
    """A PostLog from SeaBIOS's port-0x402 text (from its start up to the first boot attempts)."""
    log = PostLog()
    lines = text.splitlines()
    in_e820 = 0
    in_bootorder = False
    for i, line in enumerate(lines):
        if in_e820:
            m = E820_LINE.match(line)
            if m:
                log.e820.append((int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))))
                in_e820 -= 1
                continue
            in_e820 = 0
        if in_bootorder:
            m = re.match(r"^(\d+): (\S+)$", line)
            if m:
                log.bootorder.append(m.group(2))
                continue
            in_bootorder = False
        if line == "boot order:":
            in_bootorder = True
        elif m := RUNNING.match(line):
            log.runs.append((m.group(1), m.group(2)))
            log.events.append(("run", f"{m.group(1)}:{m.group(2)}"))
        elif m := WARN_NOALLOC.match(line):
            log.events.append(("noalloc", m.group(1), int(m.group(2))))
        elif m := BAD_CHECKSUM.match(line):
            log.events.append(("checksum", int(m.group(1), 16), int(m.group(2)), int(m.group(3), 16)))
        elif m := PMM_CALL.match(line):
            log.events.append(("pmm", int(m.group(1), 16)))
        elif m := UMB.match(line):
            a, b, c, d = (int(g, 16) for g in m.groups())
            log.umb = ((a, b), (c, d))
        elif m := E820_HEAD.match(line):
            log.e820 = []
            in_e820 = int(m.group(1))
        elif m := BOOTING_DEVICE.match(line):
            log.boot_sequence.append([BOOT_KINDS[m.group(1)], None])
        elif m := BOOTING_VECTOR.match(line):
            if log.boot_sequence and log.boot_sequence[-1][0] == "bev" and log.boot_sequence[-1][1] is None:
                log.boot_sequence[-1][1] = f"{m.group(1)}:{m.group(2)}"
        elif m := SEARCHING.match(line):
            log.searched.append(m.group(1))
        elif m := VGA_STACK.match(line):
            log.vga_stack = int(m.group(1), 16)
        elif m := EBDA_MOVED.match(line):
            log.ebda_moves.append((int(m.group(1), 16), int(m.group(2), 16)))
    log.boot_sequence = [tuple(b) for b in log.boot_sequence]
    return log


def ipxe_banners(screen):
    """iPXE's init banners on a VGA text screen: [(pci "00:03.0", segment "CA00",
    [(allocated?, address), (allocated?, address)])] (image source, decompression area)."""
    found = []
    for line in screen.splitlines():
        m = IPXE_BANNER.match(line)
        if m:
            blocks = [(g[0] == "+", int(g[1:], 16)) for g in (m.group(3), m.group(4))]
            found.append((m.group(1), m.group(2), blocks))
    return found
