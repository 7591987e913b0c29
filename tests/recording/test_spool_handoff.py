"""A spool this process closed goes to its finisher without being read back
(``spool.take_closed``, issue 12: set-ups and tear-downs per second), and the
spool is removed after its rows committed; anything else reads the disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.recording.callbuilder import PCMU, CallBuilder, layout, rtp_stream
from tests.recording.test_multi_recording import END_MS, Db, _finish, db, party, ref, two_party_call

from callvault.recording.journal import End, read_lines
from callvault.recording.spool import JOURNAL, SpoolReader, SpoolWriter, take_closed

__all__ = ["db"]  # the fixture, shared with test_multi_recording


def _spool(directory: Path, *, audio: bool) -> CallBuilder:
    call = CallBuilder(directory, [layout(0, "mix", {0: PCMU})])
    if audio:
        call.packets(0, rtp_stream("PCMU", 0, (0, 200), []))
    call.event("end", 200, reason="bye")
    call.writer.close()
    return call


def test_a_closed_spool_is_handed_over_once_as_written(tmp_path: Path) -> None:
    _spool(tmp_path / "a", audio=True)
    _spool(tmp_path / "b", audio=False)

    a = take_closed(tmp_path / "a")
    assert a is not None and a.has_audio
    assert "".join(a.lines) == (tmp_path / "a" / JOURNAL).read_text()
    assert read_lines(a.lines).events == SpoolReader(tmp_path / "a").events()
    assert take_closed(tmp_path / "a") is None  # once
    b = take_closed(tmp_path / "b")
    assert (
        b is not None
        and not b.has_audio
        and [e.type for e in read_lines(b.lines).events]
        == [
            "start",
            "end",
        ]
    )


def test_a_spool_changed_after_close_or_never_closed_is_read_from_disk(tmp_path: Path) -> None:
    _spool(tmp_path / "changed", audio=False)
    with open(tmp_path / "changed" / JOURNAL, "a") as journal:
        journal.write('{"type":"end","t":300,"reason":"later"}\n')
    assert take_closed(tmp_path / "changed") is None

    crashed = CallBuilder(tmp_path / "crashed", [layout(0, "mix", {0: PCMU})])
    crashed.writer.flush()  # killed before close: nothing is handed over
    assert take_closed(tmp_path / "crashed") is None
    assert take_closed(tmp_path / "nowhere") is None


def test_each_journal_event_is_on_disk_when_record_returns(tmp_path: Path) -> None:
    """kill -9 right after ``record``: the line is the kernel's already."""
    writer = SpoolWriter(tmp_path / "call")
    writer.record(End(t=5, reason="bye"))
    assert SpoolReader(tmp_path / "call").events() == [End(t=5, reason="bye")]
    writer.close()
    writer.close()  # twice is harmless


async def test_the_finisher_stores_a_spool_it_closed_without_reading_it_back(
    tmp_path: Path, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = "feedface0123456789abcdef01234567"
    ta, a = db.tenants["alpha"], db.users["a"]
    spool = tmp_path / "spool" / uuid
    parties = [
        party("pa", "sip:a@alpha.example", a, "user"),
        party("pb", "sip:x@pstn.example", None),
    ]
    call = two_party_call(
        spool, [ref(f"{ta}.0", a, "pa", "always")], parties=parties, tenant_id=ta, call_uuid=uuid
    )
    call.event("end", END_MS, reason="bye")
    call.writer.close()

    def no_reading(self: SpoolReader) -> object:
        raise AssertionError("the finisher read back a spool this process closed")

    monkeypatch.setattr(SpoolReader, "events", no_reading)
    monkeypatch.setattr(SpoolReader, "has_audio", no_reading)
    assert await _finish(tmp_path, db, uuid) == uuid
    assert not spool.exists()  # removed once its rows committed
