"""The arm64 UKI: `bootforge build` of a [uki] with Debian's arm64 kernel and systemd's
linuxaa64.efi.stub (Debian 12's systemd-boot-efi:arm64, fetched by `make arm64-kernel` into
build/debian-arm64/, never committed), `inspect` of it (the PE, and the embedded arm64 Image in
both its views), and a real boot on AAVMF (qemu-efi-aarch64 2022.11) through QEMU -kernel,
checked to the kernel's own words: its EFI stub's lines (the initrd served from .initrd), the
command line (.cmdline) and the initrd pages it frees.

The AAVMF boot's serial is kept in tests/data/uki-arm64/aavmf.serial (with its command) so
the words are checked without QEMU too. Regenerate it: .venv/bin/python tests/test_uki_arm64.py
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootforge.pe.image import read_pe
from conftest import BUILD, DATA, REPO, require, run_bootforge
from test_arm_images import debian_arm64_kernel

STUB = BUILD / "debian-arm64" / "linuxaa64.efi.stub"
AAVMF_CODE, AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd")
CMDLINE = "console=ttyAMA0 earlycon bootforge=uki-arm64 panic=-1"
INITRD_SIZE = 200000
CAPTURE = DATA / "uki-arm64" / "aavmf.serial"
BOOT_TIMEOUT = 120
LAST_WORDS = b"Freeing initrd memory:"


def arm64_stub():
    if not STUB.exists():
        subprocess.run(["make", "-s", "arm64-kernel"], cwd=REPO, capture_output=True)
    require(str(STUB))
    return STUB


def build_uki(tmp):
    """The recipe's UKI (the same bytes every time): Debian's kernel, a 200000-byte initrd, .cmdline, .osrel."""
    kernel, stub = debian_arm64_kernel(), arm64_stub()
    tmp = Path(tmp)
    (tmp / "initrd.img").write_bytes(bytes((i * 13 + 5) & 0xFF for i in range(INITRD_SIZE)))
    recipe = tmp / "uki-arm64.toml"
    recipe.write_text(f'''[uki]
kernel = "{kernel}"
stub = "{stub}"
initrd = ["initrd.img"]
cmdline = "{CMDLINE}"
os_release = {{ ID = "debian", VERSION_ID = "12", PRETTY_NAME = "bootforge arm64 UKI" }}
output = "uki-arm64.efi"
''')
    run_bootforge("build", recipe, check=0)
    return tmp / "uki-arm64.efi"


def inspect_json(path):
    return json.loads(run_bootforge("inspect", "--json", path, check=0).stdout)


@pytest.fixture(scope="module")
def uki(tmp_path_factory):
    """(the recipe's UKI, its inspect --json), built once for this module's tests."""
    path = build_uki(tmp_path_factory.mktemp("uki-arm64"))
    return path, inspect_json(path)


def kernel_says(doc):
    return next(v for v in doc["verdicts"] if v["subject"] == "systemd-stub")["facts"]["kernel_says"]


def test_build_lays_the_kernel_behind_the_aarch64_stub(tmp_path):
    uki = build_uki(tmp_path)
    data, stub, kernel = uki.read_bytes(), arm64_stub().read_bytes(), debian_arm64_kernel().read_bytes()
    img, stub_img = read_pe(data), read_pe(stub)
    assert img.machine == 0xAA64 and [s.name for s in img.sections] == \
        [".text", ".data", ".osrel", ".cmdline", ".uname", ".initrd", ".linux"]
    # The stub's own sections unchanged (bytes and RVAs), the kernel and initrd byte for byte.
    for mine, theirs in zip(img.sections, stub_img.sections):
        assert (mine.virtual_address, mine.data(data)) == (theirs.virtual_address, theirs.data(stub))
    assert img.section(".linux").data(data) == kernel
    assert img.section(".initrd").data(data) == (tmp_path / "initrd.img").read_bytes()
    assert img.section(".cmdline").data(data) == CMDLINE.encode()
    assert img.size_of_image == (img.sections[-1].virtual_address + len(kernel) + 0xFFF) // 0x1000 * 0x1000
    # ukify's banner scrape (Uname.scrape_generic): the release of the kernel's "Linux version" banner.
    uname = img.section(".uname").data(data)
    assert uname.startswith(b"6.1.") and b"Linux version " + uname + b" (" in kernel
    # The same recipe, the same bytes.
    (tmp_path / "again").mkdir()
    assert build_uki(tmp_path / "again").read_bytes() == data


def test_build_refusals(tmp_path):
    """An arm64 kernel with the x86-64 stub, and SBAT lines for a stub with no .sbat section to merge
    them into: one line, exit 2, no output."""
    require("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
    kernel = debian_arm64_kernel()
    cases = [('stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"', "not an AArch64 EFI application"),
             (f'stub = "{arm64_stub()}"\nsbat = "bootforge,1,bootforge,bootforge,1,https://example.org"',
              "no .sbat section to merge the SBAT lines into")]
    for extra, words in cases:
        recipe = tmp_path / "bad.toml"
        recipe.write_text(f'[uki]\nkernel = "{kernel}"\n{extra}\n')
        proc = run_bootforge("build", recipe, "-o", tmp_path / "bad.efi")
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert words in proc.stderr and not (tmp_path / "bad.efi").exists()


def test_inspect_shows_the_pe_and_the_embedded_image(uki):
    uki, doc = uki
    kernel_doc = inspect_json(debian_arm64_kernel())
    assert doc["kind"] == "UKI" and doc["pe"]["machine"] == 0xAA64
    view = doc["arm64_image"]
    # The embedded Image read as the plain kernel file is read (its Image header and its PE header).
    for field in ("text_offset", "image_size", "flags", "flag_names", "page_size"):
        assert view[field] == kernel_doc["header"][field], field
    assert view["pe"]["entry_point"] == kernel_doc["pe"]["entry_point"]
    pe = read_pe(debian_arm64_kernel().read_bytes())
    assert (view["pe"]["machine"], view["pe"]["entry_point"], view["pe"]["size_of_image"]) == \
        (0xAA64, pe.entry_point, pe.size_of_image)
    verdicts = {v["subject"]: v for v in doc["verdicts"]}
    assert verdicts["uefi"]["ok"] and verdicts["systemd-stub"]["ok"] and verdicts["qemu-kernel-aavmf"]["ok"]
    assert not verdicts["qemu-arm-kernel"]["ok"]
    text = run_bootforge("inspect", uki, check=0).stdout
    assert "kernel (.linux): arm64 Image 6.1" in text and "its Linux EFI stub's PE: machine 0xaa64" in text


def aavmf_boot(uki, tmp):
    """AAVMF with the UKI as QEMU -kernel (no -append, no -initrd): the serial up to the kernel
    freeing the initrd. Returns (serial text, the command)."""
    require("qemu-system-aarch64", str(AAVMF_CODE), str(AAVMF_VARS))
    tmp = Path(tmp)
    (tmp / "vars.fd").write_bytes(AAVMF_VARS.read_bytes())
    serial = tmp / "serial.txt"
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "1G", "-display", "none",
            "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-nic", "none", "-no-reboot",
            "-drive", f"if=pflash,format=raw,readonly=on,file={AAVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={tmp / 'vars.fd'}", "-kernel", str(uki)]
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline and qemu.poll() is None:
            text = serial.read_bytes() if serial.exists() else b""
            at = text.find(LAST_WORDS)
            if at >= 0 and b"\n" in text[at:]:
                break
            time.sleep(0.25)
    finally:
        qemu.kill()
        qemu.wait()
    return serial.read_text("latin-1"), argv


def kernel_lines(serial):
    """The serial's lines with the firmware's escape sequences and the kernel's timestamps taken off."""
    out = []
    for line in serial.replace("\x1b", "\n").splitlines():
        if "EFI stub:" in line:
            out.append(line[line.index("EFI stub:"):].strip())
        elif line.startswith("[") and "] " in line:
            out.append(line.split("] ", 1)[1].strip())
    return out


def assert_kernel_said(serial, predicted):
    lines = kernel_lines(serial)
    said = [line for line in lines if line.startswith("EFI stub:")]
    assert said == [p for p in predicted if p.startswith("EFI stub:")]
    for words in predicted:
        if not words.startswith("EFI stub:"):
            assert words in lines, (words, [x for x in lines if x.split(":")[0] in words])


def test_uki_boots_on_aavmf(tmp_path, uki):
    """The UKI as AAVMF's -kernel: systemd-stub starts the kernel's EFI stub, which loads .initrd
    through LINUX_EFI_INITRD_MEDIA; the kernel's command line is .cmdline and it frees the initrd's
    pages: the lines the systemd-stub verdict predicts, every one."""
    serial, _ = aavmf_boot(uki[0], tmp_path)
    assert_kernel_said(serial, kernel_says(uki[1]))


def test_captured_aavmf_boot(uki):
    """The kept AAVMF boot of the same recipe's UKI: the verdict's lines, without QEMU."""
    predicted = kernel_says(uki[1])
    assert predicted[-2:] == [f"Kernel command line: {CMDLINE}", f"Freeing initrd memory: {INITRD_SIZE // 4096 * 4}K"]
    assert_kernel_said(CAPTURE.read_text("latin-1"), predicted)


def regenerate():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        uki = build_uki(tmp)
        serial, argv = aavmf_boot(uki, tmp)
    CAPTURE.parent.mkdir(exist_ok=True)
    command = " ".join(a.replace(str(uki), "uki-arm64.efi").replace(tmp, ".") for a in argv)
    end = serial.index("\n", serial.index(LAST_WORDS.decode()))
    CAPTURE.write_text(f"# {command}  (uki-arm64.efi: tests/test_uki_arm64.py build_uki)\n" + serial[:end + 1])


if __name__ == "__main__":
    sys.path.insert(0, str(DATA.parent))
    regenerate()
