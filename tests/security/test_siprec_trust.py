"""Trust at the SIP and RTP edge, tried as an attacker would, on a live recorder.

Each test is a finding of the outside review (issue 7, sections 2, 3 and 6)
that held on the old code: anyone could send SIPREC, one source could hold
every RTP port, a forged BYE ended a live recording, RTP from any socket
reached the recording, and the audio of calls that may not be recorded was
written to disk.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from callvault.admin import accept_legal_notice, create_tenant, create_user, enable_feature
from callvault.demo.client import CallPlan, CallResult, Participant, metadata_xml, multipart
from callvault.media.analysis import tone_spans
from callvault.media.sender import packets_for
from callvault.media.tones import sine
from callvault.portal.auth import issue_token
from callvault.recording.mp3 import decode_mp3
from callvault.siprec.call import RecordedCall
from callvault.sources.store import change_source, find_source
from tests.e2e.harness import Recorder, running_recorder

USER_HZ, OTHER_HZ, ATTACK_HZ = 440.0, 1000.0, 2600.0


def change_loopback_source(rec: Recorder, **wanted: Any) -> None:
    with rec.app.sessions() as session:
        row = find_source(session, "loopback")
        assert row is not None, "the harness registers the loopback source"
        change_source(session, row, wanted)
        session.commit()
    rec.app.reload_directory()


def plan(user: str, seconds: float, digits: list[tuple[float, str]] | None = None) -> CallPlan:
    return CallPlan(
        caller=Participant(
            f"sip:{user}@acme.example", "User", sine(USER_HZ, seconds), digits=digits or []
        ),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, seconds)),
        duration_s=seconds,
    )


async def live_call(rec: Recorder, timeout: float = 5.0) -> RecordedCall:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        calls: list[RecordedCall] = [
            c for c in rec.app.calls.calls.values() if c.dialog is not None
        ]
        if calls:
            return calls[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no call came up")


async def at_call_time(call: RecordedCall, seconds: float) -> None:
    delay = call.t0 + seconds - call.ctx.loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


def audio_on_disk(call_dir: Path) -> int:
    """Bytes of RTP the spool wrote for the call (journal excluded)."""
    return sum(p.stat().st_size for p in call_dir.glob("stream-*.rtp"))


async def during(
    rec: Recorder, call_plan: CallPlan, check: Callable[[RecordedCall], Awaitable[None]]
) -> CallResult:
    placed = asyncio.ensure_future(rec.client.place(call_plan))
    try:
        call = await live_call(rec)
        await check(call)
    finally:
        result = await placed
    return result


# -- section 2: who may send ---------------------------------------------------------


async def test_an_unregistered_source_gets_one_403_and_nothing_else(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        change_loopback_source(rec, networks=["192.0.2.0/24"])
        result = await rec.client.place(plan("alice", 1.0))
        assert result.status == 403
        assert rec.app.calls.calls == {} and rec.app.calls.ports.in_use == 0
        assert rec.app.metrics.sip_requests_refused_unknown_source >= 1
        # no dialog and no 2xx to retransmit: a raw INVITE draws exactly one answer
        invite = _raw_invite(rec, secrets.token_hex(6))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.2)
            sock.sendto(invite, rec.sip)
            answers = []
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.5  # past Timer G's first 2xx retransmission (500 ms)
            while loop.time() < until:
                try:
                    answers.append(await asyncio.to_thread(sock.recv, 65535))
                except TimeoutError:
                    continue
        assert len(answers) == 1 and answers[0].startswith(b"SIP/2.0 403")


async def test_a_call_id_too_long_to_store_is_refused_with_400(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        answer = await _ask(rec, _raw_invite(rec, "x" * 256))
        assert answer.startswith(b"SIP/2.0 400") and b"Call-ID longer than 255" in answer
        assert rec.app.calls.calls == {}


async def test_per_source_limits_answer_488_and_503(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        change_loopback_source(rec, max_media_lines=1)
        result = await rec.client.place(plan("alice", 0.5))
        assert result.status == 488  # two m-lines, one allowed
        change_loopback_source(rec, max_media_lines=4, max_calls=1)

        async def second_call(_call: RecordedCall) -> None:
            other = await rec.client.place(plan("bob", 0.5))
            assert other.status == 503
            assert rec.app.metrics.sip_requests_refused_limit >= 2

        first = await during(rec, plan("alice", 2.0), second_call)
        assert first.status == 200
        # the first call's share is given back at its end
        assert (await rec.client.place(plan("bob", 0.5))).status == 200


def _raw_invite(rec: Recorder, call_id: str) -> bytes:
    caller = Participant("sip:alice@acme.example", "A", sine(USER_HZ, 0.1))
    callee = Participant("sip:+31612345678@pstn.example", "B", sine(OTHER_HZ, 0.1))
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
        "m=audio 40002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n"
    )
    body = multipart(sdp, metadata_xml(secrets.token_hex(8), caller, callee))
    head = (
        f"INVITE sip:srs@127.0.0.1:{rec.app.sip_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:src@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        "To: <sip:srs@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        "Contact: <sip:src@127.0.0.1:9>;+sip.src\r\nRequire: siprec\r\n"
        "Content-Type: multipart/mixed;boundary=foobar\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- section 3: dialog hijack and audio injection ----------------------------------------


def _in_dialog(call: RecordedCall, method: str, from_tag: str, to_tag: str | None) -> bytes:
    to = "<sip:srs@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:srs@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:src@127.0.0.1>;tag={from_tag}\r\nTo: {to}\r\n"
        f"Call-ID: {call.sip_call_id}\r\nCSeq: 99 {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _ask(rec: Recorder, data: bytes) -> bytes:
    """The final response to ``data`` (provisional ones skipped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        sock.sendto(data, rec.sip)
        while True:
            answer = await asyncio.to_thread(sock.recv, 65535)
            if not answer.startswith(b"SIP/2.0 1"):
                return answer


async def test_forged_in_dialog_requests_get_481_and_the_recording_goes_on(
    tmp_path: Path,
) -> None:
    async with running_recorder(tmp_path) as rec:

        async def forge(call: RecordedCall) -> None:
            await at_call_time(call, 1.0)
            assert call.dialog is not None
            real_from, ours = call.dialog.remote_tag, call.local_tag
            for method, from_tag, to_tag in (
                ("BYE", "forged", None),  # the review's BYE: wrong From tag, no To tag
                ("BYE", "forged", ours),
                ("BYE", real_from, None),
                ("BYE", real_from, "forged"),
                ("UPDATE", "forged", ours),
                ("INVITE", "forged", ours),
                ("INFO", real_from, "forged"),
            ):
                answer = await _ask(rec, _in_dialog(call, method, from_tag, to_tag))
                assert answer.startswith(b"SIP/2.0 481"), (method, from_tag, to_tag, answer[:40])
            assert not call.ended

        result = await during(rec, plan("alice", 3.0), forge)
        assert result.status == 200  # the real BYE still finds its call
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is not None
        pcm, rate, _ = await rec.audio(recording_id)
        assert pcm.shape[1] / rate > 2.5  # not cut at the forged BYE (1 s)


async def test_rtp_from_another_socket_is_not_recorded(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        injected = 0

        async def inject(call: RecordedCall) -> None:
            nonlocal injected
            await at_call_time(call, 0.8)
            ports = [stream.port for stream in call.streams.values()]
            attack = packets_for(sine(ATTACK_HZ, 1.5), 0)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                for packet in attack:
                    for port in ports:
                        sock.sendto(packet, ("127.0.0.1", port))
                    await asyncio.sleep(0.02)
            injected = sum(stream.receiver.foreign for stream in call.streams.values())

        result = await during(rec, plan("alice", 3.0), inject)
        assert result.status == 200
        assert injected >= len(packets_for(sine(ATTACK_HZ, 1.5), 0))
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is not None
        pcm, rate, _ = await rec.audio(recording_id)
        for channel, own in ((pcm[0], USER_HZ), (pcm[1], OTHER_HZ)):
            assert sum(e - s for s, e in tone_spans(channel, rate, own)) > 2.0
            assert tone_spans(channel, rate, ATTACK_HZ) == []


# -- section 6: no audio written that may not be kept -----------------------------------------


async def _set_mode(rec: Recorder, user: str, mode: str) -> None:
    r = await rec.http.put(
        f"/api/v1/tenants/{rec.tenant_id}/recording-list/{rec.users[user]}", json={"mode": mode}
    )
    assert r.status_code == 200, r.text


async def test_a_call_nobody_may_record_gets_its_streams_declined(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        await _set_mode(rec, "alice", "never")
        seen: dict[str, Any] = {}

        async def look(call: RecordedCall) -> None:
            await at_call_time(call, 1.0)
            seen["ports"] = rec.app.calls.ports.in_use
            seen["audio"] = audio_on_disk(call.spool.directory)
            seen["declined"] = call.declined

        result = await during(rec, plan("alice", 2.0), look)
        assert result.status == 200 and result.declined == 2
        assert seen == {"ports": 0, "audio": 0, "declined": True}
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is None
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()
        assert len(calls["items"]) == 1  # the call is still listed, without a recording


async def test_on_demand_by_user_writes_nothing_before_the_press(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        await _set_mode(rec, "alice", "on_demand_user")
        seen: dict[str, int] = {}

        async def look(call: RecordedCall) -> None:
            await at_call_time(call, 2.5)
            call.flush()
            seen["before"] = audio_on_disk(call.spool.directory)
            seen["received"] = call.live_stats()["packets"]
            await at_call_time(call, 5.0)
            seen["after"] = audio_on_disk(call.spool.directory)

        result = await during(rec, plan("alice", 6.0, [(3.0, "*"), (3.3, "1")]), look)
        assert result.status == 200 and result.declined == 0
        assert seen["received"] > 200  # media flowed: it was looked at in memory
        assert seen["before"] == 0  # and none of it was written
        assert seen["after"] > 0
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        start = meta["segments"][0]["call_start_ms"] / 1000
        assert 3.0 <= start <= 3.8
        pcm, rate, _ = await rec.audio(recording_id)
        assert sum(e - s for s, e in tone_spans(pcm[0], rate, USER_HZ)) > 1.5


async def test_a_pause_by_the_code_is_not_written(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        await _set_mode(rec, "alice", "always_pause")
        sizes: list[int] = []

        async def look(call: RecordedCall) -> None:
            for at in (2.8, 4.4):  # paused by *1 at 1.3 s until *1 at 4.8 s
                await at_call_time(call, at)
                call.flush()
                sizes.append(audio_on_disk(call.spool.directory))

        digits = [(1.0, "*"), (1.3, "1"), (4.5, "*"), (4.8, "1")]
        result = await during(rec, plan("alice", 6.0, digits), look)
        assert result.status == 200
        assert sizes[0] > 0 and sizes[1] == sizes[0]  # nothing grew while paused
        ((_call_id, recording_id),) = await rec.wait_finished()
        assert recording_id is not None
        pcm, rate, _ = await rec.audio(recording_id)
        kept = pcm.shape[1] / rate
        assert 1.9 < kept < 3.0, kept  # ~1.3 s before the pause + ~1.2 s after


# -- section 1: each tenant its own recording ----------------------------------------------


async def test_a_call_between_two_tenants_gives_each_its_own_recording(tmp_path: Path) -> None:
    """Alice (Acme, always) calls Dave (Beta, on demand by user, presses *1 at 2 s):
    Acme gets the whole call with Alice left; Beta gets its own call row and a
    recording from Dave's press with Dave left; neither sees the other's rows."""
    async with running_recorder(tmp_path) as rec:
        with rec.app.sessions() as session:
            beta = create_tenant(session, "Beta", ["beta.example"], ["+31301234500"])
            create_user(
                session, beta, "Dave", extension="201", aors=["dave@beta.example"], recorded=True
            )
            boss = create_user(session, beta, "Beta Admin", extension="299", role="admin")
            enable_feature(session, beta, reference="DECL-BETA")
            accept_legal_notice(session, beta, boss)
            beta_token = issue_token(session, "tests", user=boss)
            beta_id = beta.id
            session.commit()
        change_loopback_source(rec, tenant_ids=[rec.tenant_id, beta_id])
        call_plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 5.0)),
            callee=Participant(
                "sip:dave@beta.example",
                "Dave",
                sine(OTHER_HZ, 5.0),
                digits=[(2.0, "*"), (2.3, "1")],
            ),
            duration_s=5.0,
        )
        assert (await rec.client.place(call_plan)).status == 200
        await rec.wait_finished()
        acme = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()["items"]
        beta_http = rec.http.__class__(
            base_url=str(rec.http.base_url), headers={"Authorization": f"Bearer {beta_token}"}
        )
        async with beta_http:
            beta_calls = (await beta_http.get(f"/api/v1/tenants/{beta_id}/calls")).json()
            assert len(acme) == 1 and len(beta_calls["items"]) == 1
            assert acme[0]["id"] != beta_calls["items"][0]["id"]
            (acme_rid,) = acme[0]["recording_ids"]
            (beta_rid,) = beta_calls["items"][0]["recording_ids"]
            # neither tenant can reach the other's recording
            assert (await beta_http.get(f"/api/v1/recordings/{acme_rid}")).status_code == 404
            assert (await rec.http.get(f"/api/v1/recordings/{beta_rid}")).status_code == 404
            r = await beta_http.get(f"/api/v1/recordings/{beta_rid}/audio")
            assert r.status_code == 200
            beta_pcm, beta_rate = decode_mp3(r.content)
        acme_pcm, acme_rate, _ = await rec.audio(acme_rid)
        # Acme: Alice (440 Hz) left, the whole call
        assert sum(e - s for s, e in tone_spans(acme_pcm[0], acme_rate, USER_HZ)) > 4.0
        assert sum(e - s for s, e in tone_spans(acme_pcm[1], acme_rate, OTHER_HZ)) > 4.0
        # Beta: Dave (1000 Hz) left, from his press at about 2.3 s
        kept = beta_pcm.shape[1] / beta_rate
        assert 2.2 < kept < 3.2, kept
        assert sum(e - s for s, e in tone_spans(beta_pcm[0], beta_rate, OTHER_HZ)) > 2.0
        assert sum(e - s for s, e in tone_spans(beta_pcm[1], beta_rate, USER_HZ)) > 2.0
        assert tone_spans(beta_pcm[0], beta_rate, USER_HZ) == []


async def test_two_recorded_users_of_one_tenant_each_get_their_own_recording(
    tmp_path: Path,
) -> None:
    """Alice (always) calls Bob (on demand by user, never presses): one call row,
    Alice's recording with her on the left; Bob's mode decides his: nothing."""
    async with running_recorder(tmp_path) as rec:
        await _set_mode(rec, "bob", "on_demand_user")
        call_plan = CallPlan(
            caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 3.0)),
            callee=Participant("sip:bob@acme.example", "Bob", sine(OTHER_HZ, 3.0)),
            duration_s=3.0,
        )
        assert (await rec.client.place(call_plan)).status == 200
        await rec.wait_finished()
        await _set_mode(rec, "bob", "always")
        assert (await rec.client.place(call_plan)).status == 200
        await rec.wait_finished()
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()["items"]
        assert len(calls) == 2  # one row per call, not per recording
        second, first = calls  # newest first
        assert len(first["recording_ids"]) == 1  # Bob did not press: only Alice's
        assert len(second["recording_ids"]) == 2
        owners = {}
        for rid in second["recording_ids"]:
            meta = await rec.recording(rid)
            pcm, rate, _ = await rec.audio(rid)
            owners[meta["user_id"]] = pcm, rate
        alice, bob = owners[rec.users["alice"]], owners[rec.users["bob"]]
        for (pcm, rate), own, other in ((alice, USER_HZ, OTHER_HZ), (bob, OTHER_HZ, USER_HZ)):
            assert sum(e - s for s, e in tone_spans(pcm[0], rate, own)) > 2.5
            assert sum(e - s for s, e in tone_spans(pcm[1], rate, other)) > 2.5
            assert tone_spans(pcm[0], rate, other) == []
