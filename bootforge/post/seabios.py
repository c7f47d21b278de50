"""SeaBIOS 1.16's POST on QEMU's pc machine: what it does with option ROMs and memory before
it boots anything (coreboot/seabios src/optionroms.c, src/malloc.c, src/pmm.c, src/boot.c,
src/fw/pciinit.c, src/fw/mptable.c; Debian 12's build 1.16.2-1 under QEMU 7.2).

Rules (from the source):
- optionroms.c vgarom_setup: the VGA device's ROM first, at 0xC0000; without a VGA ("-vga
  none") nothing there. optionrom_setup: every other PCI device in bus/device order
  (pciinit.c's probe order: QEMU's slots), then fw_cfg's genroms/ (QEMU's kvmvapic.bin).
- map_pcirom: walk the ROM BAR's images until vendor, device and code type 0 all match
  (the PCI 3.0 device list is ignored); no match: nothing at debug level 1.
- copy_rom / deploy_romfile -> rom_reserve: the ROM's size byte x 512 from RomEnd, 2 KiB
  aligned, must end at or below rom_get_max(), else warn_noalloc's "WARNING - Unable to
  allocate resource at copy_rom:235!" (deploy_romfile:179 for fw_cfg ROMs).
- init_optionrom: a zero size byte or a bad 8-bit sum (etc/optionroms-checksum defaults on):
  not run and its space not kept. A VGA or $PnP ROM runs its init at offset 3 ("Running
  option rom at SEG:0003"); rom_confirm then keeps the size byte the ROM left (it may shrink).
  A ROM without $PnP keeps its full size and becomes a BCV at offset 3, called just before
  booting (bcv_prepboot: "Running option rom at SEG:0003" after the HALT search).
- Boot entries: walking the kept ROMs by address, each $PnP header with a BEV adds a BEV,
  else one with a BCV a BCV (boot.c); priority from QEMU's bootorder file (bootindex:
  "/pci@i0cf8/*@SLOT" glob-prefix matches "/pci@i0cf8/ethernet@SLOT/ethernet-phy@0"), else
  the defaults QEMU's CMOS boot order "cad" gives: hard disk 101, floppy 102, CD 103, BEV
  9999. BootList is sorted by (priority, type), stable; bcv_prepboot turns it into the boot
  sequence: a BCV or hard disk adds "Hard Disk" once, floppy "Floppy" once; a floppy and a
  hard disk entry are appended when none was added.
- malloc.c: CONFIG_MALLOC_UPPERMEMORY (Debian's build: the VGA's PMM stack comes from 0xe8a40)
  puts ZoneLow in the UMB area above the option ROMs, so zonelow_expand never runs and the
  EBDA (1 KiB at 0x9fc00) never moves: BDA 40:13 stays 639 KiB. malloc_prepboot prints
  "Space available for UMB: RomEnd-rom_get_max, <f-segment free range>".
- pmm.c: PMM allocations of iPXE's romprefix.S (the only ROM code known here): an image source
  block of (size byte + extra_size + 7) & ~7 sectors, handle 0x18AE1000 (+1 while a found block
  has another build id), and a decompression block of (_textdata_memsz_pgh + 0x100 + 0x1fff) &
  ~0x1fff paragraphs, handle 0x18AE2000 | size >> 12, shared by every iPXE ROM; both "find"
  (PMM function 1) first, "allocate" (function 0, flags 2: ZoneTmpHigh, 16-byte aligned) when
  not found. When it has an image source block the ROM shrinks to its iPXE header's shrunk size.
  alloc_new takes blocks top-down in ZoneTmpHigh, whose top is the highest RAM below 4 GiB less
  16 MiB (ZoneHigh, BUILD_MAX_HIGHTABLE).

Measured for this SeaBIOS build and QEMU 7.2 (same in every boot of tests/data/seabios-post/),
not derived:
- ROM_MAX 0xe8000 (rom_get_max: ZoneLow's base), FSEG_FREE_START 0xf5500 (zonefseg_start),
  the VGA BIOS's 512-byte PMM stack at 0xe8a40 ("VGA stack allocated at e8a40").
- The f-segment's free range ends below QEMU's tables: PIR at 0xf5c80, the MP table below it
  (0xd8 bytes + 8 per PCI interrupt source, mptable.c: one per NIC here), the SMBIOS entry point
  0x1b0 below that (0x1d0 with RAM above 4 GiB), then 0x100 bytes more.
- What SeaBIOS itself holds at the top of ZoneTmpHigh when the ROMs run: 0x1ddb0 bytes with six
  PCI devices, 0x50 more per further device (its struct pci_device), plus QEMU's bootorder file
  when bootindex is used (the file rounded to 16, plus 0x60: fitted on a two-entry file, then
  predicted for a three-entry one, tests/data/seabios-post/vga-bootindex3-2G).
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path

from bootforge.align import align_down, align_up
from bootforge.errors import FormatError, RecipeError
from bootforge.machines import MACHINES, PciDevice
from bootforge.loader.platforms import QEMU_PC_LOWMEM_GB_ALIGNED, QEMU_PC_LOWMEM_SPLIT, qemu_pc_seabios
from bootforge.loader.policies.ipxe_pcbios import TEXTDATA_MEMSZ_PGH
from bootforge.rom.model import parse_rom

GIB4 = 1 << 32
MIB = 1 << 20
BLOCK = 512
OPTION_ROM_ALIGN = 2048
BUILD_ROM_START = 0xC0000
ROM_MAX = 0xE8000
FSEG_FREE_START = 0xF5500
PIR_ADDRESS = 0xF5C80
MPTABLE_BASE_SIZE = 0xD8
MPTABLE_PER_IRQ = 8
SMBIOS_BELOW_MPTABLE = 0x1B0
SMBIOS_BELOW_MPTABLE_HIGH_RAM = 0x1D0
FSEG_BELOW_SMBIOS = 0x100
BUILD_MAX_HIGHTABLE = 16 * MIB
BUILD_MIN_HIGHTABLE = 256 * 1024
MALLOC_MIN_ALIGN = 16
VGA_EXTRA_STACK = 0xE8A40
TMPHIGH_USED_6_DEVICES = 0x1DDB0
TMPHIGH_PER_PCI_DEVICE = 0x50
BOOTORDER_EXTRA = 0x60
EBDA_START = 0x9FC00
EBDA_KIB = 1
BDA_FBMS_KIB = EBDA_START // 1024
DEFAULT_PRIO = 9999
QEMU_DEFAULT_PRIO = {"harddisk": 101, "floppy": 102, "cdrom": 103, "bev": DEFAULT_PRIO}
IPL_TYPE = {"floppy": 0x01, "harddisk": 0x02, "cdrom": 0x03, "bev": 0x80, "bcv": 0x81}
# QEMU pc's own PCI functions before any -device: host bridge, PIIX3 ISA, IDE, PM (00:00.0-00:01.3).
PC_BUILTIN_PCI = 4
VGA_SLOT = 2
ROM_SEARCH_PATH = ("/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu")
KVMVAPIC = "kvmvapic.bin"
# romprefix.S
PMM_HANDLE_IMAGE_SOURCE = 0x18AE1000
PMM_HANDLE_DECOMPRESS = 0x18AE2000
PMM_FIND, PMM_ALLOCATE = 1, 0
PMM_FLAGS_EXTENDED = 2
IPXE_SHRUNK_OFFSET = 6
IPXE_BUILD_ID_OFFSET = 8


# The pc machine's PCI device models, from the machine registry (bootforge/machines/qemu_x86.py).
QEMU_PCI_MODELS = {m.name: m for m in MACHINES["qemu-pc-seabios"].pci_devices if m.name != "VGA"}
STD_VGA = next(m for m in MACHINES["qemu-pc-seabios"].pci_devices if m.name == "VGA")


@dataclass
class Device:
    """One -device on the machine: the model, its ROM file (None: QEMU's default; "": no ROM),
    its bootindex and the PCI slot QEMU gives it."""
    model: PciDevice
    romfile: str | None = None
    bootindex: int | None = None
    slot: int | None = None

    @property
    def rom_path(self):
        if self.romfile == "":
            return None
        name = self.romfile if self.romfile is not None else self.model.default_romfile
        if name is None:
            return None
        if "/" in name:
            return Path(name)
        return find_rom_file(name)


def find_rom_file(name):
    for d in ROM_SEARCH_PATH:
        p = Path(d) / name
        if p.exists():
            return p
    return Path(ROM_SEARCH_PATH[-1]) / name


@dataclass
class PostMachine:
    memory_bytes: int
    devices: list                   # Device, in -device order
    vga: PciDevice | None           # None: -vga none
    bootorder: list = field(default_factory=list)   # QEMU's bootorder file (from bootindex)

    @property
    def pci_devices(self):
        return PC_BUILTIN_PCI + (1 if self.vga else 0) + len(self.devices)

    def qemu_args(self):
        """The QEMU options this machine stands for (besides -machine pc -m): -vga and -device."""
        args = [] if self.vga else ["-vga", "none"]
        for d in self.devices:
            opt = d.model.name
            if d.romfile is not None:
                opt += f",romfile={d.romfile}"
            if d.bootindex is not None:
                opt += f",bootindex={d.bootindex}"
            args += ["-device", opt]
        return args


@dataclass
class OptionRom:
    device: str
    file: str | None
    runs: bool
    address: int | None             # where SeaBIOS copied it (segment << 4)
    size: int | None                # bytes at copy time (size byte x 512)
    size_after_init: int | None     # what its size byte says after init (bytes)
    reason: str
    words: str | None = None        # SeaBIOS's own line, where it prints one
    slot: int | None = None
    init_run: bool = False          # init at offset 3 called during the scan
    pnp: list = field(default_factory=list)     # [(bev, bcv, product offset, product)] of the kept copy
    rom: object = None

    @property
    def segment(self):
        return None if self.address is None else self.address >> 4

    def to_json(self):
        return {"device": self.device, "file": self.file, "runs": self.runs, "address": self.address,
                "segment": None if self.address is None else f"{self.segment:04x}",
                "size": self.size, "size_after_init": self.size_after_init, "reason": self.reason,
                "words": self.words}


@dataclass
class BootEntry:
    kind: str                       # floppy, harddisk, cdrom, bev, bcv
    priority: int
    vector: str | None = None       # "ca00:0385"
    description: str | None = None
    device: str | None = None

    def to_json(self):
        return {"kind": self.kind, "priority": self.priority, "vector": self.vector,
                "description": self.description, "device": self.device}


@dataclass
class PmmCall:
    device: str
    function: str                   # "find" or "allocate"
    handle: int
    purpose: str                    # "image source" or "decompression area"
    paragraphs: int | None = None
    flags: int | None = None
    result: int = 0                 # address returned (0: not found / failed)
    outcome: str = ""

    @property
    def number(self):
        return PMM_FIND if self.function == "find" else PMM_ALLOCATE

    def to_json(self):
        d = {"device": self.device, "function": self.function, "pmm_function": self.number,
             "handle": self.handle, "purpose": self.purpose, "result": self.result, "outcome": self.outcome}
        if self.function == "allocate":
            d.update(paragraphs=self.paragraphs, size=self.paragraphs * 16, flags=self.flags,
                     zone="ZoneLow" if self.flags & 8 and self.flags & 1 else "ZoneTmpHigh",
                     alignment=MALLOC_MIN_ALIGN)
        return d


@dataclass
class PostResult:
    machine: PostMachine
    option_roms: list
    umb_free: list                  # [(start, end)]
    boot_entries: list              # the boot sequence (BootEntry), as do_boot tries it
    bcv_calls: list                 # "seg:off" of BCVs called in bcv_prepboot
    pmm: list                       # PmmCall
    e820_after_post: object         # MemoryMap
    searched: list                  # bootorder globs searched, in order
    ebda: dict = field(default_factory=dict)
    bda_fbms_kib: int = BDA_FBMS_KIB
    tmphigh: tuple = (0, 0)

    def to_json(self):
        return {"option_roms": [r.to_json() for r in self.option_roms],
                "umb_free": [{"start": a, "end": b} for a, b in self.umb_free],
                "boot_entries": [b.to_json() for b in self.boot_entries],
                "pmm": [p.to_json() for p in self.pmm], "ebda": self.ebda, "bda_fbms_kib": self.bda_fbms_kib,
                "e820_after_post": [{"start": r.start, "end": r.start + r.size, "type": int(r.type)}
                                    for r in self.e820_after_post.ranges]}


def align_down(x, a):
    return x // a * a


def _tmphigh_top(e820):
    """malloc_preinit: the highest RAM entry ending below 4 GiB gives ZoneHigh its top 16 MiB
    (256 KiB when that does not fit) and ZoneTmpHigh the rest below."""
    for r in sorted(e820.ranges, key=lambda r: r.start, reverse=True):
        end = r.start + r.size
        if int(r.type) != 1 or end > 0xFFFFFFFF:
            continue
        # The map here is SeaBIOS's final one: ZoneHigh's used 128 KiB at the top is already
        # reserved in it, so the RAM entry's end is that reservation's start.
        e = end + _zonehigh_used(e820, end)
        new_max = align_down(e - BUILD_MAX_HIGHTABLE, MALLOC_MIN_ALIGN)
        if r.start + BUILD_MAX_HIGHTABLE <= new_max <= e:
            return r.start, new_max
        new_min = align_down(e - BUILD_MIN_HIGHTABLE, MALLOC_MIN_ALIGN)
        if r.start <= new_min <= e:
            return r.start, new_min
        return r.start, e
    return 0, 0


def _zonehigh_used(e820, end):
    nxt = next((r for r in e820.ranges if r.start == end and int(r.type) == 2), None)
    return nxt.size if nxt is not None and nxt.start + nxt.size <= GIB4 - 0x40000 else 0


def _read_rom(path, device):
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"device {device}: romfile {path} does not exist") from None
    except OSError as exc:
        raise RecipeError(f"device {device}: romfile {path}: {exc.strerror}") from None
    if data[:2] != b"\x55\xaa":
        raise RecipeError(f"{path}: offset 0x0: not a PCI option ROM (no 55 AA signature), "
                          f"given as the romfile of {device}")
    try:
        return data, parse_rom(data, str(path))
    except FormatError as exc:
        raise RecipeError(f"device {device}: romfile {exc}") from None


def _ipxe_facts(image_data, rom_image):
    """iPXE's romprefix facts of a legacy image: (shrunk size blocks, build id, textdata paragraphs)."""
    if rom_image.ipxe is None:
        return None
    at = rom_image.ipxe.offset
    shrunk = image_data[at + IPXE_SHRUNK_OFFSET]
    build_id = struct.unpack_from("<I", image_data, at + IPXE_BUILD_ID_OFFSET)[0]
    m = TEXTDATA_MEMSZ_PGH.search(image_data)
    pgh = struct.unpack("<I", m.group(1))[0] if m else None
    return shrunk, build_id, pgh


class _Pmm:
    """ZoneTmpHigh as iPXE's PMM calls see it: blocks by handle, taken top-down."""

    def __init__(self, top, bottom):
        self.top, self.bottom = top, bottom
        self.blocks = {}            # handle -> (address, paragraphs, build id or None)
        self.calls = []

    def find(self, device, handle, purpose):
        block = self.blocks.get(handle)
        call = PmmCall(device, "find", handle, purpose, result=block[0] if block else 0,
                       outcome="found" if block else "not found")
        self.calls.append(call)
        return block, call

    def allocate(self, device, handle, purpose, paragraphs, build_id=None):
        size = paragraphs * 16
        at = align_down(self.top - size, MALLOC_MIN_ALIGN)
        if at < self.bottom:
            self.calls.append(PmmCall(device, "allocate", handle, purpose, paragraphs, PMM_FLAGS_EXTENDED, 0,
                                      "failed: ZoneTmpHigh has no room"))
            return 0
        self.top = at
        self.blocks[handle] = (at, paragraphs, build_id)
        self.calls.append(PmmCall(device, "allocate", handle, purpose, paragraphs, PMM_FLAGS_EXTENDED, at,
                                  "allocated"))
        return at


def _ipxe_init(pmm, device, rom_size_blocks, facts):
    """romprefix.S init's PMM part; returns the size byte it leaves."""
    shrunk, build_id, pgh = facts
    size_blocks = rom_size_blocks
    paragraphs = ((rom_size_blocks + 7) & ~7) << 5      # extra_size is 0 in a plain .rom
    handle = PMM_HANDLE_IMAGE_SOURCE
    while True:
        block, call = pmm.find(device, handle, "image source")
        if block is None:
            source = pmm.allocate(device, handle, "image source", paragraphs, build_id)
            break
        if block[2] == build_id:
            call.outcome = "found (same build id)"
            source = block[0]
            break
        call.outcome = "found another build id: next handle"
        handle += 1
    if source:
        size_blocks = shrunk
    if pgh is not None:
        ecx = (pgh + 0x100 + 0x1FFF) & 0xFFFFE000
        handle = PMM_HANDLE_DECOMPRESS | (ecx & 0xFFFF0000) | ((ecx & 0xFFFF) >> 12)
        block, call = pmm.find(device, handle, "decompression area")
        if block is None:
            pmm.allocate(device, handle, "decompression area", ecx)
        else:
            call.outcome = "found (shared by iPXE ROMs)"
    return size_blocks


def _fseg_free(machine):
    irq_sources = sum(1 for d in machine.devices if d.model.interrupt_pin)
    mptable = align_down(PIR_ADDRESS - (MPTABLE_BASE_SIZE + MPTABLE_PER_IRQ * irq_sources), MALLOC_MIN_ALIGN)
    high_ram = machine.memory_bytes > _below_4g(machine.memory_bytes)
    smbios = mptable - (SMBIOS_BELOW_MPTABLE_HIGH_RAM if high_ram else SMBIOS_BELOW_MPTABLE)
    return FSEG_FREE_START, smbios - FSEG_BELOW_SMBIOS


def _below_4g(ram):
    return QEMU_PC_LOWMEM_GB_ALIGNED if ram >= QEMU_PC_LOWMEM_SPLIT else ram


def assign_slots(machine):
    """QEMU's automatic PCI slots: the VGA at 00:02 when there is one, the devices after it
    in command-line order."""
    slot = VGA_SLOT + (1 if machine.vga else 0)
    for d in machine.devices:
        if d.slot is None:
            d.slot = slot
        slot = d.slot + 1
    return machine


def qemu_bootorder(machine):
    """QEMU's fw_cfg bootorder file: the bootindexed devices' OpenFirmware paths by bootindex."""
    indexed = sorted((d for d in machine.devices if d.bootindex is not None), key=lambda d: d.bootindex)
    return [f"/pci@i0cf8/ethernet@{d.slot:x}/ethernet-phy@0" for d in indexed]


def _find_prio(bootorder, glob, searched):
    """boot.c find_prio: 1 + the index of the first bootorder line the glob is a prefix of."""
    searched.append(glob)
    for i, line in enumerate(bootorder):
        if _glob_prefix(glob, line):
            return i + 1
    return -1


def _glob_prefix(glob, s):
    """boot.c glob_prefix: '*' matches up to the next character of the glob."""
    i = j = 0
    while True:
        if i == len(glob):
            return True
        if glob[i] == "*":
            nxt = glob[i + 1] if i + 1 < len(glob) else ""
            while j < len(s) and s[j] != nxt and s[j] != "/":
                j += 1
            i += 1
            continue
        if j >= len(s) or glob[i] != s[j]:
            return False
        i += 1
        j += 1


def run_post(machine):
    """The POST of *machine* under SeaBIOS 1.16: a PostResult."""
    assign_slots(machine)
    bootorder = machine.bootorder or qemu_bootorder(machine)
    e820 = qemu_pc_seabios(machine.memory_bytes).memory_map
    bottom, tmp_top = _tmphigh_top(e820)
    used = TMPHIGH_USED_6_DEVICES + TMPHIGH_PER_PCI_DEVICE * (machine.pci_devices - 6)
    if bootorder:
        used += align_up(sum(len(line) + 1 for line in bootorder) + 1, MALLOC_MIN_ALIGN) + BOOTORDER_EXTRA
    pmm = _Pmm(tmp_top - used, bottom)
    roms = []
    rom_end = BUILD_ROM_START

    def reserve(size):
        end = align_up(rom_end + size, OPTION_ROM_ALIGN)
        return end <= ROM_MAX

    def place(entry, data, image, is_vga, facts, device_name):
        nonlocal rom_end
        size_blocks = data[image.offset + 2]
        entry.size = size_blocks * BLOCK
        if not reserve(entry.size):
            func, line = ("deploy_romfile", 179) if entry.slot is None else ("copy_rom", 235)
            entry.words = f"WARNING - Unable to allocate resource at {func}:{line}!"
            entry.reason = (f"does not fit: {entry.size} bytes from {rom_end:#x} end past {ROM_MAX:#x}, "
                            "where SeaBIOS's own low memory begins")
            return
        entry.address = rom_end
        body = data[image.offset:image.offset + entry.size]
        if size_blocks == 0:
            entry.reason = "size byte 0: not a valid ROM (is_valid_rom), not run"
            return
        total = sum(body) & 0xFF
        if total:
            entry.words = (f"Found option rom with bad checksum: loc=0x{rom_end:08x} len={entry.size} "
                           f"sum={total:x}")
            entry.reason = "bad checksum: not run, its space reused"
            entry.address = None
            return
        after = size_blocks
        if is_vga or image.pnp:
            entry.init_run = True
            if facts is not None:
                after = _ipxe_init(pmm, device_name, size_blocks, facts)
            entry.reason = ("VGA ROM: init run at POST" if is_vga else
                            "$PnP ROM: init run at POST (offset 3)")
            if facts is not None:
                entry.reason += f"; iPXE shrinks it to {after} blocks (romprefix.S, PMM image source)"
        else:
            entry.reason = "no $PnP header: not run at init; offset 3 is a BCV, called before booting"
        entry.runs = True
        entry.size_after_init = after * BLOCK
        entry.pnp = [(p.fields.bev, p.fields.bcv, p.product) for p in image.pnp]
        rom_end = align_up(rom_end + entry.size_after_init, OPTION_ROM_ALIGN)

    def pci_rom(name, path, model, slot, is_vga):
        entry = OptionRom(name, None if path is None else str(path), False, None, None, None, "", slot=slot)
        roms.append(entry)
        if path is None:
            entry.reason = "no ROM (romfile empty)"
            return entry
        data, rom = _read_rom(path, name)
        match = next((im for im in rom.images if im.pcir is not None and im.pcir.vendor_id == model.vendor_id
                      and im.pcir.device_id == model.device_id and im.pcir.code_type == 0), None)
        if match is None:
            have = ", ".join(f"{im.pcir.vendor_id:04x}:{im.pcir.device_id:04x} type {im.pcir.code_type}"
                             for im in rom.images if im.pcir is not None) or "no PCIR"
            entry.reason = (f"no image for {model.ids} with code type 0 ({have}): SeaBIOS's map_pcirom "
                            "finds no match and says nothing at debug level 1")
            return entry
        entry.rom = match
        place(entry, data, match, is_vga, None if is_vga else _ipxe_facts(match.data, match), name)
        return entry

    if machine.vga is not None:
        # SeaVGABIOS's init (vgasrc/vgainit.c allocate_extra_stack): 512 bytes of permanent low
        # memory through PMM, anonymous handle, flags 9 (ZoneLow is in the UMB area here).
        pmm.calls.append(PmmCall("VGA", "allocate", 0xFFFFFFFF, "VGA BIOS extra stack", 512 // 16, 9,
                                 VGA_EXTRA_STACK, "allocated (ZoneLow)"))
        pci_rom("VGA", machine.vga_rom_path if hasattr(machine, "vga_rom_path") else find_rom_file(
            machine.vga.default_romfile), machine.vga, VGA_SLOT, True)
    post_vga = rom_end
    for d in machine.devices:
        pci_rom(d.model.name, d.rom_path, d.model, d.slot, False)
    # fw_cfg genroms/: QEMU pc's kvmvapic.bin (no PCIR, no $PnP).
    vapic_path = find_rom_file(KVMVAPIC)
    vapic = OptionRom("fw_cfg genroms/" + KVMVAPIC, str(vapic_path), False, None, None, None, "")
    roms.append(vapic)
    vdata = vapic_path.read_bytes() if vapic_path.exists() else None
    if vdata is not None:
        size = len(vdata)
        if not reserve(size):
            vapic.size = size
            vapic.words = "WARNING - Unable to allocate resource at deploy_romfile:179!"
            vapic.reason = f"does not fit: {size} bytes from {rom_end:#x} end past {ROM_MAX:#x}"
        else:
            vapic.address, vapic.size, vapic.runs = rom_end, vdata[2] * BLOCK, True
            vapic.size_after_init = vapic.size
            vapic.reason = "QEMU's fw_cfg ROM: no $PnP header, so a BCV at offset 3, called before booting"
            vapic.pnp = []
            rom_end = align_up(rom_end + vapic.size, OPTION_ROM_ALIGN)
    searched = []
    boot_list = []      # (priority, type, order, BootEntry)

    def add(entry):
        boot_list.append(entry)

    # Drives QEMU's pc machine has without any option: floppy 0 on the ISA fdc, the IDE CD-ROM ata1-0.
    prio = _find_prio(bootorder, "/pci@i0cf8/isa@1/fdc@03f0/floppy@0", searched)
    add(BootEntry("floppy", prio if prio >= 0 else QEMU_DEFAULT_PRIO["floppy"], description="Floppy [drive A]"))
    searched.append("HALT")         # is_bootprio_strict(), first asked by the floppy setup (observed order)
    prio = _find_prio(bootorder, "/pci@i0cf8/*@1,1/drive@1/disk@0", searched)
    add(BootEntry("cdrom", prio if prio >= 0 else QEMU_DEFAULT_PRIO["cdrom"],
                  description="DVD/CD [ata1-0: QEMU DVD-ROM ATAPI-4 DVD/CD]"))
    default_bev = QEMU_DEFAULT_PRIO["bev"]
    for r in sorted((r for r in roms if r.runs and r.address is not None and r.address >= post_vga),
                    key=lambda r: r.address):
        seg = r.address >> 4
        glob_base = f"/pci@i0cf8/*@{r.slot:x}" if r.slot is not None else "/rom@genroms/" + KVMVAPIC
        if not r.pnp:
            prio = _find_prio(bootorder, glob_base, searched)
            add(BootEntry("bcv", prio if prio >= 0 else QEMU_DEFAULT_PRIO["harddisk"], f"{seg:04x}:0003",
                          "Legacy option rom", r.device))
            continue
        instance = 0
        for bev, bcv, product in r.pnp:
            glob = glob_base + (f":rom{instance:x}" if instance else "")
            if bev:
                prio = _find_prio(bootorder, glob, searched)
                add(BootEntry("bev", prio if prio >= 0 else default_bev, f"{seg:04x}:{bev:04x}", product, r.device))
                default_bev = DEFAULT_PRIO
            elif bcv:
                prio = _find_prio(bootorder, glob, searched)
                add(BootEntry("bcv", prio if prio >= 0 else QEMU_DEFAULT_PRIO["harddisk"], f"{seg:04x}:{bcv:04x}",
                              product, r.device))
            else:
                break
            instance += 1
    searched.append("HALT")
    ordered = sorted(boot_list, key=lambda b: (b.priority, IPL_TYPE[b.kind]))    # sorted() is stable
    sequence, bcv_calls, have = [], [], set()
    for b in ordered:
        if b.kind == "bcv":
            bcv_calls.append(b.vector)
            if "harddisk" not in have:
                have.add("harddisk")
                sequence.append(BootEntry("harddisk", b.priority, description="Hard Disk", device=b.device))
        elif b.kind == "floppy":
            if "floppy" not in have:
                have.add("floppy")
                sequence.append(b)
        else:
            sequence.append(b)
    for kind, text in (("floppy", "Floppy"), ("harddisk", "Hard Disk")):
        if kind not in have:
            sequence.append(BootEntry(kind, DEFAULT_PRIO, description=text + " (added when none was found)"))
    umb = [(rom_end, ROM_MAX), _fseg_free(machine)]
    ebda = {"start": EBDA_START, "size": EBDA_KIB * 1024, "moves": [],
            "reason": "CONFIG_MALLOC_UPPERMEMORY: ZoneLow lies above the option ROMs, zonelow_expand never "
                      "runs, so the EBDA stays"}
    return PostResult(machine, roms, umb, sequence, bcv_calls, pmm.calls, e820, searched, ebda, BDA_FBMS_KIB,
                      (bottom, tmp_top))
