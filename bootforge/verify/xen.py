"""verify of the xen-efi policy (protocol "xen"): Xen 4.17's xen.gz started by GRUB
x86_64-efi `multiboot2` on OVMF, the boot the policy predicts. What the policy claims is
what Xen itself derives and prints on its console before it starts dom0
(xen/arch/x86/setup.c): "Xen image load base address" and the "EFI RAM map:" E820 it
builds from the EFI map at ExitBootServices. GRUB's `lsefimmap` before and after
loading also shows the loader-data pages GRUB took (the image, sections, modules).
No breakpoint: Xen's console is read, and the run ends at the first line after the
map ("ACPI: RSDP"), before dom0 runs.

xen-efi-esp (xen.efi started by OVMF from an ESP) boots the xen-esp medium (qemu/xen_esp.py): a GPT
disk whose ESP holds xen.efi as EFI/BOOT/BOOTX64.EFI, the policy's BOOTX64.cfg and dom0's files.
Besides the load base and E820, Xen's EFI loader prints each file it read ("vmlinuz:
0x...-0x...", boot.c handle_file_info), and the EFI map Xen got at ExitBootServices is read from
its image: the guest is stopped after the map line and Xen's image saved through the monitor
(efi_exit_boot keeps GetMemoryMap's descriptors in efi_memmap, an ebmalloc buffer inside the
image's .bss)."""

import re
import struct
import time
from pathlib import Path

from bootforge import machines
from bootforge.errors import BootforgeError, LoaderRefusal, RecipeError
from bootforge.loader.platforms import parse_lsefimmap
from bootforge.loader.policies import POLICIES, policy
from bootforge.loader.policies.xen_efi import ESP_IMAGE
from bootforge.pe.image import read_pe
from bootforge.qemu import monitor
from bootforge.qemu.media import BootFile, grub_script_iso
from bootforge.qemu.runner import Machine, QemuRun, last_lines
from bootforge.qemu.xen_esp import xen_esp
from bootforge.verify.workdir import close_workdir, open_workdir

XEN_E820_TYPES = {"usable": 1, "reserved": 2, "ACPI data": 3, "ACPI NVS": 4, "unusable": 5}
# Xen's first line after the "EFI RAM map:" table (setup.c prints the map, then the ACPI tables).
AFTER_MAP = "ACPI: RSDP"
# Where Xen stops on its own before the map is complete.
XEN_STOPS = ("Panic on CPU", "Reboot in")
LOADED = "AFTER-LOAD"
ESP_LOADER = "xen-efi-esp"       # echoed by the medium's grub.cfg between the two lsefimmap printouts
EFI_LOADER_DATA = 2


def grub_cfg(kernel_name, cmdline, modules):
    """The medium's grub.cfg: serial console, the EFI map before loading, Xen and its modules,
    the map after loading, boot."""
    lines = "".join(f"  module2 {name} {args}".rstrip() + "\n" for name, args in modules)
    return ("set timeout=0\nserial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
            'menuentry "xen" {\n  insmod lsefimmap\n  lsefimmap\n'
            f"  echo {LOADED}\n  multiboot2 {kernel_name} {cmdline}".rstrip() + "\n" + lines
            + "  lsefimmap\n  boot\n}\n")


def xen_console_facts(serial):
    """Xen's printed facts (None when its map was never printed): load_base, e820
    [(start, size, type)] and grub_pages [(start, size)], the EFI loader-data runs
    lsefimmap shows after loading that were not there before."""
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
    new = None              # no GRUB printouts (Xen started otherwise, e.g. xen.efi from an ESP)
    before, marked, after = serial.partition(LOADED)
    after = after.split("(XEN)")[0]
    if marked and "(XEN)" in serial:
        try:
            old = {(r.start, r.size) for r in parse_lsefimmap(before).ranges if r.type == EFI_LOADER_DATA}
            new = sorted((r.start, r.size) for r in parse_lsefimmap(after).ranges if r.type == EFI_LOADER_DATA
                         and (r.start, r.size) not in old)
        except RecipeError:
            new = None
    files = [(m.group(1), int(m.group(2), 16), int(m.group(3), 16))
             for m in FILE_LINE.finditer(serial.split("(XEN)")[0])]
    return {"load_base": int(base.group(1), 16) if base else None, "e820": e820, "grub_pages": new,
            "files": files}


# Xen's EFI loader on each file it read (boot.c handle_file_info): "NAME: 0x%016lx-0x%016lx",
# start and end (exclusive).
FILE_LINE = re.compile(r"^([^\s:]+): 0x([0-9a-f]{16})-0x([0-9a-f]{16})\s*$", re.M)


def predicted_facts(res):
    """The policy's load base, E820 and GRUB's pages (merged as the firmware map shows them); for
    xen-efi-esp the files Xen's EFI loader read and the EFI map at ExitBootServices instead."""
    if res.loader == ESP_LOADER:
        efi = res.maps["efi-at-exit"]
        return {"load_base": res.load_base, "e820": list(res.mmap),
                "files": [(m["name"], m["start"], m["end"]) for m in res.modules],
                "efi_map": [(int(r.type), r.start, r.size // PAGE, r.attributes) for r in efi.ranges]}
    pages = []
    for a, n in sorted(res.grub_pages):
        if pages and pages[-1][0] + pages[-1][1] == a:
            pages[-1] = (pages[-1][0], pages[-1][1] + n)
        else:
            pages.append((a, n))
    # GRUB read the files: Xen's EFI loader reads none, so it prints no file lines.
    return {"load_base": res.load_base, "e820": list(res.mmap), "grub_pages": pages, "files": []}


def rows_for(want, seen, Row):
    rows = [Row("load base (Xen's console)", want["load_base"], seen["load_base"],
                want["load_base"] == seen["load_base"])]
    pm, om = want["e820"], seen["e820"]
    rows.append(Row("mmap entries", len(pm), len(om), len(pm) == len(om)))
    for i in range(max(len(pm), len(om))):
        p = pm[i] if i < len(pm) else None
        o = om[i] if i < len(om) else None
        rows.append(Row(f"mmap {i}", p, o, p == o))
    if "grub_pages" in want:
        rows.append(Row("GRUB's loader-data pages", want["grub_pages"], seen["grub_pages"],
                        want["grub_pages"] == seen["grub_pages"]))
    if "files" in want:
        wf, of = want["files"], seen["files"]
        rows.append(Row("files Xen's EFI loader read", len(wf), len(of), len(wf) == len(of)))
        for i in range(max(len(wf), len(of))):
            p, o = (wf[i] if i < len(wf) else None), (of[i] if i < len(of) else None)
            rows.append(Row(f"file {i}", _file_cell(p), _file_cell(o), p == o))
    if "efi_map" in want:
        pe, oe = want["efi_map"], seen.get("efi_map") or []
        rows.append(Row("EFI map at exit (type start+pages attr)", len(pe), len(oe), len(pe) == len(oe)))
        for i in range(max(len(pe), len(oe))):
            p, o = (pe[i] if i < len(pe) else None), (oe[i] if i < len(oe) else None)
            rows.append(Row(f"EFI map {i}", _descriptor_cell(p), _descriptor_cell(o), p == o))
    return rows


def _file_cell(f):
    """A file Xen's EFI loader read, as it prints it: 'NAME [start, end)'."""
    return None if f is None else f"{f[0]} [{f[1]:#x}, {f[2]:#x})"


def _descriptor_cell(d):
    """An EFI descriptor (type, start, pages, attribute) in one short cell: 'type start+pages attr'."""
    return None if d is None else f"{d[0]} {d[1]:#x}+{d[2]:#x} {d[3]:#x}"


PAGE = 4096
EFI_DESCRIPTOR = "<IIQQQQ"      # Type, pad, PhysicalStart, VirtualStart, NumberOfPages, Attribute
EFI_DESCRIPTOR_SIZE = 48        # OVMF's DescriptorSize (sizeof(EFI_MEMORY_DESCRIPTOR) + 8)
EFI_MAX_TYPE = 15


def efi_map_in_image(image):
    """The EFI memory map Xen keeps in its image (efi_memmap): the first 8-aligned array of
    OVMF-sized descriptors that starts at address 0 with a second descriptor right after the
    first, up to the first entry that is no descriptor (no pages, or a type beyond the spec's:
    the rest of the ebmalloc buffer is zero). Not sorted: OVMF's GetMemoryMap lists the GCD's
    MMIO pieces after the RAM above 4 GiB. [(type, start, pages, attribute)], or None."""
    at = 0
    while True:
        at = image.find(b"\0" * 8, at)         # PhysicalStart 0 of descriptor 0 lies at +8
        if at < 0:
            return None
        start = at - 8
        if start >= 0 and start % 8 == 0 and start + 2 * EFI_DESCRIPTOR_SIZE <= len(image):
            t0, _p, s0, _v, n0, _a = struct.unpack_from(EFI_DESCRIPTOR, image, start)
            t1, _p, s1, _v, n1, _a = struct.unpack_from(EFI_DESCRIPTOR, image, start + EFI_DESCRIPTOR_SIZE)
            if s0 == 0 and 0 < n0 < 0x100 and t0 <= EFI_MAX_TYPE and t1 <= EFI_MAX_TYPE and s1 == n0 * PAGE and n1:
                break
        at += 1
    out = []
    for k in range(start, len(image) - EFI_DESCRIPTOR_SIZE + 1, EFI_DESCRIPTOR_SIZE):
        t, _p, s, _v, n, a = struct.unpack_from(EFI_DESCRIPTOR, image, k)
        if t > EFI_MAX_TYPE or n == 0:
            break
        out.append((t, s, n, a))
    return out


def _machine(req):
    plat = req.platform
    declared = plat.qemu if isinstance(plat.qemu, machines.Machine) else None
    if declared is None or not plat.memory_bytes or declared.firmware != "uefi":
        raise RecipeError(f"verify of {req.loader} boots OVMF: give --platform qemu-q35-ovmf:<mem> "
                          f"(the platform is {plat.name})")
    return Machine(declared.name, plat.memory_bytes >> 20)


def verify_xen(recipe, req, *, keep=None, timeout=None, progress=None):
    """verify of a protocol "xen" request (from run.verify): a VerifyReport."""
    # Function-level import: run.py calls this module (verify_xen) from its verify().
    from bootforge.verify.run import Row, VerifyReport, with_medium_names
    machine = _machine(req)
    # Bare names go where the GRUB medium puts them (/boot/), and the prediction is for those.
    req, defaults = with_medium_names(req, POLICIES.get(req.loader).boot_medium)
    report = VerifyReport(str(recipe), req.loader, req.platform.name, machine.describe(), default_names=defaults)
    if progress:
        for line in defaults:
            progress(line)
    try:
        res = policy(req.loader)(req)
    except LoaderRefusal as exc:
        raise RecipeError(f"{req.loader} refuses it: {exc.message} (verify of a refused Xen boot is not made)",
                          path=recipe) from None
    except BootforgeError as exc:
        raise exc.located(path=recipe)
    timeout = timeout or max(machine.declared.boot_timeout, 150)
    work = open_workdir(keep)
    try:
        if req.loader == ESP_LOADER:
            medium = xen_esp(work, BootFile(req.kernel.path, ESP_IMAGE, req.cmdline),
                             [BootFile(m.path, m.loader_path, m.cmdline) for m in req.modules],
                             machine=machine.declared)
            report.medium = medium.description + " (OVMF's BdsDxe starts EFI/BOOT/BOOTX64.EFI)"
            report.entry_how = ("not stopped: Xen's console printout (load base, files read, EFI RAM map); then "
                                "QEMU stopped and Xen's image read for the EFI map it got")
        else:
            files = [(req.kernel_loader_path, req.kernel.path)] + [(m.loader_path, m.path) for m in req.modules]
            if any(not name.startswith("/") for name, _src in files):
                raise RecipeError("verify of xen-efi needs absolute loader paths (GRUB file names)", path=recipe)
            cfg = grub_cfg(req.kernel_loader_path, req.cmdline, [(m.loader_path, m.cmdline) for m in req.modules])
            medium = grub_script_iso(work, cfg, files, name="xen-efi.iso")
            report.medium = medium.description + " (GRUB x86_64-efi `multiboot2`, lsefimmap before and after loading)"
            report.entry_how = "not stopped: Xen's console printout (load base, EFI RAM map)"
        if progress:
            progress(f"booting {machine.describe()} from {report.medium}; reading Xen's console up to "
                     f"{AFTER_MAP!r}")
        started = time.monotonic()
        with QemuRun(machine, medium, workdir=work) as run:
            run.start()
            run.wait_until(lambda r: any(x in r.serial() for x in (AFTER_MAP,) + XEN_STOPS), timeout, poll=0.2)
            serial = run.serial()
            exited = run.exited()
            seen = xen_console_facts(serial)
            if seen is not None and req.loader == ESP_LOADER and seen["load_base"] is not None and not exited:
                image = monitor.stop_and_save(run.monitor_socket, seen["load_base"],
                                              read_pe(req.kernel.data).size_of_image, Path(work) / "xen-image.bin")
                seen["efi_map"] = efi_map_in_image(image)
        report.seconds = time.monotonic() - started
        report.boots = 1
        report.last_serial = last_lines(serial)
        if seen is None:
            report.status = "exited" if exited else "timeout"
            return report
        report.status = "console"
        report.boot_information = {"xen_console": seen}
        report.rows = rows_for(predicted_facts(res), seen, Row)
    finally:
        close_workdir(work, keep, report)
    return report


def handles(loader):
    return loader in POLICIES and POLICIES.get(loader).protocol == "xen"
