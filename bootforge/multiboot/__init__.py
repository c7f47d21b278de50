"""Multiboot 1 and 2: header search, loader verdicts, kernel builder, boot-information dumps.

Layouts live in bootforge/formats/multiboot.py; this package holds the logic.
"""
