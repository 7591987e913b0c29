"""Every job kind's module (imported so their handlers register) and the schedules.

One place lists them, so ``callvault serve`` and the tests run the same set.
"""

from __future__ import annotations

import importlib

from callvault.jobs.runner import Schedule, daily, hourly

HANDLER_MODULES = (
    "callvault.jobs.housekeeping",  # expired portal sessions, login attempts
    "callvault.retention.purge",  # expired audio, minute quotas
    "callvault.mail.recordings",  # each finished recording to the tenant's address
    "callvault.exports.job",  # bulk download: a month as ZIP files
    "callvault.playback.ask",  # after a Playback call: keep it? (Web Push, e-mail)
)

SCHEDULES: tuple[Schedule, ...] = (
    hourly("sessions.cleanup"),
    daily("retention.purge"),
    daily("exports.expire"),
)


def load_handlers() -> None:
    for name in HANDLER_MODULES:
        importlib.import_module(name)
