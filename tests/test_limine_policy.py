"""limine-mb1 / limine-mb2 against what the real Limine 11.4.1 handed the dump kernel
(tests/data/limine-*.dump, captured by tests/limine_oracle.py: see tests/data/README.md),
without QEMU: every field of each capture is compared with `bootforge load`'s prediction
for the same kernel, modules, names and platform; then rules no capture can show."""

import json
import struct
from pathlib import Path

import pytest

from conftest import BUILD, DATA, require
import fidelity as F

# fixture -> (firmware, kernel kind, memory, module set, link)
FIXTURES = {
    "limine-seabios-mb2-256M-mods3-1m.dump": ("bios", "mb2", "256M", 3, "1m"),
    "limine-seabios-mb2-256M-mods3-16m.dump": ("bios", "mb2", "256M", 3, "16m"),
    "limine-seabios-mb1-256M-mods3-1m.dump": ("bios", "mb1", "256M", 3, "1m"),
    "limine-seabios-mb2-128M-mods1-1m.dump": ("bios", "mb2", "128M", 1, "1m"),
    "limine-seabios-mb2-5G-mods1-1m.dump": ("bios", "mb2", "5G", 1, "1m"),
    "limine-seabios-mb1v-256M-mods3-1m.dump": ("bios", "mb1v", "256M", 3, "1m"),
    "limine-ovmf-mb2-256M-mods3-1m.dump": ("efi", "mb2", "256M", 3, "1m"),
    "limine-ovmf-mb2-256M-mods3-16m.dump": ("efi", "mb2", "256M", 3, "16m"),
    "limine-ovmf-mb2-128M-mods1-1m.dump": ("efi", "mb2", "128M", 1, "1m"),
    "limine-ovmf-mb2-5G-mods1-1m.dump": ("efi", "mb2", "5G", 1, "1m"),
    "limine-ovmf-mb1v-256M-mods3-1m.dump": ("efi", "mb1v", "256M", 3, "1m"),
}


def _needs_kernels():
    require("ld", str(BUILD / "stubs" / "mbdump.elf"), str(BUILD / "stubs" / "mbdump.o"))


def predict(fw, kind, memory, count, link, tmp_path, cmdline=F.KERNEL_CMDLINE, modules=None):
    from test_limine_fidelity import kernel_for
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest, ModuleSpec
    kernel = kernel_for(kind, link)
    mods = modules if modules is not None else [(p, f"boot():/boot/{p.name}", a)
                                                 for p, _s, a in F.write_modules(tmp_path / "mods", count)]
    plat = resolve(f"{'qemu-pc-seabios' if fw == 'bios' else 'qemu-q35-ovmf'}:{memory}")
    loader = "limine-mb1" if kind.startswith("mb1") else "limine-mb2"
    req = LoadRequest(read_kernel(kernel, read_input(kernel)), "boot():/boot/kernel", cmdline,
                      [ModuleSpec(str(p), n, a, Path(p).stat().st_size) for p, n, a in mods], plat, loader)
    return policy(loader)(req)


def captured(name):
    from bootforge.multiboot.dump import decode_dump
    doc = decode_dump((DATA / name).read_bytes())[0]
    return doc


@pytest.mark.parametrize("name", list(FIXTURES))
def test_capture_matches_prediction(name, tmp_path):
    """Module addresses and strings, mmap, mem_lower/upper, MBI address and size (tag 17 on UEFI),
    the tag list / MB1 flags: as the real Limine wrote them."""
    from bootforge.verify.compare import observed_fields, predicted_fields, predicted_tag_names, tag_names
    _needs_kernels()
    fw, kind, memory, count, link = FIXTURES[name]
    doc = captured(name)
    res = predict(fw, kind, memory, count, link, tmp_path)
    want, seen = predicted_fields(res), observed_fields(doc)
    for key, value in want.items():
        assert seen.get(key) == value, (key, value, seen.get(key))
    assert predicted_tag_names(res) == tag_names(doc)


def _mb2_tags(info):
    pos, out = 8, {}
    total = struct.unpack_from("<I", info)[0]
    while pos + 8 <= total:
        t, s = struct.unpack_from("<II", info, pos)
        out.setdefault(t, []).append(info[pos:pos + s])
        if t == 0:
            break
        pos += s + (-s % 8)
    return out


@pytest.mark.parametrize("name", ["limine-seabios-mb2-256M-mods3-1m.dump", "limine-seabios-mb2-256M-mods3-16m.dump",
                                  "limine-ovmf-mb2-256M-mods3-16m.dump"])
def test_elf_sections_where_limine_put_them(name, tmp_path):
    """Tag 9 carries the section headers with sh_addr of every sh_addr == 0 section set to
    where Limine copied it (a page each after the kernel; on OVMF at 16 MiB, after the
    boot-services data that ends at 21 MiB), and tags 1, 2, 4 and 8 are byte-exact."""
    _needs_kernels()
    fw, kind, memory, count, link = FIXTURES[name]
    from bootforge.multiboot.dump import parse_dump
    mbi = next(r for r in parse_dump((DATA / name).read_bytes())[2] if r.name == "mbi").data
    res = predict(fw, kind, memory, count, link, tmp_path)
    seen, want = _mb2_tags(mbi), _mb2_tags(res.mbi_bytes)
    assert seen[9] == want[9]
    addrs = [struct.unpack_from("<I", seen[9][0], 20 + i * 40 + 12)[0] for i in range(5, 8)]
    assert addrs == ([0x103000, 0x104000, 0x105000] if link == "1m" and fw == "bios" else
                     [0x1003000, 0x1004000, 0x1005000] if fw == "bios" else [0x1500000, 0x1501000, 0x1502000])
    for t in (1, 2, 4):
        assert seen[t] == want[t], t
    assert len(seen[8][0]) == len(want[8][0]) and seen[8][0][20:28] == want[8][0][20:28]   # mode and type


def test_mb1_regions_where_limine_put_them(tmp_path):
    """Multiboot1: the info at 0x10000 and everything it points to packed after it in
    16-byte steps (section headers, module list, module strings, command line, loader
    name, mmap), flags 0x26d (no framebuffer without the video flag on BIOS)."""
    _needs_kernels()
    name = "limine-seabios-mb1-256M-mods3-1m.dump"
    from bootforge.multiboot.dump import parse_dump
    regions = {r.name: r.address for r in parse_dump((DATA / name).read_bytes())[2] if r.name != "modcmd"}
    res = predict(*FIXTURES[name], tmp_path)
    for key in ("shdr", "mods", "cmdline", "loader", "mmap"):
        assert res.regions[key] == regions[key], key
    info = next(r for r in parse_dump((DATA / name).read_bytes())[2] if r.name == "mbi").data
    assert struct.unpack_from("<I", info)[0] == struct.unpack_from("<I", res.mbi_bytes)[0] == 0x26D


def test_mb1_mmap_length_is_entries_times_the_stride(tmp_path):
    """mmap_length counts each entry's size field too: 7 entries of size 20 are 168 bytes
    (the next entry starts size + 4 on), as the real Limine wrote it; the whole 116-byte
    multiboot_info is the prediction byte for byte."""
    _needs_kernels()
    name = "limine-seabios-mb1-256M-mods3-1m.dump"
    from bootforge.formats.multiboot import Multiboot1Info
    from bootforge.multiboot.dump import parse_dump
    regions = {r.name: r for r in parse_dump((DATA / name).read_bytes())[2]}
    info = Multiboot1Info.parse(regions["mbi"].data)
    assert (info.mmap_length, len(regions["mmap"].data)) == (168, 168)
    res = predict(*FIXTURES[name], tmp_path)
    assert Multiboot1Info.parse(res.mbi_bytes).mmap_length == 168
    assert res.mbi_bytes == regions["mbi"].data


def test_uefi_mmap_is_limines_conversion_of_tag17():
    """On OVMF tag 6 is Limine's view of the EFI map it exited with (tag 17): loader,
    boot-services and conventional memory -> 1, ACPI reclaim -> 3, NVS -> 4, the rest -> 2,
    only adjacent usable entries merged."""
    from bootforge.loader.policies.limine import handed_over_mmap
    from bootforge.loader.platforms import Platform
    from bootforge.memmap.model import MemoryMap, MemoryRange
    for name in [n for n in FIXTURES if "ovmf-mb2" in n]:
        tags = captured(name)["multiboot2"]["tags"]
        t17 = next(t for t in tags if t["type"] == 17)
        efi = MemoryMap("efi", [MemoryRange(d["physical_start"], d["number_of_pages"] * 4096, d["type"],
                                            d["attribute"]) for d in t17["descriptors"]])
        six = [(e["base_addr"], e["length"], e["type"]) for t in tags if t["type"] == 6 for e in t["entries"]]
        assert handed_over_mmap(Platform("tag17", "uefi", efi)) == six, name
        # Reserved neighbours stay apart (RT data, RT code, reserved at the top of low RAM).
        assert sum(1 for a, b in zip(six, six[1:]) if a[2] == b[2] == 2 and a[0] + a[1] == b[0]) >= 2


def test_mem_upper_stops_at_the_first_hole():
    """5G under SeaBIOS: mem_upper is [1 MiB, 0xbffe0000) only (0x2ffb80 KiB), not the
    2 GiB above 4 GiB: Limine 11.4.1 counts to the first hole (the reference's 'sum of
    usable memory above 1 MiB' is wrong)."""
    tags = captured("limine-seabios-mb2-5G-mods1-1m.dump")["multiboot2"]["tags"]
    meminfo = next(t for t in tags if t["type"] == 4)
    assert meminfo["mem_upper"] == 0x2FFB80
    from bootforge.loader.policies.limine import mem_lower_upper
    six = [(e["base_addr"], e["length"], e["type"]) for t in tags if t["type"] == 6 for e in t["entries"]]
    assert mem_lower_upper(six) == (meminfo["mem_lower"], meminfo["mem_upper"])


def test_too_many_map_entries_is_limines_panic(tmp_path):
    """multiboot2.c MEMMAP_MAX 256: a firmware map of 257 entries panics Limine."""
    _needs_kernels()
    entries = [{"start": i * 0x1000, "size": 0x800, "e820_type": 1 if i % 2 else 2} for i in range(200)]
    entries += [{"start": 0x100000 + i * 0x100000, "size": 0x80000, "e820_type": 1} for i in range(57)]
    mapfile = tmp_path / "map.json"
    mapfile.write_text(json.dumps({"entries": entries}))
    from bootforge.errors import LoaderRefusal
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest
    k = F.dump_kernel("1m", "mb2")
    req = LoadRequest(read_kernel(k, read_input(k)), "boot():/boot/kernel", "", [], resolve(str(mapfile)),
                      "limine-mb2")
    with pytest.raises(LoaderRefusal) as exc:
        policy("limine-mb2")(req)
    assert exc.value.words == "multiboot2: too many memory map entries"


@pytest.mark.parametrize("data,words", [
    (b"\0" * 15, "multiboot2: Kernel file too small to contain header"),
    (b"\0" * 64, "multiboot2: Invalid magic"),
])
def test_mb2_verdict_words_on_tiny_files(data, words):
    from bootforge.multiboot.verdicts import verdict
    v = verdict("limine-mb2", data)
    assert not v.ok and v.words == words


def test_mb1_uefi_without_video_flag_is_refused_and_with_it_loads(tmp_path):
    """multiboot1.c: no video flag on UEFI -> 'Cannot use text mode with UEFI.' (booted in
    tests/test_limine_refusals.py); with the flag the capture shows the framebuffer flag."""
    _needs_kernels()
    from bootforge.errors import LoaderRefusal
    with pytest.raises(LoaderRefusal) as exc:
        predict("efi", "mb1", "256M", 0, "1m", tmp_path)
    assert exc.value.words == "multiboot1: Cannot use text mode with UEFI."
    doc = captured("limine-ovmf-mb1v-256M-mods3-1m.dump")
    assert "framebuffer" in doc["multiboot1"]["flags_set"]


def test_ega_console_on_uefi_is_limines_panic(tmp_path):
    """A console flags header tag asking for a console (bit 0) in EGA text (bit 1): Limine on
    OVMF panics before loading anything (tests/data/limine-ovmf-ega-console-refusal.serial,
    its serial console); on SeaBIOS the kernel loads (EGA text is there)."""
    _needs_kernels()
    import re
    from bootforge.errors import LoaderRefusal
    from bootforge.fileio import read_input
    from bootforge.loader.image import read_kernel
    from bootforge.loader.platforms import resolve
    from bootforge.loader.policies import policy
    from bootforge.loader.result import LoadRequest
    from bootforge.multiboot.build import build_kernel_recipe
    kernel = tmp_path / "cf.elf"
    build_kernel_recipe(tmp_path / "r.toml", {"kernel": {"input": str(BUILD / "stubs" / "mbdump.elf"),
                        "protocol": "multiboot2", "multiboot2": {"information_request": [1, 2, 3, 6],
                        "console_flags": {"console_required": True, "ega_text_supported": True}}}}, kernel)
    k = read_kernel(kernel, read_input(kernel))
    serial = re.sub(r"\x1b\[[0-9;?=]*[A-Za-z]", "", (DATA / "limine-ovmf-ega-console-refusal.serial").read_text())
    words = re.search(r"PANIC\W*: ?(.*?)Stacktrace", serial).group(1).strip()
    with pytest.raises(LoaderRefusal) as exc:
        policy("limine-mb2")(LoadRequest(k, "boot():/boot/kernel", "", [], resolve("qemu-q35-ovmf:256M"),
                                         "limine-mb2"))
    assert exc.value.words == words == "multiboot2: OS requested EGA text mode, but UEFI does not support it"
    policy("limine-mb2")(LoadRequest(k, "boot():/boot/kernel", "", [], resolve("qemu-pc-seabios:256M"), "limine-mb2"))


def _plain_relocation(tag, length, ram):
    """multiboot2.c's relocation loop as written: one align step at a time."""
    lo, hi, align = tag["min_addr"], tag["max_addr"], tag["align"]
    if tag["preference"] == 2:
        if length > hi:
            return None
        base = (hi - length) // align * align
        while base >= lo:
            if ram.holds(base, length):
                return base
            if base - lo < align:
                return None
            base -= align
        return None
    base = -(-lo // align) * align
    while base + length <= hi:
        if ram.holds(base, length):
            return base
        base += align
    return None


def _plain_elsewhere(ranges, target, length, memory):
    """elsewhere.c's elsewhere_append as written: 4 KiB a try, 0x10000 tries."""
    if target is None:
        target = -(-max(t + n for t, n in ranges) // 0x1000) * 0x1000
    for _ in range(0x10000):
        if target + length > 1 << 32:
            return None
        hit = next(((t, n) for t, n in ranges if t < target + length and target < t + n), None)
        if hit:
            target = -(-(hit[0] + hit[1]) // 0x1000) * 0x1000
            continue
        if not memory.holds(target, length):
            target += 0x1000
            continue
        return target
    return None


def test_search_shortcuts_equal_limines_loops():
    """relocate() and Elsewhere.append() skip the steps that cannot succeed; they must land
    where Limine's one-step-at-a-time loops land (random maps, alignments, preferences)."""
    import random
    from bootforge.errors import LoaderRefusal
    from bootforge.loader.policies.limine import Elsewhere, Intervals, relocate
    rng = random.Random(11)
    for _ in range(300):
        pieces, at = [], rng.randrange(0, 0x40000)
        for _ in range(rng.randrange(1, 5)):
            a = at + rng.randrange(0, 0x30000)
            at = a + rng.randrange(1, 0x40000)
            pieces.append((a, at))
        ram = Intervals(pieces + [(0x800000, 0x900000)])    # room at last: Limine's loop ends within ~2000 tries
        tag = {"min_addr": rng.randrange(0, 0x80000), "max_addr": rng.randrange(0, 0x200000),
               "align": rng.choice([0x10, 0x100, 0x1000, 0x3000]), "preference": rng.choice([0, 1, 2])}
        length = rng.randrange(1, 0x30000)
        try:
            got = relocate(tag, 0, length, ram, "limine-mb2")
        except LoaderRefusal:
            got = None
        assert got == _plain_relocation(tag, length, ram), (tag, length, pieces)
        ranges = [(rng.randrange(0, 0x100000) // 0x1000 * 0x1000, rng.randrange(1, 0x20000)) for _ in range(3)]
        space = Elsewhere(ram, "limine-mb2")
        for t, n in ranges:
            space.add_fixed(t, n, "kernel")
        target = rng.choice([None, 0x10000])
        try:
            got = space.append(length, "module", target, "multiboot2: Cannot allocate module")
        except LoaderRefusal:
            got = None
        assert got == _plain_elsewhere(ranges, target, length, ram), (ranges, target, length, pieces)
