"""Multiboot 1/2 headers and the kernels around them: `inspect` of ELF, flat Multiboot
images and Linux/PE wrappers (multiboot/headers.py, multiboot/inspect.py, the loader
verdicts). gzip/xz wrappers are left out: their decoders are not bootforge's.

Seeds: the mbdump stub and kernels built from recipes (build/), the fidelity kernels,
memtest86+ (Multiboot 1) and iPXE's ipxe.lkrn from /boot."""

from common import attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.inspect import inspect_data
    from bootforge.multiboot import headers

FAMILY = "multiboot"


def seeds():
    return files("build/stubs/*.elf", "build/kernels/*", "build/load-fidelity/*.elf",
                 "/boot/memtest86+ia32.bin", "/boot/memtest86+x64.bin", "/boot/ipxe.lkrn", max_size=400_000)


def target(data):
    # Each reader the content detection could pick, whatever the magic says.
    for name in ("elf", "linux-kernel", "pe", "multiboot-image"):
        report = attempt(inspect_data, "fuzz.kernel", data, name)
        if report is not None:
            report.render_text()
            report.to_json()
    attempt(headers.find_mb1, data)
    attempt(headers.find_mb2, data)


if __name__ == "__main__":
    main(FAMILY, seeds, target)
