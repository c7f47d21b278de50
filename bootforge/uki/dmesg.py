"""What Debian's kernel prints on the serial console that `bootforge load` predicts
(console=ttyS0 efi=debug): the E820 table ("BIOS-e820:" lines, sorted by the kernel),
the EFI map it was handed ("efi: memNN: [...] range=[a-b]", the first block only:
"EFI runtime memory map:" repeats some later), the table again after setup_data
nodes are reserved ("reserve setup_data: [mem a-b]"), "RAMDISK: [mem a-b]" and
"Memory: X/YK available". Used by the tests against real boots and their fixtures."""

import re
from dataclasses import dataclass, field

ANSI = re.compile(r"\x1b\[[0-9;?=]*[A-Za-z]")
E820_LINE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (.+?)\s*$")
EFI_LINE = re.compile(r"efi: mem(\d+): \[([^|\]]+)\|.*range=\[(0x[0-9a-f]+)-(0x[0-9a-f]+)\]")
RAMDISK = re.compile(r"RAMDISK: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]")
MEMORY = re.compile(r"Memory: (\d+)K/(\d+)K available")
COMMAND_LINE = re.compile(r"\] Command line: (.*?)\s*$")
# e820__reserve_setup_data() prints the table again after retyping each setup_data node.
RESERVE_SETUP_DATA = re.compile(r"reserve setup_data: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (.+?)\s*$")
# The kernel's efi_md_typeattr_format() names, in EFI type order.
EFI_TYPE_NAMES = ("Reserved", "Loader Code", "Loader Data", "Boot Code", "Boot Data", "Runtime Code",
                  "Runtime Data", "Conventional", "Unusable Mem", "ACPI Reclaim", "ACPI Mem NVS", "MMIO",
                  "MMIO Port", "PAL Code", "Persistent")


@dataclass
class KernelLog:
    e820: list = field(default_factory=list)        # [(start, end inclusive, type text)] as printed
    efi: list = field(default_factory=list)         # [(type number, start, end exclusive)]
    ramdisk: tuple | None = None                    # (start, end inclusive)
    memory_kib: tuple | None = None                 # (available X, total Y)
    reserve_setup_data: list = field(default_factory=list)   # [(start, end inclusive, type text)]
    command_line: str | None = None

    def setup_data_nodes(self):
        """[(start, size)] of the setup_data nodes: the kernel splits an E820 entry around each
        node (e820__range_update), so a node is the middle piece of an entry split in three."""
        nodes = []
        for a, b, _ in self.e820:
            pieces = [(x, y) for x, y, _ in self.reserve_setup_data if a <= x and y <= b]
            if len(pieces) == 3:
                nodes.append((pieces[1][0], pieces[1][1] + 1 - pieces[1][0]))
        return nodes


def parse_kernel_log(text):
    log = KernelLog()
    for raw in text.splitlines():
        line = ANSI.sub("", raw)
        m = E820_LINE.search(line)
        if m:
            log.e820.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
            continue
        m = EFI_LINE.search(line)
        if m:
            if int(m.group(1)) == 0 and log.efi:
                log.efi.append(None)        # a second block begins: stop collecting
            if None not in log.efi:
                log.efi.append((EFI_TYPE_NAMES.index(m.group(2).strip()), int(m.group(3), 16),
                                int(m.group(4), 16) + 1))
            continue
        m = COMMAND_LINE.search(line)
        if m and log.command_line is None:
            log.command_line = m.group(1)
            continue
        m = RESERVE_SETUP_DATA.search(line)
        if m:
            log.reserve_setup_data.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
            continue
        m = RAMDISK.search(line)
        if m and log.ramdisk is None:
            log.ramdisk = (int(m.group(1), 16), int(m.group(2), 16))
            continue
        m = MEMORY.search(line)
        if m and log.memory_kib is None:
            log.memory_kib = (int(m.group(1)), int(m.group(2)))
    log.efi = [e for e in log.efi if e is not None] if None not in log.efi else log.efi[:log.efi.index(None)]
    return log


def trim(text):
    """The lines parse_kernel_log reads (first EFI block only) plus the version and command line:
    what tests/data/linux-ovmf/ keeps of a boot."""
    out, efi_blocks = [], 0
    for raw in text.splitlines():
        line = ANSI.sub("", raw).rstrip()
        m = EFI_LINE.search(line)
        if m and int(m.group(1)) == 0:
            efi_blocks += 1
        keep = ("Linux version" in line or "Command line:" in line or E820_LINE.search(line)
                or RESERVE_SETUP_DATA.search(line)
                or (m and efi_blocks == 1) or RAMDISK.search(line) or MEMORY.search(line))
        if keep:
            out.append(line[line.index("["):] if "[" in line else line)
    return "\n".join(out) + "\n"
