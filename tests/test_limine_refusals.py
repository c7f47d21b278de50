"""Limine 11.4.1 refuses malformed kernels in its own words, and bootforge predicts those
words: each kernel below is the dump kernel with one thing wrong; the real Limine boots
it from the hybrid ISO (SeaBIOS; one case on OVMF) and panics on its serial console
("PANIC: <words>"); `bootforge load` with limine-mb1/limine-mb2 must refuse with the
same words (the verdicts in bootforge/multiboot/verdicts/limine.py or the policy's
machine-dependent refusals in bootforge/loader/policies/limine.py)."""

import re
import struct
from pathlib import Path

import pytest

from conftest import BUILD
import fidelity as F
from test_limine_fidelity import require_limine

MB2_MAGIC = 0xE85250D6
MB1_MAGIC = 0x1BADB002
BASE_MB2 = {"information_request": [1, 2, 3, 6], "module_alignment": True}


def _patch_mb2(data, arch=None, checksum_delta=0, length=None):
    """Change the MB2 header's architecture or header_length (checksum kept right), or break
    the checksum by *checksum_delta*."""
    data = bytearray(data)
    off = next(o for o in range(0, 32768, 8) if struct.unpack_from("<I", data, o)[0] == MB2_MAGIC)
    a, old_length, c = struct.unpack_from("<III", data, off + 4)
    length = old_length if length is None else length
    c = (c - (length - old_length)) & 0xFFFFFFFF
    if arch is not None:
        c = (c - (arch - a)) & 0xFFFFFFFF
        a = arch
    struct.pack_into("<III", data, off + 4, a, length, (c + checksum_delta) & 0xFFFFFFFF)
    return bytes(data)


def _retag(data, old, new):
    """Header tag *old* becomes a required tag *new* (tags are outside the header checksum)."""
    data = bytearray(data)
    off = next(o for o in range(0, 32768, 8) if struct.unpack_from("<I", data, o)[0] == MB2_MAGIC)
    pos, end = off + 16, off + struct.unpack_from("<I", data, off + 8)[0]
    while pos + 8 <= end:
        t, _f, size = struct.unpack_from("<HHI", data, pos)
        if t == old:
            struct.pack_into("<HH", data, pos, new, 0)
            return bytes(data)
        pos += size + (-size % 8)
    raise AssertionError(f"no header tag {old}")


def _patch_mb1_checksum(data):
    data = bytearray(data)
    off = next(o for o in range(0, 8192, 4) if struct.unpack_from("<I", data, o)[0] == MB1_MAGIC)
    c = struct.unpack_from("<I", data, off + 8)[0]
    struct.pack_into("<I", data, off + 8, (c + 1) & 0xFFFFFFFF)
    return bytes(data)


# name: (protocol, firmware, [kernel.multiboot2] options or None (mb1 / the stock kernel),
#        byte patch or None, the words Limine 11.4.1 prints)
CASES = {
    "mb1-kernel-as-multiboot2": ("multiboot2", "seabios", "mb1", None, "multiboot2: Invalid magic"),
    "mb2-bad-checksum": ("multiboot2", "seabios", BASE_MB2, lambda d: _patch_mb2(d, checksum_delta=1),
                         "multiboot2: Header checksum is invalid"),
    "mb2-header-length-past-eof": ("multiboot2", "seabios", BASE_MB2, lambda d: _patch_mb2(d, length=0x100000),
                                   "multiboot2: Header length exceeds kernel file size"),
    "mb2-mips-architecture": ("multiboot2", "seabios", BASE_MB2, lambda d: _patch_mb2(d, arch=4),
                              "multiboot2: Unsupported architecture 4 (expected i386)"),
    "mb2-relocatable-align-0": ("multiboot2", "seabios", {**BASE_MB2, "relocatable": {
        "min_addr": 0x200000, "max_addr": 0x10000000, "align": 0, "preference": "low"}}, None,
        "multiboot2: Relocatable tag has align=0"),
    "mb2-requires-bootdev": ("multiboot2", "seabios", {**BASE_MB2, "information_request": [1, 2, 5]}, None,
                             "multiboot2: Requested tag `5` which is not supported"),
    "mb2-requires-efi-mmap-on-bios": ("multiboot2", "seabios", {**BASE_MB2, "information_request": [1, 17]}, None,
                                      "multiboot2: Requested tag `17` which is not supported"),
    # A required ACPI-new request on SeaBIOS, whose only RSDP is v1 (firmware-dependent: OVMF has a v2).
    "mb2-requires-acpi-new-on-seabios": ("multiboot2", "seabios", {**BASE_MB2, "information_request": [1, 15]}, None,
                                         "multiboot2: XSDP requested but not found"),
    "mb2-custom-header-tag": ("multiboot2", "seabios", {**BASE_MB2, "extra_tags": [{"type": 11}]}, None,
                              "multiboot2: Unknown custom header tag type: 11"),
    "mb2-required-efi-bs": ("multiboot2", "seabios", {**BASE_MB2, "efi_boot_services": True}, None,
                            "multiboot2: EFI_BS tag is required but not supported"),
    # An address tag (header_addr 1 MiB, load_addr -1: "load the file from its start") and no
    # entry address tag: built as an optional custom tag 11, then retyped to 2.
    "mb2-address-tag-without-entry": ("multiboot2", "seabios", {**BASE_MB2, "extra_tags": [
        {"type": 11, "optional": True, "payload": struct.pack("<IIII", 0x100000, 0xFFFFFFFF, 0, 0).hex()}]},
        lambda d: _retag(d, 11, 2), "multiboot2: Using address tag but entry address tag missing"),
    "mb2-relocatable-no-room": ("multiboot2", "seabios", {**BASE_MB2, "relocatable": {
        "min_addr": 0x20000000, "max_addr": 0x20100000, "align": 0x1000, "preference": "low"}}, None,
        "multiboot2: Could not find viable load address for executable"),
    "mb1-bad-checksum": ("multiboot1", "seabios", "mb1", _patch_mb1_checksum, "multiboot1: Header checksum is invalid"),
    # The flat MB1 kernel's 32-byte header ends the file: Limine scans only offsets with a
    # whole 48-byte struct multiboot1_header after them (GRUB loads this kernel).
    "mb1-header-at-file-end": ("multiboot1", "seabios", "mb1flat", None, "multiboot1: Invalid magic"),
    "mb1-text-mode-on-uefi": ("multiboot1", "ovmf", "mb1", None, "multiboot1: Cannot use text mode with UEFI."),
}


def malformed_kernel(name, workdir):
    protocol, _fw, opts, patch, _words = CASES[name]
    if opts == "mb1":
        data = F.dump_kernel("1m", "mb1").read_bytes()
    elif opts == "mb1flat":
        from bootforge.multiboot.build import build_kernel_recipe
        out = Path(workdir) / f"{name}.bin"
        build_kernel_recipe(Path(workdir) / "recipe.toml", {"kernel": {
            "input": str(BUILD / "stubs" / "mbdump.elf"), "protocol": "multiboot1", "layout": "flat",
            "multiboot1": {"page_align_modules": True, "memory_info": True}}}, out)
        data = out.read_bytes()
    else:
        from bootforge.multiboot.build import build_kernel_recipe
        out = Path(workdir) / f"{name}.elf"
        build_kernel_recipe(Path(workdir) / "recipe.toml", {"kernel": {
            "input": str(BUILD / "stubs" / "mbdump.elf"), "protocol": "multiboot2", "multiboot2": opts,
            "testing": {"allow_refusal": True}}}, out)     # malformed on purpose (GRUB refuses some)
        data = out.read_bytes()
    if patch:
        data = patch(data)
    path = Path(workdir) / f"{name}.bin"
    path.write_bytes(data)
    return path


def predicted_refusal(kernel, protocol, firmware, module):
    """bootforge load's refusal words (LoaderRefusal.words), or None when it predicts a load."""
    from bootforge.errors import LoaderRefusal
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest, ModuleSpec
    from bootforge.errors import BootforgeError
    data = read_input(kernel)
    try:
        k = read_kernel(kernel, data)
    except BootforgeError:     # a header bootforge itself cannot decode: the verdict alone
        k = None
    loader = "limine-mb1" if protocol == "multiboot1" else "limine-mb2"
    if k is None:           # not an ELF bootforge load can place: the verdict alone
        from bootforge.multiboot.verdicts import verdict
        v = verdict(loader, data)
        return None if v.ok else v.words
    plat = resolve(f"{'qemu-pc-seabios' if firmware == 'seabios' else 'qemu-q35-ovmf'}:256M")
    req = LoadRequest(k, "/boot/kernel", F.KERNEL_CMDLINE,
                      [ModuleSpec(str(module), "/boot/mod1", "mod1-args", module.stat().st_size)], plat, loader)
    try:
        policy(loader)(req)
    except LoaderRefusal as exc:
        return exc.words
    return None


PANIC = re.compile(r"PANIC\W*: ?(.*?)(?:\r|\n|Stacktrace|$)")


@pytest.mark.parametrize("name", list(CASES))
def test_limine_refuses_in_its_words(name, tmp_path):
    protocol, firmware, _opts, _patch, words = CASES[name]
    require_limine(*((F.OVMF_CODE, F.OVMF_VARS) if firmware == "ovmf" else ()))
    from bootforge.qemu.media import BootFile, limine_iso
    from bootforge.qemu.runner import Machine, QemuRun
    kernel = malformed_kernel(name, tmp_path)
    mod = tmp_path / "mod1"
    mod.write_bytes(F.module_bytes("mod1", 3000))
    said = predicted_refusal(kernel, protocol, firmware, mod)
    assert said is not None, f"bootforge predicts that Limine loads {name}"
    assert said == words, (said, words)
    medium = limine_iso(tmp_path, BootFile(kernel, "/boot/kernel", F.KERNEL_CMDLINE),
                        [BootFile(mod, "/boot/mod1", "mod1-args")], protocol=protocol)
    with QemuRun(Machine(firmware, 256), medium, workdir=tmp_path) as run:
        run.start()
        run.wait_until(lambda r: "Press a key" in r.serial() or "BFMBDUMP" in r.debugcon().decode("latin-1"),
                       90 if firmware == "ovmf" else 30, poll=0.1)
        serial = run.serial()
    found = PANIC.search(serial)
    assert found, f"Limine did not panic; serial: {serial[-300:]!r}"
    # The UEFI console repaints the screen through the serial port: the words stand in order.
    assert words in found.group(1) or words in serial, (words, found.group(1))
