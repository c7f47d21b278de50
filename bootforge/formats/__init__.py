"""Byte layouts, declared with Construct. No logic lives here."""
