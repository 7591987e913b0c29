"""One call, several recordings: each recorded user gets their own (SPEC section 2).

Spools are written the way capture writes them (``callbuilder.py``): every
``start``/``parties`` event lists ``recordings`` (one per recorded user,
keyed ``"<tenant>.<rank>"``) and every stream names the participant sending
it. Each recording is checked by what its MP3 holds: which tone is on which
channel, and when. The pipeline tests run the real ``Finisher`` (process
pool, SQLite, blob store) and look at the rows and at the portal API.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.recording.callbuilder import EVENT, PCMA, PCMU, CallBuilder, layout, rtp_stream

from callvault.admin import create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, CallParty, DtmfEvent, Recording, Tenant
from callvault.media.analysis import tone_spans
from callvault.portal.app import create_app
from callvault.portal.auth import issue_token
from callvault.portal.context import PortalContext
from callvault.recording.finisher import FinishedAudio, finish, finish_all
from callvault.recording.journal import PolicySnapshot, RecordingRef
from callvault.recording.mp3 import decode_mp3
from callvault.recording.pipeline import Finisher
from callvault.storage.blobs import LocalBlobStore

TOLERANCE = 0.06  # seconds
A_HZ, B_HZ, E_HZ = 440.0, 1000.0, 700.0  # user A, user B, an outside party
END_MS = 10_000


def spans_match(found: list[tuple[float, float]], expected: list[tuple[float, float]]) -> None:
    assert len(found) == len(expected), (found, expected)
    for (a, b), (x, y) in zip(found, expected, strict=True):
        assert abs(a - x) <= TOLERANCE and abs(b - y) <= TOLERANCE, (found, expected)


def stereo(result: FinishedAudio) -> tuple[np.ndarray, np.ndarray]:
    audio, rate = decode_mp3(result.mp3)
    assert rate == 8000 and audio.shape == (2, result.duration_ms * 8)
    return audio[0], audio[1]


def policy(modes: dict[int, str]) -> dict[str, Any]:
    return {
        "short_code": "*1",
        "pause_mode": "cut",
        "channels": "both",
        "modes": {str(user): mode for user, mode in modes.items()},
        "contacts": {},
    }


def ref(key: str, user: int, participant: str, mode: str) -> dict[str, Any]:
    tenant = int(key.split(".")[0])
    snapshot = PolicySnapshot.parse(policy({user: mode}))
    return RecordingRef(key, tenant, user, participant, snapshot).to_dict()


def party(pid: str, aor: str, user: int | None, side: str = "other") -> dict[str, Any]:
    return {
        "participant_id": pid,
        "aor": aor,
        "name": pid,
        "number": None,
        "user_id": user,
        "side": side,
    }


def two_party_call(
    directory: Path,
    recordings: list[dict[str, Any]],
    *,
    parties: list[dict[str, Any]],
    tenant_id: int,
    call_uuid: str = "c0ffee",
) -> CallBuilder:
    """Stream 0 is sent by "pa" (A's tone, 1-9 s), stream 1 by "pb" (B's tone, 6-8 s);
    answered at 0.5 s, ended at 10 s. The journal's ``channel`` is the first recording's."""
    first = recordings[0]
    call = CallBuilder(
        directory,
        [
            layout(0, "left", {0: PCMU}, participant_id="pa"),
            layout(1, "right", {8: PCMA, 101: EVENT}, participant_id="pb"),
        ],
        call_uuid=call_uuid,
        parties=parties,
        tenant_id=tenant_id,
        recorded_user_id=first["user_id"],
        policy=first["policy"],
        recordings=recordings,
    )
    call.event("answer", 500)
    call.packets(0, rtp_stream("PCMU", 0, (500, END_MS), [(A_HZ, 1000, 9000)]))
    call.packets(1, rtp_stream("PCMA", 8, (500, END_MS), [(B_HZ, 6000, 8000)], ssrc=9))
    return call


def press_code(call: CallBuilder, stream: int, at_ms: int) -> None:
    """The short code *1 as RFC 4733 events: ``*`` at ``at_ms``, ``1`` 300 ms later."""
    for offset, digit in ((0, "*"), (300, "1")):
        call.event(
            "dtmf", at_ms + offset, stream=stream, digit=digit, duration_ms=100, source="rfc4733"
        )


def cross_tenant_call(directory: Path, a: int, b: int, ta: int, tb: int) -> CallBuilder:
    """A (tenant ``ta``, always) calls B (tenant ``tb``, on demand started by user);
    B presses *1 at 5.0/5.3 s."""
    recordings = [ref(f"{ta}.0", a, "pa", "always"), ref(f"{tb}.0", b, "pb", "on_demand_user")]
    parties = [party("pa", "sip:a@alpha.example", a, "user"), party("pb", "sip:b@beta.example", b)]
    call = two_party_call(directory, recordings, parties=parties, tenant_id=ta)
    press_code(call, 1, 5000)
    call.event("end", END_MS, reason="bye")
    return call


def test_each_tenant_gets_its_own_recording_with_its_user_left(tmp_path: Path) -> None:
    results = finish_all(cross_tenant_call(tmp_path, 11, 21, 1, 2).reader())
    mine, theirs = results
    assert (mine.key, mine.tenant_id, mine.user_id) == ("1.0", 1, 11)
    assert (theirs.key, theirs.tenant_id, theirs.user_id) == ("2.0", 2, 21)

    # A (always): the whole call, A's tone left, B's right; B's code changes nothing
    assert mine.policy is not None and mine.policy.keep and mine.policy.mode == "always"
    assert [(s.call_start_ms, s.call_end_ms) for s in mine.segments] == [(500, END_MS)]
    left, right = stereo(mine)
    spans_match(tone_spans(left, 8000, A_HZ), [(0.5, 8.5)])
    spans_match(tone_spans(right, 8000, B_HZ), [(5.5, 7.5)])
    assert tone_spans(left, 8000, B_HZ) == [] and tone_spans(right, 8000, A_HZ) == []

    # B (on demand, started by user): from B's code at 5.3 s, B's tone left, A's right
    assert theirs.policy is not None and theirs.policy.keep
    assert theirs.policy.mode == "on_demand_user"
    [segment] = theirs.segments
    assert abs(segment.call_start_ms - 5300) <= 50 and segment.call_end_ms == END_MS
    left, right = stereo(theirs)
    start = segment.call_start_ms / 1000
    spans_match(tone_spans(left, 8000, B_HZ), [(6.0 - start, 8.0 - start)])
    spans_match(tone_spans(right, 8000, A_HZ), [(0.0, 9.0 - start)])
    assert tone_spans(left, 8000, A_HZ) == [] and tone_spans(right, 8000, B_HZ) == []
    assert mine.sha256 != theirs.sha256


def test_decoding_and_key_detection_are_done_once_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only mixing, policy and encoding are per recording."""
    from callvault.media.inband_dtmf import detect_keys as detect
    from callvault.recording import finisher
    from callvault.recording.timeline import StreamTimeline

    calls: dict[str, list[int]] = {"render": [], "detect": []}
    render = StreamTimeline.render

    def counted_render(self: Any, rate: int) -> Any:
        calls["render"].append(id(self))
        return render(self, rate)

    def counted_detect(samples: Any, rate: int, index: int = 0, **skip: Any) -> Any:
        calls["detect"].append(index)
        return detect(samples, rate, index, **skip)

    monkeypatch.setattr(StreamTimeline, "render", counted_render)
    monkeypatch.setattr(finisher, "detect_keys", counted_detect)  # the name the finisher calls
    recordings = [ref("1.0", 11, "pa", "on_demand_user"), ref("2.0", 21, "pb", "always")]
    parties = [party("pa", "sip:a@alpha.example", 11, "user"), party("pb", "sip:b@x", 21)]
    call = two_party_call(tmp_path, recordings, parties=parties, tenant_id=1)
    call.event("end", END_MS, reason="bye")
    assert len(finish_all(call.reader())) == 2
    assert len(calls["render"]) == 2  # two streams, each rendered once
    assert sorted(calls["detect"]) == [0, 1]  # each user's stream listened to once


def test_only_the_users_own_keys_count(tmp_path: Path) -> None:
    """A presses *1 on A's stream: A's on-demand recording starts, B's (also on
    demand, same tenant) does not: A's keys are the other party's keys to B."""
    recordings = [ref("1.0", 11, "pa", "on_demand_user"), ref("1.1", 12, "pb", "on_demand_user")]
    parties = [party("pa", "sip:a@alpha.example", 11, "user"), party("pb", "sip:b@x", 12)]
    call = two_party_call(tmp_path, recordings, parties=parties, tenant_id=1)
    press_code(call, 0, 2000)
    call.event("end", END_MS, reason="bye")
    a, b = finish_all(call.reader())
    assert a.policy is not None and a.policy.keep and not a.empty
    assert [(s.call_start_ms, s.call_end_ms) for s in a.segments] == [(2300, END_MS)]
    assert b.policy is not None and not b.policy.keep and b.empty and b.mp3 == b""


def test_two_users_of_one_tenant_each_left_in_their_own(tmp_path: Path) -> None:
    recordings = [ref("1.0", 11, "pa", "always"), ref("1.1", 12, "pb", "always")]
    parties = [party("pa", "sip:a@alpha.example", 11, "user"), party("pb", "sip:b@x", 12)]
    call = two_party_call(tmp_path, recordings, parties=parties, tenant_id=1)
    call.event("end", END_MS, reason="bye")
    a, b = finish_all(call.reader())
    left, right = stereo(a)
    spans_match(tone_spans(left, 8000, A_HZ), [(0.5, 8.5)])
    spans_match(tone_spans(right, 8000, B_HZ), [(5.5, 7.5)])
    left, right = stereo(b)
    spans_match(tone_spans(left, 8000, B_HZ), [(5.5, 7.5)])
    spans_match(tone_spans(right, 8000, A_HZ), [(0.5, 8.5)])


def test_a_never_user_gets_no_recording(tmp_path: Path) -> None:
    recordings = [ref("1.0", 11, "pa", "always"), ref("2.0", 21, "pb", "never")]
    parties = [party("pa", "sip:a@alpha.example", 11, "user"), party("pb", "sip:b@x", 21)]
    call = two_party_call(tmp_path, recordings, parties=parties, tenant_id=1)
    call.event("end", END_MS, reason="bye")
    a, b = finish_all(call.reader())
    assert a.policy is not None and a.policy.keep and not a.empty
    assert b.policy is not None and not b.policy.keep and b.empty


def test_a_single_mixed_stream_is_mixed_in_every_recording(tmp_path: Path) -> None:
    recordings = [ref("1.0", 11, "pa", "always"), ref("2.0", 21, "pb", "always")]
    call = CallBuilder(
        tmp_path,
        [layout(0, "mix", {0: PCMU}, participant_id=None)],
        recorded_user_id=11,
        policy=recordings[0]["policy"],
        recordings=recordings,
    )
    call.packets(0, rtp_stream("PCMU", 0, (0, 3000), [(A_HZ, 1000, 2000)]))
    call.event("end", 3000, reason="bye")
    for result in finish_all(call.reader()):
        left, right = stereo(result)
        spans_match(tone_spans(left, 8000, A_HZ), [(1.0, 2.0)])
        spans_match(tone_spans(right, 8000, A_HZ), [(1.0, 2.0)])


def test_another_tenants_user_joining_later_is_recorded_from_their_arrival(
    tmp_path: Path,
) -> None:
    """A (always) talks to an outside party E; at 4 s E hands the call to B of
    another tenant (always), at 8 s B leaves again (E is back). B's recording holds
    only 4-8 s: what A and E said before B came is not B's tenant's to keep."""
    a_ref = ref("1.0", 11, "pa", "always")
    pa = party("pa", "sip:a@alpha.example", 11, "user")
    call = CallBuilder(
        tmp_path,
        [
            layout(0, "left", {0: PCMU}, participant_id="pa"),
            layout(1, "right", {0: PCMU}, participant_id="pe"),
        ],
        parties=[pa, party("pe", "sip:+31612345678@pstn", None)],
        recorded_user_id=11,
        policy=a_ref["policy"],
        recordings=[a_ref],
    )
    call.event("answer", 0)
    call.packets(0, rtp_stream("PCMU", 0, (0, END_MS), [(A_HZ, 0, END_MS)]))
    parts = [(E_HZ, 0, 4000), (B_HZ, 4000, 8000), (E_HZ, 8000, END_MS)]
    call.packets(1, rtp_stream("PCMU", 0, (0, END_MS), parts, ssrc=5))
    for t, pid, recordings in (
        (4000, "pb", [a_ref, ref("2.0", 21, "pb", "always")]),
        (8000, "pe", [a_ref]),
    ):
        other = party(pid, "sip:x@y", 21 if pid == "pb" else None)
        call.event("parties", t, parties=[pa, other], recordings=recordings)
        streams = [
            layout(0, "left", {0: PCMU}, participant_id="pa"),
            layout(1, "right", {0: PCMU}, participant_id=pid),
        ]
        call.event("streams", t, streams=[s.to_dict() for s in streams])
    call.event("end", END_MS, reason="bye")
    a, b = finish_all(call.reader())
    assert [(s.call_start_ms, s.call_end_ms) for s in a.segments] == [(0, END_MS)]
    assert [(s.call_start_ms, s.call_end_ms) for s in b.segments] == [(4000, 8000)]
    left, right = stereo(b)
    spans_match(tone_spans(left, 8000, B_HZ), [(0.0, 4.0)])
    spans_match(tone_spans(right, 8000, A_HZ), [(0.0, 4.0)])
    assert tone_spans(right, 8000, E_HZ) == [] and tone_spans(left, 8000, E_HZ) == []


def test_a_journal_without_recordings_finishes_as_before(tmp_path: Path) -> None:
    call = CallBuilder(
        tmp_path,
        [layout(0, "left", {0: PCMU}), layout(1, "right", {8: PCMA, 101: EVENT})],
        recorded_user_id=11,
        policy=policy({11: "on_demand_user"}),
        parties=[party("pa", "sip:a@alpha.example", 11, "user")],
    )
    call.event("answer", 500)
    call.packets(0, rtp_stream("PCMU", 0, (500, 5000), [(A_HZ, 1000, 4000)]))
    press_code(call, 0, 2000)
    call.event("end", 5000, reason="bye")
    reader = call.reader()
    [result] = finish_all(reader)
    expected = finish(reader)
    assert result.key is None and result.sha256 == expected.sha256
    assert result.segments == expected.segments and result.policy == expected.policy
    assert [(s.call_start_ms, s.call_end_ms) for s in result.segments] == [(2300, 5000)]


# -- pipeline: rows per tenant, isolation, crash re-finish ----------------------


@dataclass
class Db:
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    tenants: dict[str, int]
    users: dict[str, int]
    tokens: dict[str, str]


@pytest.fixture
def db(tmp_path: Path) -> Db:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as session:
        alpha = create_tenant(session, "Alpha", ["alpha.example"], [])
        beta = create_tenant(session, "Beta", ["beta.example"], [])
        users = {
            "a": create_user(session, alpha, "Anna", extension="101", recorded=True),
            "a2": create_user(session, alpha, "Arie", extension="102", recorded=True),
            "a_admin": create_user(session, alpha, "Ada", extension="100", role="admin"),
            "b": create_user(session, beta, "Bob", extension="101", recorded=True),
            "b_admin": create_user(session, beta, "Bert", extension="100", role="admin"),
        }
        tokens = {name: issue_token(session, name, user=user) for name, user in users.items()}
        session.commit()
        ids = {name: user.id for name, user in users.items()}
        tenants = {"alpha": alpha.id, "beta": beta.id}
    return Db(sessions, LocalBlobStore(tmp_path / "blobs"), tenants, ids, tokens)


async def _finish(tmp_path: Path, db: Db, uuid: str) -> str | None:
    finisher = Finisher(tmp_path / "spool", db.sessions, db.blobs)
    try:
        return await finisher.submit(uuid)
    finally:
        finisher.close()


def _count(session: Session, model: Any, **where: Any) -> int:
    query = select(func.count()).select_from(model).filter_by(**where)
    return int(session.scalar(query) or 0)


async def test_pipeline_gives_each_tenant_its_call_and_recording(tmp_path: Path, db: Db) -> None:
    uuid = "0123456789abcdef0123456789abcdef"
    ta, tb = db.tenants["alpha"], db.tenants["beta"]
    a, b = db.users["a"], db.users["b"]
    spool = tmp_path / "spool" / uuid
    recordings = [ref(f"{ta}.0", a, "pa", "always"), ref(f"{tb}.0", b, "pb", "on_demand_user")]
    parties = [party("pa", "sip:a@alpha.example", a, "user"), party("pb", "sip:b@beta.example", b)]
    call = two_party_call(spool, recordings, parties=parties, tenant_id=ta, call_uuid=uuid)
    press_code(call, 1, 5000)
    call.event("end", END_MS, reason="bye")
    call.reader()
    backup = tmp_path / "backup"
    shutil.copytree(spool, backup)

    first_id = await _finish(tmp_path, db, uuid)
    assert first_id == uuid and not spool.exists()
    # the process died after committing, before deleting the spool: finished again
    shutil.copytree(backup, spool)
    assert await _finish(tmp_path, db, uuid) == uuid

    with db.sessions() as session:
        calls = {c.tenant_id: c for c in session.scalars(select(Call))}
        assert set(calls) == {ta, tb} and calls[ta].id == uuid and calls[tb].id != uuid
        recs = {r.tenant_id: r for r in session.scalars(select(Recording))}
        assert set(recs) == {ta, tb}
        assert (recs[ta].user_id, recs[ta].call_id, recs[ta].mode) == (a, uuid, "always")
        assert (recs[tb].user_id, recs[tb].call_id) == (b, calls[tb].id)
        assert recs[tb].mode == "on_demand_user"
        assert recs[ta].blob_key.startswith(f"{ta}/") and recs[tb].blob_key.startswith(f"{tb}/")
        # each side sees the other as a party, never as one of its users
        for tenant, own, foreign in ((ta, a, b), (tb, b, a)):
            rows = list(session.scalars(select(CallParty).where(CallParty.tenant_id == tenant)))
            assert {r.call_id for r in rows} == {calls[tenant].id}
            assert {r.user_id for r in rows} == {own, None} and foreign not in {own, None}
            assert {r.side for r in rows if r.user_id == own} == {"user"}
            assert _count(session, DtmfEvent, call_id=calls[tenant].id, tenant_id=tenant) == 2
            assert calls[tenant].direction != "internal"
        assert _count(session, Call) == 2 and _count(session, Recording) == 2
        assert _count(session, CallParty) == 4 and _count(session, DtmfEvent) == 4
        blobs = {t: db.blobs.read(r.blob_key) for t, r in recs.items()}
        assert len(list((tmp_path / "blobs").rglob("*.mp3"))) == 2

    # by content: each tenant's file has its own user on the left
    for tenant, mine, other, start in ((ta, A_HZ, B_HZ, 0.5), (tb, B_HZ, A_HZ, 5.3)):
        audio, rate = decode_mp3(blobs[tenant])
        assert tone_spans(audio[0], rate, mine) and not tone_spans(audio[0], rate, other)
        assert abs(audio.shape[1] / rate - (END_MS / 1000 - start)) < 0.1

    # the portal: each tenant lists its own call and recording only
    app = create_app(PortalContext(db.sessions, db.blobs))
    with TestClient(app) as client:
        for name, tenant, other in (("a_admin", ta, tb), ("b_admin", tb, ta)):
            auth = {"Authorization": f"Bearer {db.tokens[name]}"}
            page = client.get(f"/api/v1/tenants/{tenant}/calls", headers=auth).json()
            [listed] = page["items"]
            assert listed["id"] == calls[tenant].id
            assert listed["recording_ids"] == [recs[tenant].id]
            assert client.get(f"/api/v1/recordings/{recs[tenant].id}", headers=auth).is_success
            refused = client.get(f"/api/v1/recordings/{recs[other].id}", headers=auth)
            assert refused.status_code == 404


async def test_pipeline_two_users_of_one_tenant_one_call(tmp_path: Path, db: Db) -> None:
    uuid = "fedcba9876543210fedcba9876543210"
    ta = db.tenants["alpha"]
    a, a2 = db.users["a"], db.users["a2"]
    recordings = [ref(f"{ta}.0", a, "pa", "always"), ref(f"{ta}.1", a2, "pb", "always")]
    parties = [party("pa", "sip:a@alpha.example", a, "user"), party("pb", "sip:a2@x", a2)]
    call = two_party_call(
        tmp_path / "spool" / uuid, recordings, parties=parties, tenant_id=ta, call_uuid=uuid
    )
    call.event("end", END_MS, reason="bye")
    call.reader()
    assert await _finish(tmp_path, db, uuid) == uuid
    with db.sessions() as session:
        [row] = session.scalars(select(Call)).all()
        assert (row.id, row.tenant_id, row.direction) == (uuid, ta, "internal")
        recs = {r.user_id: r for r in session.scalars(select(Recording))}
        assert set(recs) == {a, a2} and recs[a].id == uuid and recs[a2].id != uuid
        assert {r.call_id for r in recs.values()} == {uuid}
        sides = {p.user_id: p.side for p in session.scalars(select(CallParty))}
        assert sides == {a: "user", a2: "user"}
        for user, mine, other in ((a, A_HZ, B_HZ), (a2, B_HZ, A_HZ)):
            audio, rate = decode_mp3(db.blobs.read(recs[user].blob_key))
            assert tone_spans(audio[0], rate, mine) and not tone_spans(audio[0], rate, other)
            assert tone_spans(audio[1], rate, other) and not tone_spans(audio[1], rate, mine)
        assert session.get(Tenant, db.tenants["beta"]) is not None
        assert _count(session, Call, tenant_id=db.tenants["beta"]) == 0


async def test_pipeline_journal_without_recordings_stores_as_before(tmp_path: Path, db: Db) -> None:
    """The one-recording format: the call and its recording keep the spool's uuid,
    the parties are stored as journalled."""
    uuid = "00112233445566778899aabbccddeeff"
    ta, a = db.tenants["alpha"], db.users["a"]
    call = CallBuilder(
        tmp_path / "spool" / uuid,
        [layout(0, "left", {0: PCMU}), layout(1, "right", {8: PCMA})],
        call_uuid=uuid,
        tenant_id=ta,
        recorded_user_id=a,
        policy=policy({a: "always"}),
        parties=[party("pa", "sip:a@alpha.example", a, "user"), party("pe", "sip:e@x", None)],
    )
    call.event("answer", 0)
    call.packets(0, rtp_stream("PCMU", 0, (0, 3000), [(A_HZ, 0, 3000)]))
    call.event("end", 3000, reason="bye")
    call.reader()
    assert await _finish(tmp_path, db, uuid) == uuid
    with db.sessions() as session:
        [row] = session.scalars(select(Call)).all()
        [recording] = session.scalars(select(Recording)).all()
        assert (row.id, row.tenant_id, recording.id, recording.user_id) == (uuid, ta, uuid, a)
        sides = {p.participant_id: (p.user_id, p.side) for p in session.scalars(select(CallParty))}
        assert sides == {"pa": (a, "user"), "pe": (None, "other")}
