"""`bootforge build` of a [uki] recipe: the systemd EFI stub with the kernel, initrd,
command line, os-release and friends appended as PE sections, laid out as systemd's
ukify lays them out (systemd src/ukify/ukify.py pe_add_sections, v253+):

- each new section header goes after the stub's last one (inside SizeOfHeaders);
- each section's RVA is the next multiple of SectionAlignment after the previous
  section's end (RVA + VirtualSize); its raw data at the next multiple of
  FileAlignment at the end of the file, padded with zeros to FileAlignment;
- order .osrel, .cmdline, .dtb, .uname, .splash, .initrd, .linux: the kernel
  last, so nothing lies above it while it decompresses in place;
- .linux is marked code + read, the rest initialized data + read;
  SizeOfInitializedData grows by each VirtualSize, SizeOfImage covers the last
  section, CheckSum is 0 (as ukify: firmware does not check it);
- .sbat: the stub already has one; the given SBAT lines are appended to the
  stub's and the section rewritten in place when they fit its raw size.

Why not lief (the issue's first choice): the budget is 1.5x the equivalent objcopy
command, and lief 1.0 alone spends more than that on a 60 MiB initrd (Section.content
copies the bytes element by element): stub + .initrd + .linux written by lief took
2.30 s against 1.37 s for objcopy in one run (1.68x; bootforge 0.36 s). Its writer
also keeps the stub's stale CheckSum and gives new sections no MEM_READ flag unless
patched afterwards.
The writer below copies the stub once and appends bytes; every field comes from the
inputs, nothing from the clock or the paths, so the same recipe gives the same bytes.
lief reads the output back in tests (tests/test_uki_build.py) as an independent parser.
"""

import re
import struct
from pathlib import Path

from bootforge.align import align_up
from bootforge.errors import BuildError, FormatError, RecipeError
from bootforge.fileio import read_input, write_atomic
from bootforge.schema import REQUIRED, Field, validate
from bootforge.formats import pe as fmt
from bootforge.fdtboot import kernels as dt_kernels
from bootforge.uki.kernel import read_bzimage
from bootforge.pe.image import read_pe, section_overlaps

DEFAULT_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
# An arm64 kernel (an EFI-stub arm64 Image) takes systemd's AArch64 stub: Debian's systemd-boot-efi:arm64
# installs it here (`make arm64-kernel` caches it as build/debian-arm64/linuxaa64.efi.stub on amd64).
DEFAULT_STUB_AA64 = "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub"
# The [uki] recipe's keys: validation (bootforge.schema.validate) and `build --help` read these;
# a new key is one Field here.
UKI_FIELDS = (
    Field("kernel", str, REQUIRED, "the kernel: an EFI-stub bzImage, or an EFI-stub arm64 Image", text="path"),
    Field("initrd", (list, str), None, "initrd file(s), concatenated in order"),
    Field("cmdline", str, None, "the kernel command line (.cmdline)"),
    Field("os_release", (str, dict), None, "os-release: a file, or a table of fields (.osrel)"),
    Field("stub", str, DEFAULT_STUB, f"the systemd EFI stub (an arm64 kernel's default: {DEFAULT_STUB_AA64})",
          text="path"),
    Field("uname", str, None, "the kernel release (.uname; default: read from the kernel's version string)"),
    Field("splash", str, None, "a BMP image the stub shows (.splash)", text="path"),
    Field("devicetree", str, None, "a DTB (.dtb)", text="path"),
    Field("sbat", str, None, "SBAT lines appended to the stub's: CSV text, or a file"),
    Field("output", str, None, "output path, relative to the recipe", text="path"),
    Field("secureboot_private_key", str, None, "RSA key to sign the UKI with for Secure Boot (Authenticode, as "
          "`bootforge sign`)", text="path"),
    Field("secureboot_certificate", str, None, "the X.509 certificate of secureboot_private_key", text="path"),
    Field("secureboot_key_passphrase_file", str, None, "file whose first line decrypts secureboot_private_key",
          text="path"),
    Field("pcr_private_key", str, None, "RSA key (PEM) signing the predicted PCR 11 policies into .pcrsig, as "
          "systemd-measure sign does (sha256 bank, its four default phases); its public key goes in .pcrpkey",
          text="path"),
    Field("pcr_public_key", str, None, "the PEM public key for .pcrpkey (default: derived from pcr_private_key)",
          text="path"),
)
# ukify's order; .linux is always last.
SECTION_ORDER = (".osrel", ".cmdline", ".dtb", ".uname", ".splash", ".pcrpkey", ".pcrsig", ".initrd", ".linux")
# systemd's stub announces itself in .sdmagic (src/boot/efi/stub.c: "#### LoaderInfo: systemd-stub ...").
SDMAGIC_PREFIX = b"#### LoaderInfo: systemd-stub "
MACHINE_X64 = 0x8664
MACHINE_AA64 = 0xAA64
SUBSYSTEM_EFI_APPLICATION = 10
# ukify's Uname.scrape_generic: the release in the kernel's banner ("Linux version 6.1.0-57-arm64 (...").
LINUX_BANNER = re.compile(rb"Linux version (\d\.\S+) \(")
FDT_MAGIC = b"\xd0\x0d\xfe\xed"


def _path(base, value, key):
    if not isinstance(value, str) or not value:
        raise RecipeError(f"[uki] {key} must be a file name, not {value!r}")
    p = Path(value)
    return p if p.is_absolute() else base / p


def _os_release_text(value, base):
    """A file's bytes, or a table of fields written as KEY="value" lines (os-release(5) quoting)."""
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if not isinstance(v, (str, int)) or not k.replace("_", "").isalnum() or not k[:1].isalpha():
                raise RecipeError(f"[uki] os_release.{k}: field names are A-Z0-9_, values strings")
            s = str(v)
            for ch in ("\\", '"', "$", "`"):
                s = s.replace(ch, "\\" + ch)
            lines.append(f'{k.upper()}="{s}"\n')
        return "".join(lines).encode()
    return read_input(_path(base, value, "os_release"))


def arm64_uname(image):
    """The release in an arm64 Image's Linux banner, as ukify scrapes it (Uname.scrape_generic), or None."""
    found = LINUX_BANNER.search(image)
    return found.group(1).decode("latin-1") if found else None


def check_stub(stub, path, machine=MACHINE_X64):
    """The stub's PeImage; BuildError unless it is systemd's EFI stub for *machine* (x86-64 or AArch64),
    unsigned, without UKI sections."""
    try:
        img = read_pe(stub)
    except FormatError as exc:
        raise BuildError(f"stub {path}: {exc.message}", offset=exc.offset) from None
    arch = "x86-64" if machine == MACHINE_X64 else "AArch64"
    if img.machine != machine or img.subsystem != SUBSYSTEM_EFI_APPLICATION or img.magic != fmt.PE32PLUS_MAGIC:
        raise BuildError(f"stub {path}: not an {arch} EFI application (machine {img.machine:#x}, "
                         f"subsystem {img.subsystem}): the kernel is {arch}")
    magic = img.section(".sdmagic")
    # Debian 12's AArch64 stub is gnu-efi's `objcopy -O binary` of an ELF with a hand-made PE header
    # (sections .text and .data only): its .sdmagic and .sbat bytes follow .data in the file, in no
    # PE section (`objdump -h linuxaa64.elf.stub`: .sdmagic at 0x121a0, the PE's .data ends 0x10e00).
    loose = machine == MACHINE_AA64 and magic is None and SDMAGIC_PREFIX in stub
    if not loose and (magic is None or not magic.data(stub).startswith(SDMAGIC_PREFIX)):
        raise BuildError(f"stub {path}: not a systemd EFI stub (no .sdmagic section saying "
                         f"{SDMAGIC_PREFIX.decode().strip()!r})")
    if img.directories.get("security", (0, 0))[0]:
        raise BuildError(f"stub {path}: signed (a security directory): appending sections would break the "
                         "signature; use an unsigned stub and sign the UKI")
    for name in SECTION_ORDER:
        if img.section(name):
            raise BuildError(f"stub {path}: already has a {name} section (a UKI, not a stub?)")
    bad = section_overlaps(img)
    if bad:
        a, b, where = bad[0]
        raise BuildError(f"stub {path}: sections {a.name} and {b.name} overlap in {where}")
    return img


def _pcr_sections(t, base, contents):
    """(.pcrpkey, .pcrsig) bytes for the [uki] pcr_* keys (bootforge/uki/measure.py pcrsig_json)."""
    # Function-level import: cryptography only for a UKI with PCR signatures.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    # Function-level import: the signing helpers import cryptography and asn1crypto.
    from bootforge.pe.sign import load_private_key
    from bootforge.uki.measure import pcrsig_json
    key_path = _path(base, t["pcr_private_key"], "pcr_private_key")
    key = load_private_key(read_input(key_path), key_path)
    if "pcr_public_key" in t:
        pub_path = _path(base, t["pcr_public_key"], "pcr_public_key")
        pem = read_input(pub_path)
        try:
            public = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise BuildError(f"not a PEM public key: {str(exc).splitlines()[0]}", path=pub_path) from None
        if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
            raise BuildError("pcr_public_key is not the public key of pcr_private_key", path=pub_path)
    else:
        public = key.public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    measured = dict(contents, **{".pcrpkey": pem})
    return pem, pcrsig_json(measured, key, public).encode()


def merge_sbat(stub_sbat, extra):
    """The stub's SBAT CSV followed by *extra*'s lines, without a second 'sbat,' header line (ukify)."""
    lines = [ln for ln in extra.decode("utf-8").splitlines() if ln.strip() and not ln.startswith("sbat,")]
    base = stub_sbat.rstrip(b"\0")
    if base and not base.endswith(b"\n"):
        base += b"\n"
    return base + "".join(ln + "\n" for ln in lines).encode()


def layout_uki(stub, img, contents, sbat=None):
    """The UKI bytes: *stub* (its PeImage *img*) with *contents* [(name, bytes)] appended in order.

    The new sections' raw data starts where the stub's last section's ends: what lies after it
    in the stub (Debian's 252 stub: a COFF symbol table of 362 symbols at 0x11400, which no
    loader reads) is dropped and PointerToSymbolTable/NumberOfSymbols cleared, so the file is
    headers then sections with no gap, every byte inside the Authenticode hash (a gap there made
    sbsign warn "gap in section table: .sdmagic: 0x00011200 - 0x00011400, .osrel: 0x00014600")."""
    raw_end = max([img.size_of_headers] + [s.raw_offset + s.raw_size for s in img.sections if s.raw_size])
    out = bytearray(stub[:raw_end])
    if img.pointer_to_symbol_table >= raw_end or len(stub) > raw_end:
        struct.pack_into("<II", out, img.e_lfanew + 0x0C, 0, 0)
    falign, salign = img.file_alignment, img.section_alignment
    # The PE specification: FileAlignment a power of two from 512 to 64 KiB, SectionAlignment a power
    # of two not below it (it pads the output, so it is checked before anything is allocated).
    if not 0x200 <= falign <= 0x10000 or falign & (falign - 1) or salign < falign or salign & (salign - 1) \
            or salign > 0x10000000:
        raise BuildError(f"stub: FileAlignment {falign:#x} / SectionAlignment {salign:#x}: the PE format wants "
                         "powers of two, FileAlignment 512 to 64 KiB, SectionAlignment not below it")
    first_raw = min((s.raw_offset for s in img.sections if s.raw_size), default=img.size_of_headers)
    header_room = min(img.size_of_headers, first_raw)
    table_end = img.section_table_end
    last = img.sections[-1]
    last_end = last.virtual_address + last.virtual_size
    added_init = 0
    new = []
    for name, data in contents:
        if table_end + fmt.SECTION_HEADER_SIZE > header_room:
            raise BuildError(f"sections would overlap: no room for the {name} section header at {table_end:#x} "
                             f"(the stub's headers end at {header_room:#x})", offset=table_end)
        va = align_up(last_end, salign)
        if va + len(data) > 0xFFFFFFFF or len(out) + len(data) > 0xFFFFFFFF:
            raise BuildError(f"the {name} section would end past 4 GiB (PE RVAs and file offsets are 32-bit)")
        raw = align_up(len(out), falign)
        raw_size = align_up(len(data), falign)
        flags = fmt.SectionFlag.MEM_READ | (fmt.SectionFlag.CNT_CODE if name == ".linux"
                                             else fmt.SectionFlag.CNT_INITIALIZED_DATA)
        out += bytes(raw - len(out))
        out += data
        out += bytes(raw_size - len(data))
        out[table_end:table_end + fmt.SECTION_HEADER_SIZE] = fmt.SectionHeader.build(dict(
            name=name.encode().ljust(8, b"\0"), virtual_size=len(data), virtual_address=va,
            size_of_raw_data=raw_size, pointer_to_raw_data=raw, pointer_to_relocations=0,
            pointer_to_linenumbers=0, number_of_relocations=0, number_of_linenumbers=0, characteristics=int(flags)))
        new.append({"name": name, "virtual_address": va, "virtual_size": len(data), "raw_offset": raw,
                    "raw_size": raw_size})
        table_end += fmt.SECTION_HEADER_SIZE
        last_end = va + len(data)
        added_init += len(data)
    if sbat is not None:
        s = img.section(".sbat")
        if s is None or len(sbat) > s.raw_size:
            raise BuildError(f"sections would overlap: the merged SBAT ({len(sbat)} bytes) does not fit the stub's "
                             f".sbat section ({s.raw_size if s else 0} bytes of raw data)")
        out[s.raw_offset:s.raw_offset + s.raw_size] = sbat + bytes(s.raw_size - len(sbat))
        # ukify sets VirtualSize to the raw size, which in Debian's stub (.sbat at 0x19000, .sdmagic at
        # 0x19100, SectionAlignment 0x200) would overlap .sdmagic: the merged length instead, checked below.
        struct.pack_into("<I", out, s.header_offset + 8, len(sbat))
    opt = img.optional_header_offset
    struct.pack_into("<H", out, img.e_lfanew + 6, len(img.sections) + len(new))
    struct.pack_into("<I", out, opt + fmt.OPT_SIZE_OF_INITIALIZED_DATA,
                     (img.size_of_initialized_data + added_init) & 0xFFFFFFFF)
    struct.pack_into("<I", out, opt + fmt.OPT_SIZE_OF_IMAGE, align_up(last_end, salign))
    struct.pack_into("<I", out, opt + fmt.OPT_CHECKSUM, 0)
    result = read_pe(out)
    bad = section_overlaps(result)
    if bad:
        a, b, where = bad[0]
        raise BuildError(f"sections would overlap: {a.name} and {b.name} in {where} (the stub's last section "
                         "header is not its highest section)")
    return out, new


def build_uki_recipe(recipe_path, recipe, out_path):
    """Build the UKI a [uki] recipe describes, write it to *out_path*, return the summary."""
    recipe_path = Path(recipe_path)
    t = recipe.get("uki")
    if not isinstance(t, dict):
        raise RecipeError("a UKI recipe needs a [uki] table", path=recipe_path)
    validate(t, UKI_FIELDS, "uki")
    base = recipe_path.parent
    if "kernel" not in t:
        raise RecipeError("[uki] kernel (an EFI-stub bzImage) is required")
    kernel_path = _path(base, t["kernel"], "kernel")
    kernel = read_input(kernel_path)
    arm64 = dt_kernels.is_arm64_image(kernel)
    what = "arm64 Image" if arm64 else "bzImage"
    bz = None
    if not arm64:
        try:
            bz = read_bzimage(kernel)
        except FormatError as exc:
            raise exc.located(path=kernel_path) from None
    if kernel[:2] != fmt.DOS_SIGNATURE:
        raise BuildError(f"no PE header in the {what} (no 'MZ' at offset 0): a kernel without the EFI stub "
                         "(CONFIG_EFI_STUB) cannot be started from a UKI", path=kernel_path, offset=0)
    try:
        kernel_pe = read_pe(kernel)
    except FormatError as exc:
        raise BuildError(f"no usable PE header in the {what}: {exc.message}", path=kernel_path,
                         offset=exc.offset) from None
    if arm64 and kernel_pe.machine != MACHINE_AA64:
        raise BuildError(f"the arm64 Image's PE header names machine {kernel_pe.machine:#x}, not AArch64 (0xaa64)",
                         path=kernel_path, offset=kernel_pe.e_lfanew + 4)
    stub_path = _path(base, t.get("stub", DEFAULT_STUB_AA64 if arm64 else DEFAULT_STUB), "stub")
    stub = read_input(stub_path)
    img = check_stub(stub, stub_path, MACHINE_AA64 if arm64 else MACHINE_X64)

    initrds = t.get("initrd", [])
    if isinstance(initrds, str):
        initrds = [initrds]
    if not isinstance(initrds, list):
        raise RecipeError("[uki] initrd must be a list of file names (concatenated in order)")
    # An arm64 kernel takes its initrd from the stub's LINUX_EFI_INITRD_MEDIA device path, anywhere in
    # memory (no initrd_addr_max); the bzImage's limit is its setup header's.
    max_initrd = bz.get("initrd_addr_max") if bz is not None else None
    limit = (max_initrd + 1) if max_initrd is not None else 1 << 32
    paths = [_path(base, p, "initrd") for p in initrds]
    # Sizes first (regular files): a list of huge initrds is refused before it is read.
    declared = sum(p.stat().st_size for p in paths if p.is_file())
    parts, total = [], 0
    for p in paths:
        if declared > limit:
            break
        parts.append(read_input(p))
        total += len(parts[-1])
        if total > limit:
            break
    size = max(declared, total)
    if size > limit:
        raise BuildError(f"initrd of {size} bytes does not fit below the kernel's initrd_addr_max "
                         f"{limit - 1:#x}", path=kernel_path, offset=0x22C)
    initrd = b"".join(parts)

    contents = {}
    if "os_release" in t:
        contents[".osrel"] = _os_release_text(t["os_release"], base)
    if "cmdline" in t:
        if not isinstance(t["cmdline"], str):
            raise RecipeError("[uki] cmdline must be a string")
        contents[".cmdline"] = t["cmdline"].encode()
    if "devicetree" in t:
        dtb_path = _path(base, t["devicetree"], "devicetree")
        dtb = read_input(dtb_path)
        if dtb[:4] != FDT_MAGIC:
            raise BuildError("devicetree is not a DTB (no 0xd00dfeed magic)", path=dtb_path, offset=0)
        contents[".dtb"] = dtb
    uname = t.get("uname", bz.uname if bz is not None else arm64_uname(kernel))
    if uname is not None:
        if not isinstance(uname, str):
            raise RecipeError("[uki] uname must be a string")
        contents[".uname"] = uname.encode()
    if "splash" in t:
        splash_path = _path(base, t["splash"], "splash")
        splash = read_input(splash_path)
        if splash[:2] != b"BM":
            raise BuildError("splash is not a BMP image (no 'BM' magic): the stub shows only BMP", path=splash_path,
                             offset=0)
        contents[".splash"] = splash
    if initrd:
        contents[".initrd"] = initrd
    contents[".linux"] = kernel
    sbat = None
    if "sbat" in t:
        value = t["sbat"]
        text = value.encode() if isinstance(value, str) and "," in value else read_input(_path(base, value, "sbat"))
        stub_sbat = img.section(".sbat")
        if stub_sbat is None:
            raise BuildError(f"stub {stub_path}: no .sbat section to merge the SBAT lines into (Debian's AArch64 "
                             "stub keeps its SBAT bytes outside its two PE sections)")
        sbat = merge_sbat(stub_sbat.data(stub) if stub_sbat else b"", text)
    if "pcr_private_key" in t:
        contents[".pcrpkey"], contents[".pcrsig"] = _pcr_sections(t, base, contents)
    elif "pcr_public_key" in t:
        raise RecipeError("[uki] pcr_public_key needs pcr_private_key (which signs .pcrsig)")
    ordered = [(n, contents[n]) for n in SECTION_ORDER if n in contents]
    data, sections = layout_uki(stub, img, ordered, sbat)
    summary = {"format": "UKI", "size": len(data), "stub": str(stub_path), "kernel": str(kernel_path),
               "uname": uname, "initrd_size": len(initrd), "sections": sections}
    if any(k.startswith("secureboot_") for k in t):
        # Function-level import: cryptography and asn1crypto load only for a signed UKI.
        from bootforge.pe.sign import recipe_signer
        sign = recipe_signer(t, lambda value, key: _path(base, value, key), "uki")
        if sign is not None:
            data = sign(data, recipe_path)
            summary.update(size=len(data), signed=True)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, data)
    return summary
