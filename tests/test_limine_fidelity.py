"""Fidelity of limine-mb1 / limine-mb2 against the real Limine 11.4.1 (../shared/oracles/
limine-11.4.1, booted from the hybrid ISO of bootforge.qemu.media.limine_iso, the
`limine` host tool built from the release's limine.c with cc).

Each scenario boots QEMU with a breakpoint at the kernel's entry (`bootforge verify`'s
capture through the gdbstub: relocated kernels are caught too), reads what Limine
handed over and compares it, field by field, with `bootforge load`'s prediction
(bootforge.verify.run.compare_rows): entry, load base (tag 21), MBI address, MBI size
(BIOS), mem_lower, mem_upper, command line, every module's start, end, string and bytes,
every mmap entry, the MB2 tag list / MB1 flags, and tag 9 byte for byte (the section
headers with the addresses Limine gave the copied sections, moved with a relocated kernel).

The matrix (CPU budget: OVMF boots cost 6-13 s each, SeaBIOS ~1.5 s):
- SeaBIOS: MB1 and MB2 x 128M, 256M, 1G, 3584M, 5G x 0/1/3 modules x kernels linked at
  1 MiB and 16 MiB (60 boots; one ISO per protocol, module set and link, reused for
  every memory size);
- OVMF: 4 scenarios spread over sizes (128M, 256M, 1G, 5G), module sets, links and both
  protocols (MB1 with the video header flag, which UEFI needs): OVMF boots cost 6-18 s;
- relocatable MB2 kernels (header tag 10): lowest-first from 2 MiB, no preference from
  0 (lands at 0x1000 under the BIOS), highest-first below 4 GiB, on SeaBIOS and OVMF;
- flat kernels: the MB1 a.out kludge and the MB2 address tag (SeaBIOS);
- graphics asked for: an MB2 framebuffer tag, the MB1 video flag (SeaBIOS: VBE).
"""

import os
from pathlib import Path

import pytest

from conftest import BUILD, require, unavailable
import fidelity as F

KERNELS = BUILD / "limine-fidelity"
# The Limine 11.4.1 release bootforge.qemu.media.limine_release_dir() uses.
LIMINE_DIR = Path(os.environ.get("BOOTFORGE_LIMINE_DIR") or BUILD.parent.parent / "shared" / "oracles" / "limine-11.4.1")


def require_limine(*more):
    """The tools a Limine boot needs (skip locally, fail under CI=true)."""
    require("qemu-system-x86_64", "xorriso", "cc", "ld", str(BUILD / "stubs" / "mbdump.elf"),
            str(BUILD / "stubs" / "mbdump.o"), str(LIMINE_DIR / "BOOTX64.EFI"), str(LIMINE_DIR / "limine.c"), *more)
BIOS_SCENARIOS = [("seabios", p, m, n, k) for p in ("mb1", "mb2") for m in F.MEMORY_SIZES
                  for n in F.MODULE_SETS for k in F.LINKS]
# OVMF boots cost 6-18 s each here: four, spread over sizes (128M is the smallest OVMF boots
# with), module sets, links (16 MiB is boot-services data there) and both protocols.
UEFI_SCENARIOS = [("ovmf", "mb2", "256M", 3, "1m"), ("ovmf", "mb2", "128M", 0, "16m"),
                  ("ovmf", "mb2", "5G", 1, "16m"), ("ovmf", "mb1v", "1G", 3, "16m")]
RELOCATABLE = {   # name: tag 10 of the dump kernel (linked at 1 MiB)
    "reloc-low": {"min_addr": 0x200000, "max_addr": 0x10000000, "align": 0x200000, "preference": "low"},
    "reloc-any": {"min_addr": 0, "max_addr": 0xFFFFFFFF, "align": 0x1000, "preference": "none"},
    "reloc-high": {"min_addr": 0x100000, "max_addr": 0xFFFFFFFF, "align": 0x100000, "preference": "high"},
}
RELOC_SCENARIOS = [("seabios", "reloc-low", "256M", 1, "1m"), ("seabios", "reloc-any", "1G", 3, "1m"),
                   ("seabios", "reloc-high", "256M", 1, "1m"), ("seabios", "reloc-high", "5G", 3, "1m"),
                   ("ovmf", "reloc-high", "1G", 3, "1m")]
# Flat kernels (bootforge build layout = "flat"): placed by the a.out kludge (MB1; the kernel
# carries both headers, so 48 bytes follow the MB1 one) or the MB2 address tag.
FLAT_SCENARIOS = [("seabios", "mb1flat", "256M", 3, "1m"), ("seabios", "mb2flat", "1G", 1, "1m"),
                  ("seabios", "mb2flat", "5G", 3, "1m")]
# Graphics asked for: an MB2 framebuffer tag (1024x768x32: VBE mode, an RGB tag 8 of 40 bytes
# instead of EGA text's 32) and the MB1 video flag, on SeaBIOS.
GRAPHICS_SCENARIOS = [("seabios", "mb2fb", "1G", 1, "1m"), ("seabios", "mb1v", "256M", 3, "16m")]
SCENARIOS = BIOS_SCENARIOS + UEFI_SCENARIOS + RELOC_SCENARIOS + FLAT_SCENARIOS + GRAPHICS_SCENARIOS
LIMITS = {"seabios": 40, "ovmf": 120}
OUTCOMES = []


def kernel_for(kind, link):
    """The dump kernel: F.dump_kernel for mb1/mb2; mb1v = MB1 with the video flag (mode 0,
    1024x768x32: Limine on UEFI refuses MB1 kernels without it); reloc-* = MB2 with tag 10;
    mb1flat / mb2flat = the flat layout (booted as multiboot1 / multiboot2); mb2fb = MB2 with a
    framebuffer header tag (1024x768x32)."""
    if kind in ("mb1", "mb2"):
        return F.dump_kernel(link, kind)
    from bootforge.multiboot.build import build_kernel_recipe
    KERNELS.mkdir(parents=True, exist_ok=True)
    stub = F.dump_kernel(link, "mb1").parent / f"mbdump-{link}.elf" if link != "1m" else BUILD / "stubs" / "mbdump.elf"
    out = KERNELS / f"mbdump-{link}-{kind}.elf"
    if kind in ("mb1flat", "mb2flat"):
        recipe = {"kernel": {"input": str(stub), "layout": "flat",
                             "protocol": "both" if kind == "mb1flat" else "multiboot2",
                             "multiboot1": {"page_align_modules": True, "memory_info": True},
                             "multiboot2": {"information_request": [1, 2, 3, 6], "module_alignment": True}}}
        if kind == "mb2flat":
            del recipe["kernel"]["multiboot1"]
    elif kind == "mb1v":
        recipe = {"kernel": {"input": str(stub), "protocol": "multiboot1", "multiboot1": {
            "page_align_modules": True, "memory_info": True,
            "video": {"mode_type": 0, "width": 1024, "height": 768, "depth": 32}}}}
    elif kind == "mb2fb":
        recipe = {"kernel": {"input": str(stub), "protocol": "multiboot2", "multiboot2": {
            "information_request": [1, 2, 3, 6], "module_alignment": True,
            "framebuffer": {"width": 1024, "height": 768, "depth": 32}}}}
    else:
        recipe = {"kernel": {"input": str(stub), "protocol": "multiboot2", "multiboot2": {
            "information_request": [1, 2, 3, 6], "module_alignment": True, "relocatable": RELOCATABLE[kind]}}}
    if not out.exists() or out.stat().st_mtime < stub.stat().st_mtime:
        build_kernel_recipe(KERNELS / f"{Path(out).stem}.toml", recipe, out)
    return out


def _id(sc):
    fw, kind, mem, mods, link = sc
    return f"limine-{fw}-{kind}-{mem}-mods{mods}-{link}"


@pytest.fixture(scope="module")
def workroot(tmp_path_factory):
    return tmp_path_factory.mktemp("limine-fidelity")


def run_limine(fw, kind, memory, count, link, workdir):
    """Boot one scenario; (VerifyReport-like rows, capture status, loader words, predicted refusal)."""
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest, ModuleSpec
    from bootforge.qemu.media import BootFile, limine_iso
    from bootforge.qemu.runner import Machine, QemuRun
    from bootforge.verify.capture import capture, entry_point
    from bootforge.verify.run import compare_rows, refusal_reader
    kernel = kernel_for(kind, link)
    protocol = "multiboot1" if kind.startswith("mb1") else "multiboot2"     # mb1, mb1v, mb1flat
    loader = "limine-mb1" if protocol == "multiboot1" else "limine-mb2"
    mods = F.write_modules(workdir / "mods", count)
    kfile = BootFile(kernel, "/boot/kernel", F.KERNEL_CMDLINE)
    mfiles = [BootFile(p, f"/boot/{p.name}", a) for p, _s, a in mods]
    medium = limine_iso(workdir, kfile, mfiles, protocol=protocol, reuse=True)
    platform = resolve(f"{'qemu-pc-seabios' if fw == 'seabios' else 'qemu-q35-ovmf'}:{memory}")
    k = read_kernel(kernel, read_input(kernel))
    req = LoadRequest(k, kfile.name, F.KERNEL_CMDLINE,
                      [ModuleSpec(str(m.source), m.name, m.args, Path(m.source).stat().st_size) for m in mfiles],
                      platform, loader)
    res = policy(loader)(req)
    entry, _how, _others = entry_point(k, res, platform.memory_bytes)
    with QemuRun(Machine(fw, F.memory_mib(memory)), medium, workdir=workdir, gdb=True) as run:
        run.start()
        cap = capture(run, entry, LIMITS[fw], refusal_reader("limine-iso"))
        rows = compare_rows(res, cap, req, entry) if cap.status == "entry" else []
        if cap.status == "entry" and protocol == "multiboot2":
            rows.append(_elf_sections_row(run, cap, res))
        if cap.status == "entry":
            # The whole boot information and what it points to, byte for byte (verify's row).
            from bootforge.verify.compare import mbi_bytes_comparison, mbi_bytes_problems, mbi_bytes_row
            from bootforge.verify.run import Row
            comparison = mbi_bytes_comparison(res, cap)
            row = mbi_bytes_row(comparison, Row)
            if not row.ok:
                row.observed += ": " + mbi_bytes_problems(comparison)
            rows.append(row)
    return rows, cap


def _elf_sections_row(run, cap, res):
    """Tag 9 byte for byte, read from guest memory while QEMU still stands at the entry: the
    section headers with sh_addr of the copied sections and, for a relocated kernel, every
    other sh_addr moved by the slide."""
    from bootforge.qemu.gdbremote import GdbRemote
    from bootforge.verify.run import Row
    ebx = cap.registers["rbx"] & 0xFFFFFFFF
    gdb = GdbRemote(run.gdb_socket)
    try:
        raw = gdb.read_memory(ebx, len(res.mbi_bytes) + 0x4000)
    finally:
        gdb.close()

    def tag9(info):
        pos = 8
        while pos + 8 <= len(info):
            t, size = int.from_bytes(info[pos:pos + 4], "little"), int.from_bytes(info[pos + 4:pos + 8], "little")
            if t in (0, 9):
                return info[pos:pos + size] if t == 9 else None
            pos += size + (-size % 8)
        return None
    want, seen = tag9(res.mbi_bytes), tag9(raw or b"")
    return Row("tag 9 bytes", want and want.hex()[:24] + "..", seen and seen.hex()[:24] + "..", want == seen)


@pytest.mark.parametrize("sc", SCENARIOS, ids=_id)
def test_limine_fidelity(sc, workroot):
    fw, kind, memory, count, link = sc
    require_limine(*((F.OVMF_CODE, F.OVMF_VARS) if fw == "ovmf" else ()))
    work = workroot / f"{kind}-{count}-{link}"     # the ISO is reused across memory sizes (and firmwares)
    work.mkdir(exist_ok=True)
    rows, cap = run_limine(fw, kind, memory, count, link, work)
    OUTCOMES.append((_id(sc), rows, cap))
    assert cap.status == "entry", f"{cap.status}: {cap.loader_words or cap.last_serial}"
    bad = [r for r in rows if r.counted and not r.ok]
    assert not bad, "\n".join(f"{r.name}: predicted {r.predicted!r} observed {r.observed!r}" for r in bad)
    names = {r.name for r in rows if r.counted and r.ok}
    need = {"kernel entry", "mbi address", "mem lower", "mem upper", "cmdline", "mmap entries",
            "flags" if kind.startswith("mb1") else "tags", "mbi bytes"}
    if fw == "seabios" and not kind.startswith("mb1"):
        need.add("mbi size")
    if count:
        need |= {"module 0 start", "module 0 end", "module 0 string", "module 0 bytes"}
    if kind.startswith("reloc"):
        need.add("load base (tag 21)")
    if kind in ("mb2", "mb2fb") or kind.startswith("reloc"):
        need.add("tag 9 bytes")
    assert need <= names, need - names


def test_limine_matrix_table(capsys):
    """The Limine matrix (scenario, fields compared, mismatches), printed; it fails when a
    scenario did not stop at the kernel's entry or any counted field differs."""
    if not OUTCOMES:
        unavailable("no Limine fidelity scenario ran (selected out)")
    lines = []
    for name, rows, cap in OUTCOMES:
        counted = [r for r in rows if r.counted]
        bad = [r.name for r in counted if not r.ok]
        lines.append(f"{name:<44} {cap.status:<8} {len(counted) - len(bad):>3}/{len(counted):<3} "
                     f"{'mismatch: ' + ', '.join(bad) if bad else 'all match'}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    failed = [name for name, rows, cap in OUTCOMES
              if cap.status != "entry" or not rows or any(r.counted and not r.ok for r in rows)]
    assert not failed, ("Limine scenarios that did not stop at the entry with every field matching: "
                        + ", ".join(failed) + "\n" + "\n".join(lines))
