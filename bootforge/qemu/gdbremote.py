"""A small client of the GDB remote serial protocol, enough for QEMU's gdbstub:
hardware breakpoints, continue, read registers, read memory.

Why our own client and not gdb: the four packets used here (Z1, c, g, m) are a
few lines each, and a user's machine then needs nothing beyond QEMU (no gdb, no
pygdbmi). Packets: `$payload#checksum` (sum of payload bytes mod 256, two hex
digits), acknowledged with `+`; replies may be run-length encoded (`x*n`: x
repeated n-29 more times). Source: GDB's "Remote Protocol" documentation
(Overview, Packets, Stop Reply Packets); observed with QEMU 7.2's gdbstub.
"""

import select
import socket
import time

from bootforge.errors import ToolError

# qemu-system-x86_64's 'g' reply: the 64-bit register file whatever the CPU mode
# (gdb-xml/i386-64bit.xml order): rax rbx rcx rdx rsi rdi rbp rsp r8..r15 (8 bytes
# each), rip (8), eflags (4), cs ss ds es fs gs (4 each).
X86_64_REGS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
               "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"]
READ_CHUNK = 2000       # QEMU's packet buffer is 4096 bytes: 2 hex digits per byte


class GdbError(ToolError):
    """The gdbstub did not answer as the protocol says."""


class GdbRemote:
    def __init__(self, path, connect_timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise GdbError(f"QEMU's gdbstub did not open {path}") from None
                time.sleep(0.02)
        self.buf = b""

    def close(self):
        self.sock.close()

    # -- framing
    def send(self, payload):
        data = payload.encode("latin-1")
        try:
            self.sock.sendall(b"$" + data + b"#%02x" % (sum(data) & 0xFF))
        except OSError:
            raise GdbError("QEMU closed the gdbstub connection") from None

    def _fill(self, timeout):
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            raise GdbError("QEMU closed the gdbstub connection")
        self.buf += chunk
        return True

    def receive(self, timeout=10.0):
        """The next packet's payload, or None after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            start = self.buf.find(b"$")
            if start >= 0:
                end = self.buf.find(b"#", start)
                if end >= 0 and len(self.buf) >= end + 3:
                    body, check = self.buf[start + 1:end], self.buf[end + 1:end + 3]
                    self.buf = self.buf[end + 3:]
                    if int(check, 16) != sum(body) & 0xFF:
                        self._ack(b"-")
                        continue
                    self._ack()
                    return _unescape(body).decode("latin-1")
            else:
                self.buf = b""      # acks ('+') and nothing else before a packet
            if not self._fill(deadline - time.monotonic()) and time.monotonic() >= deadline:
                return None

    def _ack(self, what=b"+"):
        try:
            self.sock.sendall(what)
        except OSError:
            raise GdbError("QEMU closed the gdbstub connection") from None

    def request(self, payload, timeout=10.0):
        self.send(payload)
        reply = self.receive(timeout)
        if reply is None:
            raise GdbError(f"no reply from QEMU's gdbstub to {payload[:20]!r}")
        return reply

    # -- what verify needs
    def hardware_breakpoint(self, address):
        reply = self.request(f"Z1,{address:x},1")
        if reply != "OK":
            raise GdbError(f"QEMU refused a hardware breakpoint at {address:#x} ({reply!r})")

    def remove_hardware_breakpoint(self, address):
        reply = self.request(f"z1,{address:x},1")
        if reply != "OK":
            raise GdbError(f"QEMU could not remove the breakpoint at {address:#x} ({reply!r})")

    def step_over(self, address, timeout=10.0):
        """Continue past a breakpoint the guest stopped at: a hardware breakpoint fires
        before the instruction runs, so 'c' would stop at once again. Remove it, step one
        instruction, put it back (what gdb does)."""
        self.remove_hardware_breakpoint(address)
        self.send("s")
        if self.receive(timeout) is None:
            raise GdbError(f"no stop after a single step at {address:#x}")
        self.hardware_breakpoint(address)

    def cont(self):
        """Resume the guest; the stop reply comes later (wait_stop)."""
        self.send("c")

    def wait_stop(self, timeout):
        """The stop reply ('T05...', 'S05', 'W..' when QEMU exits) or None."""
        return self.receive(timeout)

    def registers(self, layout=None):
        """{name: value} of the 'g' reply read by *layout* ((names, bytes each), the machine's
        bootforge.machines gdb_registers; default qemu-system-x86_64's)."""
        names, width = layout or (tuple(X86_64_REGS), 8)
        reply = self.request("g")
        raw = bytes.fromhex(reply)
        if len(raw) < width * len(names):
            raise GdbError(f"register reply of {len(raw)} bytes (expected {len(names)} registers of {width} bytes)")
        return {name: int.from_bytes(raw[width * i:width * i + width], "little") for i, name in enumerate(names)}

    def read_memory(self, address, length):
        """*length* bytes of guest memory at *address* (linear), or None if QEMU cannot read it."""
        out = bytearray()
        while len(out) < length:
            n = min(READ_CHUNK, length - len(out))
            reply = self.request(f"m{address + len(out):x},{n:x}")
            if reply.startswith("E") and len(reply) == 3 or not reply:
                return None
            chunk = bytes.fromhex(reply)
            if not chunk:
                return None
            out += chunk
        return bytes(out)


def _unescape(body):
    """Undo the protocol's escapes ('}' x^0x20) and run-length encoding ('c*n')."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == 0x7D and i + 1 < len(body):
            out.append(body[i + 1] ^ 0x20)
            i += 2
        elif c == 0x2A and out and i + 1 < len(body):
            out += bytes([out[-1]]) * (body[i + 1] - 29)
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)
