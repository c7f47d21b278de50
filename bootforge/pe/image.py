"""A PE/COFF image with its section table, read with the Constructs of
bootforge/formats/pe.py and validated the way a UEFI loader needs it
(EDK2 MdePkg/Library/BasePeCoffLib/BasePeCoff.c PeCoffLoaderGetPeHeader and
PeCoffLoaderLoadImage: header sizes, sections inside the file and the image).

Structural damage a loader could not even walk (pointers past the file,
a section table past the headers) is a FormatError; what a loader would refuse
in a readable image is left to the verdicts (bootforge/uki/verdicts.py).
"""

from dataclasses import dataclass, field

from bootforge.errors import FormatError
from bootforge.formats import flag_labels
from bootforge.formats import pe as fmt

MAX_SECTIONS = 96            # the PE specification's limit (Windows loader); EDK2 accepts more, nobody needs it


@dataclass
class Section:
    index: int
    name: str
    header_offset: int       # file offset of its 40-byte header
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int
    characteristics: int

    def data(self, image):
        """The section's bytes as loaded (raw data cut to the virtual size)."""
        n = min(self.raw_size, self.virtual_size) if self.virtual_size else self.raw_size
        return image[self.raw_offset:self.raw_offset + n]

    def flag_names(self):
        return flag_labels(fmt.SectionFlag, self.characteristics)

    def to_json(self):
        return {"name": self.name, "virtual_address": self.virtual_address, "virtual_size": self.virtual_size,
                "raw_offset": self.raw_offset, "raw_size": self.raw_size,
                "characteristics": self.characteristics, "flags": self.flag_names()}


@dataclass
class PeImage:
    e_lfanew: int
    machine: int
    characteristics: int
    time_date_stamp: int
    pointer_to_symbol_table: int
    magic: int
    optional_header_offset: int
    size_of_optional_header: int
    entry_point: int
    image_base: int
    section_alignment: int
    file_alignment: int
    size_of_image: int
    size_of_headers: int
    size_of_initialized_data: int
    checksum: int
    subsystem: int
    dll_characteristics: int
    section_table_offset: int
    directories_offset: int                             # file offset of data directory 0
    directories: dict = field(default_factory=dict)     # name -> (rva, size)
    sections: list = field(default_factory=list)

    def section(self, name):
        return next((s for s in self.sections if s.name == name), None)

    def directory_offset(self, index):
        """File offset of data directory entry *index* (it may lie past NumberOfRvaAndSizes)."""
        return self.directories_offset + 8 * index

    @property
    def checksum_offset(self):
        return self.optional_header_offset + fmt.OPT_CHECKSUM

    @property
    def section_table_end(self):
        return self.section_table_offset + len(self.sections) * fmt.SECTION_HEADER_SIZE

    def to_json(self):
        return {"format": "PE32+" if self.magic == fmt.PE32PLUS_MAGIC else "PE32", "machine": self.machine,
                "subsystem": self.subsystem, "subsystem_name": fmt.PeSubsystem.label_of(self.subsystem),
                "entry_point": self.entry_point, "image_base": self.image_base,
                "section_alignment": self.section_alignment, "file_alignment": self.file_alignment,
                "size_of_image": self.size_of_image, "size_of_headers": self.size_of_headers,
                "checksum": self.checksum, "dll_characteristics": self.dll_characteristics,
                "characteristics": self.characteristics, "time_date_stamp": self.time_date_stamp,
                "directories": {k: {"virtual_address": a, "size": s} for k, (a, s) in self.directories.items() if a or s}}


def _u16(data, at):
    return int.from_bytes(data[at:at + 2], "little")


def read_pe(data, base_offset=0):
    """The PeImage in *data* (offsets in errors relative to base_offset); FormatError when the
    headers or the section table cannot be walked, or a section's raw data lies past the file."""
    if data[:2] != fmt.DOS_SIGNATURE:
        raise FormatError(f"no PE image: expected 'MZ', found {data[:2].hex() or 'nothing'}", offset=base_offset)
    if len(data) < fmt.E_LFANEW_OFFSET + 4:
        raise FormatError("PE image truncated inside its DOS header", offset=base_offset + len(data))
    pe_at = fmt.DosHeader.parse(data[:fmt.E_LFANEW_OFFSET + 4]).e_lfanew     # a slice: construct copies what it is given
    if pe_at + fmt.COFF_HEADER_SIZE + 2 > len(data) or pe_at < fmt.E_LFANEW_OFFSET + 4:
        raise FormatError(f"PE header pointer e_lfanew {pe_at:#x} outside the file ({len(data):#x} bytes)",
                          offset=base_offset + fmt.E_LFANEW_OFFSET)
    if data[pe_at:pe_at + 4] != fmt.PE_SIGNATURE:
        raise FormatError(f"no 'PE\\0\\0' signature where e_lfanew points ({pe_at:#x})", offset=base_offset + pe_at)
    coff = fmt.CoffFileHeader.parse(data[pe_at:pe_at + fmt.COFF_HEADER_SIZE])
    opt_at = pe_at + fmt.COFF_HEADER_SIZE
    magic = _u16(data, opt_at)
    if magic not in fmt.OPTIONAL_HEADER_TAIL:
        raise FormatError(f"optional header magic {magic:#x}: neither PE32 (0x10b) nor PE32+ (0x20b)",
                          offset=base_offset + opt_at)
    tail_at = opt_at + fmt.OPTIONAL_HEADER_PARSED[magic]
    tail_struct = fmt.OPTIONAL_HEADER_TAIL[magic]
    dirs_at = tail_at + tail_struct.sizeof()
    if dirs_at > len(data) or coff.size_of_optional_header < dirs_at - opt_at:
        raise FormatError(f"PE optional header truncated (SizeOfOptionalHeader {coff.size_of_optional_header:#x})",
                          offset=base_offset + pe_at + 0x14)
    opt = fmt.OptionalHeader.parse(data[opt_at:tail_at])
    tail = tail_struct.parse(data[tail_at:dirs_at])
    n_dirs = tail.number_of_rva_and_sizes
    if dirs_at + 8 * n_dirs > opt_at + coff.size_of_optional_header or n_dirs > len(fmt.DATA_DIRECTORY_NAMES):
        raise FormatError(f"NumberOfRvaAndSizes {n_dirs} does not fit SizeOfOptionalHeader "
                          f"{coff.size_of_optional_header:#x}", offset=base_offset + dirs_at - 4)
    if dirs_at + 8 * n_dirs > len(data):
        raise FormatError(f"PE data directories ({n_dirs}) truncated: the image ends at {len(data):#x}",
                          offset=base_offset + len(data))
    directories = {}
    for i in range(n_dirs):
        d = fmt.DataDirectory.parse(data[dirs_at + 8 * i:dirs_at + 8 * i + 8])
        directories[fmt.DATA_DIRECTORY_NAMES[i]] = (d.virtual_address, d.size)
    table_at = opt_at + coff.size_of_optional_header
    n = coff.number_of_sections
    if n > MAX_SECTIONS:
        raise FormatError(f"NumberOfSections {n} (more than {MAX_SECTIONS})", offset=base_offset + pe_at + 6)
    table_end = table_at + n * fmt.SECTION_HEADER_SIZE
    if table_end > len(data):
        raise FormatError(f"section table ({n} headers at {table_at:#x}) runs past the end of the file "
                          f"({len(data):#x} bytes)", offset=base_offset + table_at)
    img = PeImage(pe_at, coff.machine, coff.characteristics, coff.time_date_stamp, coff.pointer_to_symbol_table,
                  magic, opt_at, coff.size_of_optional_header, opt.address_of_entry_point,
                  opt.image_base if magic == fmt.PE32PLUS_MAGIC else opt.image_base.value,
                  opt.section_alignment, opt.file_alignment, opt.size_of_image, opt.size_of_headers,
                  opt.size_of_initialized_data, opt.checksum, opt.subsystem, opt.dll_characteristics, table_at,
                  dirs_at, directories)
    for i in range(n):
        at = table_at + i * fmt.SECTION_HEADER_SIZE
        h = fmt.SectionHeader.parse(data[at:at + fmt.SECTION_HEADER_SIZE])
        name = h.name.rstrip(b"\0").decode("latin-1")
        s = Section(i, name, at, h.virtual_address, h.virtual_size, h.pointer_to_raw_data, h.size_of_raw_data,
                    h.characteristics)
        if s.raw_size and s.raw_offset + s.raw_size > len(data):
            raise FormatError(f"section {name!r} raw data [{s.raw_offset:#x}, {s.raw_offset + s.raw_size:#x}) "
                              f"runs past the end of the file ({len(data):#x} bytes)", offset=base_offset + at + 0x10)
        img.sections.append(s)
    return img


def section_overlaps(img):
    """[(a, b, what)] for sections whose virtual ranges or raw data overlap each other or the headers."""
    out = []
    secs = sorted(img.sections, key=lambda s: s.virtual_address)
    for a, b in zip(secs, secs[1:]):
        if a.virtual_address + max(a.virtual_size, 1) > b.virtual_address:
            out.append((a, b, "memory"))
    raw = sorted((s for s in img.sections if s.raw_size), key=lambda s: s.raw_offset)
    for a, b in zip(raw, raw[1:]):
        if a.raw_offset + a.raw_size > b.raw_offset:
            out.append((a, b, "file"))
    return out
