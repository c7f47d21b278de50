"""The boots behind tests/data/linux-limine/uefi-*: an [image] recipe with a Limine `protocol: linux`
entry (tests/test_linux_limine.py uefi_recipe, `efi=debug` added to its cmdline) built by bootforge
and booted under OVMF through bootforge's runner with QEMU's gdbstub; stopped at the kernel's
entry (hardware breakpoints at the addresses given, default 0x1600000), the 4096 bytes at ESI
written to OUT.zp, then the kernel run on to its panic with the serial console in OUT.serial.

    BOOTFORGE_LIMINE_DIR=../shared/oracles/limine-11.4.1 .venv/bin/python tests/ovmf_pages_limine_boot.py \\
        RECIPE MEM_MIB OUT [ADDRESS...]

The fixture .txt files are OUT.serial's "efi: memNN:", "BIOS-e820", "RAMDISK", "Command line" and
"Linux version" lines."""

import json
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bootforge.image.build import build_image_recipe  # noqa: E402
from bootforge.qemu.gdbremote import GdbRemote  # noqa: E402
from bootforge.qemu.media import image_medium  # noqa: E402
from bootforge.qemu.runner import Machine, QemuRun  # noqa: E402
from bootforge.verify.linux import read_boot_params  # noqa: E402


def main():
    recipe, mem, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    stops = [int(x, 0) for x in sys.argv[4:]] or [0x1600000]
    img = out.with_suffix(".img")
    build_image_recipe(recipe, tomllib.loads(recipe.read_text()), img)
    machine = Machine("qemu-q35-ovmf", mem)
    with QemuRun(machine, image_medium(img, machine.declared), gdb=True) as run:
        run.start()
        gdb = GdbRemote(run.gdb_socket)
        for a in stops:
            gdb.hardware_breakpoint(a)
        gdb.cont()
        while gdb.wait_stop(0.5) is None:
            if run.elapsed() > 240:
                raise SystemExit("no stop at the kernel's entry in 240 s")
        regs = gdb.registers(run.register_layout)
        params, page = read_boot_params(gdb, regs["rsi"] & 0xFFFFFFFF)
        out.with_suffix(".zp").write_bytes(page)
        for a in stops:
            gdb.remove_hardware_breakpoint(a)
        gdb.cont()
        t = time.monotonic()
        while time.monotonic() - t < 90 and b"end Kernel panic" not in run.serial_bytes() and not run.exited():
            time.sleep(1)
        gdb.close()
        out.with_suffix(".serial").write_text(run.serial())
    print(json.dumps({"rip": regs["rip"], "rsi": regs["rsi"],
                      **{k: v for k, v in params.items() if k not in ("e820", "problems")}}))


if __name__ == "__main__":
    main()
