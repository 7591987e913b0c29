"""A source's live calls and open media lines against its limits (SourceUsage)."""

from __future__ import annotations

import ipaddress

import pytest

from callvault.errors import LocalProtocolError
from callvault.sources.registry import RecordingSource, SourceLimits, SourceUsage, SourceUsages


def test_calls_stop_at_the_limit_and_free_up_on_release() -> None:
    usage = SourceUsage(SourceLimits(max_calls=2))
    assert usage.try_open_call() and usage.try_open_call()
    assert not usage.try_open_call()
    assert usage.calls == 2
    usage.release_call()
    assert usage.calls == 1
    assert usage.try_open_call()
    usage.release_call()
    usage.release_call()
    with pytest.raises(LocalProtocolError):
        usage.release_call()


def test_streams_open_all_or_none() -> None:
    usage = SourceUsage(SourceLimits(max_streams=5))
    assert usage.try_open_streams(4)
    assert not usage.try_open_streams(2)  # would be 6: nothing is taken
    assert usage.streams == 4
    assert usage.try_open_streams(1)
    assert not usage.try_open_streams(1)
    assert usage.try_open_streams(0)
    usage.release_streams(3)
    assert usage.streams == 2 and usage.try_open_streams(3)
    with pytest.raises(LocalProtocolError):
        usage.release_streams(6)
    with pytest.raises(LocalProtocolError):
        usage.try_open_streams(-1)
    with pytest.raises(LocalProtocolError):
        usage.release_streams(-1)
    assert usage.streams == 5


def test_the_issue_s_flood_is_held_to_the_limits() -> None:
    """15 INVITEs of 32 m-lines and 9 small ones held 498 ports; with the defaults they cannot."""
    limits = SourceLimits()
    usage = SourceUsage(limits)
    admitted_streams = 0
    for lines in [32] * 15 + [2] * 9:
        if not limits.media_lines_allowed(lines) or not usage.try_open_call():
            continue
        if usage.try_open_streams(lines):
            admitted_streams += lines
        else:
            usage.release_call()
    assert admitted_streams == 18 and usage.calls == 9
    # and one source cannot hold more than max_streams however it splits its offers
    for _ in range(500):
        if usage.try_open_call() and not usage.try_open_streams(4):
            usage.release_call()
    assert usage.streams <= limits.max_streams and usage.calls <= limits.max_calls


def _source(limits: SourceLimits) -> RecordingSource:
    return RecordingSource(
        id=7,
        name="sbc",
        networks=(ipaddress.ip_network("10.0.0.0/8"),),
        fingerprints=frozenset(),
        tenant_ids=frozenset({1}),
        limits=limits,
    )


def test_usage_survives_a_reload_and_takes_the_new_limits() -> None:
    usages = SourceUsages()
    first = usages.usage(_source(SourceLimits(max_calls=3)))
    assert first.try_open_call() and first.try_open_call()
    lowered = usages.usage(_source(SourceLimits(max_calls=1)))
    assert lowered is first and lowered.calls == 2
    assert not lowered.try_open_call()  # open calls go on, new ones are refused
    lowered.release_call()
    lowered.release_call()
    assert lowered.try_open_call()
    assert usages.totals() == {7: (1, 0)}
