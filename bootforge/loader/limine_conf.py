"""limine.conf read as Limine 11.4.1 reads it: the parser is Limine's bootloader module,
bootforge.bootloaders.limine (this name stays for the callers of parse_limine_conf)."""

from bootforge.bootloaders.limine import (  # noqa: F401
    default_root, multiboot_entries, parse_limine_conf, read_entries, resolve_uri)
