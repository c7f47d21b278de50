"""GRUB 2.06 i386-pc's heap in use when a loader places a kernel: what is derived from the
image and what is measured per GRUB build.

GRUB's heap (grub-core/kern/mm.c) hands out blocks of whole 16-byte cells with a 16-byte header
(mm_private.h on i386: next, size in cells, magic, padding): grub_malloc(n) takes
(ceil(n / 16) + 1) cells, carved from the high end of the first free block big enough, so what
GRUB holds sits at the top of the largest RAM range below 4 GiB and grows down.

Derived here, from the files an image carries:
- A module GRUB loads (kern/dl.c grub_dl_load_core_noinit) holds, until the kernel runs:
  the struct grub_dl (zalloc), its name (strdup of .modname), one grub_dl_dep per .moddeps name,
  one grub_dl_segment per SHF_ALLOC section (empty ones too), the segment block of
  grub_dl_load_segments (tsize: *every* section, each ALIGN_UP to its sh_addralign, plus its
  size; GRUB 2.06 without the later "don't allocate space for non-allocable sections" patch,
  confirmed by the block size seen for regexp.mod), one struct grub_symbol and a strdup of the
  name per global symbol it defines (grub_dl_register_symbol), and what its grub_mod_init
  registers: a struct grub_command per grub_register_command_* call site, plus a struct
  grub_extcmd per grub_register_extcmd* call site (commands/extcmd.c). The file's buffer is
  freed after loading (grub_dl_load_file).
- The disk cache (kern/disk.c): every 64-sector (32 KiB) disk block a read touches is kept in a
  grub_malloc(0x8000) block (0x8010 with its header) until its slot (1021 of them) is reused, so
  reading a file adds one such block per 32 KiB block of its extent not already cached.

Measured per GRUB build and boot path (BUILDS, the one place): what GRUB holds on the images
bootforge builds before any of the above is added (its core modules, normal.mod and what it
loads, the fonts/terminal setup, grub.cfg's parsed script, the cache blocks of those reads).
That part depends on GRUB's own start-up code path, not on inputs bootforge chooses, so it is a
property of the build and the medium; replaying it allocation by allocation (including the
holes freed buffers leave, which the relocator also uses) is not done.
"""

import lzma
from dataclasses import dataclass
from pathlib import Path

from bootforge.align import align_up
from bootforge.errors import FormatError
from bootforge.formats import grub_core as core_fmt
from bootforge.formats.multiboot import ELFCLASS32, Elf32Ehdr, Elf32Rel, Elf32Shdr, Elf32Sym

CELL = 16                    # GRUB_MM_ALIGN on i386, also sizeof(struct grub_mm_header)
DISK_CACHE_SECTORS = 64      # 1 << GRUB_DISK_CACHE_BITS (kern/disk.c, include/grub/disk.h)
DISK_CACHE_BLOCK = DISK_CACHE_SECTORS * 512
SECTOR = 512                 # GRUB_DISK_SECTOR_SIZE: cache indices count 512-byte sectors

# i386 struct sizes (include/grub/dl.h, command.h, extcmd.h; 4-byte words).
DL_SIZE = 52                 # struct grub_dl: 13 words (observed in the heap: name, ref_count, 0, dep,
                             # segment, symtab, symsize, init, fini, base, sz, next): 5 cells
DL_DEP_SIZE = 8              # struct grub_dl_dep: next, mod
DL_SEGMENT_SIZE = 16         # struct grub_dl_segment: next, addr, size, section
SYMBOL_SIZE = 20             # struct grub_symbol: next, name, addr, isfunc, mod
COMMAND_SIZE = 36            # struct grub_command: next, prev, name, prio, func, flags, summary,
                             # description, data
EXTCMD_SIZE = 16             # struct grub_extcmd: cmd, func, options, data

# What each registering call a module's init makes allocates (kern/command.c, commands/extcmd.c:
# the _lockdown variants and grub_register_extcmd end in grub_register_command_prio).
REGISTERS = {
    "grub_register_command_prio": (COMMAND_SIZE,),
    "grub_register_command_lockdown": (COMMAND_SIZE,),
    "grub_register_extcmd": (EXTCMD_SIZE, COMMAND_SIZE),
    "grub_register_extcmd_prio": (EXTCMD_SIZE, COMMAND_SIZE),
    "grub_register_extcmd_lockdown": (EXTCMD_SIZE, COMMAND_SIZE),
}
# Calls whose allocations are not modelled (environment variables and their hooks).
UNMODELLED = ("grub_register_variable_hook",)

SHF_ALLOC = 2
SHT_SYMTAB, SHT_REL = 2, 9
STB_LOCAL = 0
STT_NOTYPE, STT_OBJECT, STT_FUNC = 0, 1, 2


@dataclass(frozen=True)
class HeapBuild:
    """What one GRUB build holds at the top of its heap on bootforge's images, per boot path,
    when the loader places the kernel (before any module or file this module derives)."""
    package: str
    multiboot_iso: int       # grub-mkrescue ISO, `multiboot`/`multiboot2`: when the relocator runs
    linux_disk: int          # bootforge's disk image (FAT ESP, core.img with `linux`): at `initrd`
    why: str
    loaded: tuple            # the modules GRUB has loaded in the multiboot_iso figure (MB2 entry)
    insmod_line: tuple       # blocks one `insmod NAME` line in the menu entry adds (its parsed script)
    # bootforge's own images (`bootforge build`, every module in core.img): per image format,
    # what GRUB holds besides its modules' blocks and the disk-cache blocks (grub.cfg's script,
    # environment, terminals, the early config's search), the cache blocks it reads, and the
    # free holes between its lowest block and the top (at a Multiboot2 kernel's entry).
    image_rest: tuple = ()           # ((format, bytes), ...)
    image_cache_blocks: tuple = ()   # ((format, count), ...)
    image_holes: tuple = ()          # ((format, bytes), ...)


BUILDS = {
    "2.06-13+deb12u2": HeapBuild(
        "GRUB 2.06-13+deb12u2", 0x1D6000, 0x8A5000,
        "multiboot_iso: relocatable MB2 probes (align 2 MiB, preference high) at 512M and 1G, memsz "
        "0x9034 fits under it and 0xa034 does not; block by block tests/grub_pc_heap_walk.py (1G, "
        "1-byte command line: lowest used block 0x3fe09f20, 0x1d60e0 below the region's top). "
        "linux_disk: the end of SeaBIOS's RAM minus the end of the initrd Debian's kernel reports "
        "at 256M and 512M (tests/data/linux-grub-pc/); the `linux` path also holds the kernel "
        "file's buffers while `initrd` runs. loaded: the names of the 39 struct grub_dl blocks in "
        "that heap (tests/data/grub-heap/probe-1G.json), regexp excepted. insmod_line: the blocks "
        "`insmod extcmd` (a module already loaded: no module blocks) added to the same boot; "
        "script/parser.y's nodes for the line, not derived here.",
        ("acpi", "biosdisk", "boot", "bufio", "crypto", "datetime", "extcmd", "fshelp", "gcry_crc", "gettext",
         "gzio", "iso9660", "linux", "lsapm", "mmap", "multiboot2", "net", "normal", "part_acorn", "part_amiga",
         "part_apple", "part_bsd", "part_dfly", "part_dvh", "part_gpt", "part_msdos", "part_plan", "part_sun",
         "part_sunpc", "priority_queue", "relocator", "serial", "terminal", "terminfo", "vbe", "verifiers",
         "video", "video_fb"),
        (0x30, 0x40),
        # tests/grub_pc_heap_walk.py --image of `bootforge build` ISO and disk images of the probe
        # (tests/data/grub-heap/images-1G.json): used bytes minus the derived module blocks minus
        # the 0x8010-byte cache blocks, 0x23650 on the ISO with and without grub_modules = ["regexp"].
        (("iso", 0x23650), ("disk", 0x23670)), (("iso", 3), ("disk", 4)),
        (("iso", 0x14d50), ("disk", 0xc8c0))),
}
BUILD = "2.06-13+deb12u2"     # the GRUB bootforge's media carry (Debian 12's grub-pc-bin)


def block(size):
    """Bytes of heap one grub_malloc(size) holds: (ceil(size / 16) + 1) cells (kern/mm.c)."""
    return ((size + CELL - 1) // CELL + 1) * CELL


def _cstr(data, at):
    end = data.find(b"\0", at)
    return data[at:end if end >= 0 else len(data)]


def _sections(data, path):
    if len(data) < Elf32Ehdr.sizeof() or data[:4] != b"\x7fELF" or data[4] != ELFCLASS32:
        raise FormatError(f"{path}: offset 0: not an ELF32 GRUB module")
    e = Elf32Ehdr.parse(data)
    if e.e_shentsize != Elf32Shdr.sizeof() or e.e_shoff + e.e_shnum * e.e_shentsize > len(data):
        raise FormatError(f"{path}: offset {e.e_shoff:#x}: section headers outside the file "
                          f"({e.e_shnum} of {e.e_shentsize} bytes)")
    secs = [Elf32Shdr.parse(data[e.e_shoff + i * e.e_shentsize:]) for i in range(e.e_shnum)]
    for i, s in enumerate(secs):
        if s.sh_type not in (0, 8) and s.sh_offset + s.sh_size > len(data):
            raise FormatError(f"{path}: offset {e.e_shoff + i * e.e_shentsize:#x}: section {i} "
                              f"({s.sh_offset:#x} + {s.sh_size:#x}) outside the file")
    names = secs[e.e_shstrndx] if e.e_shstrndx < len(secs) else None
    named = {}
    for s in secs:
        if names is not None:
            named[_cstr(data, names.sh_offset + s.sh_name).decode("latin-1")] = s
    return secs, named


@dataclass(frozen=True)
class ModuleHeap:
    """What loading one module leaves on GRUB's heap: block sizes by what they hold."""
    name: str
    deps: tuple
    tsize: int               # grub_dl_load_segments' allocation (struct grub_dl's sz)
    blocks: tuple            # ((what, block bytes), ...)
    unmodelled: tuple        # calls whose allocations are not counted

    @property
    def size(self):
        return sum(b for _w, b in self.blocks)


def module_heap(data, path="module"):
    """ModuleHeap of a GRUB i386 module's bytes (kern/dl.c grub_dl_load_core_noinit)."""
    secs, named = _sections(data, path)
    modname = named.get(".modname")
    name = _cstr(data, modname.sh_offset).decode("latin-1") if modname is not None else ""
    deps = ()
    if ".moddeps" in named:
        s = named[".moddeps"]
        deps = tuple(w.decode("latin-1") for w in data[s.sh_offset:s.sh_offset + s.sh_size].split(b"\0") if w)
    blocks = [("struct grub_dl", block(DL_SIZE)), ("module name", block(len(name) + 1))]
    blocks += [("grub_dl_dep", block(DL_DEP_SIZE))] * len(deps)
    tsize = 0
    for s in secs:
        tsize = align_up(tsize, s.sh_addralign) + s.sh_size
    blocks.append(("sections (grub_dl_load_segments)", block(tsize)))
    blocks += [("grub_dl_segment", block(DL_SEGMENT_SIZE))] * sum(1 for s in secs if s.sh_flags & SHF_ALLOC)
    unmodelled = []
    symtab = next((s for s in secs if s.sh_type == SHT_SYMTAB), None)
    if symtab is not None and symtab.sh_link < len(secs):
        strtab = secs[symtab.sh_link].sh_offset
        syms = [Elf32Sym.parse(data[symtab.sh_offset + i * Elf32Sym.sizeof():])
                for i in range(symtab.sh_size // Elf32Sym.sizeof())]
        for sym in syms:
            kind, bind = sym.st_info & 0xF, sym.st_info >> 4
            defined = sym.st_shndx != 0 or kind == STT_FUNC
            if bind != STB_LOCAL and kind in (STT_NOTYPE, STT_OBJECT, STT_FUNC) and defined \
                    and (sym.st_name or kind == STT_FUNC):
                blocks += [("grub_symbol", block(SYMBOL_SIZE)),
                           ("symbol name", block(len(_cstr(data, strtab + sym.st_name)) + 1))]
        for s in secs:
            if s.sh_type != SHT_REL or s.sh_link != secs.index(symtab):
                continue
            for i in range(s.sh_size // Elf32Rel.sizeof()):
                r = Elf32Rel.parse(data[s.sh_offset + i * Elf32Rel.sizeof():])
                if r.r_info >> 8 >= len(syms):
                    continue
                callee = _cstr(data, strtab + syms[r.r_info >> 8].st_name).decode("latin-1")
                blocks += [(callee, block(n)) for n in REGISTERS.get(callee, ())]
                if callee in UNMODELLED:
                    unmodelled.append(callee)
    return ModuleHeap(name, deps, tsize, tuple(blocks), tuple(unmodelled))


def cache_blocks(extent, cached=frozenset()):
    """The 32 KiB disk-cache blocks (their indices: 512-byte sector >> 6) a read of the byte
    range *extent* = (offset on the disk, size) adds, those in *cached* excepted (kern/disk.c
    grub_disk_read keeps every block it reads)."""
    offset, size = extent
    if size <= 0:
        return set()
    first = offset // SECTOR // DISK_CACHE_SECTORS
    last = (offset + size - 1) // SECTOR // DISK_CACHE_SECTORS
    return set(range(first, last + 1)) - set(cached)


def modules_heap(names, read_module, extents=None, loaded=(), cached=frozenset()):
    """[(module name, ModuleHeap, new cache blocks)] for `insmod` of *names* in order, with each
    module's .moddeps loaded first (grub_dl_resolve_dependencies, before its own segments), those
    in *loaded* skipped. *read_module(name)* gives a module's bytes; *extents* maps a name to its
    file's (offset, size) on the medium for the cache blocks (none counted without it)."""
    done, out, cached = set(loaded), [], set(cached)

    def load(name):
        if name in done:
            return
        done.add(name)
        mod = module_heap(read_module(name), f"{name}.mod")
        new = cache_blocks(extents[name], cached) if extents and name in extents else set()
        cached.update(new)
        for dep in mod.deps:
            load(dep)
        out.append((name, mod, new))

    for n in names:
        load(n)
    return out


def loaded_bytes(loaded):
    """Heap bytes [(name, ModuleHeap, cache blocks)] hold together."""
    return sum(mod.size + len(new) * block(DISK_CACHE_BLOCK) for _n, mod, new in loaded)


def read_installed_module(name, directory="/usr/lib/grub/i386-pc"):
    """The bytes of GRUB's installed module *name* (the grub-pc-bin directory bootforge's media
    copy their modules from)."""
    path = Path(directory) / f"{name}.mod"
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read the GRUB module ({exc.strerror})") from None


def held_bytes(insmod=(), *, build=BUILD, read_module=read_installed_module, extents=None, cached=frozenset()):
    """Bytes GRUB i386-pc holds at the top of its heap when the relocator places a Multiboot
    kernel from bootforge's ISO whose menu entry has an `insmod NAME` line per *insmod* name:
    the build's measured figure, plus each module not already loaded with its dependencies
    (module_heap), the disk-cache blocks of their files (when *extents* gives them), and the
    lines' parsed script."""
    b = BUILDS[build]
    loaded = modules_heap(insmod, read_module, extents, b.loaded, cached)
    return b.multiboot_iso + loaded_bytes(loaded) + len(insmod) * sum(b.insmod_line)


def core_closure(names, read_module=read_installed_module):
    """*names* with every module their .moddeps name, transitively (what grub-mkimage puts in
    core.img for a module list: it adds the dependencies), sorted."""
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += module_heap(read_module(n), f"{n}.mod").deps
    return sorted(seen)


def image_held(names, fmt, *, build=BUILD, read_module=read_installed_module):
    """(used bytes, span below the heap region's top) of GRUB i386-pc on a bootforge image of
    format *fmt* whose core.img holds the modules *names* (dependencies included): the modules'
    blocks (module_heap), the image's cache blocks and the build's measured rest, and the holes
    measured for that format. The used bytes are derived exactly (the kept boots); the holes are
    where the replay is missing (a module added to core.img fills some of them)."""
    b = BUILDS[build]
    rest, cache, holes = (dict(t)[fmt] for t in (b.image_rest, b.image_cache_blocks, b.image_holes))
    used = sum(module_heap(read_module(n), f"{n}.mod").size for n in names) + cache * block(DISK_CACHE_BLOCK) + rest
    return used, used + holes


STUB_AT = (2560, 512)               # the decompressor in i386-pc-eltorito.img (cdboot + diskboot) / core.img
MAX_CORE = 16 << 20                 # no GRUB i386-pc core decompresses to more (it runs below 640 KiB + high)


def core_img_modules(data, path="core.img", directory="/usr/lib/grub/i386-pc"):
    """[module bytes] of an i386-pc core image grub-mkimage made (i386-pc or i386-pc-eltorito):
    lzma_decompress.img's header gives the compressed and uncompressed sizes (+8, +0xc), the raw
    LZMA1 stream follows it, and the module area after kernel.img is a grub_module_info32 ("mimg",
    offset, size) with a grub_module_header (type, size) per object (util/mkimage.c)."""
    stub = len(read_stub(directory))
    for at in STUB_AT:
        if len(data) < at + stub:
            continue
        csize = int.from_bytes(data[at + core_fmt.DECOMPRESSOR_COMPRESSED_SIZE:][:4], "little")
        usize = int.from_bytes(data[at + core_fmt.DECOMPRESSOR_UNCOMPRESSED_SIZE:][:4], "little")
        if not 0 < usize <= MAX_CORE or at + stub + csize > len(data) + 64:
            continue
        try:
            raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 24,
                                        "lc": core_fmt.LZMA_LC, "lp": core_fmt.LZMA_LP,
                                        "pb": core_fmt.LZMA_PB}]).decompress(data[at + stub:at + stub + csize],
                                                                               max_length=usize)
        except lzma.LZMAError:
            continue
        magic = core_fmt.MODULE_INFO_MAGIC.to_bytes(4, "little")
        i = raw.find(magic)
        while i >= 0:
            off = int.from_bytes(raw[i + 4:i + 8], "little")
            size = int.from_bytes(raw[i + 8:i + 12], "little")
            if off < 64 and 12 <= size <= len(raw) - i:
                out, p = [], i + off
                while p + 8 <= i + size:
                    kind, n = int.from_bytes(raw[p:p + 4], "little"), int.from_bytes(raw[p + 4:p + 8], "little")
                    if n < 8:
                        break
                    if kind == core_fmt.GrubObjectType.ELF:
                        out.append(raw[p + 8:p + n])
                    p += n
                return out
            i = raw.find(magic, i + 1)
    raise FormatError(f"{path}: offset {STUB_AT[0]:#x}: no GRUB i386-pc LZMA core with a module area")


def read_stub(directory):
    path = Path(directory) / "lzma_decompress.img"
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read GRUB's decompressor ({exc.strerror})") from None
