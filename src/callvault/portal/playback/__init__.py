"""Playback (SPEC section 6): the question after each call, its answers, the web app."""
