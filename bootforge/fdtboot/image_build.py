"""`[linux_image]` recipes: headerless code (a flat binary whose first byte runs at image
offset 0x40) behind the 64-byte arm64 or RISC-V Image header (or, for 32-bit ARM, a
64-byte zImage-style header), so QEMU -kernel, U-Boot booti/bootz and the Linux boot
protocols take it as a Linux Image.

    [linux_image]
    arch = "aarch64"                 # or "riscv64"
    code = "build/stubs/dtdump-aarch64.bin"
    text_offset = 0                  # arm64 default 0; RISC-V default 0x200000
    image_size = 0x10000             # default: 0x40 + the code, rounded up to 4 KiB
    flags = 0xa                      # arm64: 4K pages, anywhere in RAM (booting.rst); RISC-V: 0

code0 is the branch over the header (arm64 `b +0x40` 0x14000010; RISC-V `j +0x40`
0x0400006f, Documentation/riscv/boot-image-header.rst), code1 0; RISC-V header version 0.2.
"""

import struct
from pathlib import Path

from bootforge.fileio import read_input, write_atomic
from bootforge.formats import arm_image as fmt
from bootforge.schema import REQUIRED, Field, recipe_file, validate

ARM64_BRANCH_TO_0X40 = 0x14000010
RISCV_JUMP_TO_0X40 = 0x0400006F
ARM_NOP = 0xE1A00000                # mov r0, r0
ARM_BRANCH_TO_0X40 = 0xEA000006     # at 0x20: b 0x40 (pc + 8 + 6 * 4)
RISCV_HEADER_VERSION = 0x2          # 0.2
ARM64_DEFAULT_FLAGS = 0xA           # little-endian, 4K pages, physical placement anywhere
PAGE = 4096

LINUX_IMAGE_FIELDS = (
    Field("arch", str, REQUIRED, "the Image header to write (arm: a zImage-style header)",
          choices=("aarch64", "riscv64", "arm")),
    Field("code", str, REQUIRED, "the flat code, relative to the recipe (runs at image offset 0x40)", text="path"),
    Field("text_offset", int, None, "the header's text_offset (arm64 0, RISC-V 0x200000)", min=0,
          max=(1 << 64) - 1),
    Field("image_size", int, None, "the header's image_size (default: 0x40 + code, 4 KiB aligned)", min=0,
          max=(1 << 64) - 1),
    Field("flags", int, None, "the header's flags (arm64 0xa, RISC-V 0)", min=0, max=(1 << 64) - 1),
    Field("output", str, None, "the output file, relative to the recipe", text="path"),
)


def linux_image(arch, code, text_offset=None, image_size=None, flags=None):
    """The Image bytes: header + *code*."""
    size = image_size if image_size is not None else -(-(fmt.ARM64_HEADER_SIZE + len(code)) // PAGE) * PAGE
    if arch == "arm":
        # arch/arm/boot/compressed/head.S: eight `mov r0, r0`, a branch to the code at 0x40, the
        # magic, start (0: position independent) and end (the size), the endianness word.
        header = (struct.pack("<I", ARM_NOP) * 8 + struct.pack("<I", ARM_BRANCH_TO_0X40)
                  + fmt.ArmZImageHeader.build(dict(magic=fmt.ZIMAGE_MAGIC, start=0, end=0x40 + len(code),
                                                   endian=fmt.ZIMAGE_ENDIAN_LE, extension=0, table=0))
                  + bytes(0x40 - 0x24 - fmt.ArmZImageHeader.sizeof()))
    elif arch == "aarch64":
        header = fmt.Arm64ImageHeader.build(dict(
            code0=ARM64_BRANCH_TO_0X40, code1=0, text_offset=text_offset or 0, image_size=size,
            flags=ARM64_DEFAULT_FLAGS if flags is None else flags, res2=0, res3=0, res4=0,
            magic=fmt.ARM64_MAGIC, res5=0))
    else:
        header = fmt.RiscvImageHeader.build(dict(
            code0=RISCV_JUMP_TO_0X40, code1=0, text_offset=0x200000 if text_offset is None else text_offset,
            image_size=size, flags=flags or 0, version=RISCV_HEADER_VERSION, res1=0, res2=0,
            magic=fmt.RISCV_MAGIC, magic2=fmt.RISCV_MAGIC2, res3=0))
    return header + bytes(code)


def build_linux_image_recipe(recipe_path, recipe, out_path):
    recipe_path = Path(recipe_path)
    t = validate(recipe.get("linux_image"), LINUX_IMAGE_FIELDS, "linux_image")
    code = read_input(recipe_file(recipe_path.parent, t["code"], "linux_image", "code"))
    data = linux_image(t["arch"], code, t.get("text_offset"), t.get("image_size"), t.get("flags"))
    write_atomic(out_path, data)
    header = struct.unpack_from("<QQ", data, 8)
    return {"format": f"{t['arch']} Linux Image", "size": len(data), "text_offset": header[0],
            "image_size": header[1]}
