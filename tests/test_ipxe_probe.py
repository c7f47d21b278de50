"""iPXE's own memory at an NBP's entry, proven: the PXE probe (stubs/pxeprobe.S) booted by
Debian's iPXE ROMs under SeaBIOS, against the ipxe-pcbios-mb1 policy's model (ipxe_memory)
and SeaBIOS's POST model (PMM decompression area) field by field, for the outcomes "boot"
(the PXE stack running) and "pxenv-stop-undi" (the probe's second read)."""

import filecmp
import json

import pytest

from bootforge.post.load import post_request
from bootforge.verify.ipxe_probe import PROBE, SAN_MBR, compare, predict, probe_size, read_probe
from conftest import BUILD, DATA, require, run_bootforge
from seabios_post_oracle import IPXE

FIXTURES = DATA / "ipxe-probe"
BOOTS = [("e1000.toml", "256M", "boot"), ("e1000.toml", "3584M", "boot"), ("e1000.toml", "5G", "boot"),
         ("two-nics-novga.toml", "1G", "boot"), ("boot-failure.toml", "256M", "boot-failure"),
         ("san-boot.toml", "256M", "san-boot")]


def machine(recipe, mem):
    return post_request(str(FIXTURES / recipe), f"qemu-pc-seabios:{mem}", (), None)


@pytest.mark.parametrize("recipe, mem, outcome", BOOTS)
def test_probe_output_equals_the_prediction(recipe, mem, outcome):
    require(IPXE)
    rep = read_probe((FIXTURES / f"{recipe.removesuffix('.toml')}-{mem}.e9").read_text())
    rows = compare(predict(machine(recipe, mem), probe_size(), outcome), rep)
    assert [r for r in rows if not r[3]] == []
    # The fields that were compared: both views (one after a SAN boot), iPXE's image at both places.
    assert len(rep.views) == (1 if outcome == "san-boot" else 2) and len(rep.found) == 2 and rep.done


def test_a_wrong_prediction_is_a_mismatch():
    require(IPXE)
    rep = read_probe((FIXTURES / "e1000-256M.e9").read_text())
    pred = predict(machine("e1000.toml", "256M"), probe_size() + 4096)     # one more umalloc page
    bad = [r[0] for r in compare(pred, rep) if not r[3]]
    assert bad == ["E820 while iPXE runs"]


def test_shipped_probe_is_the_stub_build():
    require(str(BUILD / "stubs" / "pxeprobe.0"), str(BUILD / "stubs" / "sanmbr.bin"))
    assert filecmp.cmp(BUILD / "stubs" / "pxeprobe.0", str(PROBE), shallow=False)
    assert filecmp.cmp(BUILD / "stubs" / "sanmbr.bin", str(SAN_MBR), shallow=False)


def test_san_target_serves_ranges(tmp_path):
    # bootforge.verify.san_http as iPXE's httpblock.c talks to it: HEAD, then a Range GET.
    import io
    from bootforge.verify import san_http
    disk = tmp_path / "d.img"
    disk.write_bytes(bytes(range(256)) * 8)
    out = io.BytesIO()
    san_http.serve(disk, io.BytesIO(b"HEAD /disk.img HTTP/1.1\r\nHost: x\r\n\r\n"), out)
    assert b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n" in out.getvalue() and out.getvalue().endswith(b"\r\n\r\n")
    out = io.BytesIO()
    san_http.serve(disk, io.BytesIO(b"GET /disk.img HTTP/1.1\r\nRange: bytes=512-1023\r\n\r\n"), out)
    head, _, body = out.getvalue().partition(b"\r\n\r\n")
    assert b"206 Partial Content" in head and b"Content-Range: bytes 512-1023/2048" in head
    assert body == disk.read_bytes()[512:1024]


def test_boot_failure_gives_base_memory_back():
    # Had the failed e1000 iPXE kept its 14 KiB, the rtl8139's would start from 625, not 639.
    require(IPXE)
    pred = predict(machine("boot-failure.toml", "256M"), probe_size(), "boot-failure")
    assert (pred.booting_rom, pred.memory.fbms_before, pred.memory.fbms) == ("rtl8139", 639, 625)
    rep = read_probe((FIXTURES / "boot-failure-256M.e9").read_text())
    assert rep.views[0].int12 == 625


# Real boots (3584M and the two-NIC machine are compared through their fixtures above).
@pytest.mark.qemu
@pytest.mark.parametrize("recipe, mem", [("e1000.toml", "256M"), ("e1000.toml", "5G"), ("boot-failure.toml", "256M"),
                                         ("san-boot.toml", "256M")])
def test_verify_boots_the_probe(recipe, mem):
    require(IPXE, "qemu-system-x86_64")
    proc = run_bootforge("verify", FIXTURES / recipe, "--platform", f"qemu-pc-seabios:{mem}", "--json", "-q")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, [f for f in doc["fields"] if not f["ok"]]
    assert doc["ok"] and doc["probe_exit"] == 99
    views = ({"E820 after iPXE's SAN boot", "INT 12h after iPXE's SAN boot (KiB)"} if recipe == "san-boot.toml" else
             {"E820 while iPXE runs", "E820 after PXENV_STOP_UNDI", "INT 12h while iPXE runs (KiB)",
              "BDA 40:13 after PXENV_STOP_UNDI (KiB)"})
    assert {f["field"] for f in doc["fields"]} >= views
