"""Portal housekeeping jobs: expired sessions and old login attempts (placeholder)."""
