"""Measured boot of a bootforge UKI: `inspect --pcrs` predicts PCR 11 (systemd-stub 252's
sections) and PCR 4 (OVMF's boot-application measurements), checked against a real boot:
swtpm (TPM 2.0) + OVMF's Tcg2Dxe + Debian's kernel, whose initrd (busybox-static) prints
/sys/class/tpm/tpm0/pcr-sha256/{4,7,11} and the firmware's event log to the serial console.

tests/data/uki-tpm-pcrs.txt keeps what one such boot printed (command in its header), so the
prediction is checked without QEMU when the inputs are the same Debian files."""

import hashlib
import json
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error, require, run_bootforge, unavailable
from test_uki_build import KERNEL, write_recipe
from test_uki_qemu import esp_image

BUSYBOX = "/bin/busybox"                      # busybox-static
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
FIXTURE = REPO / "tests" / "data" / "uki-tpm-pcrs.txt"
# The same UKI signed with Debian's snakeoil key, booted with Secure Boot on.
SECUREBOOT_FIXTURE = REPO / "tests" / "data" / "uki-tpm-pcrs-secureboot.txt"
SNAKEOIL_CODE = "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"
SNAKEOIL_VARS = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key"
SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
# (OVMF code, VARS template, whether the UKI is signed for it) of each recorded boot.
BOOTS = {"plain": (OVMF_CODE, OVMF_VARS, False, FIXTURE),
         "secureboot": (SNAKEOIL_CODE, SNAKEOIL_VARS, True, SECUREBOOT_FIXTURE)}
CMDLINE = "console=ttyS0 panic=-1 quiet"
INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /sys /sec
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t securityfs securityfs /sec
for n in 4 7 11; do echo "BOOTFORGE-PCR sha256 $n $(/bin/busybox cat /sys/class/tpm/tpm0/pcr-sha256/$n)"; done
echo "BOOTFORGE-EVENTLOG-BEGIN"
/bin/busybox od -An -tx1 -v /sec/tpm0/binary_bios_measurements | /bin/busybox tr -d ' \\n'; echo
echo "BOOTFORGE-EVENTLOG-END"
/bin/busybox poweroff -f
"""


def newc(entries):
    """A newc cpio archive of [(name, mode, bytes)] (what the kernel unpacks as its initramfs)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        raw = name.encode() + b"\0"
        out += b"070701" + b"".join(b"%08X" % v for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0))
        out += raw + bytes(-(len(out) + len(raw)) % 4)
        out += data + bytes(-(len(out) + len(data)) % 4)
    return bytes(out)


def tpm_uki(directory):
    require(KERNEL, BUSYBOX)
    directory = Path(directory)
    (directory / "initrd.cpio").write_bytes(newc([("bin", 0o40755, b""),
                                                  ("bin/busybox", 0o100755, Path(BUSYBOX).read_bytes()),
                                                  ("init", 0o100755, INIT.encode())]))
    recipe = write_recipe(directory, kernel=KERNEL, initrd=["initrd.cpio"], cmdline=CMDLINE, output="tpm.efi")
    run_bootforge("build", recipe, check=0)
    return directory / "tpm.efi"


def predicted(uki, vars_file=None):
    extra = ("--secureboot-vars", vars_file) if vars_file else ()
    r = run_bootforge("inspect", "--json", "--pcrs", *extra, uki, check=0)
    return json.loads(r.stdout)["pcrs"]


def signed_tpm_uki(directory):
    """tpm_uki signed in place with Debian's snakeoil key (the key snakeoil OVMF's db trusts)."""
    require(SNAKEOIL_KEY, SNAKEOIL_CERT, "openssl")
    uki = tpm_uki(directory)
    passphrase = Path(directory) / "snakeoil.pass"
    passphrase.write_text("snakeoil\n")
    run_bootforge("sign", uki, "--key", SNAKEOIL_KEY, "--cert", SNAKEOIL_CERT, "--key-passphrase-file", passphrase,
                  "--in-place", check=0)
    return uki


def read_event_log(blob):
    """[(pcr, event type, {alg id: digest}, event bytes)] of a TCG2 crypto-agile event log."""
    _, _, _, size = struct.unpack_from("<II20sI", blob, 0)
    spec = blob[32:32 + size]
    sizes = {}
    for i in range(struct.unpack_from("<I", spec, 24)[0]):
        alg, length = struct.unpack_from("<HH", spec, 28 + 4 * i)
        sizes[alg] = length
    at, events = 32 + size, []
    while at < len(blob):
        pcr, kind, count = struct.unpack_from("<III", blob, at)
        at += 12
        digests = {}
        for _ in range(count):
            alg = struct.unpack_from("<H", blob, at)[0]
            digests[alg] = blob[at + 2:at + 2 + sizes[alg]]
            at += 2 + sizes[alg]
        length = struct.unpack_from("<I", blob, at)[0]
        events.append((pcr, kind, digests, blob[at + 4:at + 4 + length]))
        at += 4 + length
    return events


def parse_serial(text):
    pcrs = {int(n): v.lower() for n, v in re.findall(r"BOOTFORGE-PCR sha256 (\d+) ([0-9A-Fa-f]{64})", text)}
    m = re.search(r"BOOTFORGE-EVENTLOG-BEGIN\s*([0-9a-f]*)\s*BOOTFORGE-EVENTLOG-END", text)
    return pcrs, bytes.fromhex(m.group(1)) if m else b""


def _inputs_digest():
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (KERNEL, BUSYBOX)}


@pytest.mark.parametrize("boot", BOOTS)
def test_prediction_equals_the_recorded_boot(tmp_path, boot):
    """The PCRs a real boot read (tests/data/uki-tpm-pcrs*.txt) equal inspect's prediction for the
    UKI rebuilt from the same Debian files (and signed the same way, for the Secure Boot boot):
    PCR 11, PCR 4, and given the boot's VARS template PCR 7, whose events are byte for byte the
    event log's."""
    code, vars_file, signed, fixture = BOOTS[boot]
    require(KERNEL, BUSYBOX, vars_file)
    header, _, body = fixture.read_text().partition("\n\n")
    inputs = json.loads(re.search(r"^# inputs: (.*)$", header, re.M).group(1))
    if inputs != _inputs_digest():
        # A new Debian kernel or busybox wants the boot recorded again (this file's recording test).
        unavailable(f"the kernel or busybox differs from the recorded boot's: record {fixture.name} again")
    pcrs, log = parse_serial(body)
    uki = signed_tpm_uki(tmp_path) if signed else tpm_uki(tmp_path)
    p = predicted(uki, vars_file)
    assert (p["11"]["sha256"], p["4"]["sha256"], p["7"]["sha256"]) == (pcrs[11], pcrs[4], pcrs[7])
    # PCR 7's events, each the event data the firmware logged (and hashed).
    from bootforge.pe.image import read_pe
    from bootforge.secureboot.measure import allowing_entry, pcr7_events
    from bootforge.secureboot.policy import policy_from_varstore
    policy = policy_from_varstore(Path(vars_file).read_bytes(), vars_file)
    data = uki.read_bytes()
    allowed = allowing_entry(policy, data, read_pe(data))
    assert (allowed is not None) == signed
    logged = [e[3] for e in read_event_log(log) if e[0] == 7]
    assert [d for _, d in pcr7_events(policy.store, policy.enabled, [allowed] if allowed else [])] == logged
    # Under Secure Boot systemd-stub's kernel is not measured into PCR 4: one application event.
    applications = [e for e in read_event_log(log) if e[0] == 4 and e[1] == 0x80000003]
    assert len(applications) == (1 if signed else 2)
    if not signed:
        # `load` of the bare UKI (linux-efi-stub, OVMF without Secure Boot) gives the same predictions.
        loaded = json.loads(run_bootforge("load", "--json", uki, check=0).stdout)["linux"]["pcrs"]
        assert (loaded["11"]["sha256"], loaded["4"]["sha256"]) == (pcrs[11], pcrs[4])
    # The event log's PCR 11 entries are systemd-stub's: one per name and one per contents.
    sha256 = 0x000B
    events = [e for e in read_event_log(log) if e[0] == 11]
    assert len(events) == len(p["pcr11_events"])
    value = bytes(32)
    for _, _, digests, _ in events:
        value = hashlib.sha256(value + digests[sha256]).digest()
    assert value.hex() == pcrs[11]


@pytest.mark.qemu
@pytest.mark.parametrize("boot", BOOTS)
def test_booted_kernel_reads_the_predicted_pcrs(tmp_path, boot):
    code, vars_file, signed, _ = BOOTS[boot]
    require("qemu-system-x86_64", "swtpm", code, vars_file)
    uki = signed_tpm_uki(tmp_path) if signed else tpm_uki(tmp_path)
    p = predicted(uki, vars_file)
    state = tmp_path / "tpm"
    state.mkdir()
    sock = state / "sock"
    swtpm = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl",
                              f"type=unixio,path={sock}", "--terminate"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        shutil.copyfile(vars_file, tmp_path / "vars.fd")
        serial = tmp_path / "serial.log"
        # The Secure Boot builds keep their variables in SMM: q35 with SMM and secure flash.
        machine = ["-M", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"] if signed \
            else ["-M", "q35"]
        cmd = ["qemu-system-x86_64", *machine, "-m", "1024", "-nodefaults", "-display", "none", "-no-reboot",
               "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
               "-drive", f"if=pflash,format=raw,file={tmp_path / 'vars.fd'}",
               "-drive", f"format=raw,file={esp_image(tmp_path, uki)}", "-serial", f"file:{serial}",
               "-chardev", f"socket,id=chrtpm,path={sock}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
               "-device", "tpm-tis,tpmdev=tpm0"]
        subprocess.run(cmd, timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        swtpm.kill()
        swtpm.wait()
    text = serial.read_text("latin-1")
    pcrs, log = parse_serial(text)
    assert 11 in pcrs and log, text[-2000:]
    assert (p["11"]["sha256"], p["4"]["sha256"], p["7"]["sha256"]) == (pcrs[11], pcrs[4], pcrs[7])


SYSTEMD_MEASURE = "/usr/lib/systemd/systemd-measure"     # systemd 252


def _sections(uki, directory, names):
    """The UKI's sections as loaded, one file each (what systemd-measure is given)."""
    from bootforge.pe.image import read_pe
    from bootforge.uki.measure import section_bytes
    data = Path(uki).read_bytes()
    img = read_pe(data)
    out = {}
    for name in names:
        path = Path(directory) / f"section{name}"
        path.write_bytes(section_bytes(data, img.section(name)))
        out[name] = path
    return out


def test_pcr11_equals_systemd_measure_calculate(tmp_path):
    """systemd-measure 252 `calculate` (no TPM needed) from the UKI's sections gives, for its
    first phase, the predicted PCR 11 extended by "enter-initrd" (what systemd-pcrphase adds)."""
    require(SYSTEMD_MEASURE)
    from bootforge.uki.measure import extend
    uki = tpm_uki(tmp_path)
    files = _sections(uki, tmp_path, (".linux", ".cmdline", ".initrd"))
    out = subprocess.run([SYSTEMD_MEASURE, "calculate", f"--linux={files['.linux']}",
                          f"--cmdline={files['.cmdline']}", f"--initrd={files['.initrd']}", "--bank=sha256",
                          "--phase=enter-initrd", "--json=short"], capture_output=True, text=True, check=True)
    theirs = json.loads(out.stdout)["sha256"][0]
    ours = bytes.fromhex(predicted(uki)["11"]["sha256"])
    assert theirs["hash"] == extend(ours, b"enter-initrd", "sha256").hex()


def test_pcrsig_is_systemd_measure_signs(tmp_path):
    """[uki] pcr_private_key: .pcrpkey is the public key (PEM) and .pcrsig the bytes systemd-measure
    252 `sign` prints for the same sections and key (RSA PKCS#1 v1.5: deterministic). 252's sign
    computes the policy through a TPM: swtpm, reached with tpm2-tss's swtpm TCTI."""
    require(SYSTEMD_MEASURE, "swtpm", "openssl")
    key = tmp_path / "pcr.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    uki = tpm_uki(tmp_path)
    recipe = write_recipe(tmp_path, kernel=KERNEL, initrd=["initrd.cpio"], cmdline=CMDLINE, output="signed-pcr.efi",
                          pcr_private_key=str(key))
    run_bootforge("build", recipe, check=0)
    signed = tmp_path / "signed-pcr.efi"
    files = _sections(signed, tmp_path, (".linux", ".cmdline", ".initrd", ".pcrpkey", ".pcrsig"))
    state = tmp_path / "swtpm"
    state.mkdir()
    server = state / "srv"
    swtpm = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}", "--server",
                              f"type=unixio,path={server}", "--ctrl", f"type=unixio,path={server}.ctrl",
                              "--flags", "startup-clear"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if server.exists():
                break
            time.sleep(0.1)
        out = subprocess.run([SYSTEMD_MEASURE, "sign", f"--linux={files['.linux']}", f"--cmdline={files['.cmdline']}",
                              f"--initrd={files['.initrd']}", f"--pcrpkey={files['.pcrpkey']}",
                              f"--private-key={key}", f"--public-key={files['.pcrpkey']}", "--bank=sha256",
                              "--json=short", f"--tpm2-device=swtpm:path={server}"], capture_output=True, check=True)
    finally:
        swtpm.kill()
        swtpm.wait()
    assert files[".pcrsig"].read_bytes() == out.stdout
    assert files[".pcrpkey"].read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    # .pcrpkey is measured (.pcrsig is not): the prediction changes with it, and inspect says so.
    p = predicted(signed)
    assert p["pcr11_events"][-2:] == [".pcrpkey name", ".pcrpkey contents"]
    assert p["11"]["sha256"] != predicted(uki)["11"]["sha256"]


def test_a_section_whose_virtual_size_runs_far_past_its_data_is_one_line(tmp_path):
    """The recorded-boot UKI with .cmdline's VirtualSize set to 0x7fffffff: `inspect --pcrs` built
    and hashed 2 GiB of zeros per bank (2.1 GB and 8 s observed with a UKI's .osrel; 0xffffffff is
    4 GiB). Now one line naming the section header's VirtualSize field; the real UKI's prediction
    is the tests above."""
    from bootforge.pe.image import read_pe
    data = bytearray(tpm_uki(tmp_path).read_bytes())
    cmdline = read_pe(bytes(data)).section(".cmdline")
    struct.pack_into("<I", data, cmdline.header_offset + 8, 0x7FFFFFFF)
    bad = tmp_path / "big-cmdline.efi"
    bad.write_bytes(data)
    assert_one_line_error(run_bootforge("inspect", "--pcrs", bad), "big-cmdline.efi",
                          f"offset {cmdline.header_offset + 8:#x}", "section .cmdline: VirtualSize 0x7fffffff")
