"""`bootforge verify` on the device-tree machines (qemu-virt-aarch64, -arm, -riscv64): the
boot the tests make with the dump kernels (tests/dtboot.py), made with the user's own kernel
and stopped at its entry through QEMU's gdbstub, then compared field by field with the
policy's prediction: the entry (pc), the boot registers (x0-x3, r0-r2, a0/a1, the machine
registry's boot_registers), the kernel's bytes at the entry, the initrd's place and bytes,
the DTB's address, totalsize, /chosen and /memory properties, and the whole DTB byte for
byte apart from the bytes the policy declares per boot (QEMU's rng-seed/kaslr-seed and the
stale padding libfdt leaves after them; the loader's own memory past an in-place tree), each
listed with its reason.

How each loader is booted (what the tests do, tests/test_arm_qemu.py, test_riscv_qemu.py,
test_uboot_qemu.py):
- qemu-arm-kernel, qemu-riscv-kernel: QEMU -kernel [-initrd] [-append] [-dtb] (OpenSBI
  fw_dynamic, QEMU's default -bios, on riscv64).
- uboot-booti/bootz/bootm: Debian's u-boot-qemu (-bios on ARM, -kernel after OpenSBI on
  riscv64), the kernel (FIT) and ramdisk preloaded with QEMU's loader device, autoboot
  stopped and the command typed at the prompt: `setenv bootargs '...'; booti ADDR RD:SIZE
  ${fdtcontroladdr}` (bootz, bootm ADDR likewise).
- linux-efi-stub-arm64: AAVMF (Debian's qemu-efi-aarch64 AAVMF_CODE.fd, a fresh AAVMF_VARS.fd)
  booting the disk image's EFI/BOOT/BOOTAA64.EFI from a virtio disk, or the kernel by QEMU
  -kernel/-initrd/-append; stopped at primary_entry. The initrd is read where the stub's
  LINUX_EFI_INITRD_MEDIA configuration table says (the EFI system table's tables at the entry).
"""

import hashlib
import os
import select
import subprocess
import time
from pathlib import Path

from bootforge.errors import BootforgeError, RecipeError, ToolError
from bootforge.fdtboot import kernels, verdicts
from bootforge.fdtboot.handover import masked
from bootforge.fdtboot.libfdt import Fdt
from bootforge.loader.policies import policy
from bootforge.loader.policies.uboot_booti import UBOOT_ARM64, UBOOT_RISCV64_SMODE
from bootforge.loader.policies.uboot_bootm import fit_kernel_loaded_bytes
from bootforge.loader.policies.uboot_bootz import UBOOT_ARM
from bootforge.qemu.gdbremote import GdbError, GdbRemote
from bootforge.verify.run import Row, VerifyReport, _table_lines, same_words
from bootforge.verify.workdir import close_workdir, open_workdir

# The loaders this module boots, and how (the words verify --help and load --help print).
LOADERS = {
    "qemu-arm-kernel": "QEMU -kernel",
    "qemu-riscv-kernel": "QEMU -kernel, OpenSBI fw_dynamic",
    "uboot-booti": "u-boot-qemu, booti at its prompt",
    "uboot-bootz": "u-boot-qemu qemu_arm, bootz at its prompt",
    "uboot-bootm": "u-boot-qemu qemu_arm64, bootm at its prompt",
    "linux-efi-stub-arm64": "AAVMF (qemu-efi-aarch64): the disk image's ESP, or QEMU -kernel",
}
# AAVMF as Debian's qemu-efi-aarch64 installs it: the 64 MiB code and variable-store flash images
# (a fresh copy of the store for each boot: BdsDxe writes its boot options there).
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")
# The register carrying the DTB (Documentation/arch/arm64/booting.rst x0, arm/booting.rst r2,
# riscv/boot.rst a1).
DTB_REGISTER = {"aarch64": "x0", "arm": "r2", "riscv64": "a1"}
# Where the FIT is preloaded for bootm (qemu_arm64's kernel_addr_r is the FIT's kernel's own
# load address in the recipes here; 0x44000000 is free RAM on every virt size >= 128M... up to
# the FIT's size) and the RISC-V booti load address (qemu-riscv's kernel_addr_r).
BOOTM_FIT_ADDRESS = 0x44000000
# Guest memory read through the gdbstub (2000 bytes a packet): a larger kernel or initrd is
# compared over its first and last COMPARE_EDGE bytes, the row says so.
COMPARE_ALL = 8 << 20
COMPARE_EDGE = 1 << 20
UBOOT_TIMEOUT = 90.0


def handles(loader):
    return loader in LOADERS


class FdtVerifyReport(VerifyReport):
    """verify's report with the device-tree machine's boot registers at the entry."""

    def render_text(self):
        out = [f"verify {self.recipe}: {self.loader} on {self.platform}",
               f"  booted {self.machine} from {self.medium}"]
        if self.entry is not None:
            out.append(f"  kernel entry {self.entry:#x} ({self.entry_how})")
        regs = ", ".join(f"{k} {v:#x}" for k, v in self.registers.items())
        out.append({"entry": f"  stopped at the entry after {self.seconds:.1f} s: {regs}",
                    "refused": f"  the loader refused after {self.seconds:.1f} s: {self.loader_words!r}",
                    "timeout": f"  the kernel's entry was not reached in {self.seconds:.0f} s; last on serial: "
                               f"{self.last_serial or '(nothing)'}",
                    "exited": f"  QEMU ended before the kernel's entry after {self.seconds:.1f} s; last on serial: "
                              f"{self.last_serial or '(nothing)'}"}[self.status])
        if self.rows:
            out += _table_lines(self.rows)
        counted = [r for r in self.rows if r.counted]
        if self.ok:
            out.append(f"  result: all {len(counted)} predicted fields match the real loader")
        else:
            why = [r.name for r in self.mismatches] or [{"timeout": "entry not reached",
                                                         "exited": "QEMU ended"}.get(self.status, self.status)]
            out.append(f"  result: MISMATCH ({len(self.mismatches)} of {len(counted)} fields): {', '.join(why)}")
        if self.kept:
            out.append(f"  kept: {self.kept}")
        return "\n".join(out) + "\n"


def _uboot_quote(cmdline):
    """The command line as one single-quoted word of U-Boot's hush shell (no escapes inside)."""
    if "'" in cmdline or "\n" in cmdline or "\r" in cmdline:
        raise RecipeError(f"a command line with a quote or newline cannot be typed at U-Boot's prompt: {cmdline!r}")
    return f"'{cmdline}'"


def boot_plan(req, res, work, image=None):
    """(QEMU argv without the gdb options, the U-Boot command to type or None, the medium's words).
    *image*: the disk image verify was given (AAVMF boots its ESP)."""
    board = req.platform.devicetree
    m = board.machine
    argv = m.qemu_args(board.memory_bytes) + ["-display", "none", "-nographic", "-monitor", "none",
                                              "-serial", "stdio", "-nic", "none"]
    if req.loader == "linux-efi-stub-arm64":
        for f in (AAVMF_CODE, AAVMF_VARS):
            if not f.exists():
                raise ToolError(f"{f}: No such file or directory (install qemu-efi-aarch64)")
        variables = work / "AAVMF_VARS.fd"
        variables.write_bytes(AAVMF_VARS.read_bytes())
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={AAVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={variables}"]
        if res.linux["boot_path"].startswith("qemu-kernel"):
            argv += ["-kernel", str(Path(req.kernel.path).resolve())]
            if req.modules:
                argv += ["-initrd", str(Path(req.modules[0].path).resolve())]
            if req.cmdline:
                argv += ["-append", req.cmdline]
            return argv, None, f"AAVMF, QEMU -kernel {Path(req.kernel.path).name}"
        argv += ["-drive", f"file={Path(image).resolve()},format=raw,if=virtio,snapshot=on"]
        return argv, None, f"AAVMF from {Path(image).name} (virtio disk, EFI/BOOT/BOOTAA64.EFI)"
    kernel = str(Path(req.kernel.path).resolve())
    if req.loader in ("qemu-arm-kernel", "qemu-riscv-kernel"):
        argv += ["-kernel", kernel]
        if req.modules:
            argv += ["-initrd", str(Path(req.modules[0].path).resolve())]
        if req.cmdline:
            argv += ["-append", req.cmdline]
        if board.user_dtb is not None:
            argv += ["-dtb", str(Path(board.user_dtb[0]).resolve())]
        return argv, None, f"QEMU -kernel {Path(kernel).name}" + (" (OpenSBI fw_dynamic)" if m.arch == "riscv64"
                                                                   else "")
    bios = {"aarch64": UBOOT_ARM64, "arm": UBOOT_ARM, "riscv64": UBOOT_RISCV64_SMODE}[m.arch]
    if not bios.exists():
        raise ToolError(f"{bios}: No such file or directory (install u-boot-qemu)")
    argv += ["-kernel" if m.arch == "riscv64" else "-bios", str(bios)]
    setenv = f"setenv bootargs {_uboot_quote(req.cmdline)}; " if req.cmdline else ""
    if req.loader == "uboot-bootm" and res.linux.get("kernel_format") != "uimage":
        at = BOOTM_FIT_ADDRESS
        argv += ["-device", f"loader,file={kernel},addr={at:#x},force-raw=on"]
        return argv, f"{setenv}bootm {at:#x}", f"U-Boot {bios.parent.name} bootm of {Path(kernel).name} at {at:#x}"
    # bootz: the zImage runs where it was loaded; bootm of a uImage: it is copied from here to ih_load.
    at = res.linux.get("loaded_at", BOOTM_FIT_ADDRESS if req.loader == "uboot-bootm" else res.linux["entry"])
    argv += ["-device", f"loader,file={kernel},addr={at:#x},force-raw=on"]
    ramdisk = "-"
    if req.modules and "ramdisk_loaded_at" in res.linux:
        # U-Boot leaves it where it was loaded (initrd_high = ~0): the policy's ramdisk_address.
        rd_at = res.linux["ramdisk_loaded_at"]
        argv += ["-device", f"loader,file={Path(req.modules[0].path).resolve()},addr={rd_at:#x},force-raw=on"]
        ramdisk = f"{rd_at:#x}:{req.modules[0].size:#x}"
    elif req.modules:
        # Anywhere clear of the Image before and after booti moves it: U-Boot copies the ramdisk
        # itself (boot_ramdisk_high), so the prediction does not depend on this address.
        kernel_at = next(p for p in res.placements if p.kind == "kernel")
        size = max(len(req.kernel.data), kernel_at.end - kernel_at.start)
        rd_at = -(-(max(at, res.linux["entry"]) + size) // (16 << 20)) * (16 << 20) + (16 << 20)
        argv += ["-device", f"loader,file={Path(req.modules[0].path).resolve()},addr={rd_at:#x},force-raw=on"]
        ramdisk = f"{rd_at:#x}:{req.modules[0].size:#x}"
    command = req.loader.removeprefix("uboot-")
    return (argv, f"{setenv}{command} {at:#x} {ramdisk} ${{fdtcontroladdr}}",
            f"U-Boot {bios.parent.name} {command} of {Path(kernel).name} at {at:#x}")


class Console:
    """QEMU's serial on a pipe, read without blocking."""

    def __init__(self, proc):
        self.proc, self.out = proc, b""
        os.set_blocking(proc.stdout.fileno(), False)

    def pump(self, wait=0.05):
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                self.out += chunk
                return bool(chunk)
            except BlockingIOError:
                pass
        return False

    def type(self, text):
        self.proc.stdin.write(text.encode() + b"\r")
        self.proc.stdin.flush()

    def text(self):
        return self.out.decode("latin-1")


def _last_line(text):
    lines = [line.strip() for line in text.replace("\x1b", "\n").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def run_to_entry(argv, command, entry, layout, timeout, progress, work):
    """Boot *argv* with the gdbstub, type *command* at U-Boot's prompt when given, stop at *entry*.
    (status, registers, gdb or None, console text, U-Boot's words after the command, seconds, qemu)."""
    sock = work / "gdb.sock"
    full = argv + ["-S", "-gdb", f"unix:{sock},server=on,wait=off"]
    (work / "qemu-command.txt").write_text(" ".join(full) + "\n")
    try:
        proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise ToolError(f"{argv[0]}: No such file or directory (install qemu-system-arm / qemu-system-misc)") \
            from None
    start = time.monotonic()
    console = Console(proc)
    try:
        gdb = GdbRemote(sock)
        gdb.hardware_breakpoint(entry)
        gdb.cont()
    except GdbError:
        console.pump(0.5)
        proc.kill()
        proc.wait()
        raise ToolError(f"QEMU did not start: {_last_line(console.text()) or ' '.join(full)}") from None
    state, mark, prompt_again = (0 if command else 3), 0, None
    status, words = "timeout", None
    early = 0
    while time.monotonic() - start < timeout:
        if gdb.wait_stop(0.05) is not None:
            if proc.poll() is None and state < 2:
                # Before the command: U-Boot itself ran there (qemu-riscv64_smode starts at
                # 0x80200000, where booti later moves the kernel). Step past it and go on.
                early += 1
                gdb.step_over(entry)
                gdb.cont()
                continue
            status = "entry" if proc.poll() is None else "exited"
            break
        console.pump(0.02)
        if proc.poll() is not None:
            status = "exited"
            break
        if state == 0 and b"Hit any key to stop autoboot" in console.out:
            console.type("")
            state = 1
        elif state == 1 and console.out.rstrip().endswith(b"=>"):
            if progress:
                progress(f"typing at U-Boot's prompt: {command}")
            console.type(command)
            state, mark = 2, len(console.out)
        elif state == 2 and console.out[mark:].rstrip().endswith(b"=>") and \
                console.out[mark:].count(b"=>") >= 1 and len(console.out[mark:].strip()) > len(command) + 2:
            # The prompt came back: U-Boot refused (its last words before the prompt).
            prompt_again = prompt_again or time.monotonic()
            if time.monotonic() - prompt_again > 0.5:
                said = console.out[mark:].decode("latin-1").splitlines()[1:]
                said = [line.strip() for line in said if line.strip() and line.strip() != "=>"]
                status, words = "refused", " | ".join(said)
                break
    while console.pump(0.2):
        pass
    registers = gdb.registers(layout) if status == "entry" else {}
    return status, registers, gdb, console.text(), words, time.monotonic() - start, proc, early


def expected_kernel_bytes(req, res):
    """The bytes the kernel's entry placement holds when the loader is done, or None (a FIT: the
    hash check U-Boot prints covers it)."""
    fmt = res.linux.get("kernel_format")
    if fmt == "fit" and req.loader == "uboot-bootm":      # a compressed FIT kernel, as bootm decompressed it
        return fit_kernel_loaded_bytes(req.kernel.data, res.linux["configuration"])
    if fmt in ("fit", "elf"):           # an ELF: its segments' rows instead
        return None
    if fmt == "efi-stub":
        # LoadImage's copy: the PE headers and .text at their RVAs (= file offsets in the Linux
        # arm64 PE, no relocations; .data is the stub's own and runs on after it), with the
        # optional header's ImageBase set to where the image is (EDK2 MdePkg BasePeCoffLib
        # PeCoffLoaderRelocateImage writes the new base into the loaded headers).
        at = res.linux["kernel_file_offset"]          # a UKI: its .linux
        data = bytearray(req.kernel.data[at:at + res.linux["kernel_text_end"]])
        at = res.linux["image_base_field"]
        data[at:at + 8] = res.linux["image_base"].to_bytes(8, "little")
        return bytes(data)
    if fmt == "uimage":         # its data at ih_load, decompressed by bootm (or QEMU) when compressed
        return kernels.bootm_loaded_bytes(req.kernel.data, verdicts.SYS_BOOTM_LEN)
    return verdicts.gunzipped(req.kernel.data)[0]


def _sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def _bytes_rows(gdb, name, at, want):
    """Rows comparing guest memory at *at* with *want* (all of it, or its two ends when large)."""
    if len(want) <= COMPARE_ALL:
        got = gdb.read_memory(at, len(want))
        return [Row(f"{name} bytes", f"{len(want):#x} bytes sha256 {_sha(want)}",
                    f"memory sha256 {_sha(got)}" if got is not None else "unreadable", got == want)]
    rows = []
    for label, off in (("first MiB", 0), ("last MiB", len(want) - COMPARE_EDGE)):
        got = gdb.read_memory(at + off, COMPARE_EDGE)
        part = want[off:off + COMPARE_EDGE]
        rows.append(Row(f"{name} bytes ({label})", f"sha256 {_sha(part)}",
                        f"memory sha256 {_sha(got)}" if got is not None else "unreadable", got == part))
    return rows


def _prop_value(fdt, path, name):
    node = fdt.path_offset(path)
    return None if node is None else fdt.getprop(node, name)


def _show(value):
    if value is None:
        return None
    if value.endswith(b"\0") and value[:-1] and all(32 <= c < 127 for c in value[:-1]):
        return value[:-1].decode()
    if len(value) in (4, 8):            # one or two cells: a number (linux,initrd-start, boot-hartid)
        return int.from_bytes(value, "big")
    return "0x" + value.hex()


def _reservations(blob):
    """The reservation map's (address, size) entries up to the terminating (0, 0)."""
    at, out = int.from_bytes(blob[16:20], "big"), []
    while at + 16 <= len(blob) and len(out) < 64:
        address, size = int.from_bytes(blob[at:at + 8], "big"), int.from_bytes(blob[at + 8:at + 16], "big")
        if address == size == 0:
            break
        out.append((address, size))
        at += 16
    return out


def dtb_rows(predicted, got, dt, dtb_register):
    """The handed-over DTB compared: totalsize, the /chosen and /memory properties, the bytes
    declared per boot (uncounted, each with its reason), then every other byte."""
    rows = [Row("dtb totalsize", len(predicted), int.from_bytes(got[4:8], "big") if got else None,
                bool(got) and int.from_bytes(got[4:8], "big") == len(predicted))]
    if not got:
        return rows + [Row("dtb bytes", f"{len(predicted)} bytes", f"unreadable at {dtb_register}", False)]
    random = dt.get("random", [])
    spans = [tuple(s) for s in dt.get("random_bytes", [])]
    loader_spans = [tuple(s) for s in dt.get("loader_chosen_bytes", [])]
    try:
        pf, gf = Fdt(predicted), Fdt(got)
        seen = [(r["path"], r["property"]) for r in random]
        for path in ("/chosen", "/memory"):
            node = pf.path_offset(path)
            if node is None:
                continue
            for name, _ in pf.properties(node):
                if (path, name) in seen:
                    continue
                p, o = _prop_value(pf, path, name), _prop_value(gf, path, name)
                rows.append(Row(f"dtb {path} {name}", _show(p), _show(o), p == o))
    except BootforgeError:
        pass
    for r in random:
        value = _prop_value(Fdt(got), r["path"], r["property"]) if r["part"] == "value" else None
        seen_size = len(value) if value is not None else None
        rows.append(Row(f"per boot: {r['path']} {r['property']}" + (" padding" if r["part"] == "padding" else ""),
                        f"{r['size']} bytes: {r['reason']}",
                        f"{seen_size} bytes {value[:8].hex()}..." if value is not None else "(its padding)",
                        r["part"] != "value" or seen_size == r["size"], counted=r["part"] == "value"))
    if loader_spans:
        rows.append(Row("per boot: the loader's own memory", ", ".join(f"{a:#x}+{n:#x}" for a, n in loader_spans),
                        "not compared", True, counted=False))
    rows.append(Row("dtb /memreserve/", _reservations(predicted), _reservations(got),
                    _reservations(predicted) == _reservations(got)))
    every = spans + loader_spans
    a, b = masked(predicted, every), masked(got, every)
    first = next((i for i in range(len(a)) if a[i] != b[i]), None)
    declared = sum(n for _, n in every)
    rows.append(Row("dtb bytes", f"{len(predicted)} bytes ({declared} declared per boot)",
                    "equal" if first is None else f"differ first at {first:#x} ({sum(x != y for x, y in zip(a, b))} "
                                                  f"bytes)", first is None))
    return rows


def compare(req, res, registers, gdb, machine):
    rows = [Row("kernel entry", res.linux["entry"], registers.get("pc"), registers.get("pc") == res.linux["entry"])]
    want_regs = res.linux.get("registers", {})
    for name in machine.boot_registers:
        if name in want_regs:
            rows.append(Row(name, want_regs[name], registers.get(name), want_regs[name] == registers.get(name)))
        else:
            rows.append(Row(name, None, registers.get(name), False, counted=False))
    want = expected_kernel_bytes(req, res)
    for i, (paddr, offset, filesz, _) in enumerate(res.linux.get("elf_segments", ())):
        rows += _bytes_rows(gdb, f"ELF segment {i}", paddr, req.kernel.data[offset:offset + filesz])
    if want is not None:
        rows += _bytes_rows(gdb, "kernel", res.linux.get("image_base", res.linux["entry"]), want)
    dtb_register = DTB_REGISTER[machine.arch]
    if res.linux.get("dtb_register", dtb_register) is None:
        # A bare program (an ELF under QEMU -kernel): no register names the DTB; it is looked for
        # at the RAM base, where QEMU puts it when there is room.
        base = req.platform.devicetree.ram_base
        head = gdb.read_memory(base, 8) or b""
        found = base if head[:4] == b"\xd0\x0d\xfe\xed" else None
        rows.append(Row("dtb at the RAM base", res.mbi_address, found, res.mbi_address == found))
        if res.mbi_bytes is None or found is None:
            return rows
        at, dtb_register = found, "the RAM base"
    else:
        at = registers.get(dtb_register)
        rows.append(Row("dtb address", res.mbi_address, at, res.mbi_address == at,
                        counted=res.mbi_address is not None))
    got = gdb.read_memory(at, len(res.mbi_bytes)) if at else None
    dt = res.linux.get("devicetree", {})
    rows += dtb_rows(res.mbi_bytes, got, dt, dtb_register)
    if res.modules and res.linux.get("kernel_format") == "efi-stub":
        rows += efi_initrd_rows(gdb, req, res)
    elif res.modules:
        m = res.modules[0]
        chosen = None
        if got:
            try:
                fdt = Fdt(got)
                node = fdt.path_offset("/chosen")
                chosen = node is not None and [fdt.getprop(node, p) for p in ("linux,initrd-start", "linux,initrd-end")]
            except BootforgeError:
                chosen = None
        seen = [int.from_bytes(v, "big") if v else None for v in chosen] if chosen else [None, None]
        rows.append(Row("initrd start", m["start"], seen[0], m["start"] == seen[0]))
        rows.append(Row("initrd end", m["end"], seen[1], m["end"] == seen[1]))
        if req.modules:
            rows += _bytes_rows(gdb, "initrd", m["start"], Path(req.modules[0].path).read_bytes())
    return rows


# include/linux/efi.h LINUX_EFI_INITRD_MEDIA_GUID 5568e427-68fc-4f3d-ac74-ca555231cc68, in EFI_GUID's
# byte order; the stub installs it as a configuration table of struct linux_efi_initrd {base, size}.
LINUX_EFI_INITRD_MEDIA_GUID = bytes.fromhex("27e46855fc683d4fac74ca555231cc68")
# UEFI 2.x 4.3 EFI_SYSTEM_TABLE (64-bit): NumberOfTableEntries at 104, ConfigurationTable at 112;
# EFI_CONFIGURATION_TABLE: a 16-byte GUID and a pointer.
SYSTAB_TABLE_COUNT, SYSTAB_TABLES, CONFIG_ENTRY = 104, 112, 24
MAX_CONFIG_TABLES = 64


def efi_config_table(gdb, system_table, guid):
    """The pointer of the configuration table *guid* in the EFI system table at *system_table*, read
    through the gdbstub (the MMU is off at the kernel's entry: addresses are physical)."""
    head = gdb.read_memory(system_table + SYSTAB_TABLE_COUNT, 16)
    if head is None:
        return None
    count, tables = int.from_bytes(head[:8], "little"), int.from_bytes(head[8:], "little")
    entries = gdb.read_memory(tables, CONFIG_ENTRY * min(count, MAX_CONFIG_TABLES)) or b""
    for at in range(0, len(entries), CONFIG_ENTRY):
        if entries[at:at + 16] == guid:
            return int.from_bytes(entries[at + 16:at + 24], "little")
    return None


def efi_initrd_rows(gdb, req, res):
    """The EFI stub's initrd: its LINUX_EFI_INITRD_MEDIA table (base, size) and the bytes there."""
    m = res.modules[0]
    table = efi_config_table(gdb, res.linux["system_table"], LINUX_EFI_INITRD_MEDIA_GUID)
    raw = gdb.read_memory(table, 16) if table else None
    base, size = (int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")) if raw else (None, None)
    rows = [Row("initrd start (LINUX_EFI_INITRD_MEDIA table)", m["start"], base, m["start"] == base),
            Row("initrd size (LINUX_EFI_INITRD_MEDIA table)", m["end"] - m["start"], size,
                m["end"] - m["start"] == size)]
    if req.modules:
        want = Path(req.modules[0].path).read_bytes()
    else:                               # a UKI's .initrd, which systemd-stub serves
        at, size = res.linux["initrd_file_range"]
        want = req.kernel.data[at:at + size]
    return rows + _bytes_rows(gdb, "initrd", m["start"], want)


def verify_fdt(recipe, req, keep=None, timeout=None, progress=None):
    """verify on a device-tree machine: a VerifyReport (bootforge.verify.run)."""
    board = req.platform.devicetree
    if board is None or board.machine is None:
        raise RecipeError(f"platform {req.platform.name!r} is a board DTB, not a machine QEMU can be; verify "
                          "runs on qemu-virt-aarch64:<mem>, qemu-virt-arm:<mem> or qemu-virt-riscv64:<mem>")
    machine = board.machine
    report = FdtVerifyReport(str(recipe), req.loader, req.platform.name, f"{machine.name} ({machine.binary}, "
                          f"{board.memory_bytes >> 20} MiB)")
    res = None
    try:
        res = policy(req.loader)(req)
    except BootforgeError as exc:
        words = getattr(exc, "words", None)
        if words is None:
            raise exc.located(path=recipe)
        report.predicted_refusal = words
    work = open_workdir(keep)
    proc = None
    try:
        argv, command, report.medium = boot_plan(req, res, work, recipe) if res is not None else \
            _refused_plan(req, work)
        entry = res.linux["entry"] if res is not None else 0
        report.entry, report.entry_how = (entry, "the policy's kernel entry") if res is not None else (None, "")
        if progress:
            progress(f"booting {report.machine}: {report.medium}" + (f"; stopping at {entry:#x}" if res else ""))
        status, registers, gdb, text, words, seconds, proc, report.early_stops = run_to_entry(
            argv, command, entry, machine.gdb_registers, timeout or (UBOOT_TIMEOUT if command else 60.0),
            progress, work)
        (work / "serial.txt").write_text(text)
        if status == "entry" and res is None and command and registers.get("pc") == 0:
            # A refusal that resets the board (bootm.c: "Must RESET board to recover", do_reset):
            # the CPU is back at the reset vector, where the refused plan's stand-in entry 0 is.
            said = text[text.rfind(command) + len(command):].splitlines()[1:]
            words = " | ".join([line.strip() for line in said if line.strip()] + ["(the board reset)"])
            status = "refused"
        report.boots, report.status, report.seconds = 1, status, seconds
        report.last_serial, report.loader_words = _last_line(text), words
        report.registers = {k: registers[k] for k in (*machine.boot_registers, "pc") if k in registers}
        if status == "entry" and res is not None:
            report.rows = compare(req, res, registers, gdb, machine)
        elif status == "entry":
            report.rows = [Row("loader", f"refuses: {report.predicted_refusal}", "started the kernel", False)]
        elif status == "refused":
            report.rows = [Row("loader", f"refuses: {report.predicted_refusal}" if res is None else "starts the kernel",
                               f"refuses: {words}", res is None and same_words(report.predicted_refusal, words))]
        gdb.close()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        close_workdir(work, keep, report)
    return report


def _refused_plan(req, work):
    """A refusal the policy predicts is booted all the same, to see the loader's words: U-Boot's
    command as the policy would have typed it."""
    if not req.loader.startswith("uboot-"):
        raise RecipeError(f"{req.loader} refuses this kernel before QEMU starts (bootforge load says why)")
    stand_in = type("Refused", (), {"linux": {"loaded_at": req.options.get("image_address", BOOTM_FIT_ADDRESS),
                                              "entry": 0},
                                "placements": [type("P", (), {"start": 0, "end": 0, "kind": "kernel"})()]})
    return boot_plan(req, stand_in, work)
