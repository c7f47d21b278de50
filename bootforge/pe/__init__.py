"""PE/COFF header facts, read without lief (fast path for inspect)."""

from dataclasses import dataclass

from bootforge.errors import FormatError

# formats.pe (construct, ~11 ms) is imported in the functions that read headers: `bootforge sign`
# imports bootforge.pe.sign, whose CheckSum sum starts before any header is read.


@dataclass(frozen=True)
class PeFacts:
    machine: int
    subsystem: int
    magic: int
    entry_point: int        # RVA
    size_of_image: int
    size_of_headers: int
    number_of_sections: int
    image_base: int

    def to_json(self):
        # Function-level import: see the note at the top (construct).
        from bootforge.formats import pe as fmt
        return {"machine": self.machine, "subsystem": self.subsystem,
                "format": "PE32+" if self.magic == fmt.PE32PLUS_MAGIC else "PE32",
                "entry_point": self.entry_point, "size_of_image": self.size_of_image,
                "image_base": self.image_base, "sections": self.number_of_sections}


def read_pe_facts(data, base_offset=0):
    """Parse the headers of the PE image in *data*; offsets in errors are relative to base_offset."""
    # Function-level import: see the note at the top (construct).
    from bootforge.formats import pe as fmt
    if data[:2] != fmt.DOS_SIGNATURE:
        raise FormatError(f"no PE image: expected 'MZ', found {data[:2].hex() or 'nothing'}",
                          offset=base_offset)
    if len(data) < fmt.E_LFANEW_OFFSET + 4:
        raise FormatError("PE image truncated inside its DOS header", offset=base_offset + len(data))
    # Each header is parsed from a slice of its own size: construct copies what it is given.
    dos = fmt.DosHeader.parse(data[:fmt.E_LFANEW_OFFSET + 4])
    pe_at = dos.e_lfanew
    if pe_at + fmt.COFF_HEADER_SIZE + 2 > len(data):
        raise FormatError(f"PE header pointer {pe_at:#x} past the end of the image ({len(data):#x} bytes)",
                          offset=base_offset + fmt.E_LFANEW_OFFSET)
    if data[pe_at:pe_at + 4] != fmt.PE_SIGNATURE:
        raise FormatError("no 'PE\\0\\0' signature where e_lfanew points", offset=base_offset + pe_at)
    coff = fmt.CoffFileHeader.parse(data[pe_at:pe_at + fmt.COFF_HEADER_SIZE])
    opt_at = pe_at + fmt.COFF_HEADER_SIZE
    magic = int.from_bytes(data[opt_at:opt_at + 2], "little")
    if magic not in fmt.OPTIONAL_HEADER_PARSED:
        raise FormatError(f"unknown optional header magic {magic:#x}", offset=base_offset + opt_at)
    if opt_at + fmt.OPTIONAL_HEADER_PARSED[magic] > len(data) or \
            coff.size_of_optional_header < fmt.OPTIONAL_HEADER_PARSED[magic]:
        raise FormatError("PE optional header truncated", offset=base_offset + opt_at)
    opt = fmt.OptionalHeader.parse(data[opt_at:opt_at + fmt.OPTIONAL_HEADER_PARSED[magic]])
    base = opt.image_base if magic == fmt.PE32PLUS_MAGIC else opt.image_base.value
    return PeFacts(machine=coff.machine, subsystem=opt.subsystem, magic=magic,
                   entry_point=opt.address_of_entry_point, size_of_image=opt.size_of_image,
                   size_of_headers=opt.size_of_headers, number_of_sections=coff.number_of_sections,
                   image_base=base)
