"""Real boots under OVMF (q35, TCG, fresh OVMF_VARS per boot, bootforge/qemu runner):
Debian's kernel, a UKI built by bootforge and one glued with objcopy, by QEMU -kernel
and from a FAT ESP (EFI/BOOT/BOOTX64.EFI, mtools), at several memory sizes. What the
kernel prints (E820 table, its Loader Code block, the Memory total, the initrd's
size and bounds) must equal `bootforge load`'s prediction. Seven OVMF boots of ~8-15 s
each: the other sizes and paths are fixture tests (tests/test_uki_load.py)."""

import json
import struct
import subprocess

import pytest

from conftest import require
from test_uki_build import CMDLINE, KERNEL, bootforge_uki, objcopy_uki
from test_uki_load import EFI_LOADER_CODE, INITRD_SIZE, PAGE, load_recipe, run_bootforge

from bootforge.uki.dmesg import parse_kernel_log

pytestmark = pytest.mark.qemu
PANIC = "Kernel panic - not syncing"


def esp_image(directory, efi):
    """A 64 MiB FAT image with *efi* as EFI/BOOT/BOOTX64.EFI (the removable-media path)."""
    require("mformat", "mmd", "mcopy")
    img = directory / "esp.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    for cmd in (["mformat", "-i", str(img), "-F", "::"], ["mmd", "-i", str(img), "::/EFI", "::/EFI/BOOT"],
                ["mcopy", "-i", str(img), str(efi), "::/EFI/BOOT/BOOTX64.EFI"]):
        subprocess.run(cmd, check=True, capture_output=True)
    return img


def boot(directory, memory_mib, args, until=PANIC, timeout=120, stop_at=None):
    """Boot; return (serial, QEMU's stderr, boot_params). With *stop_at*, QEMU's gdbstub stops the
    guest at that address (the decompressed kernel's entry, RSI = boot_params) and the 4 KiB
    boot_params and its setup_data chain [(type, len)] are read before the boot goes on."""
    from bootforge.qemu.gdbremote import GdbRemote
    from bootforge.qemu.runner import Machine, Medium, QemuRun
    params = None
    with QemuRun(Machine("ovmf", memory_mib), Medium(list(args), "uki test"), workdir=directory / "qemu",
                 gdb=stop_at is not None) as run:
        run.start()
        if stop_at is not None:
            gdb = GdbRemote(run.gdb_socket)
            gdb.hardware_breakpoint(stop_at)
            gdb.cont()
            assert gdb.wait_stop(timeout) is not None, run.serial()[-1000:]
            regs = gdb.registers()
            assert regs["rip"] == stop_at
            raw = gdb.read_memory(regs["rsi"], 4096)
            chain, node = [], struct.unpack_from("<Q", raw, 0x250)[0]
            while node and len(chain) < 16:
                nxt, typ, length = struct.unpack("<QII", gdb.read_memory(node, 16))
                chain.append((node, typ, length))
                node = nxt
            params = (raw, chain)
            gdb.remove_hardware_breakpoint(stop_at)
            gdb.cont()
        run.wait_until(lambda r: until in r.serial(), timeout)
        return run.serial(), run.qemu_stderr(), params


CASES = [
    # (what, boot path, memory MiB)
    ("kernel", "kernel", 192),
    ("kernel-initrd", "kernel", 3072),
    ("bootforge-uki", "kernel", 512),
    ("bootforge-uki", "esp", 2048),
    ("objcopy-uki", "kernel", 1024),
    ("objcopy-uki", "esp", 5120),
]


@pytest.mark.parametrize("what,path,memory", CASES)
def test_boot_equals_prediction(tmp_path, what, path, memory):
    require(KERNEL)
    initrd = None
    if what == "bootforge-uki":
        efi = bootforge_uki(tmp_path)
    elif what == "objcopy-uki":
        efi = objcopy_uki(tmp_path)
    else:
        efi = KERNEL
        if what == "kernel-initrd":
            from test_uki_build import make_initrd
            initrd = make_initrd(tmp_path / "initrd.img")
    if path == "esp":
        args = ["-drive", f"format=raw,file={esp_image(tmp_path, efi)}"]
    else:
        args = ["-kernel", str(efi)] + (["-initrd", str(initrd)] if initrd else [])
        if what.startswith("kernel"):
            args += ["-append", CMDLINE]
    # One boot also stops at the decompressed kernel's entry and reads boot_params (gdbstub).
    stop_at = 0x1600000 if what == "kernel-initrd" else None
    serial, err, params = boot(tmp_path, memory, args, stop_at=stop_at)
    assert PANIC in serial, (err, serial[-2000:])
    log = parse_kernel_log(serial)

    recipe = load_recipe(tmp_path, efi, f"{memory}M", initrd)
    out = tmp_path / "e820.txt"
    import json
    report = json.loads(run_bootforge("load", recipe, "--json", "--map-out", out, "--map-format", "e820-dmesg",
                                      check=0).stdout)
    assert out.read_text().splitlines() == [f"BIOS-e820: [mem {a:#018x}-{b:#018x}] {t}" for a, b, t in log.e820]
    kernel = next(p for p in report["placements"] if p["kind"] == "kernel")
    assert (EFI_LOADER_CODE, kernel["start"], kernel["end"]) in log.efi
    assert report["linux"]["memory_total_kib"] == log.memory_kib[1]
    assert report["mbi"]["cmdline"] == log.command_line
    if what == "kernel":
        assert log.ramdisk is None
    else:
        start, last = log.ramdisk
        assert report["linux"]["initrd_size"] == INITRD_SIZE
        assert last + 1 - start == -(-INITRD_SIZE // PAGE) * PAGE
        b = report["linux"]["initrd_bounds"]
        assert b["above"] <= start and last < b["below"]
    if params is not None:
        raw, chain = params
        # boot_params.e820_table in the firmware's order, as predicted (not the sorted order printed)
        n = raw[0x1E8]
        table = [struct.unpack_from("<QQI", raw, 0x2D0 + 20 * i) for i in range(n)]
        assert table == [(e["start"], e["size"], e["type"]) for e in report["mbi"]["mmap"]]
        assert struct.unpack_from("<I", raw, 0x21C)[0] == INITRD_SIZE            # hdr.ramdisk_size
        assert struct.unpack_from("<I", raw, 0x218)[0] == log.ramdisk[0]          # hdr.ramdisk_image
        assert [(t, length) for _, t, length in chain] == \
            [(3, node["len"]) for node in report["linux"]["setup_data"]]          # SETUP_PCI
        assert [(addr, 16 + length) for addr, _, length in chain] == log.setup_data_nodes()


def test_ovmf_refuses_what_inspect_says_it_refuses(tmp_path):
    """A UKI whose COFF machine says IA32: inspect's uefi verdict refuses (exit 1) and OVMF's
    boot manager does not start it from the ESP."""
    uki = bootforge_uki(tmp_path, initrd=False)
    data = bytearray(uki.read_bytes())
    pe = int.from_bytes(data[0x3C:0x40], "little")
    data[pe + 4:pe + 6] = (0x14C).to_bytes(2, "little")
    bad = tmp_path / "ia32.efi"
    bad.write_bytes(bytes(data))
    proc = run_bootforge("inspect", "--json", bad)
    assert proc.returncode == 1
    verdict = next(v for v in json.loads(proc.stdout)["verdicts"] if v["subject"] == "uefi")
    assert not verdict["ok"] and "machine 0x14c" in verdict["reason"]
    serial, _, _ = boot(tmp_path, 256, ["-drive", f"format=raw,file={esp_image(tmp_path, bad)}"],
                     until="EFI Internal Shell", timeout=90)
    assert "Linux version" not in serial
    refusal = next((line for line in serial.splitlines() if "BdsDxe: failed to start Boot0002" in line), "")
    assert refusal.rstrip().endswith(": " + verdict["words"]), serial[-1500:]


def test_qemu_refuses_initrd_for_a_uki(tmp_path):
    """inspect's qemu-kernel verdict says QEMU takes a UKI but no -initrd with it: QEMU's words."""
    uki = bootforge_uki(tmp_path, initrd=False)
    from test_uki_build import make_initrd
    serial, err, _ = boot(tmp_path, 256, ["-kernel", str(uki), "-initrd", str(make_initrd(tmp_path / "i.img"))],
                       until="never", timeout=30)
    assert "qemu: linux kernel too old to load a ram disk" in err


def test_ovmf_refuses_a_legacy_bzimage_as_inspect_says(tmp_path):
    """iPXE's ipxe.lkrn: a bzImage of protocol 2.07, not relocatable, no PE header. inspect:
    QEMU's linuxboot ROM would start it under SeaBIOS, OVMF's QEMU kernel boot option not."""
    lkrn = "/usr/lib/ipxe/ipxe.lkrn"
    require(lkrn)
    proc = run_bootforge("inspect", "--json", lkrn, check=0)
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "Linux bzImage (no EFI stub)" and doc["linux"]["protocol_version"] == "2.07"
    v = {v["subject"]: v for v in doc["verdicts"]}
    assert v["qemu-kernel"]["ok"] and v["grub-linux"]["ok"] and not v["qemu-kernel-ovmf"]["ok"]
    serial, _, _ = boot(tmp_path, 256, ["-kernel", lkrn], until="EFI Internal Shell", timeout=90)
    refusal = next((line for line in serial.splitlines() if "BdsDxe: failed to load Boot0002" in line), "")
    assert "VenMedia" in refusal and refusal.rstrip().endswith(": " + v["qemu-kernel-ovmf"]["words"]), serial[-1500:]
    assert "iPXE" not in serial
