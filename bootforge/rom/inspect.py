"""`bootforge inspect` for option ROMs: text in EfiRom -d's layout (decoded
values in parentheses) with disrom.pl's checksum verdicts, and JSON."""

from bootforge.formats import optionrom as fmt
from bootforge.report import DocumentReport, Report
from bootforge.text import named
from bootforge.rom.firmware import ROM_FIRMWARE, code_type_name, firmware_verdicts
from bootforge.rom.model import class_name, parse_rom


def inspect_rom(path, data):
    rom = parse_rom(data, path)
    return RomReport(path=str(path), format="option-rom", problems=list(rom.problems), rom=rom,
                     verdicts=firmware_verdicts(rom))


def _pci30_pointers(pcir):
    """(configuration utility, DMTF CLP entry) offsets of a PCI 3.0 PCIR of 0x1C bytes, else None."""
    if pcir.revision < fmt.PCIR_REVISION_30 or pcir.pci30 is None:
        return None
    return pcir.pci30.config_utility_offset, pcir.pci30.dmtf_clp_offset


def _ok(flag):
    return "OK" if flag else "INCORRECT"


def _file_offset(image, offset):
    """An offset from the start of *image*, as the file offset it is."""
    return f"file offset {image.offset + offset:#x}"


class RomReport(Report):
    def __init__(self, *, rom, verdicts, **kw):
        super().__init__(**kw)
        self.rom = rom
        self.verdicts = verdicts        # {firmware name: [Verdict per image]} (bootforge.rom.firmware)

    # -- JSON -------------------------------------------------------------

    def to_json(self):
        unreadable = self.rom.unreadable
        return {"size": len(self.rom.data), "trailing_bytes": self.rom.trailing,
                "unreadable_image": None if unreadable is None else {
                    "index": unreadable.index, "offset": unreadable.offset, "error": unreadable.message,
                    "error_offset": unreadable.error_offset},
                "images": [self._image_json(i) for i in self.rom.images], "notes": list(self.rom.notes)}

    def _image_json(self, image):
        # Offsets inside an image's entry count from the image's first byte (as the headers'
        # pointers do); each structure's "file_offset" is where it is in the file.
        doc = {
            "index": image.index, "offset": image.offset, "size": image.size,
            "image_length": image.image_length, "code_type": image.code_type,
            "code_type_name": code_type_name(image.code_type), "last": image.last,
            "checksum": image.checksum, "checksum_ok": image.checksum_ok,
            "pcir": None, "pnp": None, "undi": None, "ipxe": None, "efi": None,
            **{name: verdicts[image.index].to_json() for name, verdicts in self.verdicts.items()},
        }
        if image.pcir is not None:
            p = image.pcir
            doc["pcir"] = {
                "offset": image.pcir_offset, "file_offset": image.offset + image.pcir_offset,
                "vendor_id": p.vendor_id, "device_id": p.device_id,
                "device_list": list(image.device_list), "length": p.length, "revision": p.revision,
                "class_code": p.class_code, "image_length": p.image_length,
                "code_revision": p.code_revision, "indicator": p.indicator,
                "max_runtime_length": p.max_runtime_length if p.revision >= fmt.PCIR_REVISION_30 else None,
                "config_utility_offset": None, "dmtf_clp_offset": None,
            }
            pointers = _pci30_pointers(p)
            if pointers is not None:
                doc["pcir"]["config_utility_offset"], doc["pcir"]["dmtf_clp_offset"] = pointers
        if image.pnp:
            doc["pnp"] = self._pnp_json(image.pnp[0], image.offset)
            doc["pnp"]["chain"] = [self._pnp_json(h, image.offset) for h in image.pnp[1:]]
        for sub in (image.undi, image.ipxe):
            if sub is not None:
                f = sub.fields
                entry = {"offset": sub.offset, "file_offset": image.offset + sub.offset, "length": f.length,
                         "checksum_ok": sub.checksum_ok}
                if sub.name == "UNDI":
                    entry.update(revision=f.revision, pxe_version=list(f.pxe_version),
                                 loader_entry=f.loader_entry, stack_size=f.stack_size,
                                 data_size=f.data_size, code_size=f.code_size,
                                 bus_type=f.bus_type.decode("latin-1"))
                    doc["undi"] = entry
                else:
                    entry.update(shrunk_size=f.shrunk_blocks * fmt.BLOCK, build_id=f.build_id)
                    doc["ipxe"] = entry
        if image.is_efi:
            h = image.header
            doc["efi"] = {"subsystem": h.subsystem, "machine": h.machine, "compression": h.compression,
                          "image_offset": h.efi_image_offset, "image_file_offset": image.offset + h.efi_image_offset,
                          "initialization_size": image.size,
                          "pe": image.pe.to_json() if image.pe else None}
            if image.decompressed is not None:
                doc["efi"].update(image.decompressed.to_json())
        return doc

    @staticmethod
    def _pnp_json(pnp, image_offset):
        f = pnp.fields
        return {"offset": pnp.offset, "file_offset": image_offset + pnp.offset, "revision": f.revision,
                "length": f.length * 16,
                "checksum_ok": pnp.checksum_ok, "device_id": f.device_id,
                "manufacturer": pnp.manufacturer, "product": pnp.product,
                "device_type": list(f.device_type), "device_indicators": f.device_indicators,
                "bcv": f.bcv, "bdv": f.bdv, "bev": f.bev, "next": f.next_offset}

    # -- text -------------------------------------------------------------

    def render_text(self):
        rom = self.rom
        out = [f"{self.path}: PCI option ROM, {len(rom.data)} bytes, {len(rom.images)} image(s)"]
        for image in rom.images:
            out += self._image_text(image)
        if rom.unreadable is not None:
            out.append(f"Not read: {rom.trailing} bytes from image {rom.unreadable.index} at "
                       f"{rom.unreadable.offset:#x} (cannot be read: see Problems) to the end of the file")
        elif rom.trailing:
            out.append(f"Trailing data after the last image: {rom.trailing} bytes")
        if rom.notes:
            out.append("Notes:")
            out += [f"  {n}" for n in rom.notes]
        if self.problems:
            out.append("Problems:")
            out += [f"  {p}" for p in self.problems]
        else:
            out.append("No problems found.")
        return "\n".join(out)

    def _image_text(self, image):
        kv = []

        def line(indent, key, value):
            kv.append(f"{'  ' * indent}{key:<26}{value}")

        h = image.header
        # Numbered from 0, as `patch --image`, `extract --image`, JSON and recipes count.
        # Offsets: a field's value as stored, then where it lands in the file.
        kv.append(f"Image {image.index} -- Offset {image.offset:#x} (file offset)")
        kv.append("  ROM header contents")
        line(2, "Signature", "0xAA55")
        if image.is_efi:
            line(2, "Initialization size", f"{h.initialization_size:#x} ({image.size} bytes)")
            line(2, "EFI signature", f"{fmt.EFI_ROM_SIGNATURE:#x}")
            line(2, "EFI subsystem", f"{h.subsystem:#x} ({fmt.EFI_SUBSYSTEMS.get(h.subsystem, 'unknown')})")
            line(2, "EFI machine type", named(h.machine, fmt.PeMachine.label_of(h.machine), "#x"))
            line(2, "Compression type", named(h.compression, fmt.EfiRomCompression.label_of(h.compression), "#x"))
            line(2, "EFI image offset", f"{h.efi_image_offset:#x} ({_file_offset(image, h.efi_image_offset)})")
        else:
            line(2, "Size", f"{h.size_blocks:#x} ({image.size} bytes)")
            line(2, "Init entry", h.init_entry.hex(" "))
        line(2, "PCIR offset", f"{h.pcir_offset:#x} ({_file_offset(image, h.pcir_offset)})")
        if not image.is_efi:
            line(2, "PnP offset", f"{h.pnp_offset:#x}" + (f" ({_file_offset(image, h.pnp_offset)})" if h.pnp_offset else ""))
        line(2, "Checksum", f"{image.checksum:#04x} over {image.size} bytes "
                            f"({_ok(image.checksum_ok) if not image.is_efi or image.checksum_ok else 'not 0: UEFI checks none'})")
        p = image.pcir
        if p is not None:
            kv.append("  PCI data structure")
            line(2, "Vendor ID", f"{p.vendor_id:#06x}")
            line(2, "Device ID", f"{p.device_id:#06x}")
            line(2, "Length", f"{p.length:#x}")
            line(2, "Revision", f"{p.revision:#x} ({'PCI 3.0' if p.revision >= fmt.PCIR_REVISION_30 else 'PCI 2.3'})")
            if p.revision >= fmt.PCIR_REVISION_30:
                ids = " ".join(f"{d:#06x}" for d in image.device_list) or "none"
                at = f"PCIR + {p.device_list_offset:#x} = file offset {image.offset + image.pcir_offset + p.device_list_offset:#x}" \
                    if p.device_list_offset else "no list (offset 0)"
                line(2, "Device list", f"{ids} ({at})")
            line(2, "Class code", f"{p.class_code:#08x} ({class_name(p.class_code)})")
            line(2, "Image length", f"{p.image_length:#x} ({image.image_length} bytes)")
            line(2, "Code revision", f"{p.code_revision:#06x}")
            line(2, "Code type", f"{p.code_type:#04x} ({code_type_name(p.code_type)})")
            line(2, "Indicator", f"{p.indicator:#04x} ({'last image' if image.last else 'not last'})")
            if p.revision >= fmt.PCIR_REVISION_30:
                line(2, "Max runtime length", f"{p.max_runtime_length:#x} ({p.max_runtime_length * fmt.BLOCK} bytes)")
            pointers = _pci30_pointers(p)
            if pointers is not None:
                # PCI Firmware Spec 3.0 table 5-2; disrom.pl prints both (0: none).
                line(2, "Config utility", f"{pointers[0]:#06x}")
                line(2, "DMTF CLP entry", f"{pointers[1]:#06x}")
        for pnp in image.pnp:
            f = pnp.fields
            kv.append(f"  $PnP header at {_file_offset(image, pnp.offset)}")
            line(2, "Revision / length", f"{f.revision} / {f.length * 16} bytes")
            line(2, "Checksum", f"{f.checksum:#04x} ({_ok(pnp.checksum_ok)})")
            line(2, "Manufacturer", repr(pnp.manufacturer) if pnp.manufacturer is not None else "none")
            line(2, "Product", repr(pnp.product) if pnp.product is not None else "none")
            line(2, "Device type", f.device_type.hex(" "))
            line(2, "Device indicators", f"{f.device_indicators:#04x}")
            line(2, "BCV / BDV / BEV", f"{f.bcv:#06x} / {f.bdv:#06x} / {f.bev:#06x} (from the image start)")
        for sub in (image.undi, image.ipxe):
            if sub is None:
                continue
            f = sub.fields
            kv.append(f"  {sub.name} header at {_file_offset(image, sub.offset)}")
            line(2, "Length", f"{f.length:#x}")
            line(2, "Checksum", f"{f.checksum:#04x} ({_ok(sub.checksum_ok)})")
            if sub.name == "UNDI":
                line(2, "PXE version", ".".join(str(v) for v in reversed(f.pxe_version)))
                line(2, "Loader entry", f"{f.loader_entry:#06x} (from the image start)")
                line(2, "Stack / data / code", f"{f.stack_size:#x} / {f.data_size:#x} / {f.code_size:#x}")
            else:
                line(2, "Shrunk size", f"{f.shrunk_blocks:#x} ({f.shrunk_blocks * fmt.BLOCK} bytes)")
                line(2, "Build id", f"{f.build_id:#010x}")
        if image.pe is not None:
            pe = image.pe
            kv.append("  PE image")
            line(2, "Machine", named(pe.machine, fmt.PeMachine.label_of(pe.machine), "#x"))
            line(2, "Subsystem", named(pe.subsystem, fmt.PeSubsystem.label_of(pe.subsystem)))
            line(2, "Size of image", f"{pe.size_of_image:#x}")
            line(2, "Entry point", f"{pe.entry_point:#x} (RVA)")
        if image.decompressed is not None:
            kv += ["  " + s for s in image.decompressed.text_lines()]
        kv.append("  Firmware")
        for name, fw in ROM_FIRMWARE.items():
            v = self.verdicts[name][image.index]
            line(2, fw.label, f"{v.status_word(fw.words)}: {v.reason}")
        return kv


def inspect_efi_driver(path, data):
    """A bare EFI driver: the PE report (headers, sections, signatures: bootforge/secureboot/report.py)
    and whether it can go in an option ROM, and which firmware loads it from there (pe/driver.py)."""
    # Function-level import: only EFI drivers load the PE and Secure Boot readers (a ROM never does).
    from bootforge.pe import read_pe_facts
    from bootforge.pe.driver import option_rom_verdict
    from bootforge.secureboot.report import inspect_efi_pe
    report = inspect_efi_pe(path, data)
    verdict = option_rom_verdict(read_pe_facts(data), len(data))
    report.doc["option_rom"] = verdict.to_json()
    return EfiDriverReport(path=report.path, format="efi-driver", problems=report.problems, doc=report.doc,
                           pe_text=report.render_text())


class EfiDriverReport(DocumentReport):
    # Not a dataclass of its own: making one costs every ROM's inspect ~0.5 ms at import.
    def __init__(self, *, pe_text="", **kw):
        super().__init__(**kw)
        self.pe_text = pe_text  # the PE report's text, the option-ROM line goes in before its problems

    def render_text(self):
        lines = self.pe_text.split("\n")
        v = self.doc["option_rom"]
        at = next((i for i, line in enumerate(lines) if line.startswith("  problem:")), len(lines))
        lines.insert(at, f"  {v['reason'][:1].upper()}{v['reason'][1:]}")
        return "\n".join(lines)
