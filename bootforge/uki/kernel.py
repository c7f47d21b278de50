"""The Linux x86 bzImage inside an EFI-stub kernel or a UKI's .linux section:
its setup header (bootforge/formats/bzimage.py) and version string."""

from dataclasses import dataclass

from bootforge.errors import FormatError
from bootforge.formats import bzimage as fmt
from bootforge.formats import flag_labels


@dataclass
class BzImage:
    header: object           # construct Container of fmt.SetupHeader
    version_string: str | None

    @property
    def version(self):
        return self.header.version

    def has(self, name):
        return self.version >= fmt.FIELD_SINCE.get(name, 0)

    def get(self, name):
        """A setup header field, or None when this protocol version has no such field."""
        return self.header[name] if self.has(name) else None

    @property
    def uname(self):
        """The release as `uname -r` prints it: the version string's first word
        (what ukify scrapes for .uname: Uname.scrape_x86)."""
        words = (self.version_string or "").split()     # blank (spaces only) in a crafted kernel
        return words[0] if words else None

    @property
    def setup_sects(self):
        return self.header.setup_sects or fmt.DEFAULT_SETUP_SECTS

    @property
    def protected_mode_offset(self):
        return (self.setup_sects + 1) * fmt.SECTOR

    def xloadflag_names(self):
        x = self.get("xloadflags") or 0
        return flag_labels(fmt.XLoadFlag, x)

    def to_json(self):
        h = self.header
        v = h.version
        return {
            "protocol_version": f"{v >> 8}.{v & 0xff:02d}", "protocol_version_raw": v,
            "kernel_version": self.version_string, "setup_sects": self.setup_sects,
            "loadflags": h.loadflags, "loadflags_names": flag_labels(fmt.LoadFlag, h.loadflags),
            "init_size": self.get("init_size"), "pref_address": self.get("pref_address"),
            "kernel_alignment": self.get("kernel_alignment"),
            "relocatable": bool(self.get("relocatable_kernel")) if self.has("relocatable_kernel") else None,
            "min_alignment": self.get("min_alignment"),
            "xloadflags": self.get("xloadflags"), "xloadflags_names": self.xloadflag_names(),
            "handover_offset": self.get("handover_offset"), "initrd_addr_max": self.get("initrd_addr_max"),
            "cmdline_size": self.get("cmdline_size"), "payload_offset": self.get("payload_offset"),
            "payload_length": self.get("payload_length"), "kernel_info_offset": self.get("kernel_info_offset"),
        }


def is_bzimage(data):
    return len(data) >= fmt.SETUP_HEADER_END and data[fmt.HDRS_OFFSET:fmt.HDRS_OFFSET + 4] == fmt.HDRS_MAGIC


def read_bzimage(data, base_offset=0):
    """The setup header of the bzImage *data*; FormatError without 'HdrS' or boot_flag 0xAA55."""
    if len(data) < fmt.SETUP_HEADER_END:
        raise FormatError(f"too short for a Linux setup header ({len(data)} bytes, need {fmt.SETUP_HEADER_END:#x})",
                          offset=base_offset)
    if data[fmt.HDRS_OFFSET:fmt.HDRS_OFFSET + 4] != fmt.HDRS_MAGIC:
        raise FormatError(f"no Linux setup header: expected 'HdrS' at {fmt.HDRS_OFFSET:#x}, found "
                          f"{data[fmt.HDRS_OFFSET:fmt.HDRS_OFFSET + 4].hex()}", offset=base_offset + fmt.HDRS_OFFSET)
    h = fmt.SetupHeader.parse(data[fmt.SETUP_HEADER_OFFSET:fmt.SETUP_HEADER_END])
    if h.boot_flag != fmt.BOOT_FLAG:
        raise FormatError(f"setup header boot_flag {h.boot_flag:#06x}, not 0xaa55", offset=base_offset + 0x1FE)
    version_string = None
    if h.kernel_version:
        at = h.kernel_version + 0x200
        end = data.find(b"\0", at, at + 256)
        if at < len(data) and end > at:
            version_string = data[at:end].decode("latin-1")
    return BzImage(h, version_string)
