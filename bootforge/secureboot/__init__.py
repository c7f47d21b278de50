"""UEFI Secure Boot as OVMF enforces it: the signature databases (siglist.py), OVMF's
variable store (varstore.py), and the verdict of DxeImageVerificationLib on a PE image
given db/dbx (policy.py)."""

from contextvars import ContextVar

# The policy `bootforge inspect --db/--dbx/--secureboot-vars` asked for (None: no verdict); a
# SecureBootPolicy (policy.py, which imports cryptography: loaded only when one is asked for).
ACTIVE = ContextVar("secureboot_policy", default=None)
