"""The retention purge job (placeholder)."""
