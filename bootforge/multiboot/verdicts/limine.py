"""Limine 11.4.1 as a Multiboot1 / Multiboot2 loader: will it load this file, and if
not, its panic string (limine-bootloader/limine common/protos/multiboot1.c,
multiboot2.c, common/lib/elf.c; every message below is a string of the 11.4.1
release's BOOTX64.EFI and limine-bios.sys). Limine reads the file as given.

What depends on the machine (memory, firmware) is the policy's
(bootforge.loader.policies.limine): "Could not find viable load address",
text mode on UEFI, EFI-only information requests on BIOS.

Checked by tests/test_limine_refusals.py, which boots each malformed kernel
under the real Limine and finds these words on its console.
"""

from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import _u32
from bootforge.multiboot.verdicts import accept, kernel_loader, refuse

SOURCE = "Limine 11.4.1 common/protos/multiboot1.c, multiboot2.c, common/lib/elf.c"
MB1_HEADER_SIZE = 48            # struct multiboot1_header: 12 u32 (magic .. depth)
MB2_HEADER_SIZE = 16
T, H = fmt.Mb2Tag, fmt.Mb2HeaderTag
# multiboot2.c: information requests it serves (11, 12, 17, 19, 20 only on UEFI: the policy says so).
INFO_REQUESTS = {T.CMDLINE, T.BOOT_LOADER_NAME, T.MODULE, T.BASIC_MEMINFO, T.MMAP, T.FRAMEBUFFER,
                 T.ELF_SECTIONS, T.EFI32, T.EFI64, T.SMBIOS, T.ACPI_OLD, T.ACPI_NEW, T.NETWORK, T.EFI_MMAP,
                 T.EFI32_IH, T.EFI64_IH, T.LOAD_BASE_ADDR}
# Header tags it handles; 8 (EFI i386 entry) is "unsupported", > 10 "unknown custom".
HEADER_TAGS = {H.INFORMATION_REQUEST, H.ADDRESS, H.ENTRY_ADDRESS, H.CONSOLE_FLAGS, H.FRAMEBUFFER,
               H.MODULE_ALIGNMENT, H.EFI_BOOT_SERVICES, H.ENTRY_ADDRESS_EFI64, H.RELOCATABLE}


def _u16(data, off):
    return int.from_bytes(data[off:off + 2], "little")


def _u64(data, off):
    return int.from_bytes(data[off:off + 8], "little")


def _elf(name, data, proto):
    """elf_bits() and *_load_elsewhere() (elf.c): None when it loads, else a refusal."""
    if data[:4] != fmt.ELF_MAGIC or len(data) < 52 or data[4] not in (1, 2):
        return refuse(name, f"{proto}: Invalid ELF file bitness")
    bits = 32 if data[4] == 1 else 64
    if data[5] != 1:
        return refuse(name, "elf: Not a Little-endian ELF file.")
    machine = _u16(data, 18)
    if machine != (fmt.EM_386 if bits == 32 else fmt.EM_X86_64):
        return refuse(name, "elf: Not an IA-32 ELF file." if bits == 32 else "elf: Not an x86-64 ELF file.")
    if _u16(data, 16) not in (fmt.ET_EXEC, fmt.ET_DYN):
        return refuse(name, "elf: ELF file not of type ET_EXEC nor ET_DYN")
    if bits == 32:
        phoff, phentsize, phnum = _u32(data, 28), _u16(data, 42), _u16(data, 44)
        minsize = 32
    else:
        if len(data) < 64:
            return refuse(name, f"{proto}: Invalid ELF file bitness")
        phoff, phentsize, phnum = _u64(data, 32), _u16(data, 54), _u16(data, 56)
        minsize = 56
    if phentsize < minsize:
        return refuse(name, f"elf: phdr_size < sizeof(struct elf{bits}_phdr)")
    if phoff + phnum * phentsize > len(data):
        return refuse(name, "elf: Program header table extends beyond file bounds")
    lo, hi = None, 0
    for i in range(phnum):
        p = phoff + i * phentsize
        if _u32(data, p) != 1:
            continue
        if bits == 32:
            offset, paddr, filesz, memsz = _u32(data, p + 4), _u32(data, p + 12), _u32(data, p + 16), _u32(data, p + 20)
        else:
            offset, paddr, filesz, memsz = _u64(data, p + 8), _u64(data, p + 24), _u64(data, p + 32), _u64(data, p + 40)
        if not memsz:
            continue
        if filesz > memsz:
            return refuse(name, "elf: p_filesz > p_memsz")
        if offset + filesz > len(data):
            return refuse(name, "elf: p_offset + p_filesz exceeds file size")
        lo = paddr if lo is None else min(lo, paddr)
        hi = max(hi, paddr + memsz)
    if lo is None:
        return refuse(name, f"{proto}: ELF{bits} load failure")
    return accept(name, f"loads ELF{bits} as one range [{lo:#x}, {hi:#x}) (copied there at the end)")


def _kludge(name, proto, data, header_offset, header_addr, load_addr, load_end_addr, bss_end_addr):
    """The a.out kludge (MB1 flag 16) / MB2 address tag checks, in Limine's order."""
    if proto == "multiboot2" and load_addr == 0xFFFFFFFF:
        if header_offset > header_addr:
            return refuse(name, "multiboot2: Header offset exceeds header address")
        load_src, load_addr = 0, header_addr - header_offset
    else:
        if load_addr > header_addr:
            return refuse(name, f"{proto}: Illegal load address")
        if header_addr - load_addr > header_offset:
            return refuse(name, f"{proto}: Address tag offset underflow")
        load_src = header_offset - (header_addr - load_addr)
    if load_end_addr:
        if load_end_addr < load_addr:
            return refuse(name, f"{proto}: Load end address less than load address")
        load_size = load_end_addr - load_addr
    else:
        if load_src > len(data):
            return refuse(name, f"{proto}: Load source exceeds kernel file size")
        load_size = len(data) - load_src
    if bss_end_addr and bss_end_addr < load_addr + load_size:
        return refuse(name, f"{proto}: Illegal bss end address")
    if load_src > len(data) or load_size > len(data) - load_src:
        return refuse(name, f"{proto}: load_src + load_size exceeds kernel file size")
    return None


def _header_offset(data, magic, header_size, window, align):
    """Where multiboot1.c / multiboot2.c find the header (the same loop in both): the first
    *align*-aligned *magic* at an offset from 0 to *window* (inclusive) with *header_size*
    bytes from it in the file; None when there is none."""
    limit = min(window, len(data) - header_size)
    if limit < 0:
        return None
    if not hasattr(data, "find"):       # a memoryview: the loop itself
        return next((o for o in range(0, limit + 1, align) if _u32(data, o) == magic), None)
    # The loop's answer found with bytes.find (a 32 KiB window of a kernel without the header,
    # e.g. a gzip file as given, is 6,000 _u32 calls, ~1 ms): the first aligned match.
    needle = magic.to_bytes(4, "little")
    at = data.find(needle, 0, limit + 4)
    while at != -1 and at % align:
        at = data.find(needle, at + 1, limit + 4)
    return None if at == -1 else at


@kernel_loader("limine-mb1", "multiboot1", reads="as-given", source=SOURCE)
def limine_mb1(data, compressed=None):
    name, proto = "limine-mb1", "multiboot1"
    if len(data) < MB1_HEADER_SIZE:
        return refuse(name, "multiboot1: Kernel file too small to contain header")
    off = _header_offset(data, fmt.MB1_MAGIC, MB1_HEADER_SIZE, 8192, 4)
    if off is None:
        return refuse(name, "multiboot1: Invalid magic")
    flags, checksum = _u32(data, off + 4), _u32(data, off + 8)
    if (fmt.MB1_MAGIC + flags + checksum) & 0xFFFFFFFF:
        return refuse(name, "multiboot1: Header checksum is invalid")
    if flags & (1 << 16):
        header_addr, load_addr, load_end, bss_end, entry = (_u32(data, off + 12 + 4 * i) for i in range(5))
        bad = _kludge(name, proto, data, off, header_addr, load_addr, load_end, bss_end)
        if bad:
            return bad
        return accept(name, f"loads the a.out kludge image at {load_addr:#x}, entry {entry:#x}")
    return _elf(name, data, proto)


@kernel_loader("limine-mb2", "multiboot2", reads="as-given", source=SOURCE)
def limine_mb2(data, compressed=None):
    name, proto = "limine-mb2", "multiboot2"
    if len(data) < MB2_HEADER_SIZE:
        return refuse(name, "multiboot2: Kernel file too small to contain header")
    off = _header_offset(data, fmt.MB2_MAGIC, MB2_HEADER_SIZE, 32768, 8)
    if off is None:
        return refuse(name, "multiboot2: Invalid magic")
    arch, length, checksum = _u32(data, off + 4), _u32(data, off + 8), _u32(data, off + 12)
    if (fmt.MB2_MAGIC + arch + length + checksum) & 0xFFFFFFFF:
        return refuse(name, "multiboot2: Header checksum is invalid")
    if arch != 0:
        return refuse(name, f"multiboot2: Unsupported architecture {arch} (expected i386)")
    if length > len(data) - off:
        return refuse(name, "multiboot2: Header length exceeds kernel file size")
    end = off + length
    pos = off + MB2_HEADER_SIZE
    address = entry = reloc = None
    while pos + 8 <= end:
        ttype, tflags, size = _u16(data, pos), _u16(data, pos + 2), _u32(data, pos + 4)
        if ttype == H.END or size == 0:
            break
        required = not tflags & 1
        if ttype == H.INFORMATION_REQUEST:
            if size < 8:
                return refuse(name, "multiboot2: Invalid information request tag size")
            if size > end - pos:
                return refuse(name, "multiboot2: Information request tag exceeds header bounds")
            for i in range((size - 8) // 4):
                r = _u32(data, pos + 8 + 4 * i)
                if r not in INFO_REQUESTS and required:
                    return refuse(name, f"multiboot2: Requested tag `{r}` which is not supported")
        elif ttype == H.ADDRESS and size >= 24:
            address = tuple(_u32(data, pos + 8 + 4 * i) for i in range(4))
        elif ttype == H.ENTRY_ADDRESS and size >= 12:
            entry = _u32(data, pos + 8)
        elif ttype == H.EFI_BOOT_SERVICES and required:
            return refuse(name, "multiboot2: EFI_BS tag is required but not supported")
        elif ttype == H.RELOCATABLE and size >= 24:
            reloc = tuple(_u32(data, pos + 8 + 4 * i) for i in range(4))
        elif ttype not in HEADER_TAGS and required:
            return refuse(name, f"multiboot2: Unsupported header tag type: {ttype}" if ttype <= H.RELOCATABLE
                          else f"multiboot2: Unknown custom header tag type: {ttype}")
        pos += size + (-size % 8)
    if address is not None:
        bad = _kludge(name, proto, data, off, *address)
        if bad:
            return bad
        if entry is None:
            return refuse(name, "multiboot2: Using address tag but entry address tag missing")
        verdict = accept(name, f"loads the address-tag image at {address[1]:#x}")
    else:
        verdict = _elf(name, data, proto)
        if not verdict.ok:
            return verdict
    if reloc is not None:
        if reloc[2] == 0:
            return refuse(name, "multiboot2: Relocatable tag has align=0")
        pref = {0: "none", 1: "lowest", 2: "highest"}.get(reloc[3], "none")
        verdict = verdict.with_reason(verdict.reason + f"; relocatable within [{reloc[0]:#x}, {reloc[1]:#x}], "
                                      f"align {reloc[2]:#x}, preference {pref}")
    return verdict
