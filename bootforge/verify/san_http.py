"""A SAN target that never leaves the machine: one disk image served over HTTP to one
connection on stdin/stdout, as QEMU's `guestfwd=tcp:IP:PORT-cmd:...` hands a guest's
connection to a command. iPXE's `sanboot http://...` reads it (HEAD for the size, GET with
Range for blocks; iPXE src/net/tcp/httpblock.c), one request per connection ("Connection:
close": iPXE opens the next).

    python -m bootforge.verify.san_http DISK
"""

import re
import sys

RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def serve(disk_path, rfile, wfile):
    data = open(disk_path, "rb").read()
    while True:
        request = rfile.readline()
        if not request:
            return
        headers = {}
        while True:
            line = rfile.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        method = request.split()[0].decode("latin-1") if request.split() else ""
        start, end = 0, len(data) - 1
        status = "200 OK"
        m = RANGE.fullmatch(headers.get("range", ""))
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            status = "206 Partial Content"
        body = data[start:end + 1]
        head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Accept-Ranges: bytes",
                "Connection: close", "Content-Type: application/octet-stream"]
        if m:
            head.append(f"Content-Range: bytes {start}-{end}/{len(data)}")
        wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
        if method != "HEAD":
            wfile.write(body)
        wfile.flush()
        return          # one request per connection: iPXE opens the next


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
