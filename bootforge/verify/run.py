"""One verify run: predict, build the loader's boot medium, boot QEMU to the kernel's
entry, read what the loader handed over, compare field by field."""

import hashlib
import re
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

from bootforge import errors, machines
from bootforge.bootloaders import read_refusal
from bootforge.errors import BootforgeError, RecipeError
from bootforge.image.load import built_image, image_request, inner_sha256
from bootforge.image.snapshot import with_default
from bootforge.loader.policies import POLICIES, comparison, policy
from bootforge.loader.recipe import is_toml_text, read_recipe, request_from_arguments
from bootforge.memmap.model import type_name
from bootforge.qemu.media import MEDIA, BootFile, build_medium, image_medium, medium_name
from bootforge.qemu.runner import Machine, QemuRun
from bootforge.verify.capture import capture, entry_point
from bootforge.verify import relocation
from bootforge.verify.compare import mbi_bytes_comparison, mbi_bytes_lines, mbi_bytes_row
from bootforge.verify.compare import (framebuffer_rows, observed_fields, predicted_fields, predicted_tag_names,
                                      tag_names)
from bootforge.verify.workdir import close_workdir, open_workdir

# What the first boot's console reader says when the translation log shows the kernel ran elsewhere.
RAN_ELSEWHERE = "(the kernel ran at another candidate entry)"


def medium_kind(loader):
    """The medium a loader boots from, as its policy declares it (None: no real boot here)."""
    p = POLICIES.get(loader)
    if p.protocol not in ("multiboot1", "multiboot2", "linux"):
        return None
    return p.boot_medium


def verifiable_loaders():
    return [name for name, p in POLICIES.items()
            if p.protocol in ("multiboot1", "multiboot2", "linux") and p.boot_medium in MEDIA
            or name in device_tree_loaders()]


def image_linux_loaders():
    """Linux policies verify boots from an image's entry (verify/linux.py): they have no medium of
    their own, the image (or the [image] recipe's build) is the medium."""
    return [name for name, p in POLICIES.items()
            if p.protocol == "linux" and p.boot_medium not in MEDIA and name not in device_tree_loaders()]


# How verify boots the loaders of image_linux_loaders(), for help.
IMAGE_LINUX_MEDIUM = "an image's Linux entry: a bootable image or an [image] recipe"


def device_tree_loaders():
    """{policy: how verify boots it} for the device-tree machines (bootforge/verify/fdt.py)."""
    # Function-level import: verify/fdt.py builds on this module's Row and VerifyReport.
    from bootforge.verify.fdt import LOADERS
    return LOADERS


def verify_medium(name):
    """How verify boots policy *name*: its boot medium, the device-tree boot's words, or an image."""
    if name in image_linux_loaders():
        return IMAGE_LINUX_MEDIUM
    return POLICIES.get(name).boot_medium or device_tree_loaders().get(name)


def machine_for(platform, loader):
    """The QEMU machine a platform stands for (bootforge.machines) and the medium the loader
    boots from; RecipeError (one line) for map files and for a loader the machine cannot boot."""
    declared = platform.qemu if isinstance(platform.qemu, machines.Machine) else None
    if declared is None or not platform.memory_bytes:
        raise RecipeError(f"platform {platform.name!r} is a memory map, not a machine QEMU can be; "
                          f"verify runs on {', '.join(machines.platform_syntax(f) for f in machines.FIRMWARES)}")
    if loader in device_tree_loaders():
        # verify/fdt.py boots these itself (verify() hands them over before any medium is made).
        raise RecipeError(f"{loader} is booted by verify's device-tree run, not from a medium, and the platform "
                          f"is {platform.name}; give --platform "
                          f"{' or '.join(m.name + ':<mem>' for m in machines.machines_of('fdt'))}")
    kind = medium_kind(loader)
    if kind not in MEDIA:
        why = f"its boot medium {kind} has no builder yet" if kind else "no real boot of it is made here"
        raise RecipeError(f"cannot verify {loader}: {why} (verifiable loaders: {', '.join(verifiable_loaders())})")
    wants = MEDIA[kind][1]
    wants = (wants,) if isinstance(wants, str) else tuple(wants)
    if declared.firmware not in wants:
        titles = " or ".join(dict.fromkeys(m.firmware_title for w in wants for m in machines.machines_of(w)))
        raise RecipeError(f"{loader} boots on {titles}, but the platform is {platform.name}; give --platform "
                          f"{' or '.join(m.name + ':<mem>' for w in wants for m in machines.machines_of(w))}")
    return Machine(declared.name, platform.memory_bytes >> 20), kind


@dataclass
class Row:
    name: str
    predicted: object
    observed: object
    ok: bool
    counted: bool = True        # False: shown, not part of what the policy claims


@dataclass
class VerifyReport:
    recipe: str
    loader: str
    platform: str
    machine: str = ""
    medium: str = ""
    entry: int | None = None
    entry_how: str = ""
    status: str = ""            # entry, refused, timeout, exited
    seconds: float = 0.0
    rows: list = field(default_factory=list)
    predicted_refusal: str | None = None
    loader_words: str | None = None
    last_serial: str = ""
    last_screen: str = ""
    registers: dict = field(default_factory=dict)
    early_stops: int = 0
    problems: list = field(default_factory=list)
    kept: str | None = None
    boot_information: dict | None = None    # the decoded MBI and what it points to, as read at the entry
    mbi_bytes: dict | None = None           # compare.mbi_bytes_comparison: the whole MBI byte for byte
    default_names: list = field(default_factory=list)     # names the medium chose (with_medium_names)
    boots: int = 0                          # QEMU boots this verify made (a relocatable kernel: at most 2)

    @property
    def mismatches(self):
        return [r for r in self.rows if r.counted and not r.ok]

    @property
    def ok(self):
        # "console": what the policy claims was read from the kernel's own printout (verify/xen.py).
        return self.status in ("entry", "refused", "console") and not self.mismatches and bool(self.rows)

    def to_json(self):
        return {"recipe": self.recipe, "loader": self.loader, "platform": self.platform, "machine": self.machine,
                "medium": self.medium, "entry": self.entry, "entry_how": self.entry_how, "status": self.status,
                "seconds": round(self.seconds, 3), "ok": self.ok,
                "registers": {k: v for k, v in self.registers.items()}, "early_stops": self.early_stops,
                "predicted_refusal": self.predicted_refusal, "loader_words": self.loader_words,
                "last_serial": self.last_serial, "last_screen": self.last_screen, "problems": list(self.problems),
                "fields": [{"name": r.name, "predicted": _plain(r.predicted), "observed": _plain(r.observed),
                            "match": r.ok, "counted": r.counted} for r in self.rows],
                "mismatches": [r.name for r in self.mismatches], "kept": self.kept,
                "boot_information": _json_safe(self.boot_information), "mbi_bytes": self.mbi_bytes,
                "default_names": list(self.default_names), "boots": self.boots}

    def render_text(self):
        out = [f"verify {self.recipe}: {self.loader} on {self.platform}",
               f"  booted {self.machine} from {self.medium}"]
        out += [f"  {line}" for line in self.default_names]
        if self.entry is not None:
            out.append(f"  kernel entry {self.entry:#x} ({self.entry_how})")
        if self.status == "entry":
            r = self.registers
            regs = (f"ESI {r['rsi'] & 0xFFFFFFFF:#x} (boot_params)" if "rsi" in r else
                    f"EAX {r['rax'] & 0xFFFFFFFF:#010x}, EBX {r['rbx'] & 0xFFFFFFFF:#x}")
            out.append(f"  stopped at the entry after {self.seconds:.1f} s: {regs}"
                       + (f" ({self.early_stops} earlier stop(s) before the kernel was in place)"
                          if self.early_stops else ""))
        elif self.status == "refused":
            out.append(f"  the loader refused after {self.seconds:.1f} s: {self.loader_words!r}")
        elif self.status == "timeout":
            out.append(f"  the kernel's entry was not reached in {self.seconds:.0f} s; last on serial: "
                       f"{self.last_serial or '(nothing)'}"
                       + (f"; last on the VGA screen: {self.last_screen}" if self.last_screen else ""))
        elif self.status == "console":
            out.append(f"  read the kernel's console after {self.seconds:.1f} s ({self.entry_how})")
        elif self.status == "exited":
            out.append(f"  QEMU ended before the kernel's entry after {self.seconds:.1f} s; last on serial: "
                       f"{self.last_serial or '(nothing)'}")
        if self.rows:
            out += _table_lines(self.rows)
        for r in self.rows:
            if r.name in ("tags", "flags") and r.predicted is not None and r.observed is not None:
                out.append(f"  {r.name}: {', '.join(r.observed)}")
                extra = [t for t in r.observed if t not in r.predicted]
                missing = [t for t in r.predicted if t not in r.observed]
                if extra or missing:
                    out.append(f"  {r.name} the loader gave but the prediction has not: {', '.join(extra) or '-'}; "
                               f"predicted but not given: {', '.join(missing) or '-'}")
        if self.mbi_bytes is not None:
            out += mbi_bytes_lines(self.mbi_bytes)
        for p in self.problems:
            out.append(f"  note: {p}")
        counted = [r for r in self.rows if r.counted]
        bad = self.mismatches
        if self.ok:
            out.append(f"  result: all {len(counted)} predicted fields match the real loader")
        else:
            why = [r.name for r in bad] or [{"timeout": "entry not reached", "exited": "QEMU ended"}.get(self.status,
                                                                                                       self.status)]
            out.append(f"  result: MISMATCH ({len(bad)} of {len(counted)} fields): {', '.join(why)}")
        if self.kept:
            out.append(f"  kept: {self.kept}")
        return "\n".join(out) + "\n"


# The side-by-side table fits a terminal this wide: a longer cell is cut in its column and
# its whole value printed under the table, wrapped (OVMF's "mmap from tag 17" is ~20 ranges).
TABLE_COLUMNS = 100


def _table_lines(rows):
    marks = [("ok" if r.ok else "MISMATCH") if r.counted else ("same" if r.ok else "differs (not predicted)")
             for r in rows]
    cells = [(_cell(r.predicted, r.name), _cell(r.observed, r.name)) for r in rows]
    w0 = max(len(r.name) for r in rows)
    room = (TABLE_COLUMNS - 2 - w0 - 2 - 2 - 2 - max(map(len, marks))) // 2
    w1 = min(max([len("predicted")] + [len(p) for p, _o in cells]), max(room, len("predicted")))
    w2 = min(max([len("observed")] + [len(o) for _p, o in cells]), max(room, len("observed")))

    def fit(text, width):
        return text if len(text) <= width else text[:width - 3] + "..."
    out = [f"  {'':<{w0}}  {'predicted':<{w1}}  {'observed':<{w2}}".rstrip()]
    long_values = []
    for r, (p, o), mark in zip(rows, cells, marks):
        out.append(f"  {r.name:<{w0}}  {fit(p, w1):<{w1}}  {fit(o, w2):<{w2}}  {mark}".rstrip())
        if len(p) > w1 or len(o) > w2:
            long_values.append((r.name, p, o))
    for name, p, o in long_values:
        for side, text in ((("predicted and observed", p),) if p == o else (("predicted", p), ("observed", o))):
            out += textwrap.wrap(text, TABLE_COLUMNS - 2, initial_indent=f"  {name}, {side}: ",
                                 subsequent_indent="      ")
    return out


def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _plain(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _cell(v, name=""):
    """A value as the side-by-side table shows it (JSON keeps the raw values)."""
    if v is None:
        return "-"
    if name.startswith("mem "):
        return f"{v} KiB"
    if name == "mmap entries":
        return str(v)
    if name.startswith("mmap ") and isinstance(v, (list, tuple)) and len(v) == 3:
        return f"{v[0]:#x}+{v[1]:#x} {type_name('e820', v[2])}"
    if name in ("tags", "flags"):
        return f"{len(v)} {name}"
    if name.endswith(" bytes") or name == "loader":
        return str(v)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return hex(v)
    if isinstance(v, str):
        return repr(v) if len(v) < 60 else repr(v[:56] + "...")
    if name == "mmap from tag 17" and isinstance(v, (list, tuple)):
        return f"{len(v)} ranges: " + ", ".join(_cell(x, "mmap entry") for x in v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell(x) for x in v) + "]" if len(v) <= 4 else \
            "[" + ", ".join(_cell(x) for x in v[:3]) + f", ... {len(v)} items]"
    return str(v)


def _words(text):
    return re.sub(r"\s+", " ", text).strip().rstrip(".").lower()


def same_words(predicted, seen):
    """A predicted refusal matches when the loader's words are in the prediction or vice versa."""
    if not predicted or not seen:
        return False
    a, b = _words(predicted), _words(seen)
    return a in b or b in a


def refusal_reader(kind):
    """run -> the loader's words once its console shows a refusal, else None: the reader the
    bootloader booting medium *kind* declares (bootforge.bootloaders)."""
    return read_refusal(kind)


def sha256_file(path):
    if not Path(path).exists() and ":" in str(path):
        return inner_sha256(path)            # "IMAGE:/boot/mod": a module inside a bootable image
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compare_rows(res, cap, req, entry):
    """Prediction and capture as rows: MBI address/size, mem_lower/upper, cmdline, each
    module (start, end, string, bytes), each mmap entry, the tags."""
    want, seen = predicted_fields(res), observed_fields(cap.doc)
    uncounted = comparison(res.loader).uncounted(res.platform)
    rows = []

    def add(name, p, o, key):
        rows.append(Row(name, p, o, p == o, key not in uncounted))

    rows.append(Row("kernel entry", entry, cap.registers["rip"] & 0xFFFFFFFF,
                    entry == cap.registers["rip"] & 0xFFFFFFFF))
    if res.protocol == "multiboot2" and "multiboot2" in cap.doc:
        base = next((t.get("load_base_addr") for t in cap.doc["multiboot2"]["tags"] if t["type"] == 21), None)
        if base is not None and res.load_base is not None:
            add("load base (tag 21)", res.load_base, base, "load_base")
    add("mbi address", want["mbi_address"], seen["mbi_address"], "mbi_address")
    if "mbi_size" in want:
        add("mbi size", want["mbi_size"], seen.get("mbi_size"), "mbi_size")
    for key in ("mem_lower", "mem_upper", "cmdline"):
        add(key.replace("_", " "), want[key], seen.get(key), key)
    pm, om = want["modules"], seen.get("modules") or []
    ps, os_ = want["module_strings"], seen.get("module_strings") or []
    for i in range(max(len(pm), len(om))):
        p = pm[i] if i < len(pm) else None
        o = om[i] if i < len(om) else None
        add(f"module {i} start", p and p[0], o and o[0], "modules")
        add(f"module {i} end", p and p[1], o and o[1], "modules")
        add(f"module {i} string", ps[i] if i < len(ps) else None, os_[i] if i < len(os_) else None,
            "module_strings")
        if i < len(req.modules) and i < len(cap.module_hashes):
            fh, mh = sha256_file(req.modules[i].path), cap.module_hashes[i]
            rows.append(Row(f"module {i} bytes", f"file sha256 {fh[:16]}", f"memory sha256 {(mh or '?')[:16]}",
                            fh == mh))
    pmap, omap = want["mmap"], seen.get("mmap") or []
    add("mmap entries", len(pmap), len(omap), "mmap")
    for i in range(max(len(pmap), len(omap))):
        add(f"mmap {i}", pmap[i] if i < len(pmap) else None, omap[i] if i < len(omap) else None, "mmap")
    if "mmap_from_tag17" in want:
        add("mmap from tag 17", want["mmap_from_tag17"], seen.get("mmap_from_tag17"), "mmap_from_tag17")
    add("tags" if res.protocol == "multiboot2" else "flags", predicted_tag_names(res), tag_names(cap.doc), "tags")
    for name, p, o, key in framebuffer_rows(res, cap) if res.mbi_bytes else ():
        add(name, p, o, key)
    # The loader's own memory at the entry (bootforge.loader.owned): each evidence found where
    # predicted; one whose file is not on this machine is shown, not counted.
    for o, found in getattr(cap, "owned_found", ()):
        for e, (ok, words) in zip(o.evidence, found):
            rows.append(Row(f"loader-owned {o.what.split(' (')[0]} [{e.kind}]", f"[{o.start:#x}, {o.end:#x})", words,
                            bool(ok), ok is not None))
    return rows


def with_medium_names(req, kind):
    """*req* with the names medium *kind* gives the loader (bootforge.qemu.media.medium_name: a
    bare file name, a [load] recipe's default without loader_path, goes to the medium's default
    directory), and a line saying so for each name changed. The prediction is made for these
    names, which the loader really is given."""
    said = []

    def name(what, given):
        new = medium_name(kind, given)
        if new != given:
            said.append(f"{what}: the loader is given {new} (no path given: {given!r} is put in the {kind} "
                        "medium's default directory)")
        return new
    kernel_name = name("kernel", req.kernel_loader_path)
    mods = [replace(m, loader_path=name(f"module {i}", m.loader_path)) for i, m in enumerate(req.modules)]
    return replace(req, kernel_loader_path=kernel_name, modules=mods), said


def verify(recipe, platform=None, loader=None, *, keep=None, timeout=None, progress=None, entry=None, firmware=None,
           cmdline=None, modules=()):
    """Run one verify; a VerifyReport. BootforgeError (exit 2) when it cannot run. RECIPE is what
    `load` takes: a [load] or [image] recipe, a bootable image, or a kernel with *platform*,
    *loader* and optionally *cmdline* and *modules* (FILE[=STRING])."""
    # RECIPE may be a bootable image (bootforge/image/): it is booted as it is, not rebuilt.
    req = image_request(recipe, platform, loader, entry, firmware)
    if req is None and (modules or cmdline is not None or (platform and loader and not is_toml_text(recipe))):
        if is_toml_text(recipe):
            raise RecipeError("--cmdline and --module go with a kernel, not a recipe (the recipe names them)",
                              path=recipe)
        req = request_from_arguments(recipe, platform, loader, cmdline, modules)
    req = req or read_recipe(recipe, platform, loader)
    if getattr(req.platform, "devicetree", None) is not None:
        # Function-level import: verify/fdt.py builds on this module's Row and VerifyReport.
        from bootforge.verify import fdt
        if fdt.handles(req.loader):
            return fdt.verify_fdt(recipe, req, keep=keep, timeout=timeout, progress=progress)
    if req.loader in POLICIES and POLICIES.get(req.loader).protocol == "xen":
        # Function-level import: verify/xen.py builds on this module's Row and VerifyReport.
        from bootforge.verify.xen import verify_xen       # Xen's console: load base, EFI RAM map
        return verify_xen(recipe, req, keep=keep, timeout=timeout, progress=progress)
    if req.loader in POLICIES and POLICIES.get(req.loader).protocol == "linux":
        # Function-level import: verify/linux.py builds on this module's Row and VerifyReport.
        from bootforge.verify.linux import verify_linux      # boot_params at the kernel's entry
        return verify_linux(recipe, req, keep=keep, timeout=timeout, progress=progress, entry=entry)
    # An [image] recipe: the image it builds is what boots and what is predicted, as `verify IMAGE`
    # of it and as `load RECIPE` (image/load.py built_image: UEFI loaders' pages follow the image's
    # BOOTX64.EFI and medium, GRUB's heap its core image).
    booted, built = recipe, built_image(recipe, platform, loader, entry, firmware)
    if built is not None:
        req, booted = built
    machine, kind = machine_for(req.platform, req.loader)
    req, defaults = with_medium_names(req, kind)
    report = VerifyReport(str(recipe), req.loader, req.platform.name, machine.describe(), default_names=defaults)
    if progress:
        for line in defaults:
            progress(line)
    refusal_class = getattr(errors, "LoaderRefusal", RecipeError)
    res = None
    try:
        res = policy(req.loader)(req)
    except refusal_class as exc:
        report.predicted_refusal = getattr(exc, "words", None) or exc.message
    except BootforgeError as exc:
        raise exc.located(path=recipe)
    protocol = res.protocol if res else POLICIES.get(req.loader).protocol
    kernel = BootFile(Path(req.kernel.path), req.kernel_loader_path, req.cmdline)
    modules = [BootFile(Path(m.path), m.loader_path, m.cmdline) for m in req.modules]
    timeout = timeout or machine.declared.boot_timeout
    work = open_workdir(keep)
    try:
        medium = image_medium(booted, machine.declared)        # the user's own image boots as it is
        if medium is not None and built is not None:
            medium.description = f"the image built from {recipe} {medium.description[medium.description.rfind('('):]}"
        if medium is not None and entry is not None:
            # Another entry than the image's default: a snapshot copy whose configuration says so.
            index, title, copy, loader_title = with_default(booted, entry, work / ("entry-" + Path(booted).name))
            if copy is not None:
                medium = image_medium(copy, machine.declared)
                attached = medium.description[medium.description.rfind("("):]
                image_words = f"the image built from {recipe}" if built is not None else f"the image {recipe}"
                medium.description = (f"a snapshot copy {copy} of {image_words}, {loader_title}'s default set "
                                      f"to entry {index} {title!r} (the image itself is unchanged) {attached}")
        if medium is None:
            if progress:
                progress(f"building the boot medium ({kind}) in {work}")
            medium = build_medium(kind, work, kernel, modules, protocol)
        report.medium = medium.description
        if res is None:
            res_like = SimpleNamespace(protocol=protocol, loader=req.loader, load_base=None)
        report.entry, report.entry_how, others = entry_point(req.kernel, res if res is not None else res_like,
                                                             req.platform.memory_bytes)
        if progress:
            progress(f"booting {machine.describe()} from {medium.description}; stopping at {report.entry:#x}"
                     + (" (OVMF takes ~5 s to reach the loader)" if machine.declared.firmware_title == "OVMF" else ""))
        # A relocatable kernel: a breakpoint at every entry its tag allows when they are few, else
        # QEMU's translation log of the candidates' span names where it ran (bootforge/verify/relocation.py).
        first, traced = relocation.split(others)
        log = work / relocation.TRACE_LOG
        reader = refusal_reader(kind)
        moved = (res.load_base - req.kernel.low) if res is not None and res.load_base is not None else 0
        expect = relocation.entry_bytes(req.kernel, report.entry - moved) if traced else b""

        def refusal_or_ran_elsewhere(run):
            if traced and relocation.translated_candidates(log, traced, expect):
                return RAN_ELSEWHERE
            return reader(run) if reader else None
        if first and progress:
            progress(f"{len(first)} more breakpoints: every entry the relocatable tag allows")
        with QemuRun(machine, medium, workdir=work, gdb=True,
                     extra=relocation.trace_args(log, traced) if traced else ()) as run:
            run.start()
            cap = capture(run, report.entry, timeout, refusal_or_ran_elsewhere, progress, other_entries=first,
                          owned=res.owned if res is not None else ())
        ran = relocation.translated_candidates(log, traced, expect) if traced and cap.status != "entry" else []
        if ran:
            # Not entered where predicted, but code ran at these candidate entries: one more boot
            # with breakpoints there, to stop at the entry and name where the loader put it.
            if progress:
                progress(f"not entered at {report.entry:#x}; code ran at {', '.join(f'{a:#x}' for a in ran[:8])}: "
                         f"booting again with breakpoints there")
            with QemuRun(machine, medium, workdir=work, gdb=True) as run:
                run.start()
                cap = capture(run, ran[0], timeout, reader, progress, other_entries=ran[1:])
        report.boots = 2 if ran else 1
        report.status, report.seconds, report.last_serial = cap.status, cap.seconds, cap.last_serial
        report.last_screen = cap.last_screen
        report.registers, report.early_stops, report.problems = cap.registers, cap.early_stops, list(cap.problems)
        report.boot_information = cap.doc
        report.loader_words = cap.loader_words
        if cap.status == "entry" and res is not None:
            report.rows = compare_rows(res, cap, req, report.entry)
            report.mbi_bytes = mbi_bytes_comparison(res, cap)
            report.rows.append(mbi_bytes_row(report.mbi_bytes, Row))
        elif cap.status == "entry":
            report.rows = [Row("loader", f"refuses: {report.predicted_refusal}", "loaded the kernel", False)]
        elif cap.status == "refused":
            report.rows = [Row("loader", f"refuses: {report.predicted_refusal}" if res is None else "loads the kernel",
                               f"refuses: {cap.loader_words}",
                               res is None and same_words(report.predicted_refusal, cap.loader_words))]
        elif res is not None and report.entry_how.find("relocatable") >= 0:
            report.problems.append("a relocatable kernel is stopped at the entry moved to the predicted load "
                                   "base; the loader put it elsewhere or never started it")
    finally:
        close_workdir(work, keep, report)
    return report
