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


@pytest.fixture(scope="module", params=NAMES)
def boot(request):
    require(IPXE, "/usr/share/qemu/kvmvapic.bin", "/usr/share/seabios/vgabios-stdvga.bin")
    name = request.param
    log_text = (FIXTURES / f"{name}.log").read_text()
    screen = FIXTURES / f"{name}.screen"
    return (name, seabios.run_post(machine_of(name)), read_post_log(log_text),
            screen.read_text() if screen.exists() else None)


def test_roms_run_where_seabios_ran_them(boot):
    name, post, log, _ = boot
    predicted = [f"{r.segment:04x}:0003" for r in post.option_roms if r.init_run] + post.bcv_calls
    assert predicted == [f"{seg}:{off}" for seg, off in log.runs]


def test_roms_that_do_not_fit_in_seabios_words(boot):
    name, post, log, _ = boot
    said = [f"WARNING - Unable to allocate resource at {func}:{line}!" for kind, func, line, *rest in
            (e + (None,) for e in log.events) if kind == "noalloc"]
    assert [r.words for r in post.option_roms if r.words and r.words.startswith("WARNING")] == said
    assert all(not r.runs and r.address is None for r in post.option_roms if r.words in said)


def test_umb_space_left(boot):
    name, post, log, _ = boot
    assert [tuple(u) for u in post.umb_free] == list(log.umb)


def test_boot_sequence_up_to_the_first_bev(boot):
    name, post, log, _ = boot
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


def test_e820_after_post(boot):
    name, post, log, _ = boot
    assert [(r.start, r.start + r.size, int(r.type)) for r in post.e820_after_post.ranges] == log.e820


def test_ebda_stays_and_bda_says_639(boot):
    name, post, log, _ = boot
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
