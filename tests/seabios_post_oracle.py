"""SeaBIOS 1.16.2's POST with option ROMs, run for real: the boots whose logs are kept in
tests/data/seabios-post/ (README.md there) and that tests/test_seabios_post*.py compare
with bootforge's model.

    .venv/bin/python tests/seabios_post_oracle.py [NAME...]    # re-capture (make stubs first)

Each boot is QEMU's pc machine with the devices below (no network peer, no disk), stopped
once SeaBIOS has jumped to the first BEV or given up; the log is port 0x402's."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import BUILD, DATA, REPO  # noqa: E402

FIXTURES = DATA / "seabios-post"
IPXE = "/usr/lib/ipxe/qemu"
HELLO_ROM = FIXTURES / "hello.rom"            # bootforge build recipes/hello-rom.toml
HELLO_56K_ROM = FIXTURES / "hello-56k.rom"    # bootforge build tests/data/seabios-post/hello-56k.toml
HELLO_BCV_ROM = FIXTURES / "hello-bcv.rom"    # bootforge build tests/data/seabios-post/hello-bcv.toml

# name -> (memory MiB, VGA (std) or none, [(device, romfile, bootindex or None)])
BOOTS = {
    "vga-e1000-256M": (256, True, [("e1000", f"{IPXE}/pxe-e1000.rom", None)]),
    "vga-3nic-256M": (256, True, [("e1000", f"{IPXE}/pxe-e1000.rom", None),
                                  ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", None),
                                  ("virtio-net-pci", f"{IPXE}/pxe-virtio.rom", None)]),
    "novga-4nic-1G": (1024, False, [("e1000", f"{IPXE}/efi-e1000.rom", None),
                                    ("rtl8139", f"{IPXE}/efi-rtl8139.rom", None),
                                    ("pcnet", f"{IPXE}/pxe-pcnet.rom", None),
                                    ("ne2k_pci", f"{IPXE}/pxe-ne2k_pci.rom", None)]),
    "vga-hello-bootindex-5G": (5120, True, [("e1000", str(HELLO_ROM), 2),
                                            ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", 1),
                                            ("e1000", str(HELLO_ROM), None)]),
    "vga-full-3584M": (3584, True, [("e1000", str(HELLO_56K_ROM), None),
                                    ("e1000", str(HELLO_56K_ROM), None),
                                    ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", None)]),
    "novga-hello-64M": (64, False, [("e1000", str(HELLO_ROM), None)]),
    "vga-5nic-128M": (128, True, [("e1000", f"{IPXE}/pxe-e1000.rom", None),
                                  ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", None),
                                  ("pcnet", f"{IPXE}/pxe-pcnet.rom", None),
                                  ("e1000e", f"{IPXE}/pxe-e1000e.rom", None),
                                  ("vmxnet3", f"{IPXE}/pxe-vmxnet3.rom", None)]),
    "vga-hello-bcv-256M": (256, True, [("e1000", str(HELLO_BCV_ROM), None),
                                       ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", None)]),
    "vga-bootindex3-2G": (2048, True, [("e1000", f"{IPXE}/pxe-e1000.rom", 3),
                                       ("rtl8139", f"{IPXE}/pxe-rtl8139.rom", 1),
                                       ("pcnet", f"{IPXE}/pxe-pcnet.rom", 2)]),
}


def qemu_args(devices, vga):
    args = [] if vga else ["-vga", "none"]
    for device, romfile, bootindex in devices:
        opt = f"{device},romfile={romfile}"
        if bootindex is not None:
            opt += f",bootindex={bootindex}"
        args += ["-device", opt]
    return args


def command_line(name):
    """The QEMU command of a boot as the README shows it (the runner adds -serial/-debugcon files)."""
    mem, vga, devices = BOOTS[name]
    return ("qemu-system-x86_64 -machine pc -m {} -display none -no-reboot -monitor none -nic none "
            "-device isa-debug-exit,iobase=0xf4,iosize=4 "
            "-chardev file,id=fwlog,path=seabios.log -device isa-debugcon,iobase=0x402,chardev=fwlog "
            "{}".format(mem, " ".join(qemu_args(devices, vga))))


def post_done(run):
    """SeaBIOS has reached its first boot entry of a ROM (or given up)."""
    log = run.seabios_log
    if "No bootable device" in log:
        return True
    at = log.find("Booting from ROM...\n")
    return at >= 0 and "\n" in log[at + 20:] and log[at + 20:].startswith("Booting from ")


def screen_text(raw):
    """VGA text memory (character, attribute pairs) as lines, trailing blanks dropped."""
    chars = raw[::2].decode("latin-1")
    lines = [chars[i:i + 80].rstrip() for i in range(0, len(chars), 80)]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def capture(name, timeout=60):
    """(SeaBIOS log, port 0xE9 text, the VGA text screen when SeaBIOS first jumps to a ROM's
    once every ROM has run: iPXE's init banner names its PMM blocks)."""
    import socket
    import time

    from bootforge.qemu.runner import Machine, Medium, QemuRun
    mem, vga, devices = BOOTS[name]
    with QemuRun(Machine("seabios", mem), Medium(qemu_args(devices, vga), name)) as run:
        sock = run.private / "mon.sock"
        run.extra = ["-monitor", f"unix:{sock},server=on,wait=off"]
        run.start()
        # The screen once every ROM has run (SeaBIOS prints the UMB line in malloc_prepboot).
        run.wait_until(lambda r: "Space available for UMB" in r.firmware_log(), timeout)
        screen = ""
        if vga and not run.exited():
            mon = socket.socket(socket.AF_UNIX)
            mon.connect(str(sock))
            dump = run.private / "screen.bin"
            for command in ("stop", f'pmemsave 0xb8000 4000 "{dump}"', "cont"):
                mon.sendall(command.encode() + b"\n")
                time.sleep(0.3)
            mon.close()
            screen = screen_text(dump.read_bytes())
        run.wait_until(lambda r: post_done(_Log(r.firmware_log())), timeout)
        log, e9 = run.firmware_log(), run.debugcon().decode("latin-1")
    return log, e9, screen


class _Log:
    def __init__(self, text):
        self.seabios_log = text


def build_roms():
    subprocess.run([str(REPO / ".venv/bin/bootforge"), "build", str(REPO / "recipes/hello-rom.toml"),
                    "-o", str(HELLO_ROM)], check=True)
    subprocess.run(["objcopy", "-O", "binary", str(BUILD / "stubs/hello-rom.elf"),
                    str(FIXTURES / "hello-rom.bin")], check=True)
    code = (FIXTURES / "hello-rom.bin").read_bytes()
    (FIXTURES / "hello-56k.bin").write_bytes(code + bytes(56 * 1024 - len(code)))
    (FIXTURES / "hello-rom.bin").unlink()
    subprocess.run([str(REPO / ".venv/bin/bootforge"), "build", str(FIXTURES / "hello-56k.toml"),
                    "-o", str(HELLO_56K_ROM)], check=True)
    (FIXTURES / "hello-56k.bin").unlink()
    subprocess.run([str(REPO / ".venv/bin/bootforge"), "build", str(FIXTURES / "hello-bcv.toml"),
                    "-o", str(HELLO_BCV_ROM)], check=True)


if __name__ == "__main__":
    build_roms()
    for name in sys.argv[1:] or BOOTS:
        log, e9, screen = capture(name)
        (FIXTURES / f"{name}.log").write_text(log)
        (FIXTURES / f"{name}.e9").write_text(e9)
        if screen:
            (FIXTURES / f"{name}.screen").write_text(screen)
        print(f"{name}: {len(log.splitlines())} lines")
