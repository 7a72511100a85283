"""Codecs that ship with the core (numpy only); other frameworks live in plugins."""
