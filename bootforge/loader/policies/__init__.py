"""One module per real loader; each cites its source and states its rules.

POLICIES maps a loader name to "module:function"; the function takes a
LoadRequest and returns a LoadResult, or raises a BootforgeError with the
real loader's own words when the real loader refuses.
"""

import importlib

from bootforge.errors import RecipeError

POLICIES = {
    "qemu-mb1": "qemu_mb1:load",
    "grub-pc-mb1": "grub_pc:load_mb1",
    "grub-pc-mb2": "grub_pc:load_mb2",
    "syslinux-mb1": "syslinux_mb1:load",
    "ipxe-pcbios-mb1": "ipxe_pcbios:load",
    "grub-efi-mb2": "grub_efi:load",
    "xen-efi": "xen_efi:load",
    "linux-efi-stub": "linux_efi_stub:load",
    "limine-mb1": "limine:load_mb1",
    "limine-mb2": "limine:load_mb2",
}
LOADERS = ("grub-pc-mb1", "grub-pc-mb2", "grub-efi-mb2", "qemu-mb1", "syslinux-mb1", "ipxe-pcbios-mb1",
           "limine-mb1", "limine-mb2", "xen-efi", "linux-efi-stub")


def policy(name):
    target = POLICIES.get(name)
    if target is None:
        if name in LOADERS:
            raise RecipeError(f"loader {name!r} is not implemented yet (implemented: {', '.join(POLICIES)})")
        raise RecipeError(f"unknown loader {name!r} (known: {', '.join(LOADERS)})")
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(f"bootforge.loader.policies.{module}"), func)
