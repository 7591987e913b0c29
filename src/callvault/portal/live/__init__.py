"""LiveCenter's API and page (SPEC section 7)."""
