"""iPXE's own memory at an NBP's entry, proven: the PXE probe (stubs/pxeprobe.S) booted by
Debian's iPXE ROMs under SeaBIOS, against the ipxe-pcbios-mb1 policy's model (ipxe_memory)
and SeaBIOS's POST model (PMM decompression area) field by field, for the outcomes "boot"
(the PXE stack running) and "pxenv-stop-undi" (the probe's second read)."""

import filecmp
import json

import pytest

from bootforge.post.load import post_request
from bootforge.verify.ipxe_probe import PROBE, compare, predict, probe_size, read_probe
from conftest import BUILD, DATA, require, run_bootforge
from seabios_post_oracle import IPXE

FIXTURES = DATA / "ipxe-probe"
BOOTS = [("e1000.toml", "256M"), ("e1000.toml", "3584M"), ("e1000.toml", "5G"), ("two-nics-novga.toml", "1G")]


def machine(recipe, mem):
    return post_request(str(FIXTURES / recipe), f"qemu-pc-seabios:{mem}", (), None)


@pytest.mark.parametrize("recipe, mem", BOOTS)
def test_probe_output_equals_the_prediction(recipe, mem):
    require(IPXE)
    rep = read_probe((FIXTURES / f"{recipe.removesuffix('.toml')}-{mem}.e9").read_text())
    rows = compare(predict(machine(recipe, mem), probe_size()), rep)
    assert [r for r in rows if not r[3]] == []
    # The fields that were compared: both views, and iPXE's image at both places.
    assert len(rep.views) == 2 and len(rep.found) == 2 and rep.done


def test_a_wrong_prediction_is_a_mismatch():
    require(IPXE)
    rep = read_probe((FIXTURES / "e1000-256M.e9").read_text())
    pred = predict(machine("e1000.toml", "256M"), probe_size() + 4096)     # one more umalloc page
    bad = [r[0] for r in compare(pred, rep) if not r[3]]
    assert bad == ["E820 while iPXE runs"]


def test_shipped_probe_is_the_stub_build():
    require(str(BUILD / "stubs" / "pxeprobe.0"))
    assert filecmp.cmp(BUILD / "stubs" / "pxeprobe.0", str(PROBE), shallow=False)


@pytest.mark.qemu
@pytest.mark.parametrize("mem", ["256M", "3584M", "5G"])
def test_verify_boots_the_probe(mem):
    require(IPXE, "qemu-system-x86_64")
    proc = run_bootforge("verify", FIXTURES / "e1000.toml", "--platform", f"qemu-pc-seabios:{mem}", "--json", "-q")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, [f for f in doc["fields"] if not f["ok"]]
    assert doc["ok"] and doc["probe_exit"] == 99
    assert {f["field"] for f in doc["fields"]} >= {"E820 while iPXE runs", "E820 after PXENV_STOP_UNDI",
                                                   "INT 12h while iPXE runs (KiB)", "BDA 40:13 after PXENV_STOP_UNDI (KiB)"}
