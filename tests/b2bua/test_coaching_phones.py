"""Silent coaching with three real phones (issue 11, "Coaching with real phones").

A (alice@acme.example, extension 201, a recorded user) behind the PBX on
127.0.0.2 calls B (an outside number) behind the trunk on 127.0.0.3; S
(sip:205@acme.example: Sam, a listener with the coaching permission who
leads alice's team) is a phone on 127.0.0.7, a PBX source of its own. Each
sends its own tone (A 700 Hz, B 1100 Hz, S 500 Hz) and keeps what it heard.

S dials ``*98*201`` and presses the manual's keys; for each mode (silent,
1, 2, 3, back to 0), checked by content in what each phone heard in that
phase: S hears A and B throughout; A and B hear each other throughout; S is
heard by nobody when silent, by both on 1 and 3, by A only on 2. The keys
reach neither A nor B (baresip reports every RFC 4733 event it gets) and do
not touch the recording: the tenant's short code is ``1`` in mode "always
with pause", so S's 1 reaching alice's policy would cut the recording.
Refusals: without the permission, in a tenant without the operator's
enablement, and for an extension in no call: 403 with a precise Warning, audited.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from callvault.admin import enable_feature
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import AuditEvent, Team, TeamMember, Tenant, User
from callvault.portal.auth import issue_token
from callvault.tenants.enablement import set_feature
from callvault.tenants.service import create_user
from tests.b2bua.harness import PBX_ADDRESS, TRUNK_ADDRESS, B2bua, Leg, running_b2bua
from tests.b2bua.phones import TONE_A_HZ, TONE_B_HZ, TONE_C_HZ, Pcm, Phone, tone

pytestmark = pytest.mark.peer("baresip", why="Debian package baresip-core: the phones")

B_NUMBER = "+31612345678"
SUPERVISOR_ADDRESS = "127.0.0.7"
TONE_S_HZ = TONE_C_HZ
RATE = 8000
PHASE_S = 2.5
HEARD_DB = -28.0  # a tone at 0.3 of full scale is about -10 dBFS
SILENT_DB = -45.0
OPTIONS = {"announce_start": False, "announce_stop": False, "short_code": "1"}


def level_db(pcm: Pcm, freq: float) -> float:
    """The level of ``freq`` in ``pcm`` (dBFS of a sine's amplitude)."""
    x = np.asarray(pcm, dtype=np.float64) / 32768.0
    if len(x) < RATE // 10:
        return -200.0
    window = np.hanning(len(x))
    spectrum = np.abs(np.fft.rfft(x * window)) * 2 / window.sum()
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    band = (freqs > freq - 15) & (freqs < freq + 15)
    return float(20 * np.log10(spectrum[band].max() + 1e-12))


def phones(tmp_path: Path) -> tuple[Phone, Phone, Phone]:
    a = Phone(tmp_path / "a", "sip:alice@acme.example", PBX_ADDRESS, tone(TONE_A_HZ, 60))
    b = Phone(tmp_path / "b", f"sip:{B_NUMBER}@pstn.example", TRUNK_ADDRESS, tone(TONE_B_HZ, 60))
    s = Phone(tmp_path / "s", "sip:205@acme.example", SUPERVISOR_ADDRESS, tone(TONE_S_HZ, 60))
    for phone in (a, b, s):
        phone.configure()
    return a, b, s


def legs(a: Phone, b: Phone, s: Phone) -> list[Leg]:
    return [
        # the agent's PBX: outside numbers to the trunk; extension 205 (LiveCenter's call)
        Leg("pbx-a", "pbx", PBX_ADDRESS, {"": b.contact, "205": s.contact}),
        Leg("trunk-b", "trunk", TRUNK_ADDRESS, {"": a.contact}),
        Leg("pbx-s", "pbx", SUPERVISOR_ADDRESS, {}),
    ]


def seed_supervisor(url: str, tenant_id: int, alice: int, *, can_coach: bool) -> int:
    """Sam (extension 205, listener) leading alice's team; coaching enabled for the tenant."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        sam = create_user(session, tenant, "Sam", extension="205", role="listener")
        sam.can_coach = can_coach
        team = Team(tenant_id=tenant_id, name="Sales")
        session.add(team)
        session.flush()
        session.add(TeamMember(tenant_id=tenant_id, team_id=team.id, user_id=sam.id, is_lead=True))
        session.add(TeamMember(tenant_id=tenant_id, team_id=team.id, user_id=alice))
        enable_feature(session, tenant, "coaching", reference="DECL-COACH", actor="tests")
        session.commit()
        sam_id = sam.id
    engine.dispose()
    return sam_id


def change(url: str, tenant_id: int, sam: int, *, can_coach: bool, coaching: bool) -> None:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        user = session.get(User, sam)
        assert user is not None
        user.can_coach = can_coach
        set_feature(session, tenant_id, "coaching", coaching, actor="tests", reference="DECL-COACH")
        session.commit()
    engine.dispose()


def audit_rows(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.actor, AuditEvent.details)
            .where(AuditEvent.action.like("coach.%"))
            .order_by(AuditEvent.id)
        ).all()
    engine.dispose()
    return [(action, actor, dict(details or {})) for action, actor, details in rows]


async def supervisor(cv: B2bua, *, can_coach: bool = True) -> int:
    rec = cv.rec
    url = str(rec.app.settings.db_url)
    sam = await asyncio.to_thread(
        seed_supervisor, url, rec.tenant_id, rec.users["alice"], can_coach=can_coach
    )
    await asyncio.to_thread(rec.app.reload_directory)
    return sam


async def test_each_mode_by_who_hears_whom(tmp_path: Path) -> None:
    a, b, s = phones(tmp_path)
    async with (
        running_b2bua(tmp_path, legs(a, b, s), mode="always_pause", tenant_options=OPTIONS) as cv,
        a,
        b,
        s,
    ):
        sam = await supervisor(cv)
        await a.dial(cv.uri(B_NUMBER))
        await a.wait_event("CALL_ESTABLISHED", timeout=10)
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(1.0)
        await s.dial(cv.uri("*98*201"))
        await s.wait_event("CALL_ESTABLISHED", timeout=10)

        def lengths() -> tuple[int, int, int]:
            return len(a.heard()), len(b.heard()), len(s.heard())

        marks = [lengths()]
        await asyncio.sleep(PHASE_S)  # silent
        for key in "1230":
            await s.press(key)
            marks.append(lengths())
            await asyncio.sleep(PHASE_S)
        marks.append(lengths())
        await s.hangup()
        await s.wait_event("CALL_CLOSED")
        await asyncio.sleep(0.5)
        marks.append(lengths())
        await asyncio.sleep(PHASE_S)  # the supervisor left: A and B as before
        marks.append(lengths())
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        [(_call, recording_id)] = await cv.rec.wait_finished(timeout=60)
        assert recording_id is not None
        meta = await cv.rec.recording(recording_id)
        pcm, rate, _raw = await cv.rec.audio(recording_id)
        rows = await asyncio.to_thread(audit_rows, str(cv.rec.app.settings.db_url))
    report = a.log(3000) + b.log(3000) + s.log(3000)

    heard = {"A": a.heard(), "B": b.heard(), "S": s.heard()}
    index = {"A": 0, "B": 1, "S": 2}

    def segment(who: str, phase: int) -> Pcm:
        start = marks[phase][index[who]] + int(0.8 * RATE)
        end = marks[phase + 1][index[who]] - int(0.1 * RATE)
        assert end - start > RATE, (who, phase, marks)
        return heard[who][start:end]

    # phase -> who hears S (A and B always hear each other; S always hears both)
    expected = {
        0: ("silent", set()),
        1: ("customer", {"A", "B"}),
        2: ("whisper", {"A"}),
        3: ("conference", {"A", "B"}),
        4: ("silent again", set()),
    }
    levels: dict[str, dict[str, float]] = {}
    for phase, (name, hear_s) in expected.items():
        for who, other in (("A", TONE_B_HZ), ("B", TONE_A_HZ)):
            part = segment(who, phase)
            got = level_db(part, TONE_S_HZ)
            levels[f"{name} {who}"] = {"S": got, "other": level_db(part, other)}
            assert level_db(part, other) > HEARD_DB, (name, who, levels, report)
            if who in hear_s:
                assert got > HEARD_DB, (name, who, levels)
            else:
                assert got < SILENT_DB, (name, who, levels)
            own = TONE_A_HZ if who == "A" else TONE_B_HZ
            assert level_db(part, own) < SILENT_DB, (name, who, "echo", levels)
        part = segment("S", phase)
        assert level_db(part, TONE_A_HZ) > HEARD_DB, (name, levels)
        assert level_db(part, TONE_B_HZ) > HEARD_DB, (name, levels)
        assert level_db(part, TONE_S_HZ) < SILENT_DB, (name, "S hears itself")
    for who, other in (("A", TONE_B_HZ), ("B", TONE_A_HZ)):  # after S left
        part = segment(who, 6)
        assert level_db(part, other) > HEARD_DB, (who, "after", report)
        assert level_db(part, TONE_S_HZ) < SILENT_DB, (who, "after")

    # the supervisor's keys reached neither party, nor alice's policy (code "1")
    assert a.digits_heard() == [] and b.digits_heard() == [], report
    assert meta["user_id"] == cv.rec.users["alice"], meta
    duration = pcm.shape[1] / rate
    call_s = (marks[-1][0]) / RATE
    assert duration > call_s - 1.0, (duration, call_s, meta)  # nothing cut
    for channel in pcm:  # the supervisor is not in the recording (tenant option off)
        assert level_db(channel[: int(duration * rate)], TONE_S_HZ) < SILENT_DB

    # audited: joined, each mode, left
    actions = [(action, details.get("mode")) for action, _actor, details in rows]
    assert actions == [
        ("coach.joined", None),
        ("coach.mode", "customer"),
        ("coach.mode", "whisper"),
        ("coach.mode", "conference"),
        ("coach.mode", "silent"),
        ("coach.left", None),
    ], rows
    assert {actor for _action, actor, _details in rows} == {f"user:{sam}"}


async def test_refusals_are_precise_and_audited(tmp_path: Path) -> None:
    a, b, s = phones(tmp_path)
    async with running_b2bua(tmp_path, legs(a, b, s), tenant_options=OPTIONS) as cv, s:
        url = str(cv.rec.app.settings.db_url)
        sam = await supervisor(cv, can_coach=False)

        async def dial() -> str:
            seen = len(s.events)
            await s.dial(cv.uri("*98*201"))
            await s.wait_event("CALL_CLOSED", after=seen)
            return s.sip_trace()

        trace = await dial()
        assert "SIP/2.0 403 Forbidden" in trace
        assert 'Warning: 399 callvault "not permitted: the user has no coaching permission"' in (
            trace
        )
        await asyncio.to_thread(change, url, cv.rec.tenant_id, sam, can_coach=True, coaching=False)
        await asyncio.to_thread(cv.rec.app.reload_directory)
        trace = await dial()
        assert 'Warning: 399 callvault "coaching is not enabled for the tenant"' in trace
        await asyncio.to_thread(change, url, cv.rec.tenant_id, sam, can_coach=True, coaching=True)
        await asyncio.to_thread(cv.rec.app.reload_directory)
        trace = await dial()
        assert 'Warning: 399 callvault "extension 201 is in no call callvault bridges"' in trace
        for _ in range(50):  # the rows are written off the loop
            rows = await asyncio.to_thread(audit_rows, url)
            if len(rows) >= 3:
                break
            await asyncio.sleep(0.1)
    assert [(action, details["error"]) for action, _actor, details in rows] == [
        ("coach.refused", "coaching-not-permitted"),
        ("coach.refused", "coaching-not-enabled"),
        ("coach.refused", "coaching-not-bridged"),
    ], rows
    assert {actor for _action, actor, _details in rows} == {f"user:{sam}"}


def sam_token(url: str, sam: int) -> str:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        user = session.get(User, sam)
        assert user is not None
        token = issue_token(session, "tests", user=user)
        session.commit()
    engine.dispose()
    return token


async def test_livecenter_calls_the_supervisor_who_joins_in_silence(tmp_path: Path) -> None:
    """SPEC 7: coaching started from LiveCenter. Sam presses Coach on alice's call:
    callvault calls Sam's phone (extension 205, through the call's PBX), Sam answers
    and hears both, silent; key 2 then lets alice, and only alice, hear Sam."""
    a, b, s = phones(tmp_path)
    async with (
        running_b2bua(tmp_path, legs(a, b, s), tenant_options=OPTIONS) as cv,
        a,
        b,
        s,
    ):
        sam = await supervisor(cv)
        url = str(cv.rec.app.settings.db_url)
        token = await asyncio.to_thread(sam_token, url, sam)
        await a.dial(cv.uri(B_NUMBER))
        await a.wait_event("CALL_ESTABLISHED", timeout=10)
        await b.wait_event("CALL_ESTABLISHED", timeout=10)
        [view] = cv.rec.app.live.views(cv.rec.tenant_id)
        response = await cv.rec.http.post(
            f"/api/v1/tenants/{cv.rec.tenant_id}/live/calls/{view.id}/coach",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202, response.text
        await s.wait_event("CALL_ESTABLISHED", timeout=10)
        for _ in range(50):  # LiveCenter shows who coaches
            presences = cv.rec.app.live.views(cv.rec.tenant_id)[0].presences
            if presences:
                break
            await asyncio.sleep(0.1)
        assert [(p.user_id, p.kind) for p in presences] == [(sam, "coach")]
        await asyncio.sleep(1.0)
        marks = [(len(a.heard()), len(b.heard()), len(s.heard()))]
        await asyncio.sleep(PHASE_S)  # silent
        await s.press("2")
        marks.append((len(a.heard()), len(b.heard()), len(s.heard())))
        await asyncio.sleep(PHASE_S)  # whisper
        marks.append((len(a.heard()), len(b.heard()), len(s.heard())))
        await s.hangup()
        await a.hangup()
        await b.wait_event("CALL_CLOSED")
        await cv.rec.wait_finished(timeout=60)
    report = a.log(3000) + b.log(3000) + s.log(3000)

    def part(phone: Phone, who: int, phase: int) -> Pcm:
        start = marks[phase][who] + int(0.8 * RATE)
        return phone.heard()[start : marks[phase + 1][who] - int(0.1 * RATE)]

    # silent: Sam hears both, nobody hears Sam
    assert level_db(part(s, 2, 0), TONE_A_HZ) > HEARD_DB, report
    assert level_db(part(s, 2, 0), TONE_B_HZ) > HEARD_DB, report
    assert level_db(part(a, 0, 0), TONE_S_HZ) < SILENT_DB, report
    assert level_db(part(b, 1, 0), TONE_S_HZ) < SILENT_DB, report
    # whisper (2): alice hears Sam, the customer does not
    assert level_db(part(a, 0, 1), TONE_S_HZ) > HEARD_DB, report
    assert level_db(part(b, 1, 1), TONE_S_HZ) < SILENT_DB, report
    assert level_db(part(b, 1, 1), TONE_A_HZ) > HEARD_DB, report
