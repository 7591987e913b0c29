"""Recordings by e-mail (placeholder)."""
