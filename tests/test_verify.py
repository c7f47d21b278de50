"""`bootforge verify`: the real loader in QEMU, stopped at the kernel's entry through the
gdbstub, compared with `bootforge load`. The observed values asserted here are what real
GRUB/QEMU/Syslinux/iPXE runs gave (the same facts tests/test_load_cli.py and the fidelity
matrix hold), and each module's bytes in guest memory are compared with a hash computed
here from the file."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUILD, REPO, assert_one_line_error, require, run_bootforge
from bootforge.qemu import host
from bootforge.qemu.gdbremote import _unescape
from bootforge.verify.run import same_words

pytestmark = pytest.mark.qemu
LOAD_ROOT = REPO / "tests" / "data" / "load-root" / "boot"
XEN_GZ = "/boot/xen-4.17-amd64.gz"
MB1_MAGIC, MB2_MAGIC = 0x2BADB002, 0x36D76289


def recipe(tmp_path, kernel, loader, platform="qemu-pc-seabios:256M", kernel_name="/boot/kernel",
           modules=(("mod1", "/boot/mod1", "mod1-args"),), cmdline="kernel-args a=b", name="r.toml"):
    lines = ["[load]", f'kernel = "{kernel}"', f'loader_path = "{kernel_name}"', f'cmdline = "{cmdline}"',
             f'platform = "{platform}"', f'loader = "{loader}"']
    for file, lpath, args in modules:
        lines += ["[[load.modules]]", f'path = "{LOAD_ROOT / file}"', f'loader_path = "{lpath}"', f'cmdline = "{args}"']
    out = tmp_path / name
    out.write_text("\n".join(lines) + "\n")
    return out


def verify_json(*args, rc=0):
    proc = run_bootforge("verify", "--json", "-q", *args)
    assert proc.returncode == rc, (proc.returncode, proc.stdout[-3000:], proc.stderr)
    return json.loads(proc.stdout)


def fields(doc):
    return {f["name"]: f for f in doc["fields"]}


def needs(*extra):
    require("qemu-system-x86_64", *extra)


GRUB_PC = ("grub-mkrescue", "xorriso", "mformat", host.GRUB_I386_PC)
GRUB_EFI = ("grub-mkrescue", "xorriso", "mformat", host.GRUB_X86_64_EFI, host.OVMF_CODE, host.OVMF_VARS)
ISOLINUX = ("xorriso", host.ISOLINUX_BIN, f"{host.SYSLINUX_BIOS_MODULES}/mboot.c32")


def test_grub_pc_mb2_dump_kernel_matches_and_modules_are_the_files():
    needs(*GRUB_PC)
    doc = verify_json(REPO / "recipes" / "load-grub-pc-mb2.toml")
    f = fields(doc)
    assert doc["ok"] and doc["status"] == "entry" and doc["mismatches"] == []
    assert doc["registers"]["rax"] & 0xFFFFFFFF == MB2_MAGIC
    # What GRUB 2.06 i386-pc gave this kernel (the dump kernel printed the same; test_load_cli.py).
    assert f["mbi address"]["observed"] == 0x1016E0
    assert (f["module 0 start"]["observed"], f["module 0 end"]["observed"]) == (0x103000, 0x103BB8)
    assert (f["module 1 start"]["observed"], f["module 1 end"]["observed"]) == (0x104000, 0x115171)
    assert (f["mem lower"]["observed"], f["mem upper"]["observed"]) == (639, 0x3FB80)
    for i, name in enumerate(("mod1", "mod2")):
        digest = hashlib.sha256((LOAD_ROOT / name).read_bytes()).hexdigest()
        assert f[f"module {i} bytes"]["observed"] == f"memory sha256 {digest[:16]}"
    assert "end" in f["tags"]["observed"] and "mmap" in f["tags"]["observed"]


@pytest.mark.parametrize("case", ["qemu-mb1", "syslinux-mb1", "ipxe-pcbios-mb1", "grub-pc-mb1", "grub-efi-mb2"])
def test_every_loader_on_the_dump_kernel(tmp_path, case):
    if case == "qemu-mb1":
        needs()
        path = REPO / "recipes" / "load-qemu.toml"
    elif case == "syslinux-mb1":
        needs(*ISOLINUX)
        path = REPO / "recipes" / "load-isolinux.toml"
    elif case == "ipxe-pcbios-mb1":
        needs(host.IPXE_PXE_E1000)
        path = recipe(tmp_path, LOAD_ROOT / "kernel-mb1", case, kernel_name="tftp://10.0.2.2/kernel.elf",
                      modules=[("mod1", "tftp://10.0.2.2/mod1", "mod1-args")])
    elif case == "grub-pc-mb1":
        needs(*GRUB_PC)
        path = recipe(tmp_path, LOAD_ROOT / "kernel-mb1", case)
    else:
        needs(*GRUB_EFI)
        path = recipe(tmp_path, LOAD_ROOT / "kernel", case, platform="qemu-q35-ovmf:256M")
    doc = verify_json(path)
    assert doc["ok"] and doc["status"] == "entry", doc["mismatches"]
    magic = MB2_MAGIC if case.endswith("mb2") else MB1_MAGIC
    assert doc["registers"]["rax"] & 0xFFFFFFFF == magic
    f = fields(doc)
    assert f["module 0 bytes"]["match"] and f["mmap entries"]["observed"] >= 2
    if case == "ipxe-pcbios-mb1":     # iPXE's hidden region: 120 KiB below the RAM above 1 MiB
        assert (f["mbi address"]["observed"], f["mem upper"]["observed"]) == (0x9CEE0, 0x3FB80)


def test_xen_unmodified_under_grub_pc_mb1(tmp_path):
    needs(*GRUB_PC, XEN_GZ)
    doc = verify_json(recipe(tmp_path, XEN_GZ, "grub-pc-mb1", platform="qemu-pc-seabios:512M",
                             kernel_name="/boot/xen.gz", modules=[("mod1", "/boot/dom0", "dom0")]))
    assert doc["ok"] and doc["entry"] == 0x200000 and doc["registers"]["rip"] == 0x200000
    assert fields(doc)["module 0 bytes"]["match"]


def test_xen_relocatable_under_grub_pc_mb2_names_where_grub_put_it(tmp_path):
    """Xen's MB2 header has the relocatable tag (min 2 MiB, align 2 MiB, highest): GRUB 2.06
    put it at 0x1fa00000 at -m 512 (2 MiB below the top: GRUB's heap, which the policy now
    models). Its ~250 candidate entries all get a breakpoint before the first boot, so one
    boot stops it at the entry wherever the image went; what matches is shown as matching."""
    needs(*GRUB_PC, XEN_GZ)
    doc = verify_json(recipe(tmp_path, XEN_GZ, "grub-pc-mb2", platform="qemu-pc-seabios:512M",
                             kernel_name="/boot/xen.gz", modules=[("mod1", "/boot/dom0", "dom0")]))
    f = fields(doc)
    assert doc["status"] == "entry" and doc["registers"]["rax"] & 0xFFFFFFFF == MB2_MAGIC
    assert f["load base (tag 21)"]["observed"] == 0x1FA00000 == f["kernel entry"]["observed"]
    assert f["load base (tag 21)"]["match"] and doc["boots"] == 1
    for name in ("mbi address", "module 0 start", "module 0 end", "mmap 3", "mem upper", "module 0 bytes"):
        assert f[name]["match"], f[name]
    assert "relocatable" in doc["entry_how"]


def test_flat_aout_kludge_kernel(tmp_path):
    needs(*GRUB_PC, str(BUILD / "stubs" / "mbdump.elf"))
    flat = tmp_path / "kludge.bin"
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-kludge.toml", "-o", flat, check=0)
    doc = verify_json(recipe(tmp_path, flat, "grub-pc-mb1"))
    assert doc["ok"] and "a.out kludge" in doc["entry_how"]
    assert doc["registers"]["rax"] & 0xFFFFFFFF == MB1_MAGIC


def test_refusal_in_the_loaders_words_is_a_match(tmp_path):
    needs(*GRUB_PC, str(BUILD / "stubs" / "mbdump.elf"))
    far = tmp_path / "far.elf"
    run_bootforge("build", REPO / "recipes" / "kernel-mbdump-far.toml", "-o", far, check=0)
    doc = verify_json(recipe(tmp_path, far, "grub-pc-mb2"))
    assert doc["status"] == "refused" and doc["ok"]
    assert doc["loader_words"] == "no multiboot header found."      # GRUB's serial console
    assert same_words(doc["predicted_refusal"], doc["loader_words"])


def test_timeout_says_what_was_last_on_serial(tmp_path):
    needs(*GRUB_EFI)
    path = recipe(tmp_path, LOAD_ROOT / "kernel", "grub-efi-mb2", platform="qemu-q35-ovmf:256M")
    t = time.monotonic()
    proc = run_bootforge("verify", "-q", "--timeout", "3", path)
    assert proc.returncode == 1, proc.stderr
    assert "was not reached in 3 s; last on serial:" in proc.stdout
    assert time.monotonic() - t < 60


def test_map_platform_is_refused_in_one_line():
    assert_one_line_error(run_bootforge("verify", REPO / "recipes" / "load-grub-pc-mb2.toml", "--platform",
                                        "r820-efi"), "r820-efi", "qemu-pc-seabios:<mem>", "qemu-q35-ovmf:<mem>")


def test_a_missing_loader_names_the_debian_package():
    proc = subprocess.run([sys.executable, "-m", "bootforge", "verify", "-q", REPO / "recipes" / "load-grub-pc-mb2.toml"],
                          capture_output=True, text=True, env={**os.environ, "PATH": "/nonexistent"})
    assert_one_line_error(proc, "grub-mkrescue", "grub-common")


def test_ctrl_c_ends_qemu_and_cleans_up(tmp_path):
    needs(*GRUB_EFI)
    keep = tmp_path / "keep"
    path = recipe(tmp_path, LOAD_ROOT / "kernel", "grub-efi-mb2", platform="qemu-q35-ovmf:256M")
    # A user's shell leaves SIGINT at its default; a pytest-xdist worker ignores it, and an
    # ignored SIGINT is inherited (Python then installs no KeyboardInterrupt handler).
    proc = subprocess.Popen([sys.executable, "-m", "bootforge", "verify", "-q", "--keep", keep, path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (keep / "serial.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (keep / "serial.txt").exists()
    time.sleep(0.5)
    qemu = [_cmdline(p) for p in Path("/proc").glob("[0-9]*")
            if str(keep) in _cmdline(p) and "qemu-system" in _cmdline(p)]
    assert qemu, "QEMU was not running"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    # 130 as a shell reports SIGINT (not click's "Aborted!" and 1, which means "mismatch")
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err, (proc.returncode, err)
    left = [p for p in Path("/proc").glob("[0-9]*") if str(keep) in _cmdline(p)]
    assert left == []
    sock = re.search(r"unix:(\S+)/gdb.sock", qemu[0]).group(1)
    assert not Path(sock).exists()        # the private directory of the socket is removed


def _cmdline(proc_dir):
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        return ""


def test_gdb_remote_run_length_and_escapes():
    """GDB remote protocol: 'x*n' repeats x n-29 more times; '}' escapes the next byte ^ 0x20."""
    assert _unescape(b"0* ") == b"0" * 4                    # ' ' is 32: three more
    assert _unescape(b"ab}\x03c") == b"ab#c"


def test_verify_of_the_users_own_image_builds_no_medium(tmp_path):
    """An image is booted as it is: verify says it boots the image and never that it is
    building a boot medium (it used to print "building the boot medium (grub-pc-iso)")."""
    needs(*GRUB_PC)
    from bootforge.qemu import media
    work = tmp_path / "made"
    media.grub_iso(work, "multiboot2", media.BootFile(LOAD_ROOT / "kernel", "/boot/kernel", "a=b"),
                   [media.BootFile(LOAD_ROOT / "mod1", "/boot/mod1", "mod1-args")])
    image = work / "grub.iso"
    proc = run_bootforge("verify", image)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr)
    assert "building the boot medium" not in proc.stderr
    assert f"from the image {image} (-cdrom)" in proc.stderr
    assert "result: all" in proc.stdout
