"""Backends that ship with the core: tar, zip and dir (standard library only)."""
