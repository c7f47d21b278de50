"""`bootforge verify` of a machine with devices and no kernel: boot the PXE probe
(stubs/pxeprobe.S, shipped as bootforge/data/stubs/pxeprobe.0) through the first BEV's iPXE
ROM from QEMU's own TFTP server (-netdev user,restrict=on: nothing leaves QEMU) and compare
what it prints with the ipxe-pcbios-mb1 policy's model of iPXE's memory, field by field:

- while iPXE's PXE stack runs (outcome "boot" of an NBP): INT 15h E820 through iPXE's hook,
  INT 12h, BDA 40:0E and 40:13, the PXENV+ and !PXE addresses, and iPXE's image found in high
  memory twice: in SeaBIOS's PMM decompression area (bootforge.post) and where relocate.c
  moved it, the same distance apart as predicted;
- after PXENV_STOP_UNDI (outcome "pxenv-stop-undi"): its status, E820, INT 12h, 40:0E, 40:13;
- ipxe_outcome "boot-failure": the first BEV's iPXE finds nothing to boot and gives everything
  back, the next iPXE boots the probe;
- ipxe_outcome "san-boot": iPXE runs an iPXE script `sanboot http://10.0.2.100/disk.img` and
  boots a disk served by bootforge.verify.san_http through QEMU's guestfwd (a command on this
  machine: nothing leaves it); the disk's boot sector (stubs/sanmbr.S) starts the probe, which
  sees iPXE still resident (its INT 15h and INT 13h hooks stay: nothing is ever given back).
"""

import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path

from bootforge.errors import RecipeError
from bootforge.formats.e820 import E820Type
from bootforge.loader.policies.ipxe_pcbios import IPXE_PXE_E1000, ipxe_build_of, ipxe_memory
from bootforge.post.seabios import run_post
from bootforge.qemu.runner import Machine, Medium, QemuRun
from bootforge.verify import san_http

PROBE = files("bootforge").joinpath("data", "stubs", "pxeprobe.0")
SAN_MBR = files("bootforge").joinpath("data", "stubs", "sanmbr.bin")
PROBE_NAME = "pxeprobe.0"
SAN_SCRIPT_NAME = "san.ipxe"
SAN_HOST = "10.0.2.100"             # QEMU user network address the guestfwd SAN target answers on
# iPXE's INT 13h emulation guesses 255 heads x 63 sectors: a disk under one such cylinder
# (8,225,280 bytes) has no CHS address at all ("Boot from SAN device 0x80 failed: Input/output
# error" with a 64 KiB image, observed); 16 MiB boots.
SAN_DISK_SIZE = 16 << 20
OUTCOMES = ("boot", "boot-failure", "san-boot")
PROBE_EXIT = (0x31 << 1) | 1
EBDA_SEGMENT = 0x9FC0
LINE = re.compile(r"^(ENTRY|E820|E820END|INT12|BDA40E|BDA413|FOUND|SCANEND|STOPUNDI|DONE|PXEPROBE)\b ?(.*)$")


@dataclass
class ProbeView:
    e820: list = field(default_factory=list)        # (start, end, type)
    int12: int | None = None
    bda_40e: int | None = None
    bda_413: int | None = None


@dataclass
class ProbeReport:
    pxenv: tuple | None = None                      # (segment, offset)
    ppxe: tuple | None = None
    views: list = field(default_factory=list)       # [while running, after PXENV_STOP_UNDI]
    found: list = field(default_factory=list)
    stop_undi: tuple | None = None                  # (status word, exit code)
    done: bool = False


def read_probe(text):
    """A ProbeReport from the probe's port-0xE9 text."""
    rep = ProbeReport()
    view = None
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        key, rest = m.groups()
        words = rest.split()
        if key == "ENTRY":
            (s1, o1), (s2, o2) = (w.split(":") for w in words)
            rep.pxenv, rep.ppxe = (int(s1, 16), int(o1, 16)), (int(s2, 16), int(o2, 16))
        elif key == "E820":
            if view is None:
                view = ProbeView()
                rep.views.append(view)
            base, length, typ = int(words[0], 16), int(words[1], 16), int(words[2], 16)
            view.e820.append((base, base + length, typ))
        elif key == "INT12" and view is not None:
            view.int12 = int(words[0], 16)
        elif key == "BDA40E" and view is not None:
            view.bda_40e = int(words[0], 16)
        elif key == "BDA413" and view is not None:
            view.bda_413 = int(words[0], 16)
            view = None
        elif key == "FOUND":
            rep.found.append(int(words[0], 16))
        elif key == "STOPUNDI":
            rep.stop_undi = (int(words[0], 16), int(words[1], 16))
        elif key == "DONE":
            rep.done = True
    return rep


@dataclass
class ProbePrediction:
    pxenv: tuple
    ppxe: tuple
    views: list                     # two ProbeView
    decompress_to: int
    text: tuple
    booting_rom: str
    memory: object
    booting_slot: int | None = None
    failing_slots: list = field(default_factory=list)
    san: bool = False


def booting_ipxe(post, failures=0):
    """The ROM BEV that boots the probe, if it is iPXE's: (OptionRom, its boot entry). With
    *failures* 1 the first BEV's iPXE finds no network, fails (boot-failure: it gives back
    everything, base memory too) and SeaBIOS's int 18h tries the next one."""
    bevs = [b for b in post.boot_entries if b.kind == "bev"]
    if len(bevs) <= failures:
        raise RecipeError(f"this machine has {len(bevs)} ROM BEV(s): the PXE probe needs {failures + 1} "
                          f"({'one to fail, then ' if failures else ''}one to boot it)")
    bev = bevs[failures]
    rom = next(r for r in post.option_roms if r.device == bev.device and r.address is not None
               and f"{r.segment:04x}" == bev.vector.split(":")[0])
    if rom.rom is None or rom.rom.ipxe is None:
        raise RecipeError(f"the first BEV is {rom.device}'s ROM {rom.file}, not an iPXE ROM: the probe needs "
                          "iPXE's PXE stack")
    return rom, bev


def predict(machine, probe_size, outcome="boot"):
    """What the probe will print: outcome "boot" (the first BEV boots it; its second read is
    after PXENV_STOP_UNDI), "boot-failure" (the first BEV's iPXE fails, the next one boots it)
    or "san-boot" (iPXE downloads the SAN script, boots the disk; one read, no PXE stack)."""
    post = run_post(machine)
    failures = 1 if outcome == "boot-failure" else 0
    # A failing iPXE gives everything back (ipxe-pcbios-mb1, boot-failure): the next one starts afresh.
    rom, _ = booting_ipxe(post, failures)
    failing = [booting_ipxe(post, i)[0].slot for i in range(failures)]
    build = ipxe_build_of(rom.rom.data) or IPXE_PXE_E1000
    decompress = next(c.result for c in post.pmm if c.purpose == "decompression area" and c.result)
    decompress_to = (decompress + 0xFFF) // 0x1000 * 0x1000        # romprefix.S rounds it up to 4 KiB
    downloads = [(SAN_SCRIPT_NAME, len(san_script()))] if outcome == "san-boot" else [(PROBE_NAME, probe_size)]
    mem = ipxe_memory(post.e820_after_post, post.bda_fbms_kib, downloads, build=build, old_start=decompress_to)

    def view(m, int12):
        return ProbeView([(r.start, r.start + r.size, int(r.type)) for r in m.ranges], int12, EBDA_SEGMENT, int12)
    if outcome == "san-boot":
        # The boot sector hands no PXE stack over; the probe reads once and stops.
        return ProbePrediction((0, 0), (0, 0), [view(mem.views["after-san-boot"], mem.int12_after["san-boot"])],
                               decompress_to, mem.text, rom.device, mem, rom.slot, failing, san=True)
    views = [view(mem.views["while-running"], mem.fbms),
             view(mem.views["after-pxenv-stop-undi"], mem.int12_after["pxenv-stop-undi"])]
    return ProbePrediction((mem.text16_segment, build.pxenv_offset), (mem.text16_segment, build.ppxe_offset),
                           views, decompress_to, mem.text, rom.device, mem, rom.slot, failing)


def compare(pred, rep):
    """[(field, predicted, observed, ok)]."""
    rows = []

    def row(name, want, got):
        rows.append((name, want, got, want == got))
    row("PXENV+ (segment:offset)", _segoff(pred.pxenv), _segoff(rep.pxenv))
    row("!PXE (segment:offset)", _segoff(pred.ppxe), _segoff(rep.ppxe))
    labels = ("after iPXE's SAN boot",) if pred.san else ("while iPXE runs", "after PXENV_STOP_UNDI")
    row("memory reads", len(pred.views), len(rep.views))
    for i, label in enumerate(labels):
        want, got = pred.views[i], rep.views[i] if i < len(rep.views) else ProbeView()
        row(f"E820 {label}", [_e820_text(e) for e in want.e820], [_e820_text(e) for e in got.e820])
        row(f"INT 12h {label} (KiB)", want.int12, got.int12)
        row(f"BDA 40:0E {label}", _hex(want.bda_40e), _hex(got.bda_40e))
        row(f"BDA 40:13 {label} (KiB)", want.bda_413, got.bda_413)
    text_lo, text_hi = pred.text
    # iPXE's image twice: in the PMM decompression area and relocated, at the same offset in each.
    hits = sorted(rep.found)
    want_gap = text_lo - pred.decompress_to
    ok = len(hits) == 2 and hits[1] - hits[0] == want_gap and text_lo <= hits[1] < text_hi \
        and pred.decompress_to <= hits[0] < pred.decompress_to + (text_hi - text_lo)
    rows.append(("iPXE image in high memory (decompression area, relocated)",
                 f"X + {pred.decompress_to:#x} and X + {text_lo:#x} (text [{text_lo:#x}, {text_hi:#x}))",
                 ", ".join(f"{h:#x}" for h in hits) or "none", ok))
    row("PXENV_STOP_UNDI status, exit", None if pred.san else "0000 0000",
        None if rep.stop_undi is None else f"{rep.stop_undi[0]:04x} {rep.stop_undi[1]:04x}")
    row("probe finished", True, rep.done)
    return rows


def _segoff(so):
    return None if so is None else f"{so[0]:04x}:{so[1]:04x}"


def _hex(v):
    return None if v is None else f"{v:04x}"


def _e820_text(e):
    return f"[{e[0]:#x}, {e[1]:#x}) {E820Type.label_of(e[2], str(e[2]))}"


def san_script():
    return f"#!ipxe\nsanboot http://{SAN_HOST}/disk.img\n".encode()


def san_disk(probe_bytes):
    """The SAN disk: the boot sector, the probe in the sectors after it, zeros to SAN_DISK_SIZE."""
    with as_file(SAN_MBR) as mbr:
        if not Path(mbr).exists():
            raise RecipeError(f"the SAN boot sector {mbr} is missing (make stubs; it is package data)")
        image = Path(mbr).read_bytes() + probe_bytes
    return image + bytes(SAN_DISK_SIZE - len(image))


def qemu_args(machine, tftp_dir, booting_slot, failing_slots=(), san_disk_path=None):
    """The machine's QEMU options with the booting NIC on QEMU's user network (restrict=on);
    NICs whose iPXE is to fail get a network of their own with no boot file (DHCP answers,
    "Nothing to boot": 15 s where a NIC without a peer takes 27 s to give up)."""
    args = [] if machine.vga else ["-vga", "none"]
    if san_disk_path is None:
        args += ["-netdev", f"user,id=n0,restrict=on,tftp={tftp_dir},bootfile={PROBE_NAME}"]
    else:
        # guestfwd runs the SAN target per connection, its stdin/stdout the guest's TCP stream
        # (stdlib only, started by path so no bootforge import runs there).
        server = f"{sys.executable} {Path(san_http.__file__)} {san_disk_path}"
        args += ["-netdev", f"user,id=n0,restrict=on,tftp={tftp_dir},bootfile={SAN_SCRIPT_NAME},"
                 f"guestfwd=tcp:{SAN_HOST}:80-cmd:{server}"]
    for i, _ in enumerate(failing_slots, 1):
        args += ["-netdev", f"user,id=n{i},restrict=on"]
    for d in machine.devices:
        opt = d.model.name
        if d.romfile is not None:
            opt += f",romfile={d.romfile}"
        if d.bootindex is not None:
            opt += f",bootindex={d.bootindex}"
        if d.slot == booting_slot:
            opt += ",netdev=n0"
        elif d.slot in failing_slots:
            opt += f",netdev=n{list(failing_slots).index(d.slot) + 1}"
        args += ["-device", opt]
    return args


def boot_probe(machine, booting_slot, failing_slots=(), *, san=False, timeout=90, keep=None):
    """Boot the probe on *machine*; (port 0xE9 text, QEMU's exit status)."""
    with as_file(PROBE) as probe:
        if not Path(probe).exists():
            raise RecipeError(f"the PXE probe {probe} is missing (make stubs; it is package data)")
        with QemuRun(Machine("seabios", machine.memory_bytes >> 20), Medium([], "PXE probe", network=True),
                     workdir=keep) as run:
            tftp = run.private / "tftp"
            tftp.mkdir()
            shutil.copyfile(probe, tftp / PROBE_NAME)
            disk = None
            if san:
                (tftp / SAN_SCRIPT_NAME).write_bytes(san_script())
                disk = run.private / "disk.img"
                disk.write_bytes(san_disk(Path(probe).read_bytes()))
                if "," in str(disk) or " " in str(disk) or "," in sys.executable:
                    raise RecipeError(f"QEMU's guestfwd command cannot hold the path {disk}")
            run.medium.args = qemu_args(machine, tftp, booting_slot, failing_slots, disk)
            run.start()
            run.wait_until(lambda r: b"DONE\n" in r.debugcon(), timeout)
            run.wait_until(lambda r: r.exited(), run.elapsed() + 10)     # its outb to 0xF4 follows DONE
            return run.debugcon().decode("latin-1"), run.returncode()


def probe_size():
    with as_file(PROBE) as probe:
        return Path(probe).stat().st_size


@dataclass
class ProbeVerifyReport:
    machine: object
    rows: list
    text: str
    returncode: int | None
    booting_rom: str
    outcome: str = "boot"

    @property
    def ok(self):
        return all(r[3] for r in self.rows)

    def to_json(self):
        return {"ok": self.ok, "booting_rom": self.booting_rom, "ipxe_outcome": self.outcome,
                "probe_exit": self.returncode,
                "fields": [{"field": f, "predicted": w, "observed": g, "ok": ok} for f, w, g, ok in self.rows],
                "probe_output": self.text}

    def render_text(self):
        out = [f"verify: the PXE probe through {self.booting_rom}'s iPXE ROM (ipxe_outcome {self.outcome}), "
               f"{self.machine.memory_bytes >> 20} MiB: {'every field matches' if self.ok else 'MISMATCH'}"]
        for f, w, g, ok in self.rows:
            mark = "ok " if ok else "BAD"
            if isinstance(w, list):
                out.append(f"  {mark} {f}:")
                for i in range(max(len(w), len(g or []))):
                    a = w[i] if i < len(w) else "-"
                    b = (g or [])[i] if i < len(g or []) else "-"
                    out.append(f"        {a:<52} {'==' if a == b else '!='} {b}")
            else:
                out.append(f"  {mark} {f}: predicted {w}, seen {g}")
        return "\n".join(out) + "\n"


def verify_probe(machine, *, outcome="boot", timeout=90, keep=None):
    if outcome not in OUTCOMES:
        raise RecipeError(f"verify boots the PXE probe for ipxe_outcome {', '.join(OUTCOMES)} (boot's second "
                          f"read is after PXENV_STOP_UNDI), not {outcome!r}")
    pred = predict(machine, probe_size(), outcome)
    text, rc = boot_probe(machine, pred.booting_slot, pred.failing_slots, san=outcome == "san-boot",
                          timeout=timeout, keep=keep)
    rows = compare(pred, read_probe(text))
    rows.append(("QEMU exit status (isa-debug-exit 0x31)", PROBE_EXIT, rc, rc == PROBE_EXIT))
    return ProbeVerifyReport(machine, rows, text, rc, pred.booting_rom, outcome)
