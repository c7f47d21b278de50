"""Write bootforge/data/ovmf-pages/esp-xen-512M.json and esp-xen-3G.json, OVMF's map when BdsDxe
starts xen.efi from the xen-esp medium, from the kept real boots (tests/data/xen-efi-esp/
exit-map-*.json, the command in tests/data/xen-efi-esp/README.md):
`.venv/bin/python tests/xen_efi_esp_capture.py`.

Xen's own pieces (its image's Loader Code block, dom0's files, the trampoline) are returned to
conventional memory (bootforge.loader.ovmf_pages.derive_capture); OVMF's Boot Services pieces,
including those its drivers took while Xen read its files, stay."""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bootforge.formats.efi_memmap import EfiMemoryType as T  # noqa: E402
from bootforge.loader.ovmf_pages import CAPTURE_DIR, PAGE, derive_capture  # noqa: E402

XEN_EFI_FILE = 2827721          # /boot/xen-4.17-amd64.efi (xen-hypervisor-4.17-amd64 4.17.7+13)
# capture name: (kept exit map, top of low RAM of that boot); the 3G one stands for every size
# with RAM above 4 GiB (q35 keeps 2 GiB low from 2.75 GiB on)
CASES = {"esp-xen-512M": ("xen-efi-esp/exit-map-512M.json", 0x20000000),
         "esp-xen-3G": ("xen-efi-esp/exit-map-3G.json", 0x80000000)}


def exit_map(path):
    """[(type, start, end)] of a kept exit map."""
    doc = json.loads(Path(path).read_text())
    return [(T(t), s, s + n * PAGE) for t, s, n, _attr in doc["descriptors"]]


def default_top(efi):
    """The bottom of OVMF's bins: the Runtime Data piece right below Runtime Code."""
    return next(a for (t, a, b), (t2, a2, _) in zip(efi, efi[1:])
                if t == T.RUNTIME_SERVICES_DATA and t2 == T.RUNTIME_SERVICES_CODE and b == a2)


def derive(name):
    fixture, lowmem = CASES[name]
    efi = exit_map(HERE / "data" / fixture)
    image = next((a, b) for t, a, b in efi if t == T.LOADER_CODE)       # xen.efi's one Loader Code block
    return derive_capture(efi, image, XEN_EFI_FILE, "esp-xen", lowmem, {"file_size": XEN_EFI_FILE},
                          default_top(efi), f"tests/data/{fixture}")


def main():
    for name in CASES:
        Path(str(CAPTURE_DIR.joinpath(name + ".json"))).write_text(json.dumps(derive(name), indent=0) + "\n")


if __name__ == "__main__":
    main()
