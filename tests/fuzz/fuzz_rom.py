"""Option ROMs: the chain walk, inspect's report (text and JSON), patch and extract.

Seeds: Debian's iPXE and SeaBIOS ROMs and QEMU's own option ROMs."""

from common import attempt, files, instrumented, main

with instrumented(exclude=["bootforge.compress", "bootforge.pe"]):
    from bootforge.commands.extract import extract_image
    from bootforge.inspect import inspect_data
    from bootforge.rom.patch import patch_rom

FAMILY = "rom"


def seeds():
    found = files("/usr/lib/ipxe/qemu/*.rom", "/usr/lib/ipxe/*.rom", "/usr/share/seabios/vgabios*.bin",
                  "/usr/share/qemu/*.bin", "build/**/*.rom")
    return [(n, d) for n, d in found if d[:2] == b"\x55\xaa"]


def target(data):
    report = inspect_data("fuzz.rom", data, "option-rom")   # unusable input ends here (FormatError)
    report.render_text()
    report.to_json()
    # One more command per input, picked by the last byte: each re-reads the whole ROM,
    # and doing all of them would cut the executions per second by three.
    step = data[-1] % 3
    if step == 0:
        attempt(patch_rom, data, "fuzz.rom", device_id=0x1234)
    elif step == 1:
        attempt(patch_rom, data, "fuzz.rom", vendor_id=0x10EC, device_list=[0x1234], last=True,
                fix_checksums=True)
    else:
        attempt(extract_image, data, "fuzz.rom", len(data) % len(report.rom.images))


if __name__ == "__main__":
    main(FAMILY, seeds, target)
