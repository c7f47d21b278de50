"""Regenerate bootforge/data/aavmf-pages/*.json from the kept AAVMF boots (tests/data/aavmf/):
`.venv/bin/python tests/aavmf_capture.py` (test_aavmf_pages checks the stored files equal this)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bootforge.fdtboot.libfdt import Fdt  # noqa: E402
from bootforge.loader import aavmf_pages  # noqa: E402

DATA = ROOT / "tests" / "data" / "aavmf"
# name -> (machine, boot path, -m, the sizes the firmware was given, the kept exit map and DTB)
BOOTS = {
    "esp-1G": ("qemu-virt-aarch64", "esp", 1 << 30, {"file_size": 32956352}, "esp-1G"),
    "qemu-kernel-1G": ("qemu-virt-aarch64", "qemu-kernel", 1 << 30, {"file_size": 32956352}, "qemu-kernel-1G"),
    "qemu-kernel-initrd-1G": ("qemu-virt-aarch64", "qemu-kernel", 1 << 30,
                              {"file_size": 32956352, "initrd_size": 3145851}, "qemu-kernel-initrd-1G"),
    "qemu-kernel-uki-1G": ("qemu-virt-aarch64", "qemu-kernel-uki", 1 << 30,
                           {"file_size": 36173312, "initrd_size": 3145851}, "qemu-kernel-uki-1G"),
    "esp-uki-1G": ("qemu-virt-aarch64", "esp-uki", 1 << 30, {"file_size": 36173312, "initrd_size": 3145851},
                   "esp-uki-1G"),
}


def chosen(dtb):
    fdt = Fdt(dtb)
    node = fdt.path_offset("/chosen")
    return {name: int.from_bytes(fdt.getprop(node, name), "big") for name, _ in fdt.properties(node)}


def capture(name):
    machine, path, memory, inputs, kept = BOOTS[name]
    values = chosen((DATA / f"{kept}-dtb.bin").read_bytes())
    exit_map = aavmf_pages.parse_exit_map((DATA / f"{kept}-exit-map.bin").read_bytes())
    return aavmf_pages.derive_capture(
        exit_map, machine=machine, boot_path=path, memory=memory, inputs=inputs,
        system_table=values["linux,uefi-system-table"], memmap_start=values["linux,uefi-mmap-start"],
        memmap_size=values["linux,uefi-mmap-size"], source=f"tests/data/aavmf/{kept}-*.bin",
        held_above_image=path in ("qemu-kernel", "esp-uki", "qemu-kernel-uki"))


def main():
    for name in BOOTS:
        out = aavmf_pages.CAPTURE_DIR.joinpath(name + ".json")
        doc = capture(name)
        # one line per key (the ranges one per line): small diffs when a capture is redone
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items() if k != "ranges"]
        lines.append(' "ranges": [\n' + ",\n".join(f"  {json.dumps(r)}" for r in doc["ranges"]) + "\n ]")
        Path(str(out)).write_text("{\n" + ",\n".join(lines) + "\n}\n")
        print(out)


if __name__ == "__main__":
    main()
