"""The fidelity harness: boot the dump kernel under real loaders in QEMU and
compare what each loader handed over with what `bootforge load` predicts.

    python -m bootforge.loader.fidelity [--only SUBSTRING] [--keep DIR]

prints the matrix (scenario, matched fields, mismatches). tests/test_load_fidelity.py
runs the same scenarios one by one. Everything stays inside QEMU: no network
except `-netdev user,...,restrict=on` with QEMU's own TFTP for iPXE.
"""

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bootforge.errors import ToolError
from bootforge.multiboot.build import build_kernel_recipe
from bootforge.multiboot.dump import decode_dump
from bootforge.multiboot import oracle
from bootforge.multiboot.oracle import module_bytes

REPO = Path(__file__).resolve().parent.parent.parent
BUILD = REPO / "build"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
IPXE_ROM = "/usr/lib/ipxe/qemu/pxe-e1000.rom"
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
    return oracle.run_tool(cmd, timeout=180, **kw)


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
        build_kernel_recipe(out_dir / "recipe.toml", recipe, kernel)
    return kernel


@dataclass
class Scenario:
    loader: str             # a bootforge loader name
    memory: str             # QEMU -m
    modules: int            # key of MODULE_SETS
    link: str               # key of LINKS
    xfail: str | None = None

    @property
    def name(self):
        return f"{self.loader} -m {self.memory} mods={self.modules} link={self.link}"

    @property
    def protocol(self):
        return "mb2" if self.loader.endswith("mb2") else "mb1"


def run_qemu(args, workdir, limit=60.0, stop_on=()):
    """The dump-capturing QEMU run of bootforge.multiboot.oracle; returns (dump bytes, serial text)."""
    dump, serial, _ = oracle.run_qemu(args, workdir, limit, stop_on)
    return dump, serial


def write_modules(directory, count):
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, size, args in MODULE_SETS[count]:
        (directory / name).write_bytes(module_bytes(name, size))
        out.append((directory / name, size, args))
    return out


def grub_cfg_text(protocol, modules, kernel_path="/boot/kernel"):
    cmd, mod = ("multiboot", "module") if protocol == "mb1" else ("multiboot2", "module2")
    lines = ["set timeout=0", "serial --unit=0 --speed=115200", "terminal_input serial",
             "terminal_output serial", 'menuentry "k" {', f"  {cmd} {kernel_path} {KERNEL_CMDLINE}"]
    lines += [f"  {mod} /boot/{name} {args}".rstrip() for name, _size, args in modules]
    lines += ["  boot", "}", ""]
    return "\n".join(lines)


def grub_iso(kernel, workdir, protocol, count, efi_map=False):
    iso = Path(workdir) / "iso"
    (iso / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernel, iso / "boot" / "kernel")
    write_modules(iso / "boot", count)
    cfg = grub_cfg_text(protocol, MODULE_SETS[count])
    if efi_map:     # print the firmware's EFI map just before loading: the platform input
        cfg = cfg.replace('menuentry "k" {', 'menuentry "k" {\n  insmod lsefimmap\n  lsefimmap')
    (iso / "boot" / "grub" / "grub.cfg").write_text(cfg)
    out = Path(workdir) / "grub.iso"
    if not out.exists():
        _run(["grub-mkrescue", "-o", str(out), str(iso)])
    return out, iso


def isolinux_cfg_text(modules):
    mods = "".join(f" --- /{name} {args}".rstrip() for name, _size, args in modules)
    return (f"SERIAL 0 115200\nDEFAULT k\nPROMPT 0\nTIMEOUT 0\nLABEL k\n  KERNEL mboot.c32\n"
            f"  APPEND /kernel.elf {KERNEL_CMDLINE}{mods}\n")


def syslinux_iso(kernel, workdir, count):
    root = oracle.isolinux_tree(Path(workdir) / "s", kernel)
    write_modules(root, count)
    (root / "isolinux" / "isolinux.cfg").write_text(isolinux_cfg_text(MODULE_SETS[count]))
    out = Path(workdir) / "syslinux.iso"
    if not out.exists():
        _run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(out), "-b", "isolinux/isolinux.bin",
              "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
              str(root)])
    return out, root


def ipxe_tree(kernel, workdir, count):
    """A TFTP root with the kernel, the modules and an iPXE script booting them."""
    root = Path(workdir) / "tftp"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kernel, root / "kernel.elf")
    mods = write_modules(root, count)
    lines = ["#!ipxe", f"kernel kernel.elf {KERNEL_CMDLINE}"]
    lines += [f"module {p.name} {args}".rstrip() for p, _s, args in mods]
    lines += ["boot", ""]
    (root / "boot.ipxe").write_text("\n".join(lines))
    return root


XEN_GZ = "/boot/xen-4.17-amd64.gz"


def boot_xen(workdir, memory):
    """Xen through GRUB x86_64-efi on OVMF with a fake dom0: GRUB prints the EFI map before
    and after loading (lsefimmap), Xen prints its E820 and panics; -no-reboot ends QEMU."""
    iso = Path(workdir) / "iso"
    (iso / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(XEN_GZ, iso / "boot" / "xen.gz")
    (iso / "boot" / "dom0").write_bytes(b"not a dom0 kernel\n" * 64)
    (iso / "boot" / "grub" / "grub.cfg").write_text(
        "set timeout=0\nserial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
        'menuentry "xen" {\n  insmod lsefimmap\n  lsefimmap\n  echo AFTER-LOAD\n'
        "  multiboot2 /boot/xen.gz console=com1 com1=115200,8n1\n  module2 /boot/dom0 dom0\n"
        "  lsefimmap\n  boot\n}\n")
    out = Path(workdir) / "xen.iso"
    if not out.exists():
        _run(["grub-mkrescue", "-o", str(out), str(iso)])
    shutil.copyfile(OVMF_VARS, Path(workdir) / "vars.fd")
    return run_qemu(["-m", str(memory_mib(memory)), "-machine", "q35", "-nic", "none",
                     "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={Path(workdir) / 'vars.fd'}",
                     "-cdrom", str(out)], workdir, 150, stop_on=("Panic on CPU", "Reboot in"))


XEN_E820_TYPES = {"usable": 1, "reserved": 2, "ACPI data": 3, "ACPI NVS": 4, "unusable": 5}


def parse_xen(serial):
    """Xen's printed facts: load base, the 'EFI RAM map:' E820, and GRUB's new loader-data pages."""
    import re
    if "EFI RAM map:" not in serial:
        return None
    base = re.search(r"Xen image load base address: (0x[0-9a-f]+)", serial)
    e820 = []
    for line in serial.split("EFI RAM map:", 1)[1].splitlines()[1:]:
        m = re.match(r"\(XEN\)\s+\[([0-9a-f]{16}), ([0-9a-f]{16})\] \((.+)\)", line.strip())
        if not m:
            break
        a, b = int(m.group(1), 16), int(m.group(2), 16)
        e820.append((a, b + 1 - a, XEN_E820_TYPES.get(m.group(3), m.group(3))))
    from bootforge.loader.platforms import parse_lsefimmap
    before, _, after = serial.partition("AFTER-LOAD")
    after = after.split("(XEN)")[0]
    old = {(r.start, r.size) for r in parse_lsefimmap(before).ranges if r.type == 2}
    new = sorted((r.start, r.size) for r in parse_lsefimmap(after).ranges if r.type == 2
                 and (r.start, r.size) not in old)
    return {"xen": {"load_base": int(base.group(1), 16) if base else None, "e820": e820,
                    "grub_pages": new}}


def boot_scenario(sc, workdir):
    """Boot *sc* in QEMU; return (decoded dump or None, serial text, inputs for the prediction)."""
    workdir = Path(workdir)
    kernel = dump_kernel(sc.link, sc.protocol) if sc.link in LINKS else None
    inputs = {"kernel": kernel, "modules": []}
    mem = ["-m", str(memory_mib(sc.memory))]
    if sc.loader == "qemu-mb1":
        mods = write_modules(workdir / "mods", sc.modules)
        args = [*mem, "-nic", "none", "-kernel", str(kernel), "-append", KERNEL_CMDLINE]
        if mods:
            args += ["-initrd", ",".join(f"{p} {a}".rstrip() for p, _s, a in mods)]
        inputs.update(kernel_path=str(kernel), modules=[(p, str(p), a) for p, _s, a in mods])
        dump, serial = run_qemu(args, workdir, 30)
    elif sc.loader in ("grub-pc-mb1", "grub-pc-mb2"):
        iso, root = grub_iso(kernel, workdir, sc.protocol, sc.modules)
        inputs.update(kernel_path="/boot/kernel",
                      modules=[(root / "boot" / n, f"/boot/{n}", a) for n, _s, a in MODULE_SETS[sc.modules]])
        dump, serial = run_qemu([*mem, "-nic", "none", "-cdrom", str(iso)], workdir, 60,
                                stop_on=("error:",))
    elif sc.loader == "grub-efi-mb2":
        iso, root = grub_iso(kernel, workdir, sc.protocol, sc.modules, efi_map=True)
        inputs.update(kernel_path="/boot/kernel",
                      modules=[(root / "boot" / n, f"/boot/{n}", a) for n, _s, a in MODULE_SETS[sc.modules]])
        shutil.copyfile(OVMF_VARS, workdir / "vars.fd")
        dump, serial = run_qemu([*mem, "-machine", "q35", "-nic", "none",
                                 "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                                 "-drive", f"if=pflash,format=raw,file={workdir / 'vars.fd'}",
                                 "-cdrom", str(iso)], workdir, 120,
                                stop_on=("error: no multiboot", "error: couldn't", "error: out of memory",
                                         "error: file"))
        inputs["lsefimmap"] = serial
    elif sc.loader == "platform-q35-ovmf":
        iso = Path(workdir) / "iso"
        (iso / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        (iso / "boot" / "grub" / "grub.cfg").write_text(
            "set timeout=0\nserial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
            "insmod lsefimmap\nlsefimmap\necho MAP-DONE\n")
        out = Path(workdir) / "map.iso"
        if not out.exists():
            _run(["grub-mkrescue", "-o", str(out), str(iso)])
        shutil.copyfile(OVMF_VARS, workdir / "vars.fd")
        dump, serial = run_qemu([*mem, "-machine", "q35", "-nic", "none",
                                 "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                                 "-drive", f"if=pflash,format=raw,file={workdir / 'vars.fd'}",
                                 "-cdrom", str(out)], workdir, 90, stop_on=("MAP-DONE",))
        if "MAP-DONE" not in serial:
            return None, serial, inputs
        from bootforge.loader.platforms import parse_lsefimmap
        m = parse_lsefimmap(serial.split("MAP-DONE")[0])
        return {"platform": {"efi_map": [(r.start, r.size, r.type, r.attributes) for r in m.ranges]}}, serial, inputs
    elif sc.loader == "xen-efi":
        dump, serial = boot_xen(workdir, sc.memory)
        inputs.update(kernel=Path(XEN_GZ), kernel_path="/boot/xen.gz", lsefimmap=serial.split("AFTER-LOAD")[0],
                      modules=[(workdir / "iso" / "boot" / "dom0", "/boot/dom0", "dom0")], serial=serial)
        return parse_xen(serial), serial, inputs
    elif sc.loader == "syslinux-mb1":
        iso, root = syslinux_iso(kernel, workdir, sc.modules)
        inputs.update(kernel_path="/kernel.elf",
                      modules=[(root / n, f"/{n}", a) for n, _s, a in MODULE_SETS[sc.modules]])
        dump, serial = run_qemu([*mem, "-nic", "none", "-cdrom", str(iso)], workdir, 60)
    elif sc.loader == "ipxe-pcbios-mb1":
        root = ipxe_tree(kernel, workdir, sc.modules)
        inputs.update(kernel_path="tftp://10.0.2.2/kernel.elf",
                      modules=[(root / n, f"tftp://10.0.2.2/{n}", a) for n, _s, a in MODULE_SETS[sc.modules]])
        dump, serial = run_qemu([*mem, "-boot", "n", "-netdev",
                                 f"user,id=n0,restrict=on,tftp={root},bootfile=boot.ipxe",
                                 "-device", f"e1000,netdev=n0,romfile={IPXE_ROM}"], workdir, 90)
    else:
        raise ValueError(sc.loader)
    doc = decode_dump(dump)[0] if dump.startswith(b"BFMBDUMP") and dump.rstrip().endswith(b"DONE") else None
    if doc is not None:
        doc["_raw"] = dump
    return doc, serial, inputs


def predict(sc, inputs, platform=None):
    """bootforge's prediction for a booted scenario (the same kernel, modules, names, platform)."""
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest, ModuleSpec
    kernel = read_kernel(inputs["kernel"], read_input(inputs["kernel"]))
    mods = [ModuleSpec(str(f), name, args, Path(f).stat().st_size) for f, name, args in inputs["modules"]]
    if platform is not None:
        platform = resolve(platform)
    elif "lsefimmap" in inputs:
        from bootforge.loader.platforms import Platform, parse_lsefimmap
        platform = Platform(f"ovmf-q35:{sc.memory} (GRUB lsefimmap)", "efi", parse_lsefimmap(inputs["lsefimmap"]),
                            grub_heap_included=True)
    else:
        platform = resolve(f"qemu-pc-seabios:{sc.memory}")
    req = LoadRequest(kernel, inputs["kernel_path"], KERNEL_CMDLINE, mods, platform, sc.loader)
    return policy(sc.loader)(req)


def observed_fields(doc):
    """The compared fields of a decoded dump."""
    if doc is None:
        return None
    if "xen" in doc:
        return dict(doc["xen"])
    if "platform" in doc:
        return dict(doc["platform"])
    out = {"mbi_address": doc["ebx"]}
    if "multiboot1" in doc:
        m = doc["multiboot1"]
        cmdline = m.get("cmdline")
        if cmdline is None and "_raw" in doc and m.get("cmdline_addr"):
            # The dump decoder leaves a string out when it abuts another region: read it directly.
            from bootforge.multiboot.dump import parse_dump
            for r in parse_dump(doc["_raw"])[2]:
                if r.name == "cmdline" and r.address == m["cmdline_addr"]:
                    cmdline = r.data.split(b"\0")[0].decode("utf-8", "replace")
        out.update(mem_lower=m.get("mem_lower"), mem_upper=m.get("mem_upper"), cmdline=cmdline,
                   modules=[(x["mod_start"], x["mod_end"]) for x in m.get("modules", [])],
                   module_strings=[x.get("string") for x in m.get("modules", [])],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for e in m.get("mmap", [])])
    else:
        tags = doc["multiboot2"]["tags"]
        mi = next((t for t in tags if t["type"] == 4), {})
        out.update(mem_lower=mi.get("mem_lower"), mem_upper=mi.get("mem_upper"),
                   cmdline=next((t["string"] for t in tags if t["type"] == 1), None),
                   modules=[(t["mod_start"], t["mod_end"]) for t in tags if t["type"] == 3],
                   module_strings=[t["string"] for t in tags if t["type"] == 3],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for t in tags if t["type"] == 6
                         for e in t["entries"]],
                   mbi_size=doc["multiboot2"]["total_size"])
        t17 = next((t for t in tags if t["type"] == 17), None)
        if t17 is not None:
            # Tag 17 as the platform input: GRUB's conversion of it must give tag 6.
            from bootforge.loader.policies.grub_efi import grub_efi_mmap
            from bootforge.memmap.model import MemoryMap, MemoryRange
            efi = MemoryMap("efi", [MemoryRange(d["physical_start"], d["number_of_pages"] * 4096, d["type"],
                                                d["attribute"]) for d in t17["descriptors"]])
            out["mmap_from_tag17"] = grub_efi_mmap(efi)
    return out


def predicted_fields(res):
    if res.loader == "xen-efi":
        pages = []
        for a, n in sorted(res.grub_pages):     # GRUB's chunks as the firmware map shows them (merged)
            if pages and pages[-1][0] + pages[-1][1] == a:
                pages[-1] = (pages[-1][0], pages[-1][1] + n)
            else:
                pages.append((a, n))
        return {"load_base": res.load_base, "e820": list(res.mmap), "grub_pages": pages}
    out = {"mbi_address": res.mbi_address, "mem_lower": res.mem_lower, "mem_upper": res.mem_upper,
           "cmdline": res.cmdline, "modules": [(m["start"], m["end"]) for m in res.modules],
           "module_strings": [m["cmdline"] for m in res.modules], "mmap": list(res.mmap)}
    if res.protocol == "multiboot2" and res.loader != "grub-efi-mb2":
        out["mbi_size"] = len(res.mbi_bytes)
    if res.loader == "grub-efi-mb2":
        out["mmap_from_tag17"] = list(res.mmap)
    return out


@dataclass
class Outcome:
    scenario: Scenario
    matched: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)     # (field, predicted, observed)
    error: str | None = None


def run_scenario(sc, workdir):
    """Boot, predict, compare: an Outcome."""
    out = Outcome(sc)
    doc, serial, inputs = boot_scenario(sc, workdir)
    if doc is None:
        out.error = f"no complete dump from the real loader; serial tail: {serial[-200:]!r}"
        return out
    seen = observed_fields(doc)
    try:
        if sc.loader == "platform-q35-ovmf":
            from bootforge.loader.platforms import qemu_q35_ovmf
            from bootforge.loader.policies.grub_efi import with_grub_heap
            efi, _heap = with_grub_heap(qemu_q35_ovmf(memory_mib(sc.memory) << 20))
            want = {"efi_map": [(r.start, r.size, r.type, r.attributes) for r in efi.ranges]}
        else:
            want = predicted_fields(predict(sc, inputs))
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
        if o.scenario.xfail and o.mismatches:
            mism += f" (known: {o.scenario.xfail})"
        rows.append((o.scenario.name, f"{len(o.matched)}/{len(o.matched) + len(o.mismatches)} "
                     + ",".join(o.matched), mism))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows) + "\n"


def default_matrix():
    """The scenarios of `make fidelity`: every loader x memory x module set x link address."""
    return [Scenario(l, m, n, k) for l in ("qemu-mb1", "grub-pc-mb1", "grub-pc-mb2", "syslinux-mb1",
                                           "ipxe-pcbios-mb1")
            for m in MEMORY_SIZES for n in MODULE_SETS for k in LINKS] + EFI_SCENARIOS


# OVMF boots take 5-20 s: a few.
EFI_SCENARIOS = [Scenario("grub-efi-mb2", "256M", 3, "1m"), Scenario("grub-efi-mb2", "1G", 1, "16m"),
                 Scenario("xen-efi", "512M", 1, "xen"), Scenario("xen-efi", "1G", 1, "xen"),
                 # The parametric OVMF profile (+ GRUB's heap) at sizes it was not derived from.
                 Scenario("platform-q35-ovmf", "768M", 0, "map"), Scenario("platform-q35-ovmf", "4G", 0, "map")]


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
