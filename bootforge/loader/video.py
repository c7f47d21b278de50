"""The graphics mode a loader sets for a kernel that asks for a framebuffer, under QEMU's
standard VGA (-vga std, the default): with SeaVGABIOS on BIOS (VBE), with OVMF's QemuVideoDxe
on UEFI (GOP; see OVMF_GOP_MODES below).

- The mode list: SeaVGABIOS's svga_modes (vgasrc/svgamodes.c), each mode offered when its
  frame fits the 16 MiB of VRAM QEMU's stdvga has (bochsvga.c), planar 4-bit modes never
  (GRUB and the Multiboot framebuffer want packed or direct colour).
- The preferred mode: the EDID QEMU's stdvga reports (hw/display/edid-generate.c default
  1280x800), which GRUB reads through VBE function 4F15 (video/i386/pc/vbe.c
  grub_vbe_get_preferred_mode).
- GRUB's choice (video/i386/pc/vbe.c grub_video_vbe_setup, video/video.c grub_video_set_mode
  walking the comma-separated mode string): "WxHxD" takes modes of exactly that size and
  depth, "WxH" of that size, "auto" every mode within the preferred one; among them the
  largest frame (bpp x width x height), a later mode of the same volume replacing an earlier.
  multiboot.c / multiboot_mbi2.c ask for "WxHxD,WxH,auto", "WxH,auto" or "auto" from the
  kernel's request.
"""

import re
from dataclasses import dataclass

VRAM = 16 << 20                     # QEMU stdvga's default vgamem_mb 16
QEMU_EDID_PREFERRED = (1280, 800)   # hw/display/edid-generate.c: prefx/prefy default
LFB_MODE_FLAG = 0x4000              # VBE: set the mode with the linear framebuffer
LFB_ADDRESS = 0xFD000000            # the stdvga BAR SeaBIOS assigns (firmware data in verify)
VBE_INTERFACE = (0xFFFF, 0x6000, 0x4F)  # SeaVGABIOS's VBE 4F0A answer (segment, offset, length), observed

# (mode, width, height, bits per pixel) of SeaVGABIOS's svga_modes that are packed or direct
# colour (MM_PACKED / MM_DIRECT), in its order.
SEAVGABIOS_MODES = (
    (0x100, 640, 400, 8), (0x101, 640, 480, 8), (0x103, 800, 600, 8), (0x105, 1024, 768, 8),
    (0x107, 1280, 1024, 8), (0x10D, 320, 200, 15), (0x10E, 320, 200, 16), (0x10F, 320, 200, 24),
    (0x110, 640, 480, 15), (0x111, 640, 480, 16), (0x112, 640, 480, 24), (0x113, 800, 600, 15),
    (0x114, 800, 600, 16), (0x115, 800, 600, 24), (0x116, 1024, 768, 15), (0x117, 1024, 768, 16),
    (0x118, 1024, 768, 24), (0x119, 1280, 1024, 15), (0x11A, 1280, 1024, 16), (0x11B, 1280, 1024, 24),
    (0x11C, 1600, 1200, 8), (0x11D, 1600, 1200, 15), (0x11E, 1600, 1200, 16), (0x11F, 1600, 1200, 24),
    (0x140, 320, 200, 32), (0x141, 640, 400, 32), (0x142, 640, 480, 32), (0x143, 800, 600, 32),
    (0x144, 1024, 768, 32), (0x145, 1280, 1024, 32), (0x146, 320, 200, 8), (0x147, 1600, 1200, 32),
    (0x148, 1152, 864, 8), (0x149, 1152, 864, 15), (0x14A, 1152, 864, 16), (0x14B, 1152, 864, 24),
    (0x14C, 1152, 864, 32), (0x175, 1280, 768, 16), (0x176, 1280, 768, 24), (0x177, 1280, 768, 32),
    (0x178, 1280, 800, 16), (0x179, 1280, 800, 24), (0x17A, 1280, 800, 32), (0x17B, 1280, 960, 16),
    (0x17C, 1280, 960, 24), (0x17D, 1280, 960, 32), (0x17E, 1440, 900, 16), (0x17F, 1440, 900, 24),
    (0x180, 1440, 900, 32), (0x181, 1400, 1050, 16), (0x182, 1400, 1050, 24), (0x183, 1400, 1050, 32),
    (0x184, 1680, 1050, 16), (0x185, 1680, 1050, 24), (0x186, 1680, 1050, 32), (0x187, 1920, 1200, 16),
    (0x188, 1920, 1200, 24), (0x189, 1920, 1200, 32), (0x18A, 2560, 1600, 16), (0x18B, 2560, 1600, 24),
    (0x18C, 2560, 1600, 32), (0x18D, 1280, 720, 16), (0x18E, 1280, 720, 24), (0x18F, 1280, 720, 32),
    (0x190, 1920, 1080, 16), (0x191, 1920, 1080, 24), (0x192, 1920, 1080, 32), (0x193, 1600, 900, 16),
    (0x194, 1600, 900, 24), (0x195, 1600, 900, 32), (0x196, 2560, 1440, 16), (0x197, 2560, 1440, 24),
    (0x198, 2560, 1440, 32), (0x199, 3840, 2160, 16), (0x19A, 3840, 2160, 32), (0x19B, 4096, 2160, 16),
    (0x19C, 4096, 2160, 32), (0x19D, 5120, 2160, 16), (0x19E, 5120, 2160, 32),
)
# Direct-colour channel layout by depth: (red pos, red size, green pos, green size, blue pos, blue size).
RGB_LAYOUT = {15: (10, 5, 5, 5, 0, 5), 16: (11, 5, 5, 6, 0, 5), 24: (16, 8, 8, 8, 0, 8), 32: (16, 8, 8, 8, 0, 8)}


@dataclass(frozen=True)
class VideoMode:
    mode: int               # the VBE mode number (without the LFB flag)
    width: int
    height: int
    bpp: int

    @property
    def pitch(self):
        return self.width * ((self.bpp + 7) // 8)

    @property
    def rgb(self):
        """The six channel bytes, or None for an indexed (8-bit) mode."""
        return RGB_LAYOUT.get(self.bpp)


def offered_modes():
    """The modes SeaVGABIOS offers on QEMU's stdvga (its frame fits in VRAM)."""
    return [VideoMode(*m) for m in SEAVGABIOS_MODES if m[1] * m[2] * ((m[3] + 7) // 8) <= VRAM]


def grub_mode_string(width, height, depth):
    """What GRUB's multiboot loaders put in gfxpayload for a kernel's request (multiboot.c)."""
    if width and height and depth:
        return f"{width}x{height}x{depth},{width}x{height},auto"
    if width and height:
        return f"{width}x{height},auto"
    return "auto"


def grub_vbe_choose(modestring, preferred=QEMU_EDID_PREFERRED, modes=None):
    """The mode GRUB i386-pc's VBE driver sets for *modestring*, or None (text stays)."""
    modes = offered_modes() if modes is None else modes
    for item in modestring.split(","):
        item = item.strip()
        if item == "text":
            return None
        if item == "auto":
            width, height, depth, within = preferred[0], preferred[1], 0, True
        else:
            parts = [int(x) for x in item.split("x")]
            width, height = parts[0], parts[1]
            depth, within = (parts[2] if len(parts) > 2 else 0), False
        best = None
        for m in modes:
            if m.bpp not in (8, 15, 16, 24, 32):
                continue
            if within and (m.width > width or m.height > height):
                continue
            if not within and (m.width, m.height) != (width, height):
                continue
            if depth and m.bpp != depth:
                continue
            if best is not None and m.bpp * m.width * m.height < best.bpp * best.width * best.height:
                continue
            best = m
        if best is not None:
            return best
    return None


def syslinux_choose(width, height, depth, modes=None):
    """The mode Syslinux 6.04's mboot.c32 sets (com32/mboot/initvesa.c set_graphics_mode), or
    None: walking the VBE mode list, a direct-colour 15/16/24/32-bit mode replaces the best so
    far when it meets the request (at least width x height) and the best does not, or when
    both or neither do and its distance |w - width| + |h - height| is below width + height
    (initvesa.c never lowers that bound: the last such mode wins), or at that distance when its
    depth is the one asked for or deeper."""
    modes = offered_modes() if modes is None else modes
    wantx, wanty = width or 0xFFFF, height or 0xFFFF
    bound = wantx + wanty
    best = None

    def good(m):
        return m.width >= wantx and m.height >= wanty
    for m in modes:
        if m.rgb is None:
            continue
        err = abs(m.width - wantx) + abs(m.height - wanty)
        if best is None:
            better = True
        elif not good(best) and good(m):
            better = True
        elif good(best) and not good(m):
            better = False
        elif err < bound:
            better = True
        else:
            better = err == bound and (m.bpp == depth or m.bpp > best.bpp)
        if better:
            best = m
    return best


# ------------------------------------------------------------------ UEFI: OVMF's GOP on QEMU's stdvga

# The GOP modes OVMF 2022.11 (Debian 2022.11-6+deb12u2) offers on QEMU 7.2's stdvga with 16 MiB of
# VRAM, in GOP mode-number order, all PixelBlueGreenRedReserved8BitPerColor with PixelsPerScanLine
# = width. Read from a real boot (GRUB x86_64-efi `videoinfo`, tests/data/ovmf-gop-videoinfo.txt):
# QemuVideoDxe (OvmfPkg/QemuVideoDxe/Initialize.c QemuVideoBochsModeSetup) puts the EDID's
# preferred mode (QEMU's 1280x800, hw/display/edid-generate.c) first as mode 0 and then its fixed
# table in order without that size, each mode whose frame fits the VRAM (so none past 2560x1600);
# older EDK2 sources have the plain table only. Mode 0 is the mode set when a loader starts.
OVMF_GOP_MODES = (
    (640, 480), (800, 480), (800, 600), (832, 624), (960, 640), (1024, 600), (1024, 768), (1152, 864),
    (1152, 870), (1280, 720), (1280, 760), (1280, 768), (1280, 800), (1280, 960), (1280, 1024), (1360, 768),
    (1366, 768), (1400, 1050), (1440, 900), (1600, 900), (1600, 1200), (1680, 1050), (1920, 1080), (1920, 1200),
    (1920, 1440), (2000, 2000), (2048, 1536), (2048, 2048), (2560, 1440), (2560, 1600), (2560, 2048), (2800, 2100),
    (3200, 2400), (3840, 2160), (4096, 2160), (7680, 4320), (8192, 4320),
)
GOP_BPP = 32
# BGRX 8:8:8:8 (GRUB efi_gop.c fill_real_mode_info, Limine gop.c try_mode): red at 16, green 8, blue 0.
GOP_RGB = (16, 8, 8, 8, 0, 8)


def ovmf_gop_modes(preferred=QEMU_EDID_PREFERRED, vram=VRAM):
    """OVMF's GOP mode list on QEMU's stdvga: VideoMode (mode = the GOP mode number)."""
    sizes = [preferred] + [s for s in OVMF_GOP_MODES if s != tuple(preferred)]
    sizes = [s for s in sizes if s[0] * s[1] * GOP_BPP // 8 <= vram]
    return [GopMode(i, w, h, GOP_BPP) for i, (w, h) in enumerate(sizes)]


@dataclass(frozen=True)
class GopMode(VideoMode):
    @property
    def rgb(self):
        return GOP_RGB


def grub_gop_choose(modestring, modes=None, current=0):
    """The GOP mode GRUB x86_64-efi's efi_gop driver sets for *modestring* (video/video.c
    grub_video_set_mode walks the items split at ',' and ';'; video/efi_gop.c
    grub_video_gop_setup): "auto" (width = height = 0) keeps the current mode (OVMF's mode 0)
    since its depth is usable; "WxH[xD]" keeps the current mode when it is that size (and
    depth), else takes the largest frame among the modes of exactly that size (and depth), the
    first of equal volume. None: no item matched ("no suitable video mode found")."""
    modes = ovmf_gop_modes() if modes is None else modes
    cur = modes[current]
    for item in re.split(r"[,;]", modestring):
        item = item.strip()
        if item == "text" or not item:
            continue
        if item == "auto":
            return cur
        parts = [int(x) for x in item.split("x")]
        width, height, depth = parts[0], parts[1], (parts[2] if len(parts) > 2 else 0)
        if (cur.width, cur.height) == (width, height) and depth in (0, cur.bpp):
            return cur
        best = None
        for m in modes:
            if (m.width, m.height) == (width, height) and depth in (0, m.bpp):
                if best is None or m.width * m.height * m.bpp > best.width * best.height * best.bpp:
                    best = m
        if best is not None:
            return best
    return None


def limine_gop_choose(width, height, depth, modes=None, current=0, edid=QEMU_EDID_PREFERRED):
    """The GOP mode Limine 11.4.1 sets (common/drivers/gop.c init_gop): the first mode of exactly
    width x height x depth when all three are given; else (or when none matches) the EDID's
    preferred size at 32 bpp when it is no smaller than the mode OVMF had set, then that preset
    mode, then 1024x768, 800x600, 640x480 at 32, 24, 16 bpp."""
    modes = ovmf_gop_modes() if modes is None else modes

    def exact(w, h, d):
        return next((m for m in modes if (m.width, m.height, m.bpp) == (w, h, d)), None)
    if width and height and depth:
        found = exact(width, height, depth)
        if found is not None:
            return found
    preset = modes[current]
    if edid and edid[0] >= preset.width and edid[1] >= preset.height:
        found = exact(edid[0], edid[1], 32)
        if found is not None:
            return found
    fallbacks = [(preset.width, preset.height, preset.bpp)] + [(w, h, d) for d in (32, 24, 16)
                                                                for w, h in ((1024, 768), (800, 600), (640, 480))]
    for w, h, d in fallbacks:
        found = exact(w, h, d)
        if found is not None:
            return found
    return None


# OvmfPkg/QemuVideoDxe/Gop.c QemuVideoGraphicsOutputSetMode: every SetMode re-runs
# FrameBufferBltConfigure (MdeModulePkg/Library/FrameBufferBltLib), whose configuration holds one
# scan line: sizeof (FRAME_BUFFER_CONFIGURE) + HorizontalResolution x BytesPerPixel bytes. When the
# buffer configured last is smaller (RETURN_BUFFER_TOO_SMALL), SetMode FreePools it and
# AllocatePools one of the new size (Boot Services Data; of a page or more, so pages of its own:
# ovmf_pages.pool_pages). x64 FRAME_BUFFER_CONFIGURE: four UINT32, the FrameBuffer pointer, the
# pixel format, EFI_PIXEL_BITMASK (four UINT32), PixelShl[4], PixelShr[4], aligned to 8: 56 bytes.
FRAME_BUFFER_CONFIGURE_SIZE = 56


def blt_configure_size(mode):
    """Bytes of QemuVideoDxe's BLT configuration for GOP *mode*."""
    return FRAME_BUFFER_CONFIGURE_SIZE + mode.width * (mode.bpp // 8)


def limine_query_modes(width, height, depth, modes=None, edid=QEMU_EDID_PREFERRED):
    """(QueryMode calls before SetMode, all QueryMode calls, the mode set or None) of Limine 11.4.1's
    init_gop (common/drivers/gop.c) on one GOP whose current mode is modes[0], or None where
    this walk does not follow that path. Every QueryMode makes QemuVideoDxe (OvmfPkg/QemuVideoDxe
    Gop.c QemuVideoGraphicsOutputQueryMode) AllocatePool one EFI_GRAPHICS_OUTPUT_MODE_INFORMATION
    that Limine never frees. The calls: one for the current mode; try_mode's mode_to_fb_info one per
    mode tried in order until one is width x height x depth (a full request), else the EDID retry
    (its size at 32 bpp, no smaller than the current mode) in order again; after success
    get_mode_list one per mode. SetMode only when the mode found is not the current one."""
    modes = ovmf_gop_modes() if modes is None else modes
    calls = 1

    def first(w, h, d):
        return next((i for i, m in enumerate(modes) if (m.width, m.height, m.bpp) == (w, h, d)), None)
    found = first(width, height, depth) if width and height and depth else None
    if width and height and depth:
        calls += len(modes) if found is None else found + 1
    if found is None:
        if not (edid and edid[0] >= modes[0].width and edid[1] >= modes[0].height):
            return None
        found = first(edid[0], edid[1], 32)
        if found is None:
            return None
        calls += found + 1
    return calls, calls + len(modes), (None if found == 0 else modes[found])


# Where QemuVideoDxe's configuration for mode 0 (set when the driver starts: 1280 x 4 + 56 bytes,
# 2 pool pages of Boot Services Data) sits, below the top of low RAM: observed at 0xe651000 at 256M
# and 0x1e651000 at 512M (GRUB x86_64-efi's exit map; the DXE drivers' pages move with low RAM,
# bootforge/machines/qemu_x86.py ovmf_efi_map).
OVMF_BLT_CONFIGURE_BELOW_LOWMEM = 0x10000000 - 0xE651000
