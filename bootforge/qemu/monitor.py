"""QEMU's human monitor on a unix socket, for what only the screen shows: the VGA text buffer.

Loaders that print only through the BIOS (iPXE's "Could not select: Exec format error")
reach no serial port; their words are in the VGA text buffer at 0xB8000 (80x25 cells of a
character byte and an attribute byte). The monitor's `pmemsave ADDR SIZE "FILE"` writes guest
physical memory to a file while the guest runs (QEMU 7.2 monitor/misc.c hmp_pmemsave).
"""

import socket
import time
from pathlib import Path

VGA_TEXT = 0xB8000
COLUMNS, ROWS = 80, 25
PROMPT = b"(qemu) "


def screen_lines(cells):
    """The text rows of VGA text-mode memory *cells* (character, attribute pairs)."""
    chars = bytes(cells[0::2])
    rows = [chars[i:i + COLUMNS].decode("cp437", "replace").rstrip() for i in range(0, len(chars), COLUMNS)]
    return [r.replace("\0", " ").rstrip() for r in rows]


def vga_text(sock_path, dump_path, timeout=2.0):
    """The VGA text screen's rows read through the monitor at *sock_path*, or [] when it cannot be read."""
    dump = Path(dump_path)
    try:
        dump.unlink()
    except FileNotFoundError:
        pass
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mon:
            mon.settimeout(timeout)
            mon.connect(str(sock_path))
            _until_prompt(mon, timeout)
            mon.sendall(f'pmemsave {VGA_TEXT:#x} {COLUMNS * ROWS * 2} "{dump}"\n'.encode())
            _until_prompt(mon, timeout)
        return screen_lines(dump.read_bytes())
    except OSError:
        return []


def _until_prompt(mon, timeout):
    deadline, seen = time.monotonic() + timeout, b""
    while not seen.endswith(PROMPT) and time.monotonic() < deadline:
        chunk = mon.recv(4096)
        if not chunk:
            raise OSError("the monitor closed")
        seen = (seen + chunk)[-256:]
    if not seen.endswith(PROMPT):
        raise OSError("no monitor prompt")


def stop_and_save(sock_path, address, size, dump_path, timeout=30.0):
    """Stop the guest (`stop`: nothing it runs changes memory afterwards) and write *size* bytes of
    guest physical memory at *address* to *dump_path* (pmemsave); the bytes, or b"" when the
    monitor cannot be used."""
    dump = Path(dump_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mon:
            mon.settimeout(timeout)
            mon.connect(str(sock_path))
            _until_prompt(mon, timeout)
            mon.sendall(b"stop\n")
            _until_prompt(mon, timeout)
            mon.sendall(f'pmemsave {address:#x} {size} "{dump}"\n'.encode())
            _until_prompt(mon, timeout)
        return dump.read_bytes()
    except OSError:
        return b""
