"""The memory a BIOS boot loader still holds for itself when it jumps to the kernel
("loader-owned at entry"): where its own code, buffers, heap and stack lie, beside the map
it hands over, and whether any of it is still in use once the kernel runs.

Every range is predicted from the loader's source and the Debian / release binaries named
below, and found in guest memory at the kernel's entry by tests/test_loader_owned.py (the
fixture tests/data/loader-owned/*.json keeps what those boots found). None of it is marked
in the E820 the kernel gets: the loaders hand over the firmware's map as it was.
"""

import os
from dataclasses import dataclass, field

from bootforge.errors import BootforgeError
from bootforge.formats import multiboot as fmt, parse
from bootforge.multiboot.headers import read_elf

SYSLINUX_DIR = "/usr/lib/syslinux/modules/bios"     # bootforge.bootloaders.syslinux.BIOS_DIR
ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
GRUB_PC_DIR = "/usr/lib/grub/i386-pc"


@dataclass
class Evidence:
    """What guest memory holds at the entry where a range is predicted, checkable by verify:
    "file" (the file's bytes [offset, offset + length) at address), "section" (an ELF
    section's bytes at base + sh_addr), "within" (an ELF section's bytes somewhere in
    [address, address + length) and nowhere in the 64 KiB below), "zero" (length zero bytes)
    and "register" (a register's value at the entry, in address). With *relative_to* (a
    register) a "file" or "zero" address is an offset from that register's value at the entry:
    for memory whose place differs per boot but sits at a fixed distance from a register."""
    kind: str
    address: int
    length: int = 0
    file: str | None = None         # a path, or "limine:NAME" for a file of the Limine release
    offset: int = 0
    section: str | None = None
    register: str | None = None
    relative_to: str | None = None

    def to_json(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class OwnedRange:
    start: int
    end: int
    what: str
    in_use_at_entry: bool
    source: str
    evidence: list = field(default_factory=list)
    relative_to: str | None = None      # start/end are offsets from this register at the entry (differs per boot)

    def to_json(self):
        out = {"start": self.start, "end": self.end, "what": self.what,
               "in_use_at_entry": self.in_use_at_entry, "source": self.source,
               "evidence": [e.to_json() for e in self.evidence]}
        if self.relative_to:
            out["relative_to"] = self.relative_to
        return out

    def text(self):
        use = "in use at entry" if self.in_use_at_entry else "dead at entry"
        if self.relative_to:
            span = f"{self.relative_to}{self.start:+#x}-{self.relative_to}{self.end:+#x} (per boot)"
        else:
            span = f"{self.start:#014x}-{self.end:#014x}"
        return f"{span}  {self.what}  ({use}; {self.source})"


# --- Syslinux 6.04 (Debian 6.04~git20190206.bf6db5b4+dfsg1-3: /usr/lib/ISOLINUX/isolinux.bin,
# /usr/lib/syslinux/modules/bios/*.c32) --------------------------------------------------------

# core/i386/syslinux.ld: the 16-bit core from TEXT_START 0x7c00 (_end16 <= 0x10000), then
# `. = ALIGN(65536)` for .xfer_buf (core_xfer_buf, 64 KiB: core/layout.inc), so xfer_buf_seg
# is 0x1000 whatever the core's size; .auxseg and .lowmem follow it (aux_seg 0x2000).
SYSLINUX_TEXT_START = 0x7C00
# Bytes of isolinux.bin that stay as the file has them up to the entry: from after xorriso's
# boot information table (bytes 8-63) to the first of the core's variables (measured:
# tests/data/loader-owned/isolinux-256M.json "core16_equal").
SYSLINUX_CORE16_EQUAL = (0x40, 0xD48)
SYSLINUX_XFER_BUF = (0x10000, 0x20000)
# 6.04 has no cache_seg or real_mode_seg (the 4.x layout the seed describes): the disk cache
# and the config data are malloc()ed from the heap above 1 MiB (core/fs/cache.c, core/mem).
# free_high_memory = ALIGN(_end, 4096) of the 32-bit core linked at 0x100000 (syslinux.ld):
# its .bss/.hugebss/.stack sizes are not in isolinux.bin, so this is measured, as the first
# arena header of the heap chain walked back from ldlinux.c32's block (__core_malloc_head at
# 0x10f100 links to it), the same at 256M and 1G.
SYSLINUX_PM_CORE = 0x100000
SYSLINUX_FREE_HIGH_MEMORY = 0x321000
# The COM32 modules, each one elf_malloc() block (com32/lib/sys/module/elfutils.c: malloc of
# size + 4 KiB, aligned up to the PT_LOAD's 4 KiB) of its PT_LOAD p_memsz (.text, .rodata,
# .data, .bss: `readelf -lW FILE.c32`). Their bases come from core/mem/malloc.c's first fit
# after every allocation the core and ldlinux.c32 make before (file system, cache, config
# parsing): not modelled, so they are measured on bootforge's isolinux-iso medium (one label,
# mboot.c32 with a kernel and modules), identical at 256M and 1G.
SYSLINUX_COM32 = (("ldlinux.c32", 0x342000, 0x2001C), ("mboot.c32", 0x36D000, 0x2BC0),
                  ("libcom32.c32", 0x371000, 0x2D83C))
# mboot.c32 goes into a hole below libcom32.c32 that the config's blocks shape: with no module
# and a short APPEND line it sat one page lower. Measured, not derived: 0x36c000 for APPEND
# lines of 13, 27 and 32 bytes without modules; 0x36d000 for 300 bytes without modules and
# for every line with modules (30 bytes and up), at 256M (verify of the dump kernel and of the
# Multiboot specification's example kernel).
SYSLINUX_MBOOT_LOW = (0x36C000, 32)          # (base, longest APPEND line seen at it, no modules)
SYSLINUX_SOURCE = "Syslinux 6.04 core/i386/syslinux.ld, core/mem, com32/lib/sys/module"


def syslinux(stack_top, last_file=None, append_length=None, modules=1):
    """Syslinux 6.04 (ISOLINUX + mboot.c32) at the kernel's entry. *stack_top* is the end of
    the largest free range of mboot.c32's map (com32/mboot/map.c mboot_map_stack);
    *last_file* (path, size): the last file mboot.c32 reads (its last module, else the
    kernel), whose first sector the bounce buffer still holds."""
    lo, hi = SYSLINUX_CORE16_EQUAL
    xfer = [Evidence("file", SYSLINUX_XFER_BUF[0], min(last_file[1], 0x800), last_file[0])] if last_file else []
    out = [
        OwnedRange(SYSLINUX_TEXT_START + lo, SYSLINUX_TEXT_START + hi,
                   "ISOLINUX 16-bit core (isolinux.bin bytes 0x40-0xd48 as the file has them)", False,
                   "core/i386/syslinux.ld .init/.text16 at TEXT_START",
                   [Evidence("file", SYSLINUX_TEXT_START + lo, hi - lo, ISOLINUX_BIN, lo)]),
        OwnedRange(*SYSLINUX_XFER_BUF, "xfer_buf_seg 0x1000: core_xfer_buf, the disk bounce buffer", False,
                   "core/i386/syslinux.ld ALIGN(65536) after _end16; core/layout.inc", xfer),
        OwnedRange(SYSLINUX_PM_CORE, SYSLINUX_FREE_HIGH_MEMORY,
                   "ISOLINUX 32-bit core (.text .. .stack; the kernel's image overwrites its start)", False,
                   "core/i386/syslinux.ld at 0x100000, free_high_memory measured"),
    ]
    for name, base, size in SYSLINUX_COM32:
        if name == "mboot.c32" and not modules and append_length is not None \
                and append_length <= SYSLINUX_MBOOT_LOW[1]:
            base = SYSLINUX_MBOOT_LOW[0]
        out.append(OwnedRange(base, base + size, f"COM32 module {name} (.text/.rodata/.data/.bss)", False,
                              "elf_malloc() in the core's heap (base measured)",
                              [Evidence("section", base, file=f"{SYSLINUX_DIR}/{name}", section=sec)
                               for sec in (".text", ".rodata")]))
    # Above the last COM32 module the heap holds the blocks of the files mboot.c32 read
    # (loadfile(): their sizes and the shuffle's lists), so its used end varies with them:
    # the range predicted ends with libcom32.c32 (0x3a3df0 measured with the dump kernel and
    # one 3000-byte module: tests/data/loader-owned/found-256M.json).
    out.append(OwnedRange(SYSLINUX_FREE_HIGH_MEMORY, max(b + n for _, b, n in SYSLINUX_COM32),
                          "core heap in use up to the COM32 modules (arena chain from free_high_memory; "
                          "the config's labels, file system, modules)", False,
                          "core/mem/malloc.c first fit (measured)"))
    esp = (stack_top - 32) & ~15
    out.append(OwnedRange(esp, esp + 32, "mboot.c32's stack: ESP at entry, 32 zero bytes", True,
                          "com32/mboot/map.c mboot_map_stack: top of the largest free range - 32, 16-aligned",
                          [Evidence("register", esp, register="rsp"), Evidence("zero", esp, 32)]))
    return out


# --- GRUB 2.06 i386-pc (Debian 2.06-13+deb12u2 /usr/lib/grub/i386-pc/kernel.img) -------------------

# kernel.img's one PT_LOAD: p_paddr 0x9000 (GRUB_KERNEL_I386_PC_LINK_ADDR), p_filesz 0x74a8,
# p_memsz 0xec78 (`readelf -lW kernel.img`); lzma_decompress.img's startup_raw.S copies it
# there from the decompression buffer at 1 MiB.
GRUB_KERNEL_IMG = (0x9000, 0x9000 + 0xEC78)
GRUB_KERNEL_TEXT_RODATA = (0x9000 + 0x200, 0xEAD4 + 0x11A8)     # .text after startup.S's variables, .rodata
GRUB_SOURCE = "GRUB 2.06 include/grub/offsets.h, kern/i386/pc/init.c, kern/mm.c"
# include/grub/i386/multiboot.h MULTIBOOT_INITIAL_STATE (both protocols): ".esp = 0x7ff00", "some
# random location in low memory to avoid breaking non-compliant kernels"; nothing is reserved below it.
GRUB_MULTIBOOT_ESP = 0x7FF00


def grub_pc(heap, module, how):
    """GRUB i386-pc at the kernel's entry; *heap* (start, size) from grub_pc.heap_in_use, its size
    found as *how* says; *module*: GRUB's loader module for the protocol (multiboot or multiboot2)."""
    out = [OwnedRange(*GRUB_KERNEL_IMG, "GRUB kernel.img (.text .rodata .data .bss)", False,
                      "kernel.img PT_LOAD at GRUB_KERNEL_I386_PC_LINK_ADDR 0x9000",
                      [Evidence("section", 0, file=f"{GRUB_PC_DIR}/kernel.img", section=".rodata")]),
           OwnedRange(GRUB_MULTIBOOT_ESP, GRUB_MULTIBOOT_ESP, "ESP GRUB sets for the kernel (a stack pointer, "
                      "no memory reserved)", True, "include/grub/i386/multiboot.h MULTIBOOT_INITIAL_STATE",
                      [Evidence("register", GRUB_MULTIBOOT_ESP, register="rsp")])]
    if heap:
        # multiboot2.mod / multiboot.mod: loaded by the `multiboot2`/`multiboot` command into the heap
        # (kern/dl.c grub_dl_load_segments), its strings (.rodata.str1.1) carrying no relocations.
        out.append(OwnedRange(heap[0], heap[0] + heap[1], "GRUB heap in use (modules, grub.cfg, file buffers)",
                              False, f"kern/mm.c: carved from the top of the largest RAM range below 4 GiB "
                              f"({how})",
                              [Evidence("within", heap[0], heap[1], f"{GRUB_PC_DIR}/{module}.mod", section=".rodata.str1.1")]))
    return out


# --- Limine 11.4.1 BIOS (/work/shared/oracles/limine-11.4.1/limine-bios.sys, 256756 bytes) ---------

LIMINE_STAGE3 = 0xF000
LIMINE_STAGE3_SIZE = 256756
# Stage 3's bytes that stay as the file has them (its code; measured at 256M: its variables lie
# below 0x16200 and from 0x3f56b on, and the boot information is written at 0x10000).
LIMINE_STAGE3_EQUAL = (0x16200, 0x3F500)
LIMINE_SOURCE = "limine-bios.sys loaded at 0xf000 by its stage 2 (observed: its bytes there at the entry)"
# multiboot_reloc_stub in limine-bios.sys (its bytes eb 02 00 00 89 dc 83 c4 58: jmp .code;
# mov esp, ebx; add esp, .mini_stack_top - stub): code up to the 16-aligned 24-byte mini stack.
LIMINE_RELOC_STUB = 0x3DA20
LIMINE_RELOC_CODE = 0x40
LIMINE_RELOC_STACK_TOP = 0x58


def limine_bios(mbi_address, mbi_size):
    """Limine BIOS at the kernel's entry: its stage 3 image, with the boot information it
    wrote inside it (elsewhere_append's target 0x10000) still in use."""
    out = [OwnedRange(LIMINE_STAGE3, LIMINE_STAGE3 + LIMINE_STAGE3_SIZE,
                      "Limine stage 3 limine-bios.sys (apart from the boot information written into it)",
                      False, LIMINE_SOURCE,
                      [Evidence("file", LIMINE_STAGE3_EQUAL[0], LIMINE_STAGE3_EQUAL[1] - LIMINE_STAGE3_EQUAL[0],
                                "limine:limine-bios.sys", LIMINE_STAGE3_EQUAL[0] - LIMINE_STAGE3)])]
    if mbi_address is not None and LIMINE_STAGE3 <= mbi_address < LIMINE_STAGE3 + LIMINE_STAGE3_SIZE:
        out.append(OwnedRange(mbi_address, mbi_address + mbi_size,
                              "boot information inside stage 3 (the kernel's to read)", True,
                              "multiboot*.c: elsewhere_append target 0x10000"))
    # The relocation stub (protos/multiboot_reloc.asm_x86): multiboot*.c copies it into its
    # last ext_mem_alloc() (one zeroed page, top-down below 4 GiB; pmm.s2.c), common_spinup
    # jumps to it, and it sets ESP to its own mini stack's top (`add esp, 0x58` in 11.4.1's
    # bytes), copies the ranges and `ret`s into the kernel, which so starts on that stack.
    # Where the page lies differs per boot: the allocations above it are not the same from
    # boot to boot (seen at 256M: the stub at top - 0x4b000 and top - 0x2d000 in two boots of
    # one ISO; 0x4b000 at 512M, 0x37000 at 1G; the gaps are multiples of 0xa000). So the
    # range is given from ESP, which every boot shows at stub + 0x58.
    out.append(OwnedRange(-LIMINE_RELOC_STACK_TOP, 0x1000 - LIMINE_RELOC_STACK_TOP,
                          "Limine relocation stub page, its mini stack = the kernel's stack at entry "
                          "(place differs per boot: ESP - 0x58)", True,
                          "multiboot_reloc.asm_x86 copied into ext_mem_alloc(stub size); ESP = stub + 0x58",
                          [Evidence("file", -LIMINE_RELOC_STACK_TOP, LIMINE_RELOC_CODE, "limine:limine-bios.sys",
                                    LIMINE_RELOC_STUB, relative_to="rsp"),
                           Evidence("zero", 0, 0x1000 - LIMINE_RELOC_STACK_TOP, relative_to="rsp")],
                          relative_to="rsp"))
    return out


def _elf_section(data, name):
    """(sh_addr, sh_offset, sh_size) of ELF32 section *name* in *data*, or None."""
    elf = read_elf(data)
    if not elf.shnum or elf.shstrndx >= elf.shnum:
        return None
    heads = [parse(fmt.Elf32Shdr, data, elf.shoff + i * elf.shentsize, f"section header {i}")
             for i in range(elf.shnum)]
    names = heads[elf.shstrndx]
    for h in heads:
        at = names.sh_offset + h.sh_name
        if data[at:data.index(b"\0", at)].decode("ascii", "replace") == name:
            return h.sh_addr, h.sh_offset, h.sh_size
    return None


def _resolve(path):
    if path.startswith("limine:"):
        # Function-level import: the Limine release's place only when verify checks one of its files.
        from bootforge.bootloaders import limine
        return os.path.join(limine.release_dir(), path.split(":", 1)[1])
    return path


def check(evidence, read, registers):
    """(found, words) of one Evidence against guest memory at the entry: *read(addr, n)*
    returns bytes or None; *registers* the entry registers."""
    e = evidence
    if e.relative_to:
        base = registers.get(e.relative_to, 0) & 0xFFFFFFFF
        e = Evidence(e.kind, base + e.address, e.length, e.file, e.offset, e.section, e.register)
    if e.kind == "register":
        got = registers.get(e.register, 0) & 0xFFFFFFFF
        return got == e.address, f"{e.register} {got:#x}"
    if e.kind == "zero":
        got = read(e.address, e.length)
        return got == bytes(e.length), f"{e.length} bytes at {e.address:#x} {'zero' if got == bytes(e.length) else 'not zero'}"
    try:
        with open(_resolve(e.file), "rb") as f:
            data = f.read()
    except (OSError, BootforgeError) as exc:        # the loader's file is not on this machine
        return None, f"{e.file}: {getattr(exc, 'message', None) or exc}"
    if e.kind == "file":
        want = data[e.offset:e.offset + e.length]
        got = read(e.address, len(want))
        return got == want, f"{e.file}[{e.offset:#x}:+{len(want):#x}] {'at' if got == want else 'not at'} {e.address:#x}"
    sec = _elf_section(data, e.section)
    if sec is None:
        return False, f"{e.file} has no {e.section}"
    addr, off, size = sec
    want = data[off:off + size]
    if e.kind == "section":
        got = read(e.address + addr, size)
        return got == want, f"{e.file} {e.section} {'at' if got == want else 'not at'} {e.address + addr:#x}"
    below = max(e.address - 0x10000, 0)
    got = read(below, e.address + e.length - below) or b""
    at = got.find(want)
    ok = at >= e.address - below
    return ok, (f"{e.file} {e.section} at {below + at:#x}" if at >= 0 else f"{e.file} {e.section} not found")
