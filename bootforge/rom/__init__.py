"""PCI option ROM logic: reading chains, firmware verdicts, building, patching."""
