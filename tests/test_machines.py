"""The machine registry (bootforge.machines): one declaration per QEMU machine that `load`
prints, verify runs, and the image tests and fidelity matrix boot."""

import json

import pytest

from bootforge import machines
from bootforge.bootloaders import BOOTLOADERS
from bootforge.errors import RecipeError
from bootforge.loader.platforms import resolve
from bootforge.qemu import media
from bootforge.qemu.gdbremote import GdbRemote
from bootforge.qemu.runner import Machine, Medium, QemuRun
from bootforge.verify.run import machine_for, verifiable_loaders
from conftest import DATA, REPO, require, run_bootforge

LOAD_ROOT = DATA / "load-root" / "boot"


X86 = [name for name, m in machines.MACHINES.items() if not m.device_tree]
VIRT = [name for name, m in machines.MACHINES.items() if m.device_tree]


def test_one_firmware_vocabulary():
    """bios and uefi in machines, bootloaders and verify's media (fdt: a machine handing a DTB);
    SeaBIOS/OVMF/OpenSBI only in text."""
    assert {m.firmware for m in machines.MACHINES.values()} == {"bios", "uefi", "fdt"}
    assert {m.firmware_title for m in machines.MACHINES.values()} == {"SeaBIOS", "OVMF", "QEMU's boot loader",
                                                                      "OpenSBI"}
    assert all(set(b.firmware) <= {"bios", "uefi"} for b in BOOTLOADERS.values())
    for _builder, firmware in media.MEDIA.values():
        assert set((firmware,) if isinstance(firmware, str) else firmware) <= {"bios", "uefi"}


@pytest.mark.parametrize("name", list(machines.MACHINES))
def test_load_prints_the_command_verify_runs(name, tmp_path):
    """The command line `load` prints for NAME:<mem> is the head of the one QemuRun builds."""
    m = machines.MACHINES[name]
    require(m.binary, *m.firmware_files)
    plat = resolve(f"{name}:256M")
    assert plat.qemu is m and plat.memory_bytes == 256 << 20
    printed = plat.qemu_command.split()
    assert printed[:7] == [m.binary, "-machine", m.machine, "-cpu", m.cpu, "-m", "256M"]
    run = QemuRun(Machine(name, 256), Medium([], "nothing"), workdir=tmp_path)
    try:
        cmd = run.command()
    finally:
        run.close()
    assert cmd[:7] == [m.binary, "-machine", m.machine, "-cpu", m.cpu, "-m", "256"]
    assert ("-drive" in cmd) == bool(m.firmware_files)
    assert any(a.startswith("if=pflash") and m.firmware_files[0] in a for a in cmd) == bool(m.firmware_files)


@pytest.mark.parametrize("name", X86)
def test_every_machine_load_accepts_verify_boots_or_refuses_in_one_line(name):
    plat = resolve(f"{name}:256M")
    booted = []
    for loader in verifiable_loaders():
        try:
            machine, kind = machine_for(plat, loader)
        except RecipeError as exc:
            assert "\n" not in exc.message and "give --platform" in exc.message, exc.message
            continue
        assert machine.declared is machines.MACHINES[name] and machine.memory_mib == 256
        booted.append(loader)
    assert booted, f"verify boots nothing on {name}"


def test_device_tree_machines_are_one_registry():
    """qemu-virt-* are declared in bootforge/machines/ (one family module), nowhere else: load's
    platform, its printed command, the DTB dump (-machine virt,dumpdtb with the same arguments) and
    help all read that declaration."""
    import bootforge.fdtboot.machines as fdt_machines
    assert VIRT == ["qemu-virt-aarch64", "qemu-virt-arm", "qemu-virt-riscv64"]
    assert not hasattr(fdt_machines, "MACHINES") and not hasattr(fdt_machines, "Machine")
    assert {machines.MACHINES[n].__module__ for n in machines.MACHINES} == {"bootforge.machines"}
    assert {n: (machines.MACHINES[n].arch, machines.MACHINES[n].ram_base, machines.MACHINES[n].boot_registers)
            for n in VIRT} == {"qemu-virt-aarch64": ("aarch64", 0x40000000, ("x0", "x1", "x2", "x3")),
                               "qemu-virt-arm": ("arm", 0x40000000, ("r0", "r1", "r2")),
                               "qemu-virt-riscv64": ("riscv64", 0x80000000, ("a0", "a1"))}


@pytest.mark.parametrize("name", VIRT)
def test_device_tree_machine_platform_is_its_declaration(name):
    """The platform NAME:256M is the registry's machine: firmware fdt, no E820 (the map is the
    /memory of the DTB QEMU dumps), the command load prints has the declared -machine and -cpu,
    and verify says in one line why it does not boot it."""
    m = machines.MACHINES[name]
    require(m.binary)
    plat = resolve(f"{name}:256M")
    assert plat.qemu is m and plat.devicetree.machine is m and plat.firmware == "fdt"
    assert plat.int12_kib is None and plat.ebda is None and plat.memory_map.source == "fdt"
    assert [(r.start, r.size) for r in plat.memory_map.ranges if r.start == m.ram_base] == [(m.ram_base, 256 << 20)]
    assert plat.qemu_command == f"{m.binary} -machine virt -cpu {m.cpu} -m 256M"
    assert plat.devicetree.dtb_source.startswith("QEMU ") and "-machine virt,dumpdtb" in plat.devicetree.dtb_source
    got = m.memory_map(256 << 20, name).memory_map
    assert [(r.start, r.size, r.type) for r in got.ranges] == [(r.start, r.size, r.type) for r in plat.memory_map.ranges]
    for loader in verifiable_loaders():
        with pytest.raises(RecipeError) as exc:
            machine_for(plat, loader)
        assert "\n" not in exc.value.message and name in exc.value.message


def test_device_tree_machine_sizes_are_checked_by_the_declaration():
    with pytest.raises(RecipeError, match="qemu-virt-arm: give at least 128 MiB in whole MiB"):
        resolve("qemu-virt-arm:64M")
    with pytest.raises(RecipeError, match="qemu-virt-riscv64 needs a memory size"):
        resolve("qemu-virt-riscv64")


def test_map_files_are_refused_naming_every_machine():
    with pytest.raises(RecipeError, match="verify runs on qemu-pc-seabios:<mem>, qemu-pc-seabios-i386:<mem>, "
                                          "qemu-q35-ovmf:<mem>"):
        machine_for(resolve("r820-efi"), "grub-efi-mb2")


def test_gdb_register_layouts_name_eax_ebx_eip_in_reply_order():
    """qemu-system-i386's 'g' reply is gdb-xml/i386-32bit.xml's order (eax ecx edx ebx esp ebp
    esi edi eip, 4 bytes each); qemu-system-x86_64's is i386-64bit.xml's (rax rbx ..., 8 bytes)."""
    gdb = GdbRemote.__new__(GdbRemote)
    words = list(range(1, 20))
    gdb.request = lambda payload: b"".join(w.to_bytes(4, "little") for w in words).hex()
    regs = gdb.registers(machines.MACHINES["qemu-pc-seabios-i386"].gdb_registers)
    assert (regs["rax"], regs["rbx"], regs["rip"]) == (1, 4, 9)
    gdb.request = lambda payload: b"".join(w.to_bytes(8, "little") for w in words).hex()
    regs = gdb.registers(machines.MACHINES["qemu-pc-seabios"].gdb_registers)
    assert (regs["rax"], regs["rbx"], regs["rip"]) == (1, 2, 17)


def test_the_i386_machine_is_the_pc_machine_without_amds_hole():
    amd, intel = resolve("qemu-pc-seabios:256M"), resolve("qemu-pc-seabios-i386:256M")
    assert amd.memory_map.ranges[:6] == intel.memory_map.ranges
    assert len(amd.memory_map.ranges) == 7 and amd.memory_map.ranges[6].start == 0xFD00000000


@pytest.mark.qemu
def test_qemu_pc_seabios_i386_boots_in_verify(tmp_path):
    """verify runs qemu-system-i386 (32-bit gdbstub registers) and QEMU's -kernel there matches
    load's prediction field by field."""
    require("qemu-system-i386")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[load]\nkernel = "{LOAD_ROOT / "kernel-mb1"}"\nloader_path = "{LOAD_ROOT / "kernel-mb1"}"\n'
                      f'cmdline = "a=b"\nplatform = "qemu-pc-seabios-i386:128M"\nloader = "qemu-mb1"\n')
    proc = run_bootforge("verify", "--json", "-q", recipe)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr)
    doc = json.loads(proc.stdout)
    assert doc["ok"] and doc["status"] == "entry" and doc["registers"]["rax"] & 0xFFFFFFFF == 0x2BADB002
    assert "qemu-system-i386" in doc["machine"]
    assert doc["fields"] and all(f["match"] for f in doc["fields"] if f["counted"])
    assert {f["name"]: f["observed"] for f in doc["fields"]}["mmap entries"] == 6   # no HyperTransport hole


@pytest.mark.parametrize("command", ["load", "verify"])
def test_platform_help_lists_every_machine(command):
    text = " ".join(run_bootforge(command, "--help", check=0).stdout.split()).replace("- ", "-")
    for name in machines.MACHINES:
        assert f"{name}:<mem>" in text, (command, name)
