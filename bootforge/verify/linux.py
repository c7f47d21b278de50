"""verify of Linux entries (protocol "linux" policies): boot the image, or QEMU -kernel, stop at
the kernel's entry through QEMU's gdbstub and read the boot_params the loader handed over
(ESI at the 32-bit entry, arch/x86/boot/compressed/head_64.S startup_32; Documentation/arch/
x86/boot.rst "32-bit boot protocol"): the E820 table, ramdisk_image/size, cmd_line_ptr and
its string, the setup_data chain, and the zero page byte for byte as the policy predicts it
(its `linux.zero_page` declares what the loader does not write and what it takes from the
firmware, per field, with the reason)."""

import hashlib
import time
import tomllib
from dataclasses import replace
from pathlib import Path

from bootforge import machines
from bootforge.errors import BootforgeError, LoaderRefusal, RecipeError
from bootforge.formats import bzimage as bz
from bootforge.image.build import build_image_recipe
from bootforge.image.load import image_request
from bootforge.image.snapshot import with_default
from bootforge.loader.policies import POLICIES, policy
from bootforge.qemu.gdbremote import GdbError, GdbRemote
from bootforge.qemu.media import MEDIA, BootFile, build_medium, image_medium
from bootforge.qemu.runner import Machine, Medium, QemuRun, last_lines
from bootforge.uki.kernel import read_bzimage
from bootforge.verify.capture import GuestMemory, hash_guest
from bootforge.verify.workdir import close_workdir, open_workdir

PAGE = 0x1000
MAX_SETUP_DATA = 64             # nodes followed in the setup_data chain (a loop or garbage stops there)
MAX_SETUP_DATA_LEN = 1 << 20    # a node longer than this is named, not read
MAX_EARLY_STOPS = 1000
PROT_ADDR = 0x100000            # where the 32-bit kernel's code32_start is linked (boot.rst)
# The Linux policies whose kernel file the firmware itself starts (a bare file is booted by QEMU
# -kernel, OVMF's QemuKernelLoaderFsDxe); the others (GRUB's, Limine's) need their image.
FIRMWARE_STARTS = ("linux-efi-stub",)

# struct boot_params offsets verify reads (arch/x86/include/uapi/asm/bootparam.h).
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
E820_ENTRIES, E820_TABLE, E820_ENTRY, E820_MAX = 0x1E8, 0x2D0, 20, 128
CODE32_START, RAMDISK_IMAGE, RAMDISK_SIZE, CMD_LINE_PTR, SETUP_DATA = 0x214, 0x218, 0x21C, 0x228, 0x250

# The regions of struct boot_params, to name a differing byte (bootparam.h; the setup header's
# fields by bootforge.formats.bzimage.SetupHeader).
BOOT_PARAMS_REGIONS = (
    (0x000, "screen_info"), (0x040, "apm_bios_info"), (0x054, "_pad2"), (0x058, "tboot_addr"),
    (0x060, "ist_info"), (0x070, "acpi_rsdp_addr"), (0x078, "_pad3"), (0x080, "hd0_info"), (0x090, "hd1_info"),
    (0x0A0, "sys_desc_table"), (0x0B0, "olpc_ofw_header"), (0x0C0, "ext_ramdisk_image"),
    (0x0C4, "ext_ramdisk_size"), (0x0C8, "ext_cmd_line_ptr"), (0x0CC, "_pad4"), (0x13C, "cc_blob_address"),
    (0x140, "edid_info"), (0x1C0, "efi_info"), (0x1E0, "alt_mem_k"), (0x1E4, "scratch"),
    (0x1E8, "e820_entries"), (0x1E9, "eddbuf_entries"), (0x1EA, "edd_mbr_sig_buf_entries"),
    (0x1EB, "kbd_status"), (0x1EC, "secure_boot"), (0x1ED, "_pad5"), (0x1EF, "sentinel"), (0x1F0, "_pad6"),
    (0x1F1, "hdr"), (0x290, "edd_mbr_sig_buffer"), (0x2D0, "e820_table"), (0xCD0, "_pad8"), (0xD00, "eddbuf"),
)


def region_name(offset):
    name, start = BOOT_PARAMS_REGIONS[0][1], 0
    for at, n in BOOT_PARAMS_REGIONS:
        if at <= offset:
            name, start = n, at
    if name == "hdr":
        at = bz.SETUP_HEADER_OFFSET
        for sub in bz.SetupHeader.subcons:
            size = sub.sizeof()
            if at <= offset < at + size:
                return f"hdr.{sub.name}" + (f" +{offset - at:#x}" if offset > at else "")
            at += size
    if name == "e820_table":
        i, inner = divmod(offset - E820_TABLE, E820_ENTRY)
        return f"e820_table[{i}] +{inner:#x}"
    return name + (f" +{offset - start:#x}" if offset > start else "")


def read_boot_params(gdb, address):
    """The boot_params page at *address* as the kernel reads it: {"e820", "ramdisk_image",
    "ramdisk_size", "cmd_line_ptr", "cmdline", "setup_data", "code32_start"} and the raw page."""
    mem = GuestMemory(gdb)
    page = mem.read(address, PAGE)
    if page is None:
        raise RecipeError(f"the boot_params page at {address:#x} (ESI at the kernel's entry) cannot be read")

    def u32(off):
        return int.from_bytes(page[off:off + 4], "little")
    count = min(page[E820_ENTRIES], E820_MAX)
    e820 = []
    for i in range(count):
        at = E820_TABLE + E820_ENTRY * i
        e820.append((int.from_bytes(page[at:at + 8], "little"), int.from_bytes(page[at + 8:at + 16], "little"),
                     u32(at + 16)))
    ramdisk = u32(RAMDISK_IMAGE) | u32(EXT_RAMDISK_IMAGE) << 32
    size = u32(RAMDISK_SIZE) | u32(EXT_RAMDISK_SIZE) << 32
    cmd_ptr = u32(CMD_LINE_PTR) | u32(EXT_CMD_LINE_PTR) << 32
    cmdline = mem.string(cmd_ptr)[0] if cmd_ptr else None
    chain, problems = [], []
    at = int.from_bytes(page[SETUP_DATA:SETUP_DATA + 8], "little")
    seen = set()
    while at and len(chain) < MAX_SETUP_DATA:
        if at in seen:
            problems.append(f"the setup_data chain loops back to {at:#x}")
            break
        seen.add(at)
        head = mem.read(at, 16)
        if head is None:
            problems.append(f"setup_data node at {at:#x} cannot be read")
            break
        nxt, kind, length = (int.from_bytes(head[0:8], "little"), int.from_bytes(head[8:12], "little"),
                             int.from_bytes(head[12:16], "little"))
        body = mem.read(at + 16, length) if length <= MAX_SETUP_DATA_LEN else None
        chain.append({"address": at, "type": kind, "type_name": bz.SetupDataType.label_of(kind, str(kind)),
                      "len": length,
                      "sha256": hashlib.sha256(body).hexdigest() if body is not None else None})
        at = nxt
    return {"address": address, "e820": e820, "ramdisk_image": ramdisk, "ramdisk_size": size,
            "cmd_line_ptr": cmd_ptr, "cmdline": cmdline, "setup_data": chain, "code32_start": u32(CODE32_START),
            "problems": problems}, page


def zero_page_comparison(res, page):
    """The zero page byte for byte, as compare.mbi_bytes_comparison compares an MBI: the bytes
    the policy predicts (res.mbi_bytes), less the ranges it declares (res.linux["zero_page"]:
    firmware/console state with the reason, and the bytes past what the loader writes)."""
    spec = res.linux.get("zero_page") or {}
    pred = bytes(res.mbi_bytes)
    seen = bytes(page[:len(pred)]) if pred else b""
    declared = [(d["offset"], d["offset"] + d["size"], region_name(d["offset"]), d["why"])
                for d in spec.get("declared", [])]
    nw = spec.get("not_written")
    if nw:
        declared.append((nw["offset"], nw["offset"] + nw["size"], f"[{nw['offset']:#x}, "
                         f"{nw['offset'] + nw['size']:#x}) of the page", nw["why"]))
    skip = {i for lo, hi, _n, _w in declared for i in range(lo, hi)}
    differing = []
    for i in range(max(len(pred), len(seen))):
        if i in skip or (i < len(pred) and i < len(seen) and pred[i] == seen[i]):
            continue
        if differing and differing[-1]["end"] == i and differing[-1]["name"] == region_name(i).split(" +")[0]:
            differing[-1]["end"] = i + 1
        else:
            differing.append({"start": i, "end": i + 1, "name": region_name(i).split(" +")[0]})
    # The declared bytes of the predicted part are hashed as the policy writes them on both sides.
    masked = bytearray(seen)
    for lo, hi, _n, _w in declared:
        if lo < len(pred):
            masked[lo:min(hi, len(pred))] = pred[lo:min(hi, len(pred))]
    return {"predicted_sha256": hashlib.sha256(pred).hexdigest(),
            "observed_sha256": hashlib.sha256(bytes(masked)).hexdigest(),
            "predicted_size": len(pred), "observed_size": len(seen), "match": bool(pred) and not differing,
            "differing": differing, "structures": [],
            "firmware_data": [{"start": lo, "end": hi, "name": n, "reason": w} for lo, hi, n, w in declared]}


def _machine(req):
    plat = req.platform
    declared = plat.qemu if isinstance(plat.qemu, machines.Machine) else None
    if declared is None or not plat.memory_bytes:
        raise RecipeError(f"platform {plat.name!r} is a memory map, not a machine QEMU can be; verify runs on "
                          f"{', '.join(machines.platform_syntax(f) for f in machines.FIRMWARES)}")
    if declared.firmware not in POLICIES.get(req.loader).firmware:
        raise RecipeError(f"{req.loader} runs on {'/'.join(POLICIES.get(req.loader).firmware)}, but the platform "
                          f"is {plat.name}")
    return Machine(declared.name, plat.memory_bytes >> 20)


def _is_image_recipe(path):
    """The parsed [image] recipe at *path*, or None."""
    try:
        table = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return table if "image" in table else None


def _medium(recipe, req, machine, work, entry, progress):
    """What boots: the user's image as it is, the image an [image] recipe builds, or for
    QEMU -kernel the kernel, its -append and -initrd."""
    kind = POLICIES.get(req.loader).boot_medium
    image = Path(recipe)
    if kind in MEDIA and image_medium(image, machine.declared) is None and _is_image_recipe(image) is None:
        # A kernel booted by the loader's own medium (QEMU -kernel/-initrd/-append): the request's files.
        kernel = BootFile(Path(req.kernel.path).resolve(), str(Path(req.kernel.path).resolve()), req.cmdline or "")
        modules = [BootFile(Path(m.path).resolve(), str(Path(m.path).resolve()), "") for m in req.modules]
        medium = build_medium(kind, work, kernel, modules, "linux")
        medium.description = "QEMU -kernel/-initrd/-append (its linuxboot_dma option ROM)"
        return medium
    medium = image_medium(image, machine.declared)
    if (medium is None and _is_image_recipe(image) is None and machine.declared.firmware == "uefi"
            and req.loader in FIRMWARE_STARTS):
        # A bare UKI or bzImage on UEFI: QEMU -kernel, which OVMF's QemuKernelLoaderFsDxe hands LoadImage
        # (the boot path the policy predicts for a file that is not on an ESP).
        args = ["-kernel", str(Path(req.kernel.path).resolve())]
        if req.cmdline:
            args += ["-append", req.cmdline]
        if req.modules:
            args += ["-initrd", str(Path(req.modules[0].path).resolve())]
        return Medium(args, "QEMU -kernel (OVMF's QemuKernelLoaderFsDxe)")
    if medium is None:
        table = _is_image_recipe(image) or {}
        if "image" not in table:
            raise RecipeError(f"verify of {req.loader} boots a bootable image or an [image] recipe (the loader "
                              "reads its files from the image's file system)", path=recipe)
        image = work / ("verify-" + image.stem + (".iso" if table["image"].get("format", "iso") == "iso"
                                                   else ".img"))
        if progress:
            progress(f"building the image of {recipe} as {image}")
        build_image_recipe(recipe, table, image)
        medium = image_medium(image, machine.declared)
        medium.description = f"the image built from {recipe} ({image.name})"
        medium.files["image"] = str(image)
    if entry is not None:
        index, title, copy, loader_title = with_default(image, entry, work / ("entry-" + image.name))
        if copy is not None:
            medium = image_medium(copy, machine.declared)
            medium.description = (f"a snapshot copy of {image.name}, {loader_title}'s default set to entry "
                                  f"{index} {title!r}")
    return medium


def _stop_at_entry(run, entry, timeout, progress):
    """Continue to *entry*; stops before the kernel is in place (no boot_params page at ESI) are
    stepped over. (registers, gdb, early stops) or (None, None, stops) at a timeout/exit."""
    gdb = GdbRemote(run.gdb_socket)
    gdb.hardware_breakpoint(entry)
    stops, last = 0, 0.0
    while True:
        try:
            gdb.cont()
        except GdbError:
            return None, gdb, stops
        reply = None
        while reply is None:
            try:
                reply = gdb.wait_stop(0.2)
            except GdbError:
                reply = "W"
            if reply is None and (run.exited() or run.elapsed() > timeout):
                return None, gdb, stops
            if reply is None and progress and run.elapsed() - last >= 5:
                last = run.elapsed()
                said = last_lines(run.serial(), 1, 100)
                progress(f"{run.elapsed():5.1f} s  waiting for the kernel's entry at {entry:#x}"
                         + (f"; serial: {said}" if said.strip() else ""))
        if reply[:1] in ("W", "X"):
            return None, gdb, stops
        regs = gdb.registers(run.register_layout)
        # The kernel is entered with ESI/RSI = boot_params: a stop with no readable page there is
        # firmware or loader code at that address before the kernel is in place. (The zero page
        # systemd-stub 252 hands the EFI stub has no "HdrS" at 0x202: observed, so not checked.)
        if regs["rsi"] and gdb.read_memory(regs["rsi"] & 0xFFFFFFFF, PAGE) is not None:
            return regs, gdb, stops
        stops += 1
        if stops > MAX_EARLY_STOPS:
            return None, gdb, stops
        gdb.step_over(regs["rip"])


def entry_address(req, res):
    """The 32-bit entry the loader jumps to: the policy's entry or code32_start, else the header's
    (a loader that puts the protected-mode kernel at 1 MiB, as QEMU -kernel)."""
    for key in ("entry", "code32_start"):
        if res.linux.get(key):
            return res.linux[key]
    if isinstance(res.linux.get("kernel"), dict) and res.linux.get("placement"):
        return res.linux["kernel"]["start"]         # the EFI stub's jump into the kernel it placed
    return read_bzimage(req.kernel.data).get("code32_start") or PROT_ADDR


def initrd_bytes_hash(req, pad=4):
    """sha256 of what the loader puts at ramdisk_image: the initrd files concatenated, each but
    the last padded with zeros to *pad* bytes (GRUB's grub_initrd_load: 4; a policy that puts them
    otherwise says so in linux.initrd_pad); QEMU takes one file."""
    h = hashlib.sha256()
    for i, m in enumerate(req.modules):
        with open(m.path, "rb") as f:
            data = f.read()
        h.update(data)
        if i < len(req.modules) - 1:
            h.update(bytes(-len(data) % pad))
    return h.hexdigest()


def predicted_linux(res):
    """The fields verify compares, from the policy's `linux` facts: a policy that places through a
    model of the firmware's allocator (linux.placement, when exact) gives its addresses there."""
    lin = dict(res.linux)
    place = lin.get("placement") or {}
    if place.get("exact"):
        lin.update(boot_params=place["boot_params"], cmd_line_ptr=place["cmd_line_ptr"])
        if place.get("initrd"):
            lin.update(ramdisk_image=place["initrd"]["start"], ramdisk_size=place["initrd"]["size"])
    elif place:
        lin.setdefault("varies_per_boot", {}).update(
            {k: f"not predicted: {place.get('reason')}" for k in ("boot_params", "cmd_line_ptr", "ramdisk_image")})
    if lin.get("setup_data") and isinstance(lin["setup_data"][0], dict):
        lin["setup_data"] = [(getattr(bz.SetupDataType, n["type"]) if isinstance(n["type"], str) else n["type"],
                              n["len"]) for n in lin["setup_data"]]
    if "ramdisk_size" not in lin and lin.get("initrd_size") is not None:
        lin["ramdisk_size"] = lin["initrd_size"]
    return lin


def rows_for(res, req, regs, params, page, gdb, Row):
    rows = []
    lin = predicted_linux(res)
    entry = entry_address(req, res)
    rows.append(Row("kernel entry", entry, regs["rip"] & 0xFFFFFFFF, entry == regs["rip"] & 0xFFFFFFFF))
    varies = lin.get("varies_per_boot", {})      # field -> why the loader's value differs per boot
    bp = lin.get("boot_params")
    rows.append(Row("boot_params (ESI)", bp, params["address"], bp == params["address"],
                    bp is not None and "boot_params" not in varies))
    # The header field as the zero page holds it (a loader that jumps elsewhere leaves the file's).
    c32 = int.from_bytes(res.mbi_bytes[CODE32_START:CODE32_START + 4], "little") if len(res.mbi_bytes) > \
        CODE32_START else entry
    if not lin.get("placement"):        # the EFI stub enters the kernel it placed: no 32-bit entry field
        rows.append(Row("code32_start", c32, params["code32_start"], c32 == params["code32_start"]))
    rows.append(Row("ramdisk_image", lin.get("ramdisk_image"), params["ramdisk_image"],
                    lin.get("ramdisk_image") == params["ramdisk_image"], "ramdisk_image" not in varies))
    rows.append(Row("ramdisk_size", lin.get("ramdisk_size"), params["ramdisk_size"],
                    lin.get("ramdisk_size") == params["ramdisk_size"]))
    if req.modules and params["ramdisk_size"]:
        want = initrd_bytes_hash(req, res.linux.get("initrd_pad", 4))
        got = hash_guest(gdb, params["ramdisk_image"], params["ramdisk_image"] + params["ramdisk_size"]) or "?"
        rows.append(Row("initrd bytes", f"files sha256 {want[:16]}", f"memory sha256 {got[:16]}", want == got))
    rows.append(Row("cmd_line_ptr", lin.get("cmd_line_ptr"), params["cmd_line_ptr"],
                    lin.get("cmd_line_ptr") == params["cmd_line_ptr"], "cmd_line_ptr" not in varies))
    rows.append(Row("cmdline", res.cmdline, params["cmdline"], res.cmdline == params["cmdline"]))
    want_sd = lin.get("setup_data", [])
    got_sd = [(n["type"], n["len"]) for n in params["setup_data"]]
    rows.append(Row("setup_data", [tuple(x) for x in want_sd], got_sd, [tuple(x) for x in want_sd] == got_sd))
    pmap, omap = [tuple(e) for e in res.mmap], params["e820"]
    rows.append(Row("mmap entries", len(pmap), len(omap), len(pmap) == len(omap)))
    for i in range(max(len(pmap), len(omap))):
        p = pmap[i] if i < len(pmap) else None
        o = omap[i] if i < len(omap) else None
        rows.append(Row(f"mmap {i}", p, o, p == o))
    zp = None
    if res.mbi_bytes:
        zp = zero_page_comparison(res, page)
        rows.append(Row("zero page bytes", f"sha256 {zp['predicted_sha256'][:16]} ({zp['predicted_size']} bytes)",
                        f"sha256 {zp['observed_sha256'][:16]} ({zp['observed_size']} bytes)", zp["match"]))
    else:
        why = lin.get("zero_page_why") or "the policy predicts no zero page bytes"
        rows.append(Row("zero page bytes", None, f"sha256 {hashlib.sha256(page).hexdigest()[:16]} ({PAGE} bytes)",
                        False, False))
        zp = {"predicted_sha256": None, "observed_sha256": hashlib.sha256(page).hexdigest(), "predicted_size": 0,
              "observed_size": PAGE, "match": False, "differing": [], "structures": [],
              "firmware_data": [{"start": 0, "end": PAGE, "name": "the whole page", "reason": why}]}
    return rows, zp


def verify_linux(recipe, req, *, keep=None, timeout=None, progress=None, entry=None):
    """verify of a protocol "linux" request (from run.verify): a VerifyReport."""
    # Function-level import: verify/run.py calls this module and holds the report's shape.
    from bootforge.verify.run import Row, VerifyReport
    machine = _machine(req)
    report = VerifyReport(str(recipe), req.loader, req.platform.name, machine.describe())
    try:
        res = policy(req.loader)(req)
    except LoaderRefusal as exc:
        raise RecipeError(f"{req.loader} refuses it: {exc.message} (verify of a refused Linux entry is not made)",
                          path=recipe) from None
    except BootforgeError as exc:
        raise exc.located(path=recipe)
    timeout = timeout or machine.declared.boot_timeout
    work = open_workdir(keep)
    try:
        medium = _medium(recipe, req, machine, work, entry, progress)
        built = medium.files.get("image")
        if built and machine.declared.firmware == "uefi" and req.efi_application is None:
            # The firmware starts the built image's EFI/BOOT/BOOTX64.EFI from its medium: a loader's
            # pages under OVMF follow that file and medium (grub_efi._with_grub_image), which a
            # recipe alone does not give. Predicted from the image that boots.
            on = image_request(built, req.platform.name, req.loader, entry, "uefi")
            req = replace(req, efi_application=on.efi_application, efi_medium=on.efi_medium)
            res = policy(req.loader)(req)
        report.medium = medium.description
        report.entry = entry_address(req, res)
        report.entry_how = ("the kernel's 64-bit entry the EFI stub jumps to, RSI = boot_params"
                            if res.linux.get("placement") else "the kernel's 32-bit entry, ESI = boot_params")
        if progress:
            progress(f"booting {machine.describe()} from {medium.description}; stopping at {report.entry:#x}")
        started = time.monotonic()
        with QemuRun(machine, medium, workdir=work, gdb=True) as run:
            run.start()
            regs, gdb, report.early_stops = _stop_at_entry(run, report.entry, timeout, progress)
            report.seconds = time.monotonic() - started
            report.last_serial = last_lines(run.serial())
            report.boots = 1
            if regs is None:
                report.status = "exited" if run.exited() else "timeout"
                if gdb:
                    gdb.close()
                return report
            try:
                params, page = read_boot_params(gdb, regs["rsi"] & 0xFFFFFFFF)
                report.status = "entry"
                report.registers = {k: regs[k] for k in ("rax", "rbx", "rip", "rsi")}
                report.rows, report.mbi_bytes = rows_for(res, req, regs, params, page, gdb, Row)
            finally:
                gdb.close()
        report.problems += params["problems"]
        report.problems += [f"{name} not counted: {why}" for name, why in
                            predicted_linux(res).get("varies_per_boot", {}).items()]
        report.boot_information = {k: v for k, v in params.items() if k != "problems"}
        report.boot_information["zero_page"] = page.hex()
    finally:
        close_workdir(work, keep, report)
    return report
