"""`bootforge verify`: boot the user's kernel, unmodified, under the real loader in
QEMU, stop at its first instruction and compare what the loader handed over with
`bootforge load`'s prediction.

How: QEMU starts halted (-S) with its gdbstub on a unix socket; a hardware
breakpoint at the kernel's entry (entry_point below), continue, and at the stop
EAX must hold a Multiboot magic (0x2BADB002 / 0x36D76289) -- if not, the
breakpoint fired on firmware or loader code at the same address before the
kernel was in place, so continue again. EBX is the boot information; it and
everything it points to are read through the gdbstub (capture.read_boot_information),
decoded by the same decoders as the dump kernel's output (bootforge.multiboot.dump),
and each module's bytes in guest memory are hashed against the file.
"""

from bootforge.verify.capture import Capture, capture, entry_point, read_boot_information  # noqa: F401
from bootforge.verify.compare import observed_fields, predicted_fields  # noqa: F401
