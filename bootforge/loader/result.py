"""The placement report: what a policy decided, and how it is shown (text, JSON)."""

from dataclasses import dataclass, field

from bootforge.text import human_size
from bootforge.memmap.io import map_to_json
from bootforge.memmap.model import MemoryMap, MemoryRange, type_name


@dataclass
class ModuleSpec:
    path: str               # file on this machine
    loader_path: str        # the name the loader is given
    cmdline: str            # the arguments after the name
    size: int
    data: bytes | None = None


@dataclass
class LoadRequest:
    kernel: object          # image.KernelImage
    kernel_loader_path: str
    cmdline: str
    modules: list           # [ModuleSpec]
    platform: object        # platforms.Platform
    loader: str
    options: dict = field(default_factory=dict)
    # The BIOS drive and 0-based partition the loader boots from, where an image says so: GRUB
    # hands its root device over as MB1 boot_device / MB2 tag 5. None: the policy's own medium.
    boot_device: tuple | None = None
    # (file size, SizeOfImage) of the EFI application the firmware starts from the image's ESP
    # (EFI/BOOT/BOOTX64.EFI), where an image is booted: a loader's own pages under OVMF follow
    # them. None: the policy's own medium.
    efi_application: tuple | None = None
    # The medium the firmware starts that application from (bootforge.loader.ovmf_media.EfiMedium:
    # CD-ROM or disk, the ESP's FAT type, the partition children, the boot sector's own entry):
    # OVMF's disk drivers allocate by it before BDS starts the loader. None: the policy's own medium.
    efi_medium: object = None
    # Bytes GRUB i386-pc holds below the top of its heap when it places the kernel, where the
    # image's own core says (bootforge.loader.grub_heap.image_held). None: the policy's own medium.
    grub_heap: int | None = None


@dataclass
class Placement:
    name: str
    start: int
    end: int
    align: int
    rule: str
    kind: str = "data"      # kernel, module, mbi, boot-info, loader, firmware

    def to_json(self):
        return {"name": self.name, "start": self.start, "end": self.end, "size": self.end - self.start,
                "align": self.align, "rule": self.rule, "kind": self.kind}


@dataclass
class LoadResult:
    loader: str
    protocol: str                       # "multiboot1", "multiboot2", "xen", "linux"
    platform: object
    source: str                         # the policy's citation
    mbi_address: int | None = None
    mbi_bytes: bytes = b""
    mem_lower: int | None = None
    mem_upper: int | None = None
    cmdline: str | None = None
    modules: list = field(default_factory=list)     # [{start, end, cmdline}]
    mmap: list = field(default_factory=list)        # [(start, size, type)] as the loader writes them
    placements: list = field(default_factory=list)
    maps: dict = field(default_factory=dict)        # name -> MemoryMap
    checks: list = field(default_factory=list)     # [bootforge.verdict.Verdict]
    regions: dict = field(default_factory=dict)     # MB1: where each pointed-to block lies
    notes: list = field(default_factory=list)
    load_base: int | None = None
    grub_pages: list = field(default_factory=list)
    linux: dict = field(default_factory=dict)        # linux-efi-stub: boot path, kernel, Memory total (issue 14)
    entry: object = None                            # bootforge.multiboot.entry.Entry: where the loader jumps
    structures: dict = field(default_factory=dict)  # MB1: {name: (address, bytes)} of what the info points to
    owned: list = field(default_factory=list)       # [bootforge.loader.owned.OwnedRange]: the loader's own at entry
    # MB2 bytes this prediction leaves to the firmware for this boot only, beyond the policy's
    # Comparison: [(tag, first byte, end or None, what, why)], offsets as Comparison.firmware_data_on.
    firmware_data: list = field(default_factory=list)

    def place(self, name, start, size, align, rule, kind="data"):
        p = Placement(name, start, start + size, align, rule, kind)
        self.placements.append(p)
        return p

    def handed_map(self):
        """The memory map the kernel is given (self.mmap, in the loader's order) as a MemoryMap."""
        return MemoryMap("e820", [MemoryRange(a, s, t) for a, s, t in self.mmap], source=self.loader)

    def to_json(self):
        return {
            "loader": self.loader, "protocol": self.protocol, "platform": self.platform.to_json(),
            "source": self.source,
            **({"entry": self.entry.to_json()} if self.entry is not None else {}),
            "mbi": {"address": self.mbi_address, "size": len(self.mbi_bytes), "mem_lower": self.mem_lower,
                    "mem_upper": self.mem_upper, "cmdline": self.cmdline,
                    "modules": [dict(m) for m in self.modules],
                    "mmap": [{"start": a, "size": s, "type": t} for a, s, t in self.mmap],
                    "regions": {k: v for k, v in self.regions.items()}},
            "placements": [p.to_json() for p in self.placements],
            # The map the kernel is given (what --map-out writes) under its own key, beside the
            # policy's named views (input-retyped: the input map with each placement retyped).
            "maps": {**({"handed-to-kernel": map_to_json(self.handed_map())} if self.mmap else {}),
                     **{k: map_to_json(m) for k, m in self.maps.items()}},
            "checks": [c.to_json() for c in self.checks],
            **({"loader_owned": [o.to_json() for o in self.owned]} if self.owned else {}),
            "notes": list(self.notes),
            **({"linux": self.linux} if self.linux else {}),
        }

    def render_text(self):
        out = [f"{self.loader} on {self.platform.name} ({self.protocol}; {self.source})"]
        if getattr(self.platform, "qemu", None) is not None:
            out.append(f"  platform models: {self.platform.qemu_command}")
        if self.entry is not None:
            out.append(f"  kernel {self.entry.text()}")
        if self.mbi_address is not None:
            out.append(f"  boot information at {self.mbi_address:#x} ({len(self.mbi_bytes)} bytes)"
                       + (f", mem_lower {self.mem_lower} KiB, mem_upper {self.mem_upper} KiB"
                          if self.mem_lower is not None else ""))
        if self.cmdline is not None:
            out.append(f"  command line: {self.cmdline!r}")
        out.append("  placements:")
        for p in sorted(self.placements, key=lambda p: p.start):
            out.append(f"    {p.start:#014x}-{p.end:#014x} {human_size(p.end - p.start):>9} "
                       f"align {p.align:#x}  {p.name}  [{p.rule}]")
        for i, m in enumerate(self.modules):
            out.append(f"  module {i}: [{m['start']:#x}, {m['end']:#x}) {m['cmdline']!r}")
        if self.mmap:
            out.append(f"  memory map handed over ({len(self.mmap)} entries):")
            for a, s, t in self.mmap:
                out.append(f"    {a:#018x} {s:#018x} type {t} ({type_name('e820', t)})")
        if self.owned:
            out.append("  loader-owned at entry (not marked in the map handed over):")
            out += [f"    {o.text()}" for o in sorted(self.owned, key=lambda o: (o.relative_to is not None, o.start))]
        dt = self.linux.get("devicetree") if self.linux else None
        if dt:
            # Device-tree platforms (bootforge/fdtboot/handover.py): the DTB is the boot information.
            out.append("  registers at entry: " + ", ".join(f"{k} {v:#x}" for k, v in dt["registers"].items()))
            where = f"{dt['address']:#x}" if dt["address"] is not None else "an address the loader picks"
            out.append(f"  DTB handed over at {where} ({dt['totalsize']:#x} bytes, {dt['nodes']} nodes); "
                       f"machine DTB: {dt['machine_dtb']}")
            for r in dt["random"]:
                out.append(f"    random per boot: {r['path']} {r['property']}{' padding' if r['part'] == 'padding' else ''}"
                           f" ({r['size']} bytes): {r['reason']}")
            out.append("  DTB diff against the machine's DTB:")
            out += [f"    {line}" for line in dt["diff"]] or ["    (none)"]
            out.append("  DTB handed over (DTS):")
            out += [f"    {line}" for line in dt["dts"].splitlines()]
        for n in self.notes:
            out.append(f"  note: {n}")
        bad = [c for c in self.checks if not c.ok]
        out.append(f"  checks: {len(self.checks) - len(bad)} of {len(self.checks)} pass")
        for c in self.checks:
            out.append(f"    [{c.status_word()}] {c.subject}: {c.reason}")
        return "\n".join(out) + "\n"
