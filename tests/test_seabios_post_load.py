"""`bootforge load` of a machine with devices and no kernel ([[load.devices]], --device):
the POST report against SeaBIOS's own log, bad input, and two fresh QEMU boots."""

import json

import pytest

from bootforge.post.seabios_log import read_post_log
from conftest import DATA, assert_one_line_error, require, run_bootforge
from seabios_post_oracle import IPXE

FIXTURES = DATA / "seabios-post"


def load_json(*args, check=None):
    proc = run_bootforge("load", *args, "--json", check=check)
    return proc, json.loads(proc.stdout) if proc.stdout.strip() else None


def compare_with_log(doc, log):
    """What SeaBIOS printed, field by field, against load's JSON."""
    ran = [f"{r['segment']}:0003" for r in doc["option_roms"] if r["runs"] and r["device"] != "fw_cfg genroms/kvmvapic.bin"
           and r["address"] is not None]
    ran += doc["bcv_calls"]
    # The kvmvapic BCV and ROMs without $PnP run later; "Running option rom" lines of init come first.
    assert sorted(ran) == sorted(f"{seg}:{off}" for seg, off in log.runs)
    assert [(u["start"], u["end"]) for u in doc["umb_free"]] == list(log.umb)
    sequence = [(b["kind"], b["vector"]) for b in doc["boot_entries"]]
    assert sequence[:len(log.boot_sequence)] == log.boot_sequence
    assert [(e["start"], e["end"], e["type"]) for e in doc["e820_after_post"]] == log.e820
    said = [f"WARNING - Unable to allocate resource at {e[1]}:{e[2]}!" for e in log.events if e[0] == "noalloc"]
    assert [r["words"] for r in doc["option_roms"] if r["words"]] == said
    assert doc["bda_fbms_kib"] * 1024 == log.e820[0][1]


def test_recipe_with_devices_predicts_seabios_log():
    require(IPXE)
    proc, doc = load_json(FIXTURES / "vga-3nic-256M.toml")
    # The virtio ROM does not run (SeaBIOS boots on without it): exit 1, saying why.
    assert proc.returncode == 1 and "virtio-net-pci ROM" in proc.stderr and "1af4:1041" in proc.stderr
    compare_with_log(doc, read_post_log((FIXTURES / "vga-3nic-256M.log").read_text()))
    virtio = next(r for r in doc["option_roms"] if r["device"] == "virtio-net-pci")
    assert virtio["runs"] is False and virtio["words"] is None
    assert [p["pmm_function"] for p in doc["pmm"] if p["device"] == "rtl8139"] == [1, 1, 0, 1]


def test_roms_that_do_not_fit_exit_1_in_seabios_words():
    require(IPXE)
    proc, doc = load_json(FIXTURES / "vga-full-3584M.toml")
    assert proc.returncode == 1, proc.stderr
    compare_with_log(doc, read_post_log((FIXTURES / "vga-full-3584M.log").read_text()))
    assert "WARNING - Unable to allocate resource at copy_rom:235!" in proc.stderr


def test_device_options_without_a_recipe(tmp_path):
    require(IPXE)
    proc, doc = load_json("--platform", "qemu-pc-seabios:5120M", "--device", f"e1000={FIXTURES / 'hello.rom'}",
                          "--device", f"rtl8139={IPXE}/pxe-rtl8139.rom", "--device",
                          f"e1000={FIXTURES / 'hello.rom'}", check=0)
    log = read_post_log((FIXTURES / "vga-hello-bootindex-5G.log").read_text())
    # Same machine as the fixture but without bootindex: ROMs, UMB, E820 alike; the boot order default.
    assert [(u["start"], u["end"]) for u in doc["umb_free"]] == list(log.umb)
    assert [(e["start"], e["end"], e["type"]) for e in doc["e820_after_post"]] == log.e820
    assert [b["kind"] for b in doc["boot_entries"]][:4] == ["harddisk", "floppy", "cdrom", "bev"]
    svg = tmp_path / "post.svg"
    run_bootforge("load", "--platform", "qemu-pc-seabios:256M", "--device", f"e1000={IPXE}/pxe-e1000.rom",
                  "--svg", svg, check=0)
    text = svg.read_text()
    assert "option-ROM area" in text and "e1000 ROM 0xca000 (3.5 KiB)" in text


@pytest.mark.parametrize("args, fragments", [
    (("--device", "e1001"), ("e1001", "e1000")),
    (("--device", "e1000=README.md"), ("README.md", "not a PCI option ROM")),
    (("--device", "e1000=/nonexistent.rom"), ("/nonexistent.rom", "does not exist")),
])
def test_bad_devices_are_one_line(args, fragments):
    proc = run_bootforge("load", "--platform", "qemu-pc-seabios:256M", *args)
    assert_one_line_error(proc, *fragments)


def test_devices_need_a_seabios_platform():
    proc = run_bootforge("load", "--platform", "qemu-q35-ovmf:256M", "--device", "e1000")
    assert_one_line_error(proc, "qemu-pc-seabios")


# -- real boots: the recipe's machine under QEMU, compared with load's prediction.

@pytest.mark.qemu
@pytest.mark.parametrize("recipe", ["vga-3nic-256M.toml", "vga-full-3584M.toml"])
def test_seabios_boots_as_predicted(recipe):
    require(IPXE)
    from bootforge.post.load import post_request
    from qemu import run_qemu
    from seabios_post_oracle import post_done
    machine = post_request(str(FIXTURES / recipe), None, (), None)
    proc, doc = load_json(FIXTURES / recipe)
    run = run_qemu(machine.qemu_args(), until=post_done, timeout=60, memory=str(machine.memory_bytes >> 20))
    compare_with_log(doc, read_post_log(run.seabios_log))


def test_help_lists_the_device_keys():
    from bootforge.post.machine import DEVICE_FIELDS
    out = run_bootforge("load", "--help", check=0).stdout
    section = out[out.index("[[load.devices]] keys"):]
    assert all(f.name in section for f in DEVICE_FIELDS)
    assert all(m in section.replace("-\n", "-").replace("\n", " ").replace("  ", "") for m in ("e1000", "rtl8139"))
    assert "--device MODEL[=ROMFILE]" in out


def test_kernel_recipe_with_devices_places_ipxe_as_the_probe_saw_it(tmp_path):
    # The machine of tests/data/ipxe-probe/e1000.toml, whose probe boot proved where iPXE's
    # relocated image lies (tests/test_ipxe_probe.py), now loading a Multiboot kernel.
    require(IPXE)
    from bootforge.verify.ipxe_probe import predict, probe_size
    recipe = tmp_path / "k.toml"
    recipe.write_text(f'[load]\nkernel = "{DATA}/load-root/boot/kernel-mb1"\ncmdline = "x"\n'
                      'platform = "qemu-pc-seabios:256M"\nloader = "ipxe-pcbios-mb1"\n'
                      f'[[load.devices]]\ndevice = "e1000"\nromfile = "{IPXE}/pxe-e1000.rom"\n')
    proc, doc = load_json(recipe, check=0)
    text = next(p for p in doc["placements"] if p["name"] == "iPXE text/data (relocated)")
    probed = predict(post_request_machine(DATA / "ipxe-probe" / "e1000.toml"), probe_size())
    assert (text["start"], text["end"]) == probed.text
    assert doc["post"]["option_roms"][1]["segment"] == "ca00"


def post_request_machine(path):
    from bootforge.post.load import post_request
    return post_request(str(path), None, (), None)


@pytest.mark.qemu
def test_default_roms_are_qemus_own():
    # --device without ROMFILE: QEMU gives the pc machine's NICs its efi-*.rom (their first image is iPXE's
    # legacy ROM); the model reads the same files.
    require(IPXE)
    from bootforge.post.load import post_request
    from qemu import run_qemu
    from seabios_post_oracle import post_done
    machine = post_request(None, "qemu-pc-seabios:512M", ("e1000", "rtl8139"), None)
    proc, doc = load_json("--platform", "qemu-pc-seabios:512M", "--device", "e1000", "--device", "rtl8139", check=0)
    assert [r["file"].rsplit("/", 1)[-1] for r in doc["option_roms"][1:3]] == ["efi-e1000.rom", "efi-rtl8139.rom"]
    run = run_qemu(machine.qemu_args(), until=post_done, timeout=60, memory="512")
    compare_with_log(doc, read_post_log(run.seabios_log))
