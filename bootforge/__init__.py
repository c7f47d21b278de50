"""bootforge: build, inspect and simulate boot images."""

__version__ = "0.1.0"
