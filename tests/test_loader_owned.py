"""What of the loader itself is still in memory when the kernel starts: GRUB i386-pc and
ISOLINUX/mboot.c32 booting the dump kernel under SeaBIOS, stopped at the kernel's entry
through QEMU's gdbstub, their own files' bytes looked for in guest memory.

- GRUB 2.06 i386-pc: kernel.img (its one PT_LOAD at p_paddr 0x9000) is where its ELF says:
  .rodata byte for byte, .text apart from startup.S's variables in its first 0x200 bytes
  (boot drive, GDT, mode-switch stacks: grub-core/kern/i386/realmode.S).
- Syslinux 6.04: ISOLINUX's uncompressed real-mode prefix at TEXT_START 0x7c00 (bytes 0x40 to
  0xd48 of isolinux.bin; bytes 8-63 are xorriso's boot info table), xfer_buf_seg 0x1000
  holding the start of the last file read (the module), the heap's arena chain from
  free_high_memory, the COM32 modules ldlinux.c32, libcom32.c32 and mboot.c32 each once, at
  the bases `bootforge load` predicts, and mboot.c32's 32-byte stack at ESP.
- Limine 11.4.1 (BIOS): its stage 3 limine-bios.sys is at 0xf000, and the Multiboot2 information
  it hands over (at 0x10000) lies inside it: apart from the 8 KiB from there, fewer than 64 bytes
  (its variables) differ from the file.
"""

import json
import struct
import subprocess
from pathlib import Path

import pytest

from bootforge.qemu import media
from bootforge.qemu.gdbremote import GdbRemote
from bootforge.qemu.runner import Machine, QemuRun
from conftest import BUILD, DATA, REPO, require, run_bootforge

pytestmark = pytest.mark.qemu
GRUB_KERNEL_IMG = "/usr/lib/grub/i386-pc/kernel.img"
ISOLINUX_BIN = "/usr/lib/ISOLINUX/isolinux.bin"
COM32 = "/usr/lib/syslinux/modules/bios"
MAGICS = (0x2BADB002, 0x36D76289)


def sections(path):
    """{name: (sh_addr, file offset, size)} of an ELF file's PROGBITS sections (readelf)."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 6 and parts[0].startswith("[") and parts[2] == "PROGBITS":
            found[parts[1]] = (int(parts[3], 16), int(parts[4], 16), int(parts[5], 16))
    return found


def boot_to_entry(tmp_path, kind, read):
    """Boot the dump kernel with one module under *kind* ('grub-mb2' or 'isolinux'), stop at
    its entry, return read(gdb) and the boot information registers."""
    mb = "mb2" if kind in ("grub-mb2", "limine-mb2") else "mb1"
    kernel_path = dump_kernel(mb)
    kernel = media.BootFile(kernel_path, "/kernel.elf", "kernel-args a=b")
    mods = [media.BootFile(DATA / "load-root/boot/mod1", "/mod1", "mod1-args")]
    medium = (media.grub_iso(tmp_path, "multiboot2", kernel, mods) if kind == "grub-mb2"
              else media.limine_iso(tmp_path, kernel, mods, protocol="multiboot2") if kind == "limine-mb2"
              else media.isolinux_iso(tmp_path, kernel, mods))
    with QemuRun(Machine("seabios", 256), medium, gdb=True) as run:
        run.start()
        gdb = GdbRemote(run.gdb_socket)
        try:
            gdb.hardware_breakpoint(0x100000)          # the dump kernel's entry
            while True:
                gdb.cont()
                reply = None
                while reply is None:
                    reply = gdb.wait_stop(0.5)
                    assert run.elapsed() < 60, run.serial()
                regs = gdb.registers()
                if regs["rax"] & 0xFFFFFFFF in MAGICS:
                    break
                gdb.step_over(regs["rip"])             # the loader's own code at 1 MiB first
            return read(gdb), regs
        finally:
            gdb.close()


def dump_kernel(mb):
    """The dump kernel with an *mb* ("mb1", "mb2") header, built by its recipe when no earlier
    test did (bootforge writes it atomically, so test workers may build it side by side)."""
    require(str(BUILD / "stubs" / "mbdump.elf"))
    kernel = BUILD / "kernels" / f"mbdump-{mb}.elf"
    if not kernel.exists():
        run_bootforge("build", REPO / f"recipes/kernel-mbdump-{mb}.toml", check=0)
    return kernel


def predicted_owned(loader, mb):
    """`bootforge load --json`'s loader_owned for the boot boot_to_entry makes: {what: range}."""
    kernel = dump_kernel(mb)
    proc = run_bootforge("load", kernel, "--platform", "qemu-pc-seabios:256", "--loader", loader,
                         "--module", f"{DATA / 'load-root/boot/mod1'}=mod1-args", "--cmdline", "kernel-args a=b",
                         "--json", check=0)
    doc = json.loads(proc.stdout)
    return doc, {o["what"].split(" (")[0]: o for o in doc["loader_owned"]}


def test_grub_kernel_img_is_still_at_its_link_address(tmp_path):
    require("grub-mkrescue", "xorriso", GRUB_KERNEL_IMG, str(BUILD / "stubs" / "mbdump.elf"))
    secs = sections(GRUB_KERNEL_IMG)
    image = Path(GRUB_KERNEL_IMG).read_bytes()
    lo = min(a for a, _, _ in secs.values())
    hi = max(a + n for a, _, n in secs.values())
    _, owned = predicted_owned("grub-pc-mb2", "mb2")
    img, heap = owned["GRUB kernel.img"], owned["GRUB heap in use"]
    assert not img["in_use_at_entry"] and not heap["in_use_at_entry"]
    load = [line.split() for line in subprocess.run(["readelf", "-lW", GRUB_KERNEL_IMG], capture_output=True,
                                                     text=True, check=True).stdout.splitlines() if "LOAD" in line][0]
    assert (img["start"], img["end"]) == (int(load[3], 16), int(load[3], 16) + int(load[5], 16))

    def read(gdb):
        low = gdb.read_memory(lo, hi - lo)
        high = b"".join(gdb.read_memory(a, min(0x10000, heap["end"] - a)) for a in range(heap["start"] - 0x10000,
                                                                                   heap["end"], 0x10000))
        return low, high
    (guest, high), regs = boot_to_entry(tmp_path, "grub-mb2", read)
    assert lo == img["start"]
    esp = owned["ESP GRUB sets for the kernel"]
    assert regs["rsp"] & 0xFFFFFFFF == esp["start"] == esp["end"] and esp["in_use_at_entry"]
    # The heap holds grub.cfg's text and the modules GRUB loaded (multiboot2.mod's .rodata),
    # all inside the predicted range, none in the 64 KiB below it.
    base = heap["start"] - 0x10000
    mod = "/usr/lib/grub/i386-pc/multiboot2.mod"
    a, off, n = sections(mod)[".rodata"]
    for needle in (b"multiboot2 /kernel.elf kernel-args a=b", Path(mod).read_bytes()[off:off + n]):
        at = list(_find_all(high, needle))
        assert at and min(at) >= 0x10000, (needle[:20], [hex(base + i) for i in at])
    a, off, n = secs[".rodata"]
    assert guest[a - lo:a - lo + n] == image[off:off + n]
    a, off, n = secs[".text"]
    differ = [i for i in range(n) if guest[a - lo + i] != image[off + i]]
    assert differ and max(differ) < 0x200, [hex(i) for i in differ]


def test_isolinux_and_its_com32_modules_at_the_kernel_entry(tmp_path):
    require("xorriso", ISOLINUX_BIN, f"{COM32}/mboot.c32", str(BUILD / "stubs" / "mbdump.elf"))

    def read(gdb):
        low = gdb.read_memory(0x7C00, 0x2000)
        high = b"".join(gdb.read_memory(a, 0x4000) for a in range(1 << 20, 8 << 20, 0x4000))
        return low, high
    doc, owned = predicted_owned("syslinux-mb1", "mb1")
    stack = owned["mboot.c32's stack: ESP at entry, 32 zero bytes"]

    def read(gdb):
        low = gdb.read_memory(0x7C00, 0x20000 - 0x7C00)
        high = b"".join(gdb.read_memory(a, 0x4000) for a in range(1 << 20, 8 << 20, 0x4000))
        return low, high, gdb.read_memory(stack["start"], 32)
    (low, high, top), regs = boot_to_entry(tmp_path, "isolinux", read)

    def at(addr, n):
        return low[addr - 0x7C00:addr - 0x7C00 + n] if addr < 0x20000 else high[addr - (1 << 20):addr - (1 << 20) + n]
    iso = Path(ISOLINUX_BIN).read_bytes()
    core = owned["ISOLINUX 16-bit core"]
    assert at(core["start"], core["end"] - core["start"]) == iso[core["start"] - 0x7C00:core["end"] - 0x7C00]
    xfer = owned["xfer_buf_seg 0x1000: core_xfer_buf, the disk bounce buffer"]
    mod1 = (DATA / "load-root/boot/mod1").read_bytes()[:0x800]
    assert at(xfer["start"], len(mod1)) == mod1 and xfer["end"] - xfer["start"] == 0x10000
    # mboot.c32's stack: ESP exactly, its 32 bytes zero, the only range still in use.
    assert regs["rsp"] & 0xFFFFFFFF == stack["start"] and top == bytes(32)
    assert [o["what"] for o in doc["loader_owned"] if o["in_use_at_entry"]] == [stack["what"]]
    # The heap: an arena chain (core/mem/malloc.h: tag, attrs, next, prev) from free_high_memory,
    # whose first block's prev is the core's list head (inside the 32-bit core), to the free
    # block where the predicted used part ends.
    heap = owned["core heap in use up to the COM32 modules"]
    pm = owned["ISOLINUX 32-bit core"]
    assert pm["end"] == heap["start"]
    tag, attrs, nxt, prev = struct.unpack("<4I", at(heap["start"], 16))
    assert pm["start"] <= prev < pm["end"] and struct.unpack("<I", at(prev + 8, 4))[0] == heap["start"]
    chain = list(arena_chain(at, heap["start"], prev))
    free_tail = chain[-1]
    assert free_tail[1] & 3 == 1 and free_tail[0] >= heap["end"], [hex(x) for x in free_tail]
    # One contiguous chain of arenas (each block's size reaches the next), free holes and all.
    assert all(a + (attrs & ~0xF) == b for (a, attrs), (b, _) in zip(chain, chain[1:]))
    kernel_end = 0x100000 + 0x3000             # the dump kernel's image at 1 MiB
    for name in ("ldlinux.c32", "libcom32.c32", "mboot.c32"):
        elf = Path(f"{COM32}/{name}").read_bytes()
        secs = sections(f"{COM32}/{name}")
        bases = set()
        for sec in (".text", ".rodata"):
            addr, off, size = secs[sec]
            want = elf[off:off + size]
            at = [i for i in _find_all(high, want)]
            assert len(at) == 1, (name, sec, at)
            bases.add((1 << 20) + at[0] - addr)
        assert len(bases) == 1, (name, bases)     # .text and .rodata of one load, as linked
        base = bases.pop()
        assert base % 0x1000 == 0 and base >= kernel_end, (name, hex(base))
        mod = owned[f"COM32 module {name}"]
        memsz = [int(line.split()[5], 16) for line in subprocess.run(
            ["readelf", "-lW", f"{COM32}/{name}"], capture_output=True, text=True, check=True).stdout.splitlines()
            if line.split()[:1] == ["LOAD"]]
        assert (mod["start"], mod["end"]) == (base, base + memsz[0]), (name, hex(base))
        assert heap["start"] <= mod["start"] < mod["end"] <= heap["end"]


def test_limine_stage3_holds_the_boot_information(tmp_path):
    import os
    stage3 = Path(os.environ["BOOTFORGE_LIMINE_DIR"]) / "limine-bios.sys"
    require("xorriso", str(stage3), str(BUILD / "stubs" / "mbdump.elf"))
    image = stage3.read_bytes()
    doc, owned = predicted_owned("limine-mb2", "mb2")
    s3 = owned["Limine stage 3 limine-bios.sys"]
    info = owned["boot information inside stage 3"]
    assert (s3["start"], s3["end"]) == (0xF000, 0xF000 + len(image)) and not s3["in_use_at_entry"]
    # The relocation stub (multiboot_reloc.asm_x86: jmp .code; mov esp, ebx; add esp, imm8) is
    # found in the release file by its opening bytes; the kernel starts on its mini stack.
    at = image.find(bytes.fromhex("eb02000089dc83c4"))
    assert at > 0 and image.count(bytes.fromhex("eb02000089dc83c4")) == 1
    stack_top = image[at + 8]

    def read(gdb):
        esp = gdb.registers()["rsp"] & 0xFFFFFFFF
        return gdb.read_memory(0xF000, len(image)), gdb.read_memory(esp - stack_top, 0x1000)
    (guest, stub_page), regs = boot_to_entry(tmp_path, "limine-mb2", read)
    stub = owned["Limine relocation stub page, its mini stack = the kernel's stack at entry"]
    assert (stub["relative_to"], stub["start"], stub["end"]) == ("rsp", -stack_top, 0x1000 - stack_top)
    assert stub["in_use_at_entry"]
    assert stub_page[:0x40] == image[at:at + 0x40]               # its code, before the 16-aligned mini stack
    assert stub_page[stack_top:] == bytes(0x1000 - stack_top)    # the rest of ext_mem_alloc's zeroed page
    mbi = regs["rbx"] & 0xFFFFFFFF
    total = struct.unpack("<I", guest[mbi - 0xF000:mbi - 0xF000 + 4])[0]
    assert (info["start"], info["end"]) == (mbi, mbi + total) and info["in_use_at_entry"]
    lo, hi = mbi - 0xF000, mbi - 0xF000 + 0x2000
    assert guest[lo:hi] != image[lo:hi]
    outside = [i for i in range(len(image)) if not lo <= i < hi and guest[i] != image[i]]
    assert len(outside) < 64, [hex(0xF000 + i) for i in outside[:20]]


def arena_chain(at, first, head):
    """(address, attrs) of each block of Syslinux's heap from *first* to the list *head*
    (core/mem/malloc.h struct arena_header: tag, attrs, next, prev)."""
    block = first
    for _ in range(1 << 16):
        if block == head:
            return
        tag, attrs, nxt, _prev = struct.unpack("<4I", at(block, 16))
        yield block, attrs
        block = nxt
    raise AssertionError("arena chain does not end")


def _find_all(data, needle):
    i = data.find(needle)
    while i >= 0:
        yield i
        i = data.find(needle, i + 1)


# --- The boots' findings kept as a fixture, and load's predictions against it without QEMU -------

FOUND = DATA / "loader-owned" / "found-256M.json"


def record_found(workdir):
    """What the three boots find at the kernel's entry (256M, the dump kernel and mod1), by
    search, not from any prediction: written to FOUND by
    `cd tests && ../.venv/bin/python -c 'import test_loader_owned as t; t.write_found()'`."""
    workdir = Path(workdir)
    found = {}

    def read_isolinux(gdb):
        low = gdb.read_memory(0, 0x20000)
        high = b"".join(gdb.read_memory(a, 0x4000) for a in range(1 << 20, 8 << 20, 0x4000))
        return low, high
    (low, high), regs = boot_to_entry(workdir / "isolinux", "isolinux", read_isolinux)

    def at(addr, n):
        return low[addr:addr + n] if addr < 0x20000 else high[addr - (1 << 20):addr - (1 << 20) + n]
    bases = {}
    for name in ("ldlinux.c32", "libcom32.c32", "mboot.c32"):
        addr, off, size = sections(f"{COM32}/{name}")[".text"]
        bases[name] = (1 << 20) + high.find(Path(f"{COM32}/{name}").read_bytes()[off:off + size]) - addr
    # The heap: elf_malloc() keeps malloc's pointer in the word below ldlinux.c32's base; its
    # arena header (16 bytes before) links back, block by block, to the first one, whose prev
    # is the list head inside the core.
    block = struct.unpack("<I", at(bases["ldlinux.c32"] - 4, 4))[0] - 16
    while True:
        prev = struct.unpack("<I", at(block + 12, 4))[0]
        if not block > prev >= 1 << 20 or struct.unpack("<I", at(prev + 8, 4))[0] != block:
            break
        first_attrs = struct.unpack("<I", at(prev + 4, 4))[0]
        if first_attrs & 3 == 2:                  # ARENA_TYPE_HEAD: the list head
            break
        block = prev
    chain = list(arena_chain(at, block, prev))
    mod1 = (DATA / "load-root/boot/mod1").read_bytes()
    found["syslinux"] = {"com32_bases": bases, "esp": regs["rsp"] & 0xFFFFFFFF, "heap_first_block": block,
                         "heap_list_head": prev, "heap_free_tail": chain[-1][0],
                         "xfer_buf_holds_mod1_at": low.find(mod1[:0x800], 0x10000)}
    mod = "/usr/lib/grub/i386-pc/multiboot2.mod"
    strings = sections(mod)[".rodata.str1.1"]

    def read_grub(gdb):
        top = 256 << 20
        return gdb.read_memory(0x9000, 0x10000), b"".join(gdb.read_memory(a, 0x10000)
                                                           for a in range(top - (16 << 20), top, 0x10000))
    (lowg, topg), regs = boot_to_entry(workdir / "grub", "grub-mb2", read_grub)
    a, off, n = sections(GRUB_KERNEL_IMG)[".rodata"]
    s_off, s_size = strings[1], strings[2]
    found["grub"] = {"kernel_img_rodata_at": 0x9000 + lowg.find(Path(GRUB_KERNEL_IMG).read_bytes()[off:off + n]),
                     "multiboot2_mod_strings_at": (256 << 20) - (16 << 20)
                     + topg.find(Path(mod).read_bytes()[s_off:s_off + s_size]),
                     "cfg_line_at": (256 << 20) - (16 << 20) + topg.find(b"multiboot2 /kernel.elf kernel-args a=b"),
                     "esp": regs["rsp"] & 0xFFFFFFFF}
    import os
    stage3 = Path(os.environ["BOOTFORGE_LIMINE_DIR"]) / "limine-bios.sys"
    image = stage3.read_bytes()
    guest, regs = boot_to_entry(workdir / "limine", "limine-mb2", lambda gdb: gdb.read_memory(0xF000, len(image)))
    mbi = regs["rbx"] & 0xFFFFFFFF
    found["limine"] = {"mbi": mbi, "mbi_total_size": struct.unpack("<I", guest[mbi - 0xF000:mbi - 0xF000 + 4])[0],
                       "stage3_runs_differing": _runs([0xF000 + i for i in range(len(image)) if guest[i] != image[i]])}
    return found


def _runs(addresses):
    """[[start, end), ...] of consecutive addresses."""
    out = []
    for a in addresses:
        if out and out[-1][1] == a:
            out[-1][1] = a + 1
        else:
            out.append([a, a + 1])
    return out


def write_found():
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        found = record_found(d)
    FOUND.parent.mkdir(exist_ok=True)
    FOUND.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


def _owned_offline(loader, mb):
    return predicted_owned(loader, mb)[1]


def test_syslinux_prediction_equals_the_recorded_boot():
    found = json.loads(FOUND.read_text())["syslinux"]
    owned = _owned_offline("syslinux-mb1", "mb1")
    for name, base in found["com32_bases"].items():
        assert owned[f"COM32 module {name}"]["start"] == base, name
    assert owned["mboot.c32's stack: ESP at entry, 32 zero bytes"]["start"] == found["esp"]
    heap = owned["core heap in use up to the COM32 modules"]
    assert heap["start"] == found["heap_first_block"] and heap["end"] <= found["heap_free_tail"]
    assert owned["ISOLINUX 32-bit core"]["start"] <= found["heap_list_head"] < heap["start"]
    assert owned["xfer_buf_seg 0x1000: core_xfer_buf, the disk bounce buffer"]["start"] == \
        found["xfer_buf_holds_mod1_at"]


def test_grub_and_limine_predictions_equal_the_recorded_boots():
    found = json.loads(FOUND.read_text())
    owned = _owned_offline("grub-pc-mb2", "mb2")
    img, heap = owned["GRUB kernel.img"], owned["GRUB heap in use"]
    assert img["start"] + sections(GRUB_KERNEL_IMG)[".rodata"][0] - 0x9000 == found["grub"]["kernel_img_rodata_at"]
    for key in ("multiboot2_mod_strings_at", "cfg_line_at"):
        assert heap["start"] <= found["grub"][key] < heap["end"], key
    assert owned["ESP GRUB sets for the kernel"]["start"] == found["grub"]["esp"]
    owned = _owned_offline("limine-mb2", "mb2")
    info = owned["boot information inside stage 3"]
    assert (info["start"], info["end"]) == (found["limine"]["mbi"], found["limine"]["mbi"]
                                            + found["limine"]["mbi_total_size"])
    equal = [e for e in owned["Limine stage 3 limine-bios.sys"]["evidence"] if e["kind"] == "file"][0]
    assert not [r for r in found["limine"]["stage3_runs_differing"]
                if r[0] < equal["address"] + equal["length"] and equal["address"] < r[1]]
