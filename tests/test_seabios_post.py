"""bootforge's model of SeaBIOS 1.16's POST (bootforge/post/seabios.py) against what SeaBIOS
1.16.2 printed in six real boots with 1-4 NIC ROMs (tests/data/seabios-post/, README.md there
has the commands): where each ROM ran, what did not fit in SeaBIOS's words, the UMB space,
the boot sequence, the PMM calls and iPXE's PMM blocks, the E820 map after POST."""

import pytest

from bootforge.errors import RecipeError
from bootforge.post import seabios
from bootforge.post.seabios_log import ipxe_banners, read_post_log
from conftest import require
from seabios_post_oracle import BOOTS, FIXTURES, IPXE

NAMES = sorted(BOOTS)


def machine_of(name):
    mem, vga, devices = BOOTS[name]
    return seabios.PostMachine(mem << 20, [seabios.Device(seabios.QEMU_PCI_MODELS[d], rom, index)
                                           for d, rom, index in devices], seabios.STD_VGA if vga else None)


# Boots whose log reaches the E820 map (vga-hello-bcv-256M ends in its BCV, before malloc_prepboot).
FULL = [n for n in NAMES if "e820 map has" in (FIXTURES / f"{n}.log").read_text()]


def _boot(name):
    require(IPXE, "/usr/share/qemu/kvmvapic.bin", "/usr/share/seabios/vgabios-stdvga.bin")
    log_text = (FIXTURES / f"{name}.log").read_text()
    screen = FIXTURES / f"{name}.screen"
    return (name, seabios.run_post(machine_of(name)), read_post_log(log_text),
            screen.read_text() if screen.exists() else None)


@pytest.fixture(scope="module", params=NAMES)
def boot(request):
    return _boot(request.param)


@pytest.fixture(scope="module", params=FULL)
def full_boot(request):
    return _boot(request.param)


def test_roms_run_where_seabios_ran_them(boot):
    name, post, log, _ = boot
    predicted = [f"{r.segment:04x}:0003" for r in post.option_roms if r.init_run] + post.bcv_calls
    seen = [f"{seg}:{off}" for seg, off in log.runs]
    # A boot whose BCV ended QEMU (vga-hello-bcv-256M) shows the calls up to that one.
    assert (predicted if name in FULL else predicted[:len(seen)]) == seen


def test_roms_that_do_not_fit_in_seabios_words(boot):
    name, post, log, _ = boot
    said = [f"WARNING - Unable to allocate resource at {func}:{line}!" for kind, func, line, *rest in
            (e + (None,) for e in log.events) if kind == "noalloc"]
    assert [r.words for r in post.option_roms if r.words and r.words.startswith("WARNING")] == said
    assert all(not r.runs and r.address is None for r in post.option_roms if r.words in said)


def test_umb_space_left(full_boot):
    name, post, log, _ = full_boot
    assert [tuple(u) for u in post.umb_free] == list(log.umb)


def test_boot_sequence_up_to_the_first_bev(full_boot):
    name, post, log, _ = full_boot
    # Each capture stops at the first ROM BEV SeaBIOS jumps to: what it tried is a prefix of the model's.
    predicted = [(b.kind, b.vector) for b in post.boot_entries]
    assert log.boot_sequence and log.boot_sequence[-1][0] == "bev"
    assert predicted[:len(log.boot_sequence)] == log.boot_sequence


def test_bootorder_searches_in_seabios_order(boot):
    name, post, log, _ = boot
    assert post.searched == log.searched
    assert seabios.qemu_bootorder(post.machine) == log.bootorder


def test_pmm_calls_of_each_rom(boot):
    name, post, log, _ = boot
    by_rom = {}
    for call in post.pmm:
        rom = next(r for r in post.option_roms if r.device == call.device and r.address is not None)
        by_rom.setdefault(f"{rom.segment:04x}:0003", []).append(call.number)
    assert by_rom == {seg: calls for seg, calls in log.pmm_calls_per_rom().items() if calls}
    vga = [c for c in post.pmm if c.device == "VGA"]
    assert [c.result for c in vga] == ([log.vga_stack] if log.vga_stack is not None else [])


@pytest.mark.parametrize("name", [n for n in NAMES if (FIXTURES / f"{n}.screen").exists()])
def test_pmm_blocks_where_ipxe_says(name):
    # Boots with a VGA: iPXE's init banner is on the text screen.
    require(IPXE, "/usr/share/qemu/kvmvapic.bin", "/usr/share/seabios/vgabios-stdvga.bin")
    post, screen = seabios.run_post(machine_of(name)), (FIXTURES / f"{name}.screen").read_text()
    banners = ipxe_banners(screen)
    ipxe_roms = sorted({f"{r.segment:04X}" for r in post.option_roms for c in post.pmm
                        if c.device == r.device != "VGA" and r.address is not None})
    # The screen scrolls: the banners left are those of the last iPXE ROMs run.
    assert [segment for _, segment, _ in banners] == ipxe_roms[len(ipxe_roms) - len(banners):]
    assert bool(banners) == bool(ipxe_roms)
    for pci, segment, blocks in banners:
        rom = next(r for r in post.option_roms if r.address is not None and f"{r.segment:04X}" == segment)
        calls = [c for c in post.pmm if c.device == rom.device and c.result]
        # Per block the call that gave the address iPXE printed: '+' an allocation, ' ' a find.
        source = next(c for c in calls if c.purpose == "image source" and c.outcome != "found another build id: "
                      "next handle")
        decompress = next(c for c in calls if c.purpose == "decompression area")
        assert [(source.function == "allocate", source.result),
                (decompress.function == "allocate", decompress.result)] == blocks


def test_e820_after_post(full_boot):
    name, post, log, _ = full_boot
    assert [(r.start, r.start + r.size, int(r.type)) for r in post.e820_after_post.ranges] == log.e820


def test_ebda_stays_and_bda_says_639(full_boot):
    name, post, log, _ = full_boot
    assert log.ebda_moves == [] and post.ebda["moves"] == []
    assert post.bda_fbms_kib * 1024 == log.e820[0][1] == post.ebda["start"]


def test_what_the_boots_show():
    require(IPXE)
    post = seabios.run_post(machine_of("vga-3nic-256M"))
    virtio = next(r for r in post.option_roms if r.device == "virtio-net-pci")
    assert not virtio.runs and "1af4:1041" in virtio.reason and virtio.words is None
    e1000 = next(r for r in post.option_roms if r.device == "e1000")
    assert (e1000.address, e1000.size, e1000.size_after_init) == (0xCA000, 147 * 512, 7 * 512)
    post = seabios.run_post(machine_of("novga-4nic-1G"))
    ne2k = next(r for r in post.option_roms if r.device == "ne2k_pci")
    assert not ne2k.runs and "0000:0000" in ne2k.reason


def test_a_romfile_that_is_not_a_rom(tmp_path):
    bad = tmp_path / "not.rom"
    bad.write_bytes(b"MZ" + bytes(1000))
    machine = seabios.PostMachine(256 << 20, [seabios.Device(seabios.QEMU_PCI_MODELS["e1000"], str(bad))], None)
    with pytest.raises(RecipeError, match=r"not\.rom: offset 0x0: not a PCI option ROM"):
        seabios.run_post(machine)


def test_a_bad_checksum_in_seabios_words(tmp_path):
    # tests/data/seabios-hello-rom-bad-checksum.log (tests/test_rom_qemu.py's run): the hello ROM
    # with byte 0x1F0 flipped on an e1000 at 00:03, -m 64, VGA: not run, its space reused by kvmvapic.
    require("/usr/share/qemu/kvmvapic.bin", "/usr/share/seabios/vgabios-stdvga.bin")
    data = bytearray((FIXTURES / "hello.rom").read_bytes())
    data[0x1F0] ^= 0x01
    bad = tmp_path / "bad.rom"
    bad.write_bytes(data)
    post = seabios.run_post(seabios.PostMachine(64 << 20, [seabios.Device(seabios.QEMU_PCI_MODELS["e1000"], str(bad))],
                                                seabios.STD_VGA))
    log_text = (FIXTURES.parent / "seabios-hello-rom-bad-checksum.log").read_text()
    log = read_post_log(log_text)
    e1000 = next(r for r in post.option_roms if r.device == "e1000")
    assert not e1000.runs and e1000.words in log_text.splitlines()
    assert [f"{r.segment:04x}:0003" for r in post.option_roms if r.init_run] + post.bcv_calls == \
        [f"{s}:{o}" for s, o in log.runs]
    assert [tuple(u) for u in post.umb_free] == list(log.umb) and post.searched == log.searched


def _older_rom(kind, tmp_path):
    """The ROMs of tests/test_rom_qemu.py's kept logs, made again as that test makes them."""
    from conftest import REPO, run_bootforge
    out = tmp_path / f"{kind}.rom"
    if kind == "hello":
        return FIXTURES / "hello.rom"
    if kind == "combined":
        run_bootforge("build", REPO / "recipes/e1000-combined.toml", "-o", out, check=0)
    elif kind == "82545em":
        run_bootforge("patch", f"{IPXE}/pxe-e1000.rom", "-o", out, "--device-id", "0x100f", check=0)
    elif kind == "wrong-device":
        run_bootforge("patch", FIXTURES / "hello.rom", "-o", out, "--vendor-id", "0x10ec", "--device-id", "0x8139",
                      check=0)
    return out


@pytest.mark.parametrize("log_name, device, kind", [
    ("seabios-hello-rom.log", "e1000", "hello"),
    ("seabios-e1000-combined.log", "e1000", "combined"),
    ("seabios-ipxe-patched-82545em.log", "e1000-82545em", "82545em"),
    ("seabios-patched-wrong-device.log", "e1000", "wrong-device"),
])
def test_older_logs_as_far_as_they_go(log_name, device, kind, tmp_path):
    # Each of those runs stopped when its test had seen enough: compare what the log has.
    require(IPXE, "/usr/share/qemu/kvmvapic.bin", "/usr/share/seabios/vgabios-stdvga.bin")
    machine = seabios.PostMachine(64 << 20, [seabios.Device(seabios.QEMU_PCI_MODELS[device],
                                                           str(_older_rom(kind, tmp_path)))], seabios.STD_VGA)
    post = seabios.run_post(machine)
    log = read_post_log((FIXTURES.parent / log_name).read_text())
    runs = [f"{r.segment:04x}:0003" for r in post.option_roms if r.init_run] + post.bcv_calls
    assert log.runs and runs[:len(log.runs)] == [f"{s}:{o}" for s, o in log.runs]
    assert post.searched[:len(log.searched)] == log.searched
    if log.umb:
        assert [tuple(u) for u in post.umb_free] == list(log.umb)
    if log.e820:
        assert [(r.start, r.start + r.size, int(r.type)) for r in post.e820_after_post.ranges] == log.e820
    calls = log.pmm_calls_per_rom()
    for rom in post.option_roms:
        if rom.address is not None and f"{rom.segment:04x}:0003" in calls:
            assert [c.number for c in post.pmm if c.device == rom.device] == calls[f"{rom.segment:04x}:0003"]
