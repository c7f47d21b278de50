"""Kernel loader verdicts: will this loader load this file as a kernel, and if not, why.

One module per loader (grub, qemu, limine, syslinux); each check follows
what the loader's code does (GRUB 2.06 multiboot*.c, QEMU 7.2
hw/i386/multiboot.c, Syslinux 6.04 com32/mboot, Limine
common/protos/multiboot*.c) and refuses with the loader's own message
(Verdict.words). The verdict is about the file as given: GRUB decompresses
gzip/xz itself, Syslinux gunzips, QEMU and Limine read the bytes as they are
(KernelLoader.reads).

Names: a verdict is <loader>-<protocol> (grub-mb1, grub-mb2, qemu-mb1,
syslinux-mb1, limine-mb1, limine-mb2): what the loader says about a file,
whatever the firmware. Loader policies (bootforge.loader.policies) are
<loader>[-<firmware>]-<protocol> and each names the verdict it defers to.

A new verdict is one function plus one line:

    @kernel_loader("myloader-mb2", "multiboot2", reads="as-given", source="myloader/src/mb2.c")
    def myloader_mb2(data, compressed=None):
        ...
        return refuse("myloader-mb2", "the loader's message") or accept("myloader-mb2", "loads ...")

in a module listed in VERDICT_MODULES (one line per module).
"""

import importlib
from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.registry import Registry
from bootforge.verdict import Verdict

# One line per module that registers kernel loader verdicts; their order is inspect's order.
VERDICT_MODULES = (
    "grub",
    "qemu",
    "limine",
    "syslinux",
    "ipxe",
)
READS = ("as-given", "decompressed", "gunzipped")
WORDS = ("loads", "REFUSES", "warns")      # how a kernel loader verdict reads in `inspect` text


@dataclass(frozen=True)
class KernelLoader:
    name: str           # <loader>-<protocol>: "grub-mb2"
    protocol: str       # "multiboot1" | "multiboot2"
    reads: str          # which bytes the loader sees: "as-given", "decompressed" (gzip and xz), "gunzipped"
    judge: object       # (data, compressed=None) -> Verdict
    source: str         # upstream file(s) the rules follow


def _import_modules():
    for module in VERDICT_MODULES:
        importlib.import_module(f"{__name__}.{module}")


KERNEL_LOADERS = Registry("kernel loader verdict", loader=_import_modules)


def kernel_loader(name, protocol, *, reads, source):
    """Register the decorated judge (data, compressed=None) -> Verdict as verdict *name*."""
    if reads not in READS:
        raise ValueError(f"reads={reads!r} is not one of {READS}")

    def register(judge):
        KERNEL_LOADERS.register(name, KernelLoader(name, protocol, reads, judge, source))
        return judge
    return register


_SAME = object()


def refuse(subject, reason, words=_SAME, **facts):
    """The loader refuses; *words* is its own message (default: the reason is the message)."""
    return Verdict(subject, False, reason, words=reason if words is _SAME else words, facts=facts)


def accept(subject, reason="loads", **facts):
    return Verdict(subject, True, reason, facts=facts)


def is_linux_bzimage(data):
    return len(data) > 0x206 and data[0x202:0x206] == b"HdrS"


def loader_bytes(reads, given, decompressed, compressed=None):
    """The bytes a loader that *reads* so (KernelLoader.reads) sees of a file *given* as it is
    and *decompressed* (the same bytes when the file is not compressed)."""
    if reads == "decompressed":
        return decompressed
    if reads == "gunzipped":
        return decompressed if compressed == "gzip" else given
    return given


def verdict(name, data, compressed=None):
    """Verdict *name* on *data*, the bytes that loader reads."""
    return KERNEL_LOADERS.get(name).judge(data, compressed)


def verdicts(data, raw, compressed=None):
    """{verdict name: Verdict} for the file as given (*data*) and decompressed (*raw*)."""
    out = {}
    for name, loader in KERNEL_LOADERS.items():
        view = loader_bytes(loader.reads, data, raw, compressed)
        try:
            out[name] = loader.judge(view, compressed)
        except FormatError as exc:
            # A header whose length or tags lie (issue 15 item 9): this loader's exact words for
            # it are not modelled, so the verdict says what is wrong without claiming words.
            out[name] = refuse(name, f"header unreadable: {exc}", words=None)
    return out
