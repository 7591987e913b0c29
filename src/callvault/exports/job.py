"""The export job (placeholder)."""
