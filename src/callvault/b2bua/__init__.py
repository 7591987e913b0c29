"""The in-path B2BUA (SPEC section 2, mode 2): relays calls between two legs and records them."""
