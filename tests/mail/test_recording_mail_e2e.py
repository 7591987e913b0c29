"""A real recorded call, mailed to the tenant's address (SPEC 5, the German manual).

The in-process recorder (SIPREC in, MP3 out) runs its own job runner; the
mail server is aiosmtpd on loopback. The message is parsed as received and
its MP3 decoded and checked by tone: the user's tone left, the other
party's right.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select

from callvault.db.models import AuditEvent, Job, Recording
from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.recording.after import MAIL_RECORDING
from callvault.recording.mp3 import decode_mp3
from tests.e2e.harness import Recorder, running_recorder
from tests.mail.smtp_server import Mailbox, smtp_server

USER_HZ, OTHER_HZ = 440.0, 1000.0
PORTAL = "https://portal.acme.example"


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


async def _job_finished(rec: Recorder, timeout: float = 30) -> Job:
    """The mail job once the recorder's own runner finished it (done or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        with rec.app.sessions() as session:
            job = session.scalar(select(Job).where(Job.kind == MAIL_RECORDING))
            if job is not None and job.state in ("done", "failed"):
                session.expunge(job)
                return job
        assert time.monotonic() < deadline, "the mail job did not finish"
        await asyncio.sleep(0.05)  # polling a state another thread changes, not a timer


async def _place_call(rec: Recorder) -> str:
    plan = CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, 3.0)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, 3.0)),
        duration_s=3.0,
    )
    result = await rec.client.place(plan)
    assert result.status == 200
    [(_call, recording_id)] = await rec.wait_finished()
    assert recording_id is not None
    return recording_id


async def _settings(rec: Recorder, **values: Any) -> dict[str, Any]:
    r = await rec.http.patch(f"/api/v1/tenants/{rec.tenant_id}/recording-settings", json=values)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_recorded_call_is_mailed_with_its_mp3_and_not_kept_in_the_portal(
    tmp_path: Any,
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        async with running_recorder(
            tmp_path, smtp_host="127.0.0.1", smtp_port=port, public_url=PORTAL
        ) as rec:
            out = await _settings(rec, delivery_email="opnames@acme.example", store_in_portal=False)
            assert out["store_in_portal"] is False and out["language"] == "nl"
            recording_id = await _place_call(rec)
            job = await _job_finished(rec)
            assert job.state == "done", job.message
            assert job.result is not None and job.result["deleted"] is True
            # the call's record stays and says the audio was mailed, not kept
            meta = await rec.recording(recording_id)
            assert meta["id"] == recording_id
            with rec.app.sessions() as session:
                row = session.get(Recording, recording_id)
                assert row is not None and row.mailed_at is not None
                assert row.audio_deleted_reason == "mailed"
                audited = session.scalars(
                    select(AuditEvent).where(AuditEvent.action == "settings.recording")
                ).all()
                assert any("store_in_portal" in (a.details or {}) for a in audited)
            audio = await rec.http.get(f"/api/v1/recordings/{recording_id}/audio")
            assert audio.status_code in (404, 410), audio.status_code
            page = await rec.http.get(f"/recordings/{recording_id}")
            assert page.status_code == 200, page.status_code
            assert 'id="mail-state">gemaild op' in page.text
            assert '<span id="not-stored">niet in het portaal bewaard</span>' in page.text
    [received] = mailbox.received
    assert received.rcpt_tos == ["opnames@acme.example"]
    message = received.message
    assert str(message["From"]).startswith("callvault gespreksopnames <")
    subject = message["Subject"]
    assert subject.startswith("Gespreksopname: Alice") and "+31612345678" in subject
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "Hierbij de opname van het volgende gesprek." in body
    assert "Van: Alice" in body and "+31612345678" in body
    assert "Deze opname wordt niet in het portaal bewaard" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/mpeg"
    assert (attachment.get_filename() or "").endswith(".mp3")
    mp3 = attachment.get_payload(decode=True)
    assert isinstance(mp3, bytes)
    pcm, rate = decode_mp3(mp3)
    assert pcm.shape[0] == 2
    duration = pcm.shape[1] / rate
    assert 2.6 < duration < 3.6
    assert _covered(tone_spans(pcm[0], rate, USER_HZ), 0.2, duration - 0.2) > duration - 0.7
    assert _covered(tone_spans(pcm[1], rate, OTHER_HZ), 0.2, duration - 0.2) > duration - 0.7
    assert _covered(tone_spans(pcm[0], rate, OTHER_HZ), 0, duration) < 0.1


async def test_a_refused_address_is_shown_on_the_recording_page_and_nothing_is_deleted(
    tmp_path: Any,
) -> None:
    mailbox = Mailbox(refuse_rcpt="550 5.1.1 <nobody@acme.example>: no such user")
    with smtp_server(mailbox) as port:
        async with running_recorder(
            tmp_path, smtp_host="127.0.0.1", smtp_port=port, public_url=PORTAL
        ) as rec:
            await _settings(
                rec, delivery_email="nobody@acme.example", store_in_portal=False, language="de"
            )
            recording_id = await _place_call(rec)
            job = await _job_finished(rec)
            assert job.state == "failed" and "550" in (job.message or "")
            page = await rec.http.get(f"/recordings/{recording_id}")
            assert page.status_code == 200
            assert (
                'id="mail-state"><span class="error">nicht versendet: 550 5.1.1 '
                "&lt;nobody@acme.example&gt;: no such user</span>"
            ) in page.text
            audio = await rec.http.get(f"/api/v1/recordings/{recording_id}/audio")
            assert audio.status_code == 200  # never accepted: the portal keeps it
    assert mailbox.received == []
