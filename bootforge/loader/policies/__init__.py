"""Loader policies: one module per real loader; each cites its source and states its rules.

A policy is a function LoadRequest -> LoadResult declared with
@loader_policy(...) in its module: its name, the platform firmware it runs
on, the boot protocol, the kernel loader verdict it defers to
(bootforge.multiboot.verdicts), its options (bootforge.schema Fields, with
their defaults), its source, whether the fidelity matrix checks it against
the real loader, and the boot medium a real boot of it needs. The module is
registered by one line in POLICY_MODULES below. The CLI's choices, recipe
validation of [load.options], `load --help`, the verdict a refusal quotes and
the fidelity matrix all read POLICIES.

Names (one vocabulary, used in recipes, JSON and docs):
- a policy is <loader>-<firmware>-<protocol> when the loader exists for
  more than one firmware (grub-pc-mb2, grub-efi-mb2, ipxe-pcbios-mb1), and
  <loader>-<protocol> when one policy covers the loader wherever it runs
  (qemu-mb1, syslinux-mb1, limine-mb1); xen-efi and linux-efi-stub name
  what is loaded, not a Multiboot protocol.
- a kernel loader verdict is <loader>-<protocol> (grub-mb2, qemu-mb1): what
  the loader says about the file whatever the firmware; several policies
  defer to one verdict (grub-pc-mb2 and grub-efi-mb2 to grub-mb2).

run_policy() does what every policy shares before its own rules: the
platform's firmware must be one the policy runs on (else RecipeError: the
recipe is wrong), the verdict must accept the kernel (else LoaderRefusal
with the loader's words), and [load.options] defaults are filled in.
"""

import importlib
from dataclasses import dataclass, replace
from functools import partial

from bootforge.errors import LoaderRefusal, RecipeError
from bootforge.multiboot.verdicts import KERNEL_LOADERS, loader_bytes, verdict
from bootforge.registry import Registry
from bootforge.schema import defaults

# One line per policy module; the order is the order of `--loader` choices and docs.
POLICY_MODULES = (
    "grub_pc",
    "grub_efi",
    "grub_efi_mb1",
    "grub_pc_linux",
    "grub_efi_linux",
    "qemu_linux",
    "qemu_mb1",
    "syslinux_mb1",
    "ipxe_pcbios",
    "limine",
    "limine_linux",
    "xen_efi",
    "linux_efi_stub",
    "qemu_arm_kernel",
    "qemu_riscv_kernel",
    "uboot_booti",
    "uboot_bootm",
    "uboot_bootz",
    "linux_efi_stub_arm64",
)

# The kernel loader verdict each policy defers to (its @loader_policy(verdict=...)), indexed here so a
# lookup of a policy's verdict (the image builder's check, image/recipe.py verdict_for) imports no
# policy module: grub_pc.py alone pulls in loader.result, memmap, video (~17 ms of a 0.2 s BIOS ISO
# build, -X importtime). loader_policy() refuses a policy whose declaration disagrees or is missing.
VERDICTS = {
    "grub-pc-mb1": "grub-mb1", "grub-pc-mb2": "grub-mb2", "grub-efi-mb2": "grub-mb2", "grub-efi-mb1": "grub-mb1",
    "grub-pc-linux": None, "grub-efi-linux": None, "qemu-linux": None, "qemu-mb1": "qemu-mb1",
    "syslinux-mb1": "syslinux-mb1", "ipxe-pcbios-mb1": "ipxe-mb1", "limine-mb1": "limine-mb1",
    "limine-mb2": "limine-mb2", "limine-linux": None, "xen-efi": "grub-mb2", "xen-efi-esp": None,
    "linux-efi-stub": None, "qemu-arm-kernel": None, "qemu-riscv-kernel": None, "uboot-booti": None,
    "uboot-bootm": None, "uboot-bootz": None, "linux-efi-stub-arm64": None,
}

FIRMWARES = ("bios", "uefi", "fdt")           # Platform.firmware values ("fdt": a device-tree platform)
PROTOCOLS = ("multiboot1", "multiboot2", "xen", "linux")
# boot_medium: how `bootforge verify` and the fidelity matrix boot a policy for real: a key of
# bootforge.qemu.media.MEDIA, the builders ("qemu-kernel", "grub-pc-iso", "grub-efi-iso",
# "isolinux-iso", "ipxe-tftp", "limine-iso"); None when no real loader runs here.


@dataclass(frozen=True)
class Comparison:
    """What `bootforge verify` compares for a policy beyond the fields every policy predicts
    (bootforge.verify): declared with the policy, so verify names no policy itself."""
    entry: object = None            # kernel -> multiboot.entry.Entry where this loader jumps (None: its entry rule)
    mbi_size: bool = True           # MB2: the boot information's total_size is predicted
    mmap_from_tag17: bool = False   # MB2: tag 6 is also predicted from the EFI map the loader hands in tag 17
    profile_only: frozenset = frozenset()   # predicted from the parametric firmware profile only: shown, not
                                            # counted unless the platform is the loader's own printout
    not_modelled_on: tuple = ()     # ((firmware, frozenset of fields the policy does not model there), ...)
    # Boot-information bytes this loader leaves to others, shown by verify but not counted (each
    # with why): MB2 tag bytes the firmware decides on one firmware, beyond every policy's
    # (((firmware, tag, first byte, end or None for the tag's end, what, why), ...); offsets
    # relative to the tag with its 8-byte header), total_size decided there ((firmware, why), ...),
    # and bytes the loader never writes (MB2 tag padding, MB1 module entries' reserved word).
    firmware_data_on: tuple = ()
    total_size_firmware_on: tuple = ()
    unwritten_tag_padding: str = ""
    unwritten_module_reserved: str = ""

    def uncounted(self, platform):
        """The fields shown but not counted on *platform*."""
        out = set(self.profile_only) if not platform.grub_heap_included else set()
        for firmware, names in self.not_modelled_on:
            if platform.firmware == firmware:
                out |= set(names)
        return out


COMPARE_ALL = Comparison()


@dataclass(frozen=True)
class Policy:
    name: str
    firmware: tuple             # the Platform.firmware values it runs on: ("bios",), ("uefi",), ("bios", "uefi")
    protocol: str               # one of PROTOCOLS
    verdict: str | None         # the kernel loader verdict it defers to ("grub-mb2"), or None
    load: object                # LoadRequest -> LoadResult
    source: str                 # upstream files the rules follow
    verified: bool              # the fidelity matrix compares it with the real loader
    boot_medium: str | None     # how a real boot is made (a bootforge.qemu.media.MEDIA key), or None
    options: tuple = ()         # bootforge.schema.Field per [load.options] key it reads
    wrong_firmware: str = ""    # the RecipeError when the platform's firmware is not one it runs on
    summary: str = ""           # one line for `load --help`
    comparison: Comparison = COMPARE_ALL    # what verify compares beyond the common fields

    def defaults(self):
        return defaults(self.options)


def _import_modules():
    for module in POLICY_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    # Listed in POLICY_MODULES' order (then each module's own), whatever was imported first.
    rank = {f"{__name__}.{module}": i for i, module in enumerate(POLICY_MODULES)}
    POLICIES.order_by(lambda name, policy: rank.get(policy.load.__module__, len(rank)))


def module_named_after(name):
    """The module of POLICY_MODULES named after policy *name*, its longest such prefix
    (grub-pc-mb2: grub_pc_mb2, else grub_pc, else grub), or None."""
    parts = name.split("-")
    return next((m for m in ("_".join(parts[:n]) for n in range(len(parts), 0, -1)) if m in POLICY_MODULES),
                None)


def _import_module_of(name):
    # A lookup of one policy (the image builder's verdict check) imports the module named after it
    # only, not all of them; a name that module does not register is looked up in all (Registry.get).
    module = module_named_after(name)
    if module is not None:
        importlib.import_module(f"{__name__}.{module}")


POLICIES = Registry("loader", loader=_import_modules, finder=_import_module_of)


def loader_policy(name, *, firmware, protocol, verdict, source, verified, boot_medium, options=(),
                  wrong_firmware=None, summary="", comparison=COMPARE_ALL):
    """Register the decorated function (LoadRequest -> LoadResult) as policy *name*."""
    firmware = (firmware,) if isinstance(firmware, str) else tuple(firmware)
    if not set(firmware) <= set(FIRMWARES) or protocol not in PROTOCOLS:
        raise ValueError(f"policy {name}: firmware {firmware} / protocol {protocol!r} not in {FIRMWARES} / {PROTOCOLS}")
    if name not in VERDICTS or VERDICTS[name] != verdict:
        raise ValueError(f"policy {name}: verdict {verdict!r}, but VERDICTS says {VERDICTS.get(name, '(missing)')!r}")
    if wrong_firmware is None:
        wrong_firmware = f"{name} runs on {' or '.join(f.upper() for f in firmware)} platforms"

    def register(load):
        POLICIES.register(name, Policy(name, firmware, protocol, verdict, load, source, verified, boot_medium,
                                       tuple(options), wrong_firmware, summary, comparison))
        return load
    return register


def run_policy(p, req):
    """*p*'s prediction for *req*, after the checks every policy shares (see the module doc)."""
    if req.platform.firmware not in p.firmware:
        raise RecipeError(p.wrong_firmware)
    if p.verdict is not None:
        # The verdict on the bytes this loader reads: GRUB decompresses, Syslinux gunzips,
        # QEMU -kernel, iPXE and Limine 11.4.1 take the file as it is (xen.gz is refused).
        k = req.kernel
        given = k.given if k.given is not None else k.data
        found = verdict(p.verdict, loader_bytes(KERNEL_LOADERS.get(p.verdict).reads, given, k.data, k.compressed),
                        k.compressed)
        if not found.ok:
            raise LoaderRefusal(found.reason, loader=p.verdict, words=found.words)
    options = {**p.defaults(), **req.options}
    if options != req.options:
        req = replace(req, options=options)
    return p.load(req)


def comparison(name):
    """The Comparison policy *name* declares (every field compared for a name no policy has)."""
    return POLICIES.get(name).comparison if name in POLICIES else COMPARE_ALL


def policy(name):
    """The callable LoadRequest -> LoadResult of policy *name* (RecipeError when unknown)."""
    return partial(run_policy, POLICIES.get(name))
