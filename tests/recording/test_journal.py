"""The typed journal: byte-compatible lines, one replay, and a spool from a crash never crashes.

``fixtures/spool-v1`` is a real SIPREC call's spool written by the recorder
before the journal was typed (alice with a tone per side, keys by RFC 4733 and
SIP INFO, an SRC pause, then a metadata UPDATE transferring to bob); its
expected results were taken from that version's finisher and store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from callvault.recording.finisher import finish_all
from callvault.recording.journal import (
    EVENT_TYPES,
    Answer,
    Capture,
    Dtmf,
    End,
    InbandListened,
    JournalError,
    MalformedEvent,
    Pause,
    PolicySnapshot,
    RecordNow,
    Resume,
    Start,
    UnknownEventType,
    parse_event,
    parse_line,
    read_lines,
)
from callvault.recording.replay import replay
from callvault.recording.spool import SpoolReader
from callvault.recording.store import summarise

FIXTURE = Path(__file__).parent / "fixtures" / "spool-v1"


def _lines() -> list[str]:
    return (FIXTURE / "journal.jsonl").read_text(encoding="utf-8").splitlines()


def test_every_line_of_an_old_journal_is_written_back_byte_for_byte() -> None:
    lines = _lines()
    kinds = set()
    for line in lines:
        event = parse_line(line)
        kinds.add(event.type)
        assert event.to_json() == line
    assert kinds == {"start", "capture", "answer", "dtmf", "pause", "resume", "streams"} | {
        "parties",
        "end",
    }


def test_an_old_spool_still_finishes_as_it_did() -> None:
    reader = SpoolReader(FIXTURE)
    summary = summarise(reader.events(), 0)
    assert (summary.tenant_id, summary.recorded_user_id, summary.answered_ms) == (1, 1, 4)
    assert (summary.ended_ms, summary.end_reason, summary.multi) == (3017, "bye", True)
    [recording] = summary.recordings
    assert (recording.key, recording.tenant_id, recording.user_id) == ("1.0", 1, 1)
    assert recording.user_ids == {1, 2}
    assert recording.participant_ids == {"7f8686bcfc46", "8b62fc6e84a5"}
    assert summary.party_tenants == [1, 1, 1, 1]
    assert [t for t, _ in summary.party_changes] == [0, 2718]
    assert [(d.t, d.digit, d.stream, d.source) for d in summary.dtmf] == [
        (1016, "5", 0, "rfc4733"),
        (1218, "7", None, "info"),
        (1516, "9", 1, "rfc4733"),
    ]

    [audio] = finish_all(reader)
    assert (audio.key, audio.tenant_id, audio.user_id) == ("1.0", 1, 1)
    assert [
        (s.call_start_ms, s.call_end_ms, s.file_start_ms, s.file_end_ms) for s in audio.segments
    ] == [
        (4, 2019, 0, 2015),
        (2518, 3017, 2015, 2514),
    ]
    assert (audio.call_duration_ms, audio.end_reason) == (3013, "bye")
    assert audio.policy is not None and audio.policy.keep
    assert audio.policy.users == (1, 2)
    assert audio.policy.reason == "from 0.0 s user 1: mode always; from 2.7 s user 2: mode always"
    assert [(k.t, k.digit, k.side, k.source) for k in audio.policy.keys] == [
        (1016, "5", "user", "rfc4733"),
        (1218, "7", "user", "info"),
        (1516, "9", "other", "rfc4733"),
    ]
    assert audio.dtmf[1] == {
        "t": 1218,
        "stream": None,
        "digit": "7",
        "duration_ms": 120,
        "source": "info",
        "side": "user",
        "file_ms": 1214,
    }


def test_replay_gives_the_facts_both_readers_use() -> None:
    facts = replay(SpoolReader(FIXTURE).events())
    assert facts.paused == [(2019, 2518)]
    assert facts.plans[0].channels == [(3, "left")]
    assert facts.plans[0].senders == [(3, "7f8686bcfc46"), (2718, "8b62fc6e84a5")]
    assert facts.captured is not None and facts.captured.windows(3017) == [(4, 3017)]
    assert facts.recordings["1.0"].users == [(0, 1), (2718, 2)]
    assert facts.policy is not None and facts.policy.modes == {"1": "always", "2": "always"}
    assert facts.users == [(0, 1), (2718, 2)]


def test_a_spool_with_unknown_and_broken_lines_finishes_and_counts_them(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    shutil.copytree(FIXTURE, spool)
    lines = _lines()
    lines[3:3] = [
        '{"type":"hold_music","t":900,"on":true}',  # a later version's event
        '{"type":"hold_music","t":950,"on":false}',
        "not json at all",
        '{"type":"dtmf","t":"soon","stream":0,"digit":"1"}',
        '{"type":"capture","t":990,"open":"yes"}',
        '{"type":"pause","t":991,"stream":"0"}',
        "[1, 2]",
        '{"t":5}',
    ]
    (spool / "journal.jsonl").write_text("\n".join(lines) + '\n{"type":"end","t":40', "utf-8")
    reader = SpoolReader(spool)
    events = reader.events()
    assert len(events) == len(_lines())
    assert reader.unknown == {"hold_music": 2} and reader.malformed == 6
    [audio] = finish_all(reader)
    assert [(s.call_start_ms, s.call_end_ms) for s in audio.segments] == [(4, 2019), (2518, 3017)]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "start", "t": 0, "started_at": 1},  # no call uuid
        {"type": "start", "t": 0, "call_uuid": "c", "started_at": "yesterday"},
        {"type": "answer", "t": 1.5},
        {"type": "answer", "t": True},
        {"type": "dtmf", "t": 1, "stream": 0, "digit": "12345"},
        {"type": "dtmf", "t": 1, "stream": 0},
        {"type": "capture", "t": 1},
        {"type": "record_now", "t": 1, "on": True},
        {"type": "inband_listened", "t": 1, "stream": 0, "from_ms": 9, "to_ms": 5, "detector": "x"},
        {
            "type": "inband_listened",
            "t": 1,
            "stream": 0,
            "from_ms": -1,
            "to_ms": 5,
            "detector": "x",
        },
        {"type": "inband_listened", "t": 1, "stream": 0, "from_ms": 0, "to_ms": 5, "detector": ""},
        {"type": "inband_listened", "t": 1, "from_ms": 0, "to_ms": 5, "detector": "x"},
        {"type": "streams", "t": 1, "streams": [{"index": 0, "codecs": {}, "channel": "up"}]},
        {"type": "streams", "t": 1, "streams": [{"index": 0, "codecs": {"0": ["PCMU"]}}]},
        {"type": "streams", "t": 1, "streams": "all"},
        {"type": "end", "t": 1, "reason": 7},
        {"t": 1},
    ],
)
def test_bad_input_raises_a_precise_journal_error(raw: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_event(raw)
    assert isinstance(caught.value, ValueError)


def test_an_unknown_type_is_its_own_error() -> None:
    with pytest.raises(UnknownEventType) as caught:
        parse_event({"type": "video", "t": 1})
    assert caught.value.kind == "video" and isinstance(caught.value, JournalError)
    assert read_lines(['{"type":"video","t":1}\n']).unknown == {"video": 1}


def test_every_event_type_round_trips() -> None:
    events = [
        Answer(t=4),
        Pause(t=5, stream=None),
        Resume(t=6, stream=2),
        Dtmf(t=7, stream=None, digit="#", duration_ms=80, source="info", side="other"),
        Dtmf(t=8, stream=1, digit="*", participant_id="pa"),
        Capture(t=9, open=False),
        RecordNow(t=10, on=True, tenant_id=3, by=None),
        InbandListened(t=10, stream=0, from_ms=120, to_ms=9000, detector="q24/1"),
        End(t=11, reason="cancel"),
        parse_event({"type": "streams", "t": 12, "streams": [], "channels_from": 0}),
        *(parse_line(line) for line in _lines()),
    ]
    assert {type(e) for e in events} == set(EVENT_TYPES.values())
    for event in events:
        assert parse_event(json.loads(event.to_json())) == event


def test_the_policy_snapshot_keeps_its_defaults_in_one_place() -> None:
    assert PolicySnapshot.parse({}) == PolicySnapshot()
    assert PolicySnapshot() == PolicySnapshot("*1", "cut", "both", {}, {})
    start = parse_event(
        {
            "type": "start",
            "t": 0,
            "call_uuid": "c",
            "started_at": 1,
            "recordings": [
                {"key": "1.0", "tenant_id": 1, "user_id": 2, "participant_id": "p"},
                {"key": "1.1", "tenant_id": "one", "user_id": 3, "participant_id": "q"},
            ],
        }
    )
    assert isinstance(start, Start) and start.recordings is not None
    [ref] = start.recordings  # the malformed entry is skipped, not the event
    assert ref.policy == PolicySnapshot()
    merged = PolicySnapshot(modes={"1": "always"}).merged(
        PolicySnapshot("#", "silence", "mix", {"2": "never"}, {"2": {"blacklist": ["+31"]}})
    )
    assert merged == PolicySnapshot(
        "*1", "cut", "both", {"1": "always", "2": "never"}, merged.contacts
    )
    assert merged.contacts_of(2) == {"blacklist": ["+31"]}
