"""Limine as a Multiboot1 / Multiboot2 loader (Limine common/protos/multiboot1.c,
multiboot2.c, common/lib/elf.c): refusals are Limine's panic strings. It reads
the file as given."""

from bootforge.errors import FormatError
from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import _u32, decode_mb1, read_elf, scan
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

SOURCE = "Limine common/protos/multiboot1.c, multiboot2.c"
LIMINE_INFO_REQUESTS = {1, 2, 3, 4, 6, 8, 9, 13, 14, 15, 17, 12, 20, 21}
LIMINE_HEADER_TAGS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
FOUR_GIB = 1 << 32


@kernel_loader("limine-mb1", "multiboot1", reads="as-given", source=SOURCE)
def limine_mb1(data, compressed=None):
    name = "limine-mb1"
    hits = scan(data, fmt.MB1_MAGIC, 4, fmt.MB1_SEARCH)
    if not hits:
        return refuse(name, "multiboot1: Invalid magic")
    off = hits[0]
    hdr = decode_mb1(data, off)
    if not hdr["checksum_ok"]:
        return refuse(name, "multiboot1: Header checksum is invalid")
    if hdr["aout_kludge"]:
        a = hdr["addresses"] or {}
        if not a:
            return refuse(name, "multiboot1: Header truncated")
        if a["load_addr"] > a["header_addr"]:
            return refuse(name, "multiboot1: Illegal load address")
        size = (a["load_end_addr"] - a["load_addr"]) if a["load_end_addr"] else len(data)
        if a["bss_end_addr"] and a["bss_end_addr"] < a["load_addr"] + size:
            return refuse(name, "multiboot1: Illegal bss end address")
        return accept(name, f"loads the a.out kludge image at {a['load_addr']:#x}")
    return _limine_elf(name, data, "multiboot1")


def _limine_elf(name, data, proto):
    if data[:4] != fmt.ELF_MAGIC or len(data) < 5 or data[4] not in (1, 2):
        return refuse(name, f"{proto}: Invalid ELF file bitness")
    bits = 32 if data[4] == 1 else 64
    try:
        elf = read_elf(data)
    except FormatError:
        return refuse(name, f"{proto}: ELF{bits} load failure")
    loads = [s for s in elf.loads if s.memsz]
    if not loads:
        return refuse(name, f"{proto}: ELF{bits} load failure")
    lo = min(s.paddr for s in loads)
    hi = max(s.paddr + s.memsz for s in loads)
    if hi > FOUR_GIB:
        return refuse(name, "Executable does not fit under 4GiB")
    if not any(s.vaddr <= elf.entry < s.vaddr + s.memsz for s in loads):
        return refuse(name, "Entry point is outside the executable")
    return accept(name, f"loads ELF{bits} as one range [{lo:#x}, {hi:#x})")


@kernel_loader("limine-mb2", "multiboot2", reads="as-given", source=SOURCE)
def limine_mb2(data, compressed=None):
    name = "limine-mb2"
    hits = scan(data, fmt.MB2_MAGIC, 8, fmt.MB2_SEARCH)
    if not hits:
        return refuse(name, "no Multiboot2 header: Limine does not treat it as a multiboot2 kernel", words=None)
    off = hits[0]
    if off + 16 > len(data):
        return refuse(name, "multiboot2: Header checksum is invalid")
    arch, length, checksum = _u32(data, off + 4), _u32(data, off + 8), _u32(data, off + 12)
    if (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF:
        return refuse(name, "multiboot2: Header checksum is invalid")
    pos, end = off + 16, off + length
    addr = entry = None
    while pos + 8 <= min(end, len(data)):
        t = int.from_bytes(data[pos:pos + 2], "little")
        tflags = int.from_bytes(data[pos + 2:pos + 4], "little")
        size = _u32(data, pos + 4)
        if t == 0:
            break
        if size < 8 or pos + size > end:
            return refuse(name, "Header tag exceeds header bounds")
        body = data[pos + 8:pos + size]
        if t == 1 and not tflags & 1:
            for i in range(0, len(body) - 3, 4):
                r = _u32(body, i)
                if r not in LIMINE_INFO_REQUESTS:
                    return refuse(name, f"multiboot2: Requested tag `{r}` which is not supported")
        elif t == 2:
            addr = body
        elif t == 3:
            entry = body
        elif t == 10 and len(body) >= 12 and _u32(body, 8) == 0:
            return refuse(name, "Relocatable tag has align=0")
        elif t not in LIMINE_HEADER_TAGS:
            return refuse(name, f"multiboot2: Unknown header tag type: {t}")
        pos += size + (-size % 8)
    if addr is not None:
        if len(addr) < 16:
            return refuse(name, "Header tag exceeds header bounds")
        header_addr, load_addr = _u32(addr, 0), _u32(addr, 4)
        if load_addr > header_addr:
            return refuse(name, "multiboot2: Illegal load address")
        if entry is None:
            return refuse(name, "multiboot2: Using address tag but entry address tag missing")
        return accept(name, f"loads the address-tag image at {load_addr:#x}")
    return _limine_elf(name, data, "multiboot2")
