"""Unified Kernel Images and EFI-stub Linux kernels (issue 14): build a UKI from a
[uki] recipe (build.py), inspect a UKI or any EFI-stub bzImage (inspect.py), and the
facts both need: the PE image with its sections (bootforge/pe/image.py) and the kernel's
setup header (kernel.py)."""
