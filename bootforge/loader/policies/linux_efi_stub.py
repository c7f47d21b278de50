"""The Linux EFI stub's memory map for the kernel (torvalds/linux
drivers/firmware/efi/libstub/x86-stub.c setup_e820(); arch/x86 boot_params).

Rules:
- E820 from the EFI map at ExitBootServices by the stub's table
  (bootforge.memmap.convert.efi_to_e820, convention "linux"): loader,
  boot-services and conventional memory -> RAM (soft-reserved with the SP
  attribute), ACPI reclaim -> ACPI, NVS -> NVS, unusable -> unusable,
  persistent -> PMEM, reserved/runtime/MMIO -> reserved, unknown types
  skipped; merged only with the previous entry, never sorted.
- boot_params.e820_table holds 128 entries (e820_entries at 0x1e8); the rest
  go to a SETUP_E820_EXT setup_data node (type 1, 20 bytes per entry).
- Where the stub puts the kernel image itself is not modelled (the recipe's
  kernel file is not read as a bzImage); only the map is predicted. Not
  compared with a real boot (no Linux kernel image is part of the corpus).
"""

from bootforge.errors import RecipeError
from bootforge.loader.policies import loader_policy
from bootforge.loader.result import LoadResult
from bootforge.memmap.convert import efi_to_e820
from bootforge.verdict import check

SOURCE = "Linux drivers/firmware/efi/libstub/x86-stub.c setup_e820()"
BOOT_PARAMS_E820 = 128


@loader_policy("linux-efi-stub", firmware="efi", protocol="linux", verdict=None, source=SOURCE, verified=False,
               boot_medium=None, wrong_firmware="linux-efi-stub needs an EFI platform",
               summary="the Linux EFI stub's E820 (boot_params)")
def load(req):
    plat = req.platform
    if plat.firmware != "efi":
        raise RecipeError("linux-efi-stub needs an EFI platform")
    res = LoadResult(req.loader, "linux", plat, SOURCE)
    e820 = efi_to_e820(plat.memory_map, "linux")
    res.maps["e820"] = e820
    res.mmap = [(r.start, r.size, r.type) for r in e820.ranges]
    res.cmdline = req.cmdline
    n = len(res.mmap)
    res.checks.append(check("boot-params-e820", True,
                            f"{min(n, BOOT_PARAMS_E820)} entries in boot_params.e820_table"
                            + (f", {n - BOOT_PARAMS_E820} in SETUP_E820_EXT" if n > BOOT_PARAMS_E820 else "")))
    res.notes.append("the kernel image placement of the stub is not modelled; only its E820")
    return res
