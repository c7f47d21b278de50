"""The fidelity harness (test-only): boot the dump kernel and real kernels (Xen 4.17's
xen.gz) under real loaders in QEMU and compare what each loader handed over with what
`bootforge load` predicts.

    python tests/fidelity.py [--only SUBSTRING] --compare

prints the matrix (scenario, matched fields, mismatches). tests/test_load_fidelity.py
runs the same scenarios one by one. It uses the product's machinery: the boot media
of bootforge.qemu.media, the one runner bootforge.qemu.runner, and `bootforge
verify`'s capture (a hardware breakpoint at the kernel's entry, the boot information
read through QEMU's gdbstub). Everything stays inside QEMU: no network except
`-netdev user,...,restrict=on` with QEMU's own TFTP for iPXE.
"""

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bootforge.errors import ToolError
from bootforge.multiboot.build import build_kernel_recipe
from bootforge.qemu import host
from bootforge.loader.policies import POLICIES
from bootforge.qemu.media import BootFile, build_medium, grub_iso, grub_script_iso, run_tool
from bootforge.qemu.runner import Machine, QemuRun
from bootforge.verify.capture import capture, entry_point
from bootforge.verify.compare import mbi_bytes_comparison, mbi_bytes_problems
from bootforge.verify.compare import observed_fields as verify_observed_fields, predicted_fields as verify_predicted
from bootforge.verify.run import refusal_reader

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
OVMF_CODE, OVMF_VARS, IPXE_ROM = host.OVMF_CODE, host.OVMF_VARS, host.IPXE_PXE_E1000
KERNEL_CMDLINE = "kernel-args a=b"
# Module sets: none, one, and three of different sizes (one exactly a page,
# one not a page multiple and larger than 64 KiB, one with an empty string).
MODULE_SETS = {
    0: [],
    1: [("mod1", 3000, "mod1-args")],
    3: [("mod1", 3000, "mod1-args"), ("mod2", 70001, "mod2 args two"), ("mod3", 4096, "")],
}
MEMORY_SIZES = ("128M", "256M", "1G", "3584M", "5G")
LINKS = {"1m": 0x100000, "16m": 0x1000000}


def memory_mib(text):
    """'256M' -> 256, '5G' -> 5120, '3584M' -> 3584."""
    text = text.strip().upper()
    if text.endswith("G"):
        return int(float(text[:-1]) * 1024)
    return int(text.rstrip("M"))


def _run(cmd, **kw):
    return run_tool(cmd, timeout=180, **kw)


def module_bytes(name, size):
    """Deterministic module contents (not all zero, so a misplaced module shows)."""
    seed = name.encode()
    return (seed * (size // len(seed) + 1))[:size]


def dump_kernel(link, protocol):
    """The dump kernel linked at *link* ("1m" or "16m") with a *protocol} header, built
    under build/load-fidelity/ (the 1 MiB link uses `make stubs`' build/stubs/mbdump.elf)."""
    out_dir = BUILD / "load-fidelity"
    out_dir.mkdir(parents=True, exist_ok=True)
    stub = BUILD / "stubs" / "mbdump.elf"
    if link != "1m":
        stub = out_dir / f"mbdump-{link}.elf"
        if not stub.exists():
            script = (REPO / "stubs" / "mbdump.ld").read_text().replace("0x100000", hex(LINKS[link]))
            (out_dir / f"mbdump-{link}.ld").write_text(script)     # same bytes from every writer
            obj = BUILD / "stubs" / "mbdump.o"
            if not obj.exists():
                raise ToolError(f"{obj} is missing: run `make stubs`")
            tmp = out_dir / f".mbdump-{link}.{os.getpid()}.elf"
            _run(["ld", "-m", "elf_i386", "-T", str(out_dir / f"mbdump-{link}.ld"), "--build-id=none",
                  "--no-warn-rwx-segments", "-o", str(tmp), str(obj)])
            os.replace(tmp, stub)       # atomic: parallel test runs may build it too
    if not stub.exists():
        raise ToolError(f"{stub} is missing: run `make stubs`")
    kernel = out_dir / f"mbdump-{link}-{protocol}.elf"
    if not kernel.exists() or kernel.stat().st_mtime < stub.stat().st_mtime:
        opts = {"page_align_modules": True, "memory_info": True} if protocol == "mb1" else \
            {"information_request": [1, 2, 3, 6], "module_alignment": True}
        recipe = {"kernel": {"input": str(stub), "protocol": "multiboot1" if protocol == "mb1" else "multiboot2",
                             "multiboot1" if protocol == "mb1" else "multiboot2": opts}}
        build_kernel_recipe(out_dir / f"{kernel.stem}.toml", recipe, kernel)     # one recipe per kernel: test workers build side by side
    return kernel


@dataclass
class Scenario:
    loader: str             # a bootforge loader name
    memory: str             # QEMU -m
    modules: int            # key of MODULE_SETS
    link: str               # key of LINKS

    @property
    def name(self):
        return f"{self.loader} -m {self.memory} mods={self.modules} link={self.link}"

    @property
    def protocol(self):
        return "mb2" if self.loader.endswith("mb2") else "mb1"


def write_modules(directory, count):
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, size, args in MODULE_SETS[count]:
        (directory / name).write_bytes(module_bytes(name, size))
        out.append((directory / name, size, args))
    return out


XEN_GZ = "/boot/xen-4.17-amd64.gz"
XEN_EFI = "/boot/xen-4.17-amd64.efi"      # the same build as a PE (xen-efi-esp)
XEN_CMDLINE = "console=com1 com1=115200,8n1"


def debian_kernel_files():
    """Debian's installed kernel and its initrd (linux-image-amd64): the newest
    /boot/vmlinuz-* and the initrd.img-* of the same version, or (None, None)."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels:
        return None, None
    version = kernels[-1].name[len("vmlinuz-"):]
    initrd = Path("/boot") / f"initrd.img-{version}"
    return kernels[-1], (initrd if initrd.exists() else None)


def busybox_initrd():
    """A small deterministic initrd (gzip'd newc cpio: /init and busybox-static's
    /bin/busybox, mtime 0, uid 0): Xen's third module, and the initrd when Debian's is absent."""
    out = BUILD / "xen-fidelity" / "busybox-initrd.gz"
    if out.exists():
        return out
    import gzip

    def member(name, mode, data, ino):
        head = "070701" + "".join(f"{v:08X}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                                                       len(name) + 1, 0))
        blob = head.encode() + name.encode() + b"\0"
        blob += b"\0" * (-len(blob) % 4) + data
        return blob + b"\0" * (-len(blob) % 4)

    cpio = member("bin", 0o40755, b"", 1) + member("bin/busybox", 0o100755, Path("/bin/busybox").read_bytes(), 2)
    cpio += member("init", 0o100755, b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n", 3)
    cpio += member("TRAILER!!!", 0, b"", 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_bytes(gzip.compress(cpio, 9, mtime=0))
    os.replace(tmp, out)            # atomic: parallel test runs may build it too
    return out


def xen_modules(count):
    """Xen's dom0 modules, as a Xen user gives them: Debian's vmlinuz (dom0 kernel, with its
    command line), Debian's initrd (the busybox one when none is installed), and a third
    small one (the busybox initrd). [(path, size, args)] of the first *count*."""
    vmlinuz, initrd = debian_kernel_files()
    if vmlinuz is None:
        raise ToolError("no /boot/vmlinuz-*: install linux-image-amd64 (make deps)")
    small = busybox_initrd()
    mods = [(vmlinuz, "root=/dev/ram0 console=hvc0"), (initrd or small, ""), (small, "busybox")]
    return [(p, p.stat().st_size, a) for p, a in mods[:count]]
# Where each loader finds the files (the names it is given), as the media place them.
NAMES = {"qemu-mb1": None, "grub-pc-mb1": "/boot/", "grub-pc-mb2": "/boot/", "grub-efi-mb2": "/boot/",
         "grub-efi-mb1": "/boot/", "syslinux-mb1": "/", "ipxe-pcbios-mb1": "tftp://10.0.2.2/"}
KERNEL_NAMES = {"grub-pc-mb1": "/boot/kernel", "grub-pc-mb2": "/boot/kernel", "grub-efi-mb2": "/boot/kernel",
                "grub-efi-mb1": "/boot/kernel",
                "syslinux-mb1": "/kernel.elf", "ipxe-pcbios-mb1": "tftp://10.0.2.2/kernel.elf"}
MEDIUM = {name: p.boot_medium for name, p in POLICIES.items() if p.boot_medium}   # the policy registry
LIMITS = {"qemu-mb1": 30, "grub-pc-mb1": 60, "grub-pc-mb2": 60, "grub-efi-mb2": 120, "grub-efi-mb1": 120,
          "syslinux-mb1": 60,
          "ipxe-pcbios-mb1": 90}


def serial_run(machine, medium, workdir, limit, stop_on):
    """Boot without stopping (Xen's and GRUB's own printouts): the serial text once a
    *stop_on* string shows, QEMU ends or *limit* seconds pass."""
    with QemuRun(machine, medium, workdir=workdir) as run:
        run.start()
        run.wait_until(lambda r: any(x in r.serial() for x in stop_on), limit, poll=0.1)
        return run.serial()


def boot_xen(workdir, memory, count):
    """Xen through GRUB x86_64-efi on OVMF with Debian's dom0 modules (xen_modules): GRUB prints
    the EFI map before and after loading (lsefimmap), Xen prints its base and E820; the run ends
    at the first Xen line after the "EFI RAM map:" table (dom0 is never started)."""
    mods = xen_modules(count)
    lines = "".join(f"  module2 /boot/{p.name} {a}\n" for p, _s, a in mods)
    medium = grub_script_iso(workdir, "set timeout=0\nserial --unit=0 --speed=115200\nterminal_input serial\n"
                             'terminal_output serial\nmenuentry "xen" {\n  insmod lsefimmap\n  lsefimmap\n'
                             "  echo AFTER-LOAD\n  multiboot2 /boot/xen.gz console=com1 com1=115200,8n1\n"
                             + lines + "  lsefimmap\n  boot\n}\n",
                             [("/boot/xen.gz", XEN_GZ)] + [(f"/boot/{p.name}", p) for p, _s, _a in mods],
                             name="xen.iso", reuse=True)
    serial = serial_run(Machine("ovmf", memory_mib(memory)), medium, workdir, 150,
                        ("Panic on CPU", "Reboot in", XEN_AFTER_MAP))
    return serial, [(p, f"/boot/{p.name}", a) for p, _s, a in mods]


# Xen 4.17's line after its "EFI RAM map:" table (xen/arch/x86/setup.c prints the map, then
# the ACPI tables it found): the boot information is all printed by then.
XEN_AFTER_MAP = "ACPI: RSDP"


def boot_xen_esp(memory, count):
    """xen.efi started by OVMF from the xen-esp disk with Debian's dom0 modules (xen_modules),
    booted by `bootforge verify` itself: Xen's printed facts and the EFI map read from its image."""
    from bootforge.verify.run import verify
    mods = xen_modules(count)
    report = verify(XEN_EFI, f"qemu-q35-ovmf:{memory}", "xen-efi-esp", cmdline=XEN_CMDLINE,
                    modules=[f"{p}={a}" if a else str(p) for p, _s, a in mods])
    inputs = {"kernel": Path(XEN_EFI), "kernel_path": "/EFI/BOOT/BOOTX64.EFI",
              "modules": [(p, p.name, a) for p, _s, a in mods], "cmdline": XEN_CMDLINE}
    seen = (report.boot_information or {}).get("xen_console")
    return ({"xen": seen} if seen else None), report.last_serial, inputs


def parse_xen(serial):
    """Xen's printed facts (verify's reader, bootforge.verify.xen): load base, the 'EFI RAM map:'
    E820, and GRUB's new loader-data pages."""
    from bootforge.verify.xen import xen_console_facts
    facts = xen_console_facts(serial)
    return None if facts is None else {"xen": facts}


def boot_platform_map(sc, workdir):
    """GRUB x86_64-efi printing OVMF's EFI map (lsefimmap) and nothing else."""
    medium = grub_script_iso(workdir, "set timeout=0\nserial --unit=0 --speed=115200\nterminal_input serial\n"
                             "terminal_output serial\ninsmod lsefimmap\nlsefimmap\necho MAP-DONE\n",
                             name="map.iso", reuse=True)
    serial = serial_run(Machine("ovmf", memory_mib(sc.memory)), medium, workdir, 90, ("MAP-DONE",))
    if "MAP-DONE" not in serial:
        return None, serial
    from bootforge.loader.platforms import parse_lsefimmap
    m = parse_lsefimmap(serial.split("MAP-DONE")[0])
    return {"platform": {"efi_map": [(r.start, r.size, r.type, r.attributes) for r in m.ranges]}}, serial


def boot_scenario(sc, workdir):
    """Boot *sc* in QEMU; return (captured boot information or None, serial text, inputs
    for the prediction). Multiboot scenarios stop at the kernel's entry (verify's capture)."""
    workdir = Path(workdir)
    if sc.loader == "platform-q35-ovmf":
        doc, serial = boot_platform_map(sc, workdir)
        return doc, serial, {"kernel": None, "modules": []}
    if sc.loader == "xen-efi-esp":
        return boot_xen_esp(sc.memory, sc.modules)
    if sc.loader == "xen-efi":
        serial, mods = boot_xen(workdir, sc.memory, sc.modules)
        inputs = {"kernel": Path(XEN_GZ), "kernel_path": "/boot/xen.gz", "lsefimmap": serial.split("AFTER-LOAD")[0],
                  "modules": mods, "serial": serial}
        return parse_xen(serial), serial, inputs
    kernel = Path(XEN_GZ) if sc.link == "xen" else dump_kernel(sc.link, sc.protocol)
    mods = xen_modules(sc.modules) if sc.link == "xen" else write_modules(workdir / "mods", sc.modules)
    prefix = NAMES[sc.loader]
    if prefix is None:          # QEMU -kernel: the file names themselves
        kfile = BootFile(kernel, str(kernel), KERNEL_CMDLINE)
        mfiles = [BootFile(p, str(p), a) for p, _s, a in mods]
    else:
        kname = "/boot/xen.gz" if sc.link == "xen" else KERNEL_NAMES[sc.loader]
        kfile = BootFile(kernel, kname, KERNEL_CMDLINE)
        mfiles = [BootFile(p, prefix + p.name, a) for p, _s, a in mods]
    inputs = {"kernel": kernel, "kernel_path": kfile.name, "modules": [(m.source, m.name, m.args) for m in mfiles]}
    protocol = "multiboot2" if sc.protocol == "mb2" else "multiboot1"
    kind = MEDIUM[sc.loader]
    if kind == "grub-efi-iso":  # print the firmware's EFI map just before loading: the platform input
        # Serial only while it prints: on OVMF the "console" terminal reaches the serial port too,
        # which interleaves every line twice.
        medium = grub_iso(workdir, protocol, kfile, mfiles, efi=True,
                          before=["terminal_output serial", "insmod lsefimmap", "lsefimmap"], reuse=True)
    else:
        medium = build_medium(kind, workdir, kfile, mfiles, protocol, reuse=True)
    # Where to stop: the entry for the predicted placement; a relocatable kernel (xen.gz under
    # GRUB MB2) also at every other base its tag allows.
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from types import SimpleNamespace
    k = read_kernel(kernel, read_input(kernel))
    try:
        res = predict(sc, inputs)
    except Exception:  # noqa: BLE001 - the comparison reports the failed prediction
        res = SimpleNamespace(protocol=protocol, loader=sc.loader, load_base=None)
    mem = memory_mib(sc.memory)
    entry, _how, others = entry_point(k, res, mem << 20)
    machine = Machine("ovmf" if kind == "grub-efi-iso" else "seabios", mem)
    # First at the predicted entry only; a relocatable kernel not entered there boots again
    # with every other base its tag allows (as verify does: breakpoints in GRUB's own pages
    # cost early stops, so they are not set unless needed).
    for stops in ((), others) if others else ((),):
        with QemuRun(machine, medium, workdir=workdir, gdb=True) as run:
            run.start()
            cap = capture(run, entry, LIMITS[sc.loader], refusal_reader(kind), other_entries=stops,
                          hash_modules=False)
            serial = run.serial()
        if cap.status != "timeout":
            break
    if kind == "grub-efi-iso":
        inputs["lsefimmap"] = serial
    inputs["capture"] = cap
    return (cap.doc if cap.status == "entry" else None), serial, inputs


def predict(sc, inputs, platform=None):
    """bootforge's prediction for a booted scenario (the same kernel, modules, names, platform)."""
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest, ModuleSpec
    data = read_input(inputs["kernel"])
    if POLICIES.get(sc.loader).protocol == "xen" and data[:2] == b"MZ":     # xen.efi: read raw, as `load` does
        from bootforge.loader.image import KernelImage
        kernel = KernelImage(str(inputs["kernel"]), data, len(data), None, 64, 0, [(0x1000000, len(data), len(data))])
    else:
        kernel = read_kernel(inputs["kernel"], data)
    mods = [ModuleSpec(str(f), name, args, Path(f).stat().st_size) for f, name, args in inputs["modules"]]
    if platform is not None:
        platform = resolve(platform)
    elif "lsefimmap" in inputs:
        from bootforge.loader.platforms import Platform, parse_lsefimmap
        platform = Platform(f"ovmf-q35:{sc.memory} (GRUB lsefimmap)", "uefi", parse_lsefimmap(inputs["lsefimmap"]),
                            grub_heap_included=True)
    elif MEDIUM.get(sc.loader) in ("grub-efi-iso", "xen-esp"):     # before the boot: the parametric OVMF profile
        platform = resolve(f"qemu-q35-ovmf:{sc.memory}")
    else:
        platform = resolve(f"qemu-pc-seabios:{sc.memory}")
    req = LoadRequest(kernel, inputs["kernel_path"], inputs.get("cmdline", KERNEL_CMDLINE), mods, platform, sc.loader)
    return policy(sc.loader)(req)


def observed_fields(doc):
    """The compared fields of a capture (bootforge.verify.compare) or a Xen / platform printout."""
    if doc is None:
        return None
    if "xen" in doc:
        return dict(doc["xen"])
    if "platform" in doc:
        return dict(doc["platform"])
    return verify_observed_fields(doc)


def predicted_fields(res):
    if res.protocol == "xen":
        from bootforge.verify.xen import predicted_facts
        return predicted_facts(res)
    return verify_predicted(res)


@dataclass
class Outcome:
    scenario: Scenario
    matched: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)     # (field, predicted, observed)
    error: str | None = None
    mbi_bytes: dict | None = None                       # compare.mbi_bytes_comparison


def run_scenario(sc, workdir):
    """Boot, predict, compare: an Outcome."""
    out = Outcome(sc)
    doc, serial, inputs = boot_scenario(sc, workdir)
    if doc is None:
        out.error = f"the kernel's entry was not reached under the real loader; serial tail: {serial[-200:]!r}"
        return out
    seen = observed_fields(doc)
    res = None
    try:
        if sc.loader == "platform-q35-ovmf":
            from bootforge.loader.platforms import qemu_q35_ovmf
            from bootforge.loader.policies.grub_efi import with_grub_heap
            efi, _heap = with_grub_heap(qemu_q35_ovmf(memory_mib(sc.memory) << 20))
            want = {"efi_map": [(r.start, r.size, r.type, r.attributes) for r in efi.ranges]}
        else:
            res = predict(sc, inputs)
            want = predicted_fields(res)
            if "lsefimmap" in inputs:
                # The same prediction from the parametric OVMF profile instead of GRUB's printout.
                profile = predicted_fields(predict(sc, {k: v for k, v in inputs.items() if k != "lsefimmap"},
                                                   platform=f"qemu-q35-ovmf:{sc.memory}"))
                for key in (("load_base", "e820") if sc.loader == "xen-efi" else ("modules", "mmap", "mbi_address")):
                    want[f"{key}_from_profile"] = profile[key]
                    seen[f"{key}_from_profile"] = seen.get(key)
    except Exception as exc:  # noqa: BLE001 - reported in the matrix, the test fails on it
        out.error = f"prediction failed: {exc}"
        return out
    for key in want:
        if want[key] == seen.get(key):
            out.matched.append(key)
        else:
            out.mismatches.append((key, want[key], seen.get(key)))
    if inputs.get("capture") is not None and res is not None:
        # The whole boot information and what it points to, byte for byte (firmware data
        # declared in bootforge.verify.compare and not counted).
        out.mbi_bytes = mbi_bytes_comparison(res, inputs["capture"])
        if out.mbi_bytes["match"]:
            out.matched.append("mbi_bytes")
        else:
            out.mismatches.append(("mbi_bytes", "bytes as predicted", mbi_bytes_problems(out.mbi_bytes)))
    return out


def _short(v):
    if isinstance(v, int):
        return hex(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(x) for x in v[:4]) + (", ..." if len(v) > 4 else "") + "]"
    return repr(v)


def matrix_table(outcomes):
    """The matrix as a text table: scenario, matched fields, mismatches."""
    rows = [("scenario", "matched", "mismatches")]
    for o in outcomes:
        if o.error:
            rows.append((o.scenario.name, "-", o.error))
            continue
        mism = "; ".join(f"{k}: predicted {_short(p)} observed {_short(s)}" for k, p, s in o.mismatches) or "none"
        rows.append((o.scenario.name, f"{len(o.matched)}/{len(o.matched) + len(o.mismatches)} "
                     + ",".join(o.matched), mism))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows) + "\n"


def default_matrix():
    """The scenarios of `make fidelity`: every loader x memory x module set x link address."""
    return [Scenario(l, m, n, k) for l in ("qemu-mb1", "grub-pc-mb1", "grub-pc-mb2", "syslinux-mb1",
                                           "ipxe-pcbios-mb1")
            for m in MEMORY_SIZES for n in MODULE_SETS for k in LINKS] + EFI_SCENARIOS + XEN_PC_SCENARIOS


# OVMF boots take 5-20 s: a few.
EFI_SCENARIOS = [Scenario("grub-efi-mb2", "256M", 3, "1m"), Scenario("grub-efi-mb2", "1G", 1, "16m"),
                 # Xen 4.17's xen.gz (relocatable, keeps boot services: EFI64 entry, no tags 6/4/17)
                 # with Debian's vmlinuz and initrd as dom0 modules (xen_modules).
                 Scenario("grub-efi-mb2", "2G", 3, "xen"), Scenario("xen-efi", "512M", 2, "xen"),
                 # The parametric OVMF profile (+ GRUB's heap) at sizes it was not derived from.
                 Scenario("platform-q35-ovmf", "768M", 0, "map"), Scenario("platform-q35-ovmf", "4G", 0, "map")]

# GRUB x86_64-efi `multiboot` (grub-efi-mb1) with the dump kernel: every memory size the OVMF
# profile has a template class for (512M and 1G all low, 3G with RAM above 4 GiB), each module set,
# both links (16m: the kernel's segment over OVMF's pages, staged). make test boots one point
# (3G, three modules, staged: the most rules at once, ~15 s); tests/test_grub_efi_mb1.py boots
# 256M twice.
GRUB_EFI_MB1_MATRIX = [Scenario("grub-efi-mb1", m, n, k) for m in ("512M", "1G", "3G") for n in MODULE_SETS
                       for k in LINKS]
GRUB_EFI_MB1_CHOSEN = [Scenario("grub-efi-mb1", "3G", 3, "16m")]
EFI_SCENARIOS += GRUB_EFI_MB1_MATRIX if os.environ.get("BOOTFORGE_FIDELITY") == "full" else GRUB_EFI_MB1_CHOSEN

# Xen 4.17's xen.gz, unmodified, under GRUB i386-pc (stopped at its entry, before Xen runs),
# with 0-3 dom0 modules (xen_modules: Debian's vmlinuz, its initrd, a gzip'd busybox initrd).
# A mismatch is a failure: there is no list of known ones.
XEN_PC_MEMORY = ("256M", "1G", "3G", "5G")
XEN_PC_MATRIX = [Scenario(l, m, n, "xen") for l in ("grub-pc-mb2", "grub-pc-mb1") for m in XEN_PC_MEMORY
                 for n in range(4)]
# make test's points (BOOTFORGE_FIDELITY unset), six because a boot reading Debian's 31 MB
# initrd costs 10-20 s against 3-8 s without it: per protocol the module counts 0, 1 and 3 once
# (3: the gunzipped busybox module after the initrd), and the four memory sizes spread over the
# two protocols (256M and 5G under both: GRUB's heap top in small RAM, RAM above 4 GiB; 1G under
# MB2, the PCI hole at 3G under MB1). Count 2 (vmlinuz + initrd) is booted by the EFI points.
XEN_PC_CHOSEN = [Scenario("grub-pc-mb2", m, n, "xen") for m, n in (("256M", 3), ("1G", 0), ("5G", 1))] + \
                [Scenario("grub-pc-mb1", m, n, "xen") for m, n in (("256M", 1), ("3G", 0), ("5G", 3))]
XEN_PC_SCENARIOS = XEN_PC_MATRIX if os.environ.get("BOOTFORGE_FIDELITY") == "full" else XEN_PC_CHOSEN
# make fidelity adds grub-efi-mb2 at 512M and xen-efi at 2G (make test boots xen-efi at 2G
# through `verify`, tests/test_xen_efi.py): each ~20 s on OVMF.
if os.environ.get("BOOTFORGE_FIDELITY") == "full":
    EFI_SCENARIOS[2:4] = [Scenario("grub-efi-mb2", "512M", 2, "xen"), Scenario("grub-efi-mb2", "2G", 3, "xen"),
                          Scenario("xen-efi", "512M", 2, "xen"), Scenario("xen-efi", "2G", 3, "xen"),
                          # RAM above 4 GiB: OVMF's map is not sorted there, Xen's printed E820 is
                          Scenario("xen-efi", "3G", 1, "xen"),
                          # xen.efi started by OVMF from the xen-esp disk (make test boots it at 5G
                          # through `verify`, tests/test_xen_efi.py)
                          Scenario("xen-efi-esp", "512M", 2, "xen"), Scenario("xen-efi-esp", "2G", 2, "xen")]


def main(argv):
    import json
    only = None
    if "--only" in argv:
        only = argv[argv.index("--only") + 1]
    keep = Path(argv[argv.index("--keep") + 1]) if "--keep" in argv else None
    if "--compare" in argv:
        outcomes = []
        for sc in default_matrix():
            if only and only not in sc.name:
                continue
            with tempfile.TemporaryDirectory(prefix="bf-fid-") as tmp:
                outcomes.append(run_scenario(sc, tmp))
        sys.stdout.write(matrix_table(outcomes))
        return 0 if all(not o.error and not o.mismatches for o in outcomes) else 1
    for sc in default_matrix():
        if only and only not in sc.name:
            continue
        with tempfile.TemporaryDirectory(prefix="bf-fid-") as tmp:
            if keep:
                tmp = keep / "work" / f"{sc.loader}-{sc.modules}-{sc.link}"
                tmp.mkdir(parents=True, exist_ok=True)
            t = time.monotonic()
            doc, serial, _inputs = boot_scenario(sc, tmp)
            print(f"{sc.name}: {'ok' if doc else 'NO DUMP ' + serial[-300:]!r} {time.monotonic() - t:.1f}s",
                  flush=True)
            if keep and doc:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / (sc.name.replace(' ', '_').replace('=', '') + ".json")).write_text(
                    json.dumps(doc, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
