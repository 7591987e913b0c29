"""Bulk download: a month of recordings as ZIP files with a manifest (SPEC 5)."""
