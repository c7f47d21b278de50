"""Where a loader jumps: e_entry translated from a virtual to a physical address as each
loader does it, or the address the Multiboot header gives instead.

A higher-half kernel links its code at p_vaddr 0xffffffff80100000 and loads it at p_paddr
0x100000; its e_entry is virtual. The loaders translate it through a program header that
holds it, each by its own rule:

- GRUB 2.06 (grub-core/loader/multiboot_elfxx.c, grub_multiboot_load_elfXX): the first
  program header of any type with p_vaddr <= e_entry < p_vaddr + p_memsz; entry =
  e_entry - p_vaddr + p_paddr; ELF64 with a result above 4 GiB: "invalid entry point for
  ELF64"; none: "entry point isn't in a segment". The MB1 a.out kludge's entry_addr and
  the MB2 entry address tag (3) replace it (multiboot.c, multiboot_mbi2.c).
- Limine (common/lib/elf.c, *_load_elsewhere): the first PT_LOAD with p_memsz holding it,
  the same arithmetic; the MB2 entry address tag replaces it (protos/multiboot2.c).
- QEMU -kernel (include/hw/elf_ops.h load_elf): every PT_LOAD that is executable, has
  p_vaddr != p_paddr and holds e_entry within p_filesz translates it (the last one wins);
  an ELF32 e_entry is sign-extended, then cut to 32 bits by hw/i386/multiboot.c. ELF64
  is refused before ("Cannot load x86-64 image, give a 32bit one.").
- Syslinux mboot.c32 (com32/mboot/map.c): e_entry as it is, no translation.
"""

from dataclasses import dataclass, replace

from bootforge.formats import multiboot as fmt
from bootforge.multiboot.headers import read_elf

RULES = ("grub", "limine", "qemu", "syslinux")


@dataclass(frozen=True)
class Entry:
    address: int                    # what the loader jumps to
    how: str                        # "ELF e_entry", "MB2 entry address tag (3)", "MB1 a.out kludge entry_addr"
    e_entry: int | None = None      # the ELF header's value, when the address comes from it
    segment: int | None = None      # the program header it was translated through

    def detail(self):
        """Where the address comes from: 'e_entry 0xffffffff80100018, translated through segment 0'."""
        if self.e_entry is not None and self.segment is not None and self.e_entry != self.address:
            return f"e_entry {self.e_entry:#x}, translated through segment {self.segment}"
        return self.how

    def text(self):
        """'entry 0x100018 (e_entry 0xffffffff80100018, translated through segment 0)'."""
        return f"entry {self.address:#x} ({self.detail()})"

    def to_json(self):
        return {"address": self.address, "how": self.how, "e_entry": self.e_entry, "segment": self.segment}


def translate(elf, rule):
    """Entry of the ELF *elf* (headers.ElfFacts) under loader *rule* (one of RULES); for
    grub and limine None when no program header holds e_entry (GRUB's refusal)."""
    if rule not in RULES:
        raise ValueError(f"entry rule {rule!r} is not one of {RULES}")
    e = elf.entry
    if rule == "syslinux":
        return Entry(e & 0xFFFFFFFF, "ELF e_entry", e, None)
    if rule == "qemu":
        if elf.bits == 32 and e & 0x80000000:
            e |= 0xFFFFFFFF00000000          # (elf_sword) in elf_ops.h
        found = None
        for s in elf.segments:
            if (s.type == fmt.PT_LOAD and s.flags & fmt.PF_X and s.vaddr != s.paddr
                    and s.vaddr <= elf.entry < s.vaddr + s.filesz):
                found = s
        if found is None:
            return Entry(e & 0xFFFFFFFF, "ELF e_entry", elf.entry, None)
        return Entry((elf.entry - found.vaddr + found.paddr) & 0xFFFFFFFF, "ELF e_entry", elf.entry, found.index)
    for s in elf.segments:
        if rule == "limine" and (s.type != fmt.PT_LOAD or not s.memsz):
            continue
        if s.vaddr <= e < s.vaddr + s.memsz:
            return Entry(e - s.vaddr + s.paddr, "ELF e_entry", e, s.index)
    return None


def header_entry(kernel, protocol):
    """The entry a Multiboot header names instead of e_entry (MB1 a.out kludge entry_addr;
    MB2 entry address tag 3), or None. *kernel*: loader.image.KernelImage."""
    if protocol == "multiboot1":
        mb1 = kernel.mb1
        if mb1 and mb1.get("aout_kludge") and mb1.get("addresses"):
            return Entry(mb1["addresses"]["entry_addr"], "MB1 a.out kludge entry_addr")
        return None
    for t in (kernel.mb2 or {}).get("tags", []):
        if t.get("type") == fmt.Mb2HeaderTag.ENTRY_ADDRESS and "entry_addr" in t:
            return Entry(t["entry_addr"], "MB2 entry address tag (3)")
    return None


def loader_entry(kernel, protocol, rule):
    """Where loader *rule* jumps into *kernel* (loader.image.KernelImage) for *protocol*:
    the header's entry, else e_entry translated by the rule, else e_entry itself."""
    found = header_entry(kernel, protocol)
    if found is not None:
        return found
    if kernel.data[:4] == fmt.ELF_MAGIC:
        found = translate(read_elf(kernel.data), rule)
        if found is not None:
            return found
        return Entry(kernel.entry, "ELF e_entry")
    return Entry(kernel.entry, "image entry")


def moved_entry(entry, slide):
    """*entry* of a relocatable image the loader moved by *slide* bytes (GRUB
    multiboot_elfxx.c and Limine multiboot2.c move the entry with the image)."""
    if not slide:
        return entry
    return replace(entry, address=(entry.address + slide) & 0xFFFFFFFF,
                   how=f"{entry.how}, moved {slide:+#x} with the relocatable image", segment=None)
