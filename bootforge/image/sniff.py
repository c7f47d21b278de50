"""Is this file a bootable image? One test, read from the first 32 KiB + 16 bytes.

Kept free of imports so `bootforge inspect` can ask it of every file without
loading the image readers (a ROM or a kernel never pays for bootforge/image/).
"""

import os
import stat

# ISO 9660's first volume descriptor sits at 32 KiB (ECMA-119 8.1): its "CD001" ends here.
HEAD_SIZE = 0x8010


def is_disk_image(head):
    """ISO 9660 (CD001 at 32 KiB + 1) or a GPT/MBR-partitioned disk (bootforge/image/read.py says more)."""
    if head[0x8001:0x8006] == b"CD001" or (head[510:512] == b"\x55\xaa" and head[512:520] == b"EFI PART"):
        return True
    if len(head) < 512 or head[510:512] != b"\x55\xaa" or head[:2] == b"\x55\xaa":
        return False
    if head[0x202:0x206] == b"HdrS":
        return False    # a Linux bzImage's boot sector (boot_flag 0xAA55 at 510), not a partition table
    parts = [head[446 + 16 * i:462 + 16 * i] for i in range(4)]
    return all(p[0] in (0, 0x80) for p in parts) and any(p[4] for p in parts)


def image_head(path):
    """The first HEAD_SIZE bytes of *path* when it is a regular file holding an image, else None."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            head = f.read(HEAD_SIZE)
    except (OSError, TypeError, ValueError):
        return None
    return head if is_disk_image(head) else None
