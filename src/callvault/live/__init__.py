"""LiveCenter (SPEC section 7): the calls in progress as the portal sees them."""
