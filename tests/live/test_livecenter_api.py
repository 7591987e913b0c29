"""LiveCenter's API and event stream against a running recorder, with real SIPREC calls.

The view follows answer, SRC pause and hang-up within a second (measured on
the server's event loop: the moment the call told the board, against the
moment the test read the event from the HTTP stream); nobody sees another
tenant's or another team's calls; record now on an "on demand, started by
user" call gives a recording of exactly that stretch (checked by tone content).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from callvault.admin import create_tenant, create_user, enable_feature
from callvault.db.models import Team, TeamMember, Tenant
from callvault.demo.client import CallPlan, Participant
from callvault.live.board import call_state
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.portal.auth import issue_token
from callvault.siprec.call import RecordedCall
from tests.e2e.harness import Recorder, running_recorder

USER_HZ, OTHER_HZ = 440.0, 1000.0
SECOND = 1.0  # the promise: the view follows within a second (generous on a loaded box)


def _plan(seconds: float, pause: tuple[float, float] | None = None) -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, seconds)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, seconds)),
        duration_s=seconds,
        pause=pause,
    )


def _setup(rec: Recorder) -> dict[str, str]:
    """Listening enabled; a listener leading a team with Bob (not Alice); tenant B's admin."""
    with rec.app.sessions() as session:
        acme = session.get(Tenant, rec.tenant_id)
        assert acme is not None
        enable_feature(session, acme, "listening", reference="DECL-TEST")
        listener = create_user(session, acme, "Lea", extension="250", role="listener")
        session.flush()
        team = Team(tenant_id=acme.id, name="Sales")
        session.add(team)
        session.flush()
        session.add_all(
            [
                TeamMember(tenant_id=acme.id, team_id=team.id, user_id=listener.id, is_lead=True),
                TeamMember(tenant_id=acme.id, team_id=team.id, user_id=rec.users["bob"]),
            ]
        )
        other = create_tenant(session, "Other", ["other.example"], ["+31309990000"])
        enable_feature(session, other, reference="DECL-TEST")
        enable_feature(session, other, "listening", reference="DECL-TEST")
        other_admin = create_user(session, other, "Otto", extension="100", role="admin")
        tokens = {
            "listener": issue_token(session, "lea", user=listener),
            "other": issue_token(session, "otto", user=other_admin),
        }
        tokens["other_tenant"] = str(other.id)
        session.commit()
    rec.app.reload_directory()
    return tokens


class Stream:
    """The SSE stream as a browser reads it: each event with the loop time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, Any]] = []
        self.changed = asyncio.Event()

    async def read(self, response: httpx.Response) -> None:
        loop = asyncio.get_running_loop()
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                self.events.append((loop.time(), kind, json.loads(line[6:])))
                self.changed.set()

    async def first(self, match: Any, timeout: float = 15) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for at, kind, data in self.events:
                if match(kind, data):
                    return at
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no such event in {self.events}")
            await asyncio.wait_for(self.changed.wait(), left)


async def _stream(http: httpx.AsyncClient, url: str) -> AsyncGenerator[Stream, None]:
    stream = Stream()
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(stream.read(response))
        try:
            yield stream
        finally:
            task.cancel()


async def test_the_view_follows_answer_pause_and_hangup_and_shows_only_visible_calls(
    tmp_path: Path,
) -> None:
    async with running_recorder(tmp_path, mode="always") as rec:
        tokens = await asyncio.to_thread(_setup, rec)
        loop = asyncio.get_running_loop()
        told: list[tuple[float, str]] = []  # the server's truth: when the board was told
        board_changed = rec.app.calls.on_changed

        def spy(call: RecordedCall) -> None:
            told.append((loop.time(), "ended" if call.ended else call_state(call)))
            board_changed(call)

        rec.app.calls.on_changed = spy
        url = f"/api/v1/tenants/{rec.tenant_id}/live/calls"
        gen = _stream(rec.http, f"{url}/events")
        stream = await gen.__anext__()
        await stream.first(lambda kind, data: kind == "snapshot" and data == [])
        placing = asyncio.create_task(rec.client.place(_plan(5.0, pause=(2.0, 3.2))))

        def state(wanted: str) -> Any:
            return lambda kind, data: kind == "call" and data["state"] == wanted

        seen_recording = await stream.first(state("recording"))
        (call,) = rec.app.calls.calls.values()
        # while it runs: the admin sees it, the listener (Bob's team) and tenant B do not
        mine = (await rec.http.get(url)).json()
        assert [c["id"] for c in mine] == [call.uuid]
        assert mine[0]["modes"] == {str(rec.users["alice"]): "always"}
        for who, path in (
            ("listener", url),
            ("other", f"/api/v1/tenants/{tokens['other_tenant']}/live/calls"),
        ):
            r = await rec.http.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
            assert r.status_code == 200 and r.json() == [], (who, r.text)
        r = await rec.http.get(url, headers={"Authorization": f"Bearer {tokens['other']}"})
        assert r.status_code == 404  # a foreign tenant's id
        listener_stream = _stream(
            httpx.AsyncClient(
                base_url=str(rec.http.base_url),
                headers={"Authorization": f"Bearer {tokens['listener']}"},
            ),
            f"{url}/events",
        )
        quiet = await listener_stream.__anext__()
        seen_paused = await stream.first(state("paused"))
        result = await placing
        assert result.status == 200
        seen_removed = await stream.first(lambda kind, data: kind == "removed")

        def when(what: str) -> float:
            return next(at for at, s in told if s == what)

        for name, seen, what in (
            ("answer", seen_recording, "recording"),
            ("pause", seen_paused, "paused"),
            ("hang-up", seen_removed, "ended"),
        ):
            lag = seen - when(what)
            assert 0 <= lag < SECOND, f"{name}: the view followed after {lag:.3f} s"
        # the listener's stream never carried the call
        assert all(kind == "snapshot" and data == [] for _at, kind, data in quiet.events)
        await listener_stream.aclose()
        await gen.aclose()


def _answered(rec: Recorder) -> list[RecordedCall]:
    """The calls answered so far (``answered_ms`` is 0 for an answer within the call's
    first millisecond: a fast machine does that, so the test asks for None, not falsy)."""
    return [c for c in rec.app.calls.calls.values() if c.answered_ms is not None]


async def test_record_now_records_an_on_demand_call_from_that_moment(tmp_path: Path) -> None:
    async with running_recorder(tmp_path, mode="on_demand_user") as rec:
        await asyncio.to_thread(_setup, rec)
        placing = asyncio.create_task(rec.client.place(_plan(6.0)))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(15):  # a call that never comes up fails, not hangs
            while not (calls := _answered(rec)):
                if placing.done():
                    placing.result()  # the client gave up: its error says why
                    raise AssertionError("the call ended before it was seen answered")
                await asyncio.sleep(0.02)  # the call coming up, not a timer
        (call,) = calls
        record = f"/api/v1/tenants/{rec.tenant_id}/live/calls/{call.uuid}/record"

        async def at(seconds: float) -> None:
            delay = call.t0 + (call.answered_ms or 0) / 1000 + seconds - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # a moment of the real call's timeline

        assert (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/live/calls")).json()[0][
            "state"
        ] == "not-recording"
        await at(2.0)
        r = await rec.http.post(record, json={"on": True})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "recording" and r.json()["record_now"] is True
        started = call.now_ms() / 1000
        await at(4.0)
        r = await rec.http.post(record, json={"on": False})
        assert r.status_code == 200 and r.json()["state"] == "not-recording"
        stopped = call.now_ms() / 1000
        assert (await placing).status == 200
        ((_call_id, recording_id),) = await rec.wait_finished(1, timeout=60)
        assert recording_id is not None, "record now gave no recording"
        meta = await rec.recording(recording_id)
        assert meta["user_id"] == rec.users["alice"]
        (segment,) = meta["segments"]
        assert abs(segment["call_start_ms"] / 1000 - started) < 0.3
        assert abs(segment["call_end_ms"] / 1000 - stopped) < 0.3
        pcm, rate, _raw = await rec.audio(recording_id)
        left, right = pcm[0], pcm[1]  # the user left, the other party right
        assert abs(pcm.shape[1] / rate - (stopped - started)) < 0.4
        heard = stopped - started - 0.5
        for channel, hz in ((left, USER_HZ), (right, OTHER_HZ)):
            spans = tone_spans(channel, rate, hz)
            assert sum(e - s for s, e in spans) >= heard, (hz, spans)
        # audited with who
        with rec.app.sessions() as session:
            from callvault.db.models import AuditEvent

            actions = session.scalars(
                select(AuditEvent.action).where(AuditEvent.target == f"call:{call.uuid}")
            ).all()
        assert actions == ["live.record_now", "live.record_now_stop"]


async def test_livecenter_needs_the_operators_enablement(tmp_path: Path) -> None:
    async with running_recorder(tmp_path, mode="on_demand_user") as rec:
        r = await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/live/calls")
        assert r.status_code == 403 and r.json()["error"]["id"] == "listening-not-enabled"
        r = await rec.http.post(
            f"/api/v1/tenants/{rec.tenant_id}/live/calls/abc/record", json={"on": True}
        )
        assert r.status_code == 403 and r.json()["error"]["id"] == "listening-not-enabled"
