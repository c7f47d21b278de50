"""OVMF's page allocator model (bootforge/loader/ovmf_pages.py) against the real OVMF boots kept
in tests/data/linux-ovmf (commands in tests/data/README.md): replaying OVMF's LoadImage and the
EFI stub's allocations on the map captured at one memory size gives every Loader Code/Data
piece, the initrd (RAMDISK) and the setup_data node the kernel printed, at the other sizes too
(the 512M captures predict 192M..2G, the 3G ones 5G), and boot_params, cmd_line_ptr, the
initrd and setup_data read at the kernel's entry on boots at sizes no capture comes from
(QEMU -kernel, the UKI by -kernel and as a disk's EFI/BOOT/BOOTX64.EFI), and on boots of kernel,
initrd and UKI file sizes no capture comes from (for_inputs: QemuKernelLoaderFsDxe's blobs on the
-kernel paths; the ESP paths' map does not depend on the file size). No QEMU here."""

import json
from pathlib import Path

import pytest

from conftest import DATA, require, run_bootforge
from test_linux_sdboot import image_recipe as sdboot_recipe
from test_linux_uki_esp import image_recipe
from test_uki_build import CMDLINE as UKI_CMDLINE
from test_uki_build import INITRD_SIZE, KERNEL, OS_RELEASE, bootforge_uki, make_initrd, write_recipe

from bootforge.formats.efi_memmap import EfiMemoryType as T
from bootforge.loader import ovmf_pages
from bootforge.uki.dmesg import parse_kernel_log

FIXTURES = DATA / "linux-ovmf"
MIB = 1 << 20
PAGE = 0x1000
KERNEL_FILE = 8247232                   # Debian's vmlinuz-6.1.0-57-amd64, the fixtures' kernel
KERNEL_IMAGE = 0x822000                 # its SizeOfImage
UKI_FILE, UKI_IMAGE = 9380864, 0x8fa200  # the bootforge UKI of test_uki_build.bootforge_uki
GDB = DATA / "ovmf-pages"               # the boots stopped at the kernel's entry (tests/data/README.md)
VGA_ROM = 39936                         # Debian seabios 1.16.2 vgabios-stdvga.bin
CASES = [("kernel", m) for m in ("192M", "256M", "512M", "1G", "2G", "3G", "5G")] + \
    [("kernel-initrd", "512M"), ("kernel-initrd", "3G"), ("ovmf-pages/bootforge-uki", "512M"), ("ovmf-pages/bootforge-uki", "3G"),
     ("ovmf-pages/uki-esp", "512M"), ("ovmf-pages/uki-esp", "3G"), ("linux-uki-esp/uki-esp", "512M"),
     ("ovmf-pages/sdboot-uki", "512M"), ("ovmf-pages/sdboot-uki", "3G"), ("linux-sdboot/sdboot-uki", "512M")]


def ram_of(mem):
    return int(mem[:-1]) * (MIB if mem.endswith("M") else 1024 * MIB)


def lowmem_of(ram):
    return 0x80000000 if ram >= 0xB0000000 else ram


def replayed(what, mem):
    ram = ram_of(mem)
    uki = "uki" in what
    initrd = INITRD_SIZE if what != "kernel" else 0
    path = ("sdboot-uki" if "sdboot" in what else "esp-uki" if "esp" in what else "qemu-kernel-uki") if uki \
        else "qemu-kernel"
    cap = ovmf_pages.find_capture("qemu-q35-ovmf", path, ram, lowmem_of(ram),
                                  bool(initrd) and not uki)
    got = ovmf_pages.replay(cap, lowmem_of(ram), file_size=UKI_FILE if uki else KERNEL_FILE,
                            size_of_image=UKI_IMAGE if uki else KERNEL_IMAGE, initrd_size=initrd,
                            initrd_max=(1 << 64) - 1, rom_sizes=[VGA_ROM], kernel_size_of_image=KERNEL_IMAGE)
    return cap, got


@pytest.mark.parametrize("what,mem", CASES)
def test_replay_gives_every_loader_piece_the_kernel_printed(what, mem):
    log = parse_kernel_log(((DATA if "/" in what else FIXTURES) / f"{what}-{mem}.txt").read_text())
    cap, got = replayed(what, mem)
    # every Loader Code/Data piece of the map at ExitBootServices but the decompressed kernel
    # (efi_random_alloc's lowest slot, linux_efi_stub.kernel_slot)
    real = sorted((a, b, t) for t, a, b in log.efi if t in (T.LOADER_CODE, T.LOADER_DATA) and a != 0x1600000)
    assert sorted((a, b, t) for a, b, t in got.pm.ranges if t in (T.LOADER_CODE, T.LOADER_DATA)) == real
    assert (T.LOADER_CODE, *got.image) in log.efi
    assert (got.initrd[0] if got.initrd else None) == (log.ramdisk[0] if log.ramdisk else None)
    assert got.setup_data == [a for a, _ in log.setup_data_nodes()]


def test_the_other_sizes_are_predicted_not_captured():
    """Only 512M and 3G boots made the captures; the rest of CASES are predictions."""
    sources = {ovmf_pages.read_capture(n).source for n in ovmf_pages.CAPTURES.values()}
    assert all(s.endswith(("-512M.txt", "-3G.txt")) for s in sources)
    predicted = [f"{w}-{m}" for w, m in CASES if f"tests/data/{w if '/' in w else 'linux-ovmf/' + w}-{m}.txt"
                 not in sources]
    # linux-uki-esp/uki-esp-512M: the same disk booted in another session (the capture is a new boot)
    assert predicted == ["kernel-192M", "kernel-256M", "kernel-1G", "kernel-2G", "kernel-5G",
                         "linux-uki-esp/uki-esp-512M", "linux-sdboot/sdboot-uki-512M"]


def test_captures_are_the_kept_boots():
    """bootforge/data/ovmf-pages/*.json are what tests/ovmf_pages_capture.py derives from the fixtures."""
    import ovmf_pages_capture as gen
    assert sorted(gen.CASES) == sorted(ovmf_pages.CAPTURES.values())
    for name in gen.CASES:
        stored = json.loads(Path(str(ovmf_pages.CAPTURE_DIR.joinpath(name + ".json"))).read_text())
        assert stored == json.loads(json.dumps(gen.derive(name))), name
    assert sorted(gen.LIMINE_DISK) == sorted(ovmf_pages.LIMINE_DISK_CAPTURES.values())
    for name in gen.LIMINE_DISK:
        stored = json.loads(Path(str(ovmf_pages.CAPTURE_DIR.joinpath(name + ".json"))).read_text())
        assert stored == json.loads(json.dumps(gen.derive_limine_disk(name))), name


def test_allocator_rules():
    """CoreFindFreePagesI: the highest fitting block at or below MaxAddress in the default bin;
    pool pages carry POOL_HEAD + POOL_TAIL; a freed block is conventional again and merges."""
    pm = ovmf_pages.PageMap([[0x1000, 0x9000, T.CONVENTIONAL], [0x9000, 0xA000, T.BOOT_SERVICES_DATA],
                             [0xA000, 0xC000, T.CONVENTIONAL], [0xC000, 0x10000, T.CONVENTIONAL]], 0xE000)
    assert pm.allocate("a", T.LOADER_DATA, 2) == 0xC000          # below the default bin's top
    assert pm.allocate("b", T.LOADER_DATA, 3) == 0x6000          # the 2 pages at 0xa000 are too small
    assert pm.allocate("c", T.LOADER_DATA, 1, max_address=0x4fff) == 0x4000
    # POOL_HEAD 0x18 + POOL_TAIL 0x10 over the request rounded up to 8: the pool head and tail of the
    # freed kernel buffer of a real AAVMF boot both say file size + 0x28 (tests/test_aavmf_kernel_sizes.py).
    assert ovmf_pages.pool_pages(40000 + 64 - 64) == 10 and ovmf_pages.pool_pages(4096 - 40) == 1
    assert ovmf_pages.pool_pages(4096 - 39) == 2
    assert pm.allocate_pool("d", T.LOADER_DATA, 5000) == (0xA000, 0xA018)
    assert pm.allocate("e", T.LOADER_DATA, 64) is None
    pm.free(0x6000, 3)
    assert [0x1000, 0x4000, T.CONVENTIONAL] in pm.ranges and [0x5000, 0x9000, T.CONVENTIONAL] in pm.ranges


def load(tmp_path, kernel, memory, initrd=None, cmdline="console=ttyS0"):
    lines = ["[load]", f'kernel = "{kernel}"', f'platform = "qemu-q35-ovmf:{memory}"', 'loader = "linux-efi-stub"']
    if initrd is None and not str(kernel).endswith(".efi") or initrd:
        lines.append(f'cmdline = "{cmdline}"')
    if initrd:
        lines += ["[[load.modules]]", f'path = "{initrd}"']
    recipe = tmp_path / "load.toml"
    recipe.write_text("\n".join(lines) + "\n")
    return json.loads(run_bootforge("load", recipe, "--json", check=0).stdout)["linux"]


def read_gdb(path):
    """What tests/data/ovmf-pages/gdb-*.txt read at the kernel's 64-bit entry (0x1600000): RSI =
    boot_params, then ramdisk_image/ramdisk_size (0x218), cmd_line_ptr (0x228), setup_data (0x250)
    and the command line string."""
    lines = path.read_text().splitlines()
    rsi = int(next(x for x in lines if x.startswith("rsi")).split()[1], 16)
    words = {int(a.rstrip(":"), 16) - rsi: [int(w, 16) for w in rest.split()]
             for a, _, rest in (x.partition("\t") for x in lines if x.startswith("0x") and "\t" in x)
             if not rest.startswith('"')}
    text = next(x for x in lines if x.startswith("0x") and '\t"' in x).split("\t", 1)[1].strip('"')
    return {"boot_params": rsi, "ramdisk_image": words[0x218][0], "ramdisk_size": words[0x218][1],
            "cmd_line_ptr": words[0x228][0], "setup_data": words[0x250][0] | words[0x250][1] << 32, "cmdline": text}


GDB_CASES = [("gdb-kernel-initrd-512M", "kernel-initrd", "512M"), ("gdb-kernel-initrd-3G", "kernel-initrd", "3G"),
             ("gdb-bootforge-uki-1G", "uki", "1G"), ("gdb-bootforge-uki-5G", "uki", "5G"), ("gdb-uki-esp-1G", "uki-esp", "1G"),
             ("gdb-sdboot-uki-1G", "sdboot", "1G")]


@pytest.mark.parametrize("name,what,mem", GDB_CASES)
def test_load_equals_the_boot_params_the_kernel_got(tmp_path, name, what, mem):
    """`bootforge load` (linux.placement, the fields verify reads) against the boot_params pointer
    in RSI, cmd_line_ptr, ramdisk_image/size and setup_data read through QEMU's gdbstub at the
    kernel's entry on real OVMF boots. The UKI's 1G boot is predicted from its 512M capture (the
    command line's offset in systemd-stub's pool page was read from this boot)."""
    require(KERNEL)
    real = read_gdb(GDB / f"{name}.txt")
    if what == "uki":
        (tmp_path / "uki").mkdir()
        linux = load(tmp_path, bootforge_uki(tmp_path / "uki"), mem)
    elif what in ("uki-esp", "sdboot"):     # the [image] disks: the UKI as BOOTX64.EFI / under systemd-boot
        recipe = image_recipe(tmp_path) if what == "uki-esp" else sdboot_recipe(tmp_path)
        linux = json.loads(run_bootforge("load", recipe, "--platform", f"qemu-q35-ovmf:{mem}", "--json",
                                         check=0).stdout)["linux"]
        assert linux["placement"]["boot_path"] == ("esp-uki" if what == "uki-esp" else "sdboot-uki")
    else:
        linux = load(tmp_path, KERNEL, mem, make_initrd(tmp_path / "initrd.img"),
                     cmdline="console=ttyS0 earlyprintk=serial efi=debug nokaslr panic=-1")
    got = linux["placement"]
    assert got["exact"], got["reason"]
    assert got["boot_params"] == real["boot_params"]
    assert got["cmd_line_ptr"] == real["cmd_line_ptr"] and got["cmdline_page"] == real["cmd_line_ptr"] & ~0xFFF
    assert (got["initrd"]["start"], got["initrd"]["size"]) == (real["ramdisk_image"], real["ramdisk_size"])
    assert got["setup_data"][0] == real["setup_data"] == linux["setup_data"][0]["address"]


def test_another_initrd_size_moves_the_fw_cfg_copy(tmp_path):
    """A different initrd size changes the map OVMF built before the loader (QemuKernelLoaderFsDxe's
    fw_cfg copy): the capture is moved by the blob rule (for_inputs), the initrd lands inside the
    bounds said for any boot path, one blob page higher than the captured 1060921-byte initrd."""
    require(KERNEL)
    small = load(tmp_path, KERNEL, "512M", make_initrd(tmp_path / "small.img", size=4096))
    kept = load(tmp_path, KERNEL, "512M", make_initrd(tmp_path / "kept.img"))
    p, b = small["placement"], small["initrd_bounds"]
    assert p["exact"] and b["above"] <= p["initrd"]["start"] < b["below"]
    assert kept["placement"]["exact"] and kept["placement"]["reason"] is None
    # 0x104 blob pages less below the kernel's blob: OVMF's later pieces, the file buffer and the
    # stub's pages all sit that much higher
    assert p["boot_params"] - kept["placement"]["boot_params"] == (0x104 - 2) * PAGE


LIMINE_OVMF = ["limine-ovmf-mb2-256M-mods3-1m.dump", "limine-ovmf-mb2-256M-mods3-16m.dump",
               "limine-ovmf-mb2-128M-mods1-1m.dump", "limine-ovmf-mb2-5G-mods1-1m.dump"]


@pytest.mark.parametrize("name", LIMINE_OVMF)
def test_limine_tag17_and_total_size_equal_the_real_boot(name, tmp_path):
    """Limine 11.4.1 under OVMF from its CD-ROM: tag 17 byte for byte and the MBI's total_size
    as the real Limine wrote them (tests/data/limine-*.dump). The 256M-mods3-1m and 5G dumps are
    the captures; 16m (other kernel link, same RAM) and 128M (other RAM) are predictions."""
    import struct
    from test_limine_policy import FIXTURES as LIMINE_FIXTURES, _needs_kernels, predict
    from bootforge.memmap.formats.mbdump import mbdump_bodies
    from bootforge.multiboot.dump import parse_dump
    _needs_kernels()
    data = (DATA / name).read_bytes()
    _, body = mbdump_bodies(name, data)
    res = predict(*LIMINE_FIXTURES[name], tmp_path)
    tags = {}
    pos, mbi = 8, res.mbi_bytes
    while pos + 8 <= len(mbi):
        t, size = struct.unpack_from("<II", mbi, pos)
        tags[t] = mbi[pos + 8:pos + size]
        pos += size + (-size % 8)
    assert tags[17] == body
    real = next(r for r in parse_dump(data)[2] if r.name == "mbi").data
    assert len(mbi) == struct.unpack_from("<I", real)[0] == struct.unpack_from("<I", mbi)[0]


# Inputs of sizes no capture has (tests/data/ovmf-pages/verify-*.json, tests/data/README.md):
# Debian's kernel with LONGER zero bytes appended, initrds of other sizes, a UKI around one.
LONGER = 1234567
OTHER_SIZES = {"kernel-longer-initrd5m-512M": ("kernel", "512M", 5 * MIB + 12345),
               "kernel-longer-1G": ("kernel", "1G", None),
               "uki-initrd3m-3G": ("uki", "3G", 3 * MIB + 777),
               "esp-uki-initrd3m-512M": ("esp-uki", "512M", 3 * MIB + 777),
               "sdboot-uki-initrd3m-512M": ("sdboot-uki", "512M", 3 * MIB + 777)}


def longer_kernel(tmp_path):
    path = tmp_path / "vmlinuz-longer"
    path.write_bytes(Path(KERNEL).read_bytes() + bytes(LONGER))
    return path


@pytest.mark.parametrize("src,dst", [("qemu-kernel-512M", "qemu-kernel-uki-512M"),
                                     ("qemu-kernel-3G", "qemu-kernel-uki-3G"),
                                     ("qemu-kernel-uki-512M", "qemu-kernel-512M")])
def test_the_blob_rule_turns_one_captured_file_size_into_another(src, dst):
    """QemuKernelLoaderFsDxe's FetchBlob pool for a file of another size: the pieces allocated
    after it move by the difference in pages. The bzImage's capture moved to the UKI's file size
    is the UKI's capture, piece for piece (both real boots), and back."""
    a, b = ovmf_pages.read_capture(src), ovmf_pages.read_capture(dst)
    got, why = ovmf_pages.for_inputs(a, {**a.inputs, "file_size": b.inputs["file_size"]})
    assert why is None
    assert [[x, y, int(t)] for x, y, t in got.ranges] == [[x, y, int(t)] for x, y, t in b.ranges]
    assert got.held == b.held and got.default_top == b.default_top


@pytest.fixture(scope="module")
def uki_initrd3m(tmp_path_factory):
    """The UKI of the uki-/esp-/sdboot- boots: test_uki_build's recipe keys, a 3 MiB + 777-byte initrd."""
    require(KERNEL)
    d = tmp_path_factory.mktemp("uki-initrd3m")
    make_initrd(d / "initrd.img", 3 * MIB + 777)
    (d / "os-release").write_text(OS_RELEASE)
    run_bootforge("build", write_recipe(d, kernel=KERNEL, cmdline=UKI_CMDLINE, os_release="os-release",
                                        output="uki.efi", initrd=["initrd.img"]), check=0)
    return d / "uki.efi"


@pytest.mark.parametrize("case", sorted(OTHER_SIZES))
def test_other_input_sizes_are_exact_from_the_captures(tmp_path, case, uki_initrd3m):
    """Real boots of a kernel, initrd and UKI of sizes no capture has, stopped at the kernel's
    entry (bootforge verify): boot_params, cmd_line_ptr, ramdisk_image/size and the setup_data
    node equal the prediction from the captures of other sizes."""
    require(KERNEL)
    kind, memory, initrd_size = OTHER_SIZES[case]
    seen = json.loads((GDB / f"verify-{case}.json").read_text())["observed"]
    initrd = make_initrd(tmp_path / "initrd.img", initrd_size) if initrd_size and kind == "kernel" else None
    if kind != "kernel":
        (tmp_path / "uki.efi").symlink_to(uki_initrd3m)
    if kind == "uki":
        got = load(tmp_path, tmp_path / "uki.efi", memory)
    elif kind != "kernel":
        # the disk: its ESP's EFI/BOOT/BOOTX64.EFI, or systemd-boot starting /EFI/Linux/debian.efi
        loader, where = ("uki", "/EFI/BOOT/BOOTX64.EFI") if kind == "esp-uki" else \
            ("systemd-boot", "/EFI/Linux/debian.efi")
        recipe = tmp_path / "disk.toml"
        recipe.write_text(f'[image]\nformat = "disk"\nloader = "{loader}"\noutput = "disk.img"\n[[image.entries]]\n'
                          f'title = "debian"\nkernel = "uki.efi"\nloader_path = "{where}"\nprotocol = "linux"\n')
        got = json.loads(run_bootforge("load", recipe, "--platform", f"qemu-q35-ovmf:{memory}", "--json",
                                       check=0).stdout)["linux"]
    else:
        got = load(tmp_path, longer_kernel(tmp_path), memory, initrd,
                   cmdline="console=ttyS0 earlyprintk=serial efi=debug nokaslr panic=-1")
    p = got["placement"]
    assert p["exact"], p["reason"]
    assert (p["boot_params"], p["cmd_line_ptr"], p["setup_data"]) == \
        (seen["boot_params"], seen["cmd_line_ptr"], seen["setup_data"])
    assert (p["initrd"] or {"start": 0, "size": 0}) == {"start": seen["ramdisk_image"], "size": seen["ramdisk_size"]}


def test_what_no_rule_moves_says_why():
    """A file that puts the ESP on another FAT type, or an initrd where the capture has none, is
    not moved: exact false with the reason."""
    cap = ovmf_pages.read_capture("esp-uki-512M")
    got, why = ovmf_pages.for_inputs(cap, {**cap.inputs, "file_size": 4 * MIB})
    assert got is None and "no rule here moves it" in why
    got, why = ovmf_pages.for_inputs(ovmf_pages.read_capture("qemu-kernel-512M"),
                                     {"file_size": KERNEL_FILE, "initrd_size": 4096})
    assert got is None and "no rule here moves it" in why
    got, why = ovmf_pages.for_inputs(cap, {**cap.inputs, "file_size": 20 * MIB})
    assert why is None and got.ranges == cap.ranges and got.inputs["file_size"] == 20 * MIB


def test_a_bigger_linux_section_is_placed_by_the_replay(tmp_path):
    """A UKI whose .linux declares 0x40000 more SizeOfImage (the PE header patched: systemd-stub's
    LoadImage from memory takes that many more pages): by -kernel at 512M boot_params,
    cmd_line_ptr, the initrd and setup_data equal the prediction from the captured UKI's map."""
    require(KERNEL)
    import struct
    data = bytearray(Path(KERNEL).read_bytes())
    at = struct.unpack_from("<I", data, 0x3C)[0] + 24 + 56        # OptionalHeader.SizeOfImage
    struct.pack_into("<I", data, at, struct.unpack_from("<I", data, at)[0] + 0x40000)
    (tmp_path / "vmlinuz").write_bytes(data)
    (tmp_path / "os-release").write_text(OS_RELEASE)
    make_initrd(tmp_path / "initrd.img")
    run_bootforge("build", write_recipe(tmp_path, kernel=str(tmp_path / "vmlinuz"), cmdline=UKI_CMDLINE,
                                        os_release="os-release", output="uki.efi", initrd=["initrd.img"]), check=0)
    seen = json.loads((GDB / "verify-uki-bigger-linux-512M.json").read_text())["observed"]
    p = load(tmp_path, tmp_path / "uki.efi", "512M")["placement"]
    assert p["exact"], p["reason"]
    assert (p["boot_params"], p["cmd_line_ptr"], p["initrd"]["start"], p["setup_data"]) == \
        (seen["boot_params"], seen["cmd_line_ptr"], seen["ramdisk_image"], seen["setup_data"])
    assert p["kernel_image"]["end"] - p["kernel_image"]["start"] == KERNEL_IMAGE + 0x40000
    # the same UKI's boot with efi=debug (its .cmdline) printed the .linux image where predicted:
    # 0x40000 lower than the captured UKI's, the UKI image and every Loader Data piece unmoved
    log = parse_kernel_log((GDB / "uki-bigger-linux-512M.txt").read_text())
    assert (T.LOADER_CODE, p["kernel_image"]["start"], p["kernel_image"]["end"]) in log.efi
    assert (T.LOADER_CODE, p["image"]["start"], p["image"]["end"]) in log.efi
