"""Playback, the personal recorder (SPEC 6, issue 9): asking after each call
whether to keep the recording, and the answer."""
