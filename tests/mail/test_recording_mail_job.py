"""The ``recording.mail`` job against a real SMTP server (aiosmtpd on loopback).

Time is a fake clock handed to the job runner; the retries are driven by
moving it past the queue's backoff, never by sleeping.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

import callvault.mail.recordings  # noqa: F401  (registers the handler)
from callvault.admin import create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, DeletionReceipt, Job, LegalHold, Recording, Tenant
from callvault.jobs import queue
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.mail.smtp import MailPermanentError, MailTemporaryError, send
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.recording.after import MAIL_RECORDING, after_recording_stored
from callvault.recording.mp3 import decode_mp3, encode_mp3
from callvault.settings import load_settings
from callvault.storage.blobs import BlobNotFound, LocalBlobStore
from tests.mail.smtp_server import Authenticator, Mailbox, free_port, smtp_server
from tests.sip.tls_certs import Certificate, self_signed

USER_HZ, OTHER_HZ = 440.0, 1000.0
STARTED = datetime(2026, 12, 3, 13, 5, 12, tzinfo=UTC)  # 14:05:12 in Berlin and Amsterdam
PORTAL = "https://portal.acme.example"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    tmp: Path
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    clock: Clock
    tenant_id: int
    recording_id: str
    mp3: bytes

    def runner(self, port: int, **settings: Any) -> JobRunner:
        values: dict[str, Any] = {
            "data_dir": self.tmp,
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_timeout_s": 10,
            "smtp_from": "recorder@callvault.example",
            "public_url": PORTAL,
        }
        services = JobServices(
            self.sessions, self.blobs, load_settings(**(values | settings)), clock=self.clock
        )
        return JobRunner(services)

    def tenant(self, **values: Any) -> None:
        with self.sessions() as session:
            tenant = session.get(Tenant, self.tenant_id)
            for key, value in values.items():
                setattr(tenant, key, value)
            session.commit()

    def recording(self) -> Recording:
        with self.sessions() as session:
            recording = session.get(Recording, self.recording_id)
            assert recording is not None
            session.expunge(recording)
            return recording

    def job(self) -> Job:
        with self.sessions() as session:
            job = session.scalar(select(Job).where(Job.kind == MAIL_RECORDING))
            assert job is not None
            session.expunge(job)
            return job


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A German tenant whose admin wants recordings mailed, and one finished recording."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    blobs = LocalBlobStore(tmp_path / "blobs")
    clock = Clock(STARTED + timedelta(minutes=2))
    mp3 = encode_mp3(sine(USER_HZ, 3.0), sine(OTHER_HZ, 3.0), 8000)
    with sessions() as session:
        tenant = create_tenant(session, "Acme", ["acme.example"], ["+31201234500"])
        tenant.language, tenant.timezone = "de", "Europe/Berlin"
        tenant.delivery_email = "aufnahmen@acme.example"
        alice = create_user(session, tenant, "Alice", extension="201", aors=["alice@acme.example"])
        call = Call(
            tenant_id=tenant.id,
            sip_call_id="c1@src",
            direction="outbound",
            from_name="Alice",
            from_number="+31201234501",
            from_aor="sip:alice@acme.example",
            to_name="Kunde Müller",
            to_number="+31612345678",
            started_at=STARTED,
            answered_at=STARTED,
            ended_at=STARTED + timedelta(seconds=3),
            duration_ms=3000,
        )
        session.add(call)
        session.flush()
        key = f"{tenant.id}/2026/12/03/rec1.mp3"
        blobs.put(key, mp3)
        recording = Recording(
            id="rec1",
            tenant_id=tenant.id,
            call_id=call.id,
            user_id=alice.id,
            blob_key=key,
            sha256=hashlib.sha256(mp3).hexdigest(),
            size_bytes=len(mp3),
            duration_ms=3000,
            channels=2,
            sample_rate=8000,
            codecs="PCMA",
            started_at=STARTED,
            expires_at=STARTED + timedelta(days=7),
        )
        session.add(recording)
        after_recording_stored(session, recording, tenant, clock.now)
        session.commit()
        tenant_id = tenant.id
    return World(tmp_path, sessions, blobs, clock, tenant_id, "rec1", mp3)


def _attachment(message: EmailMessage) -> tuple[str, str, bytes]:
    [part] = list(message.iter_attachments())
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part.get_content_type(), part.get_filename() or "", payload


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


def test_451_first_then_accepted_after_the_backoff_in_german_with_the_mp3(world: World) -> None:
    mailbox = Mailbox(replies=["451 4.3.0 try again later"])
    with smtp_server(mailbox) as port:
        runner = world.runner(port)
        assert runner.run_due() == 1
        job = world.job()
        assert (job.state, job.attempts) == ("queued", 1) and "451" in (job.message or "")
        assert world.recording().mailed_at is None and not mailbox.received
        assert runner.run_due() == 0  # not before the backoff
        world.clock.now += queue.backoff(1) + timedelta(seconds=1)
        assert runner.run_due() == 1
    assert mailbox.answered == ["451 4.3.0 try again later", "250"]
    [received] = mailbox.received
    message = received.message
    assert received.rcpt_tos == ["aufnahmen@acme.example"]
    assert str(message["From"]) == ("callvault Gesprächsaufzeichnung <recorder@callvault.example>")
    assert message["To"] == "aufnahmen@acme.example"
    assert message["Subject"] == (
        "Gesprächsaufzeichnung: Alice (+31201234501) → Kunde Müller (+31612345678), "
        "03.12.2026 14:05:12 CET"
    )
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    for line in (
        "Anbei die Aufzeichnung des folgenden Gesprächs.",
        "Von: Alice (+31201234501)",
        "An: Kunde Müller (+31612345678)",
        "Zeit: 03.12.2026 14:05:12 CET",
        "Dauer: 0:03",
        "Richtung: ausgehend",
        "Die Aufzeichnung ist als MP3-Datei angehängt.",
        f"Im Kundenportal: {PORTAL}/recordings/rec1",
    ):
        assert line in body, (line, body)
    content_type, filename, mp3 = _attachment(message)
    assert content_type == "audio/mpeg"
    assert filename == "2026-12-03_140512_+31201234501_+31612345678.mp3"
    assert mp3 == world.mp3
    pcm, rate = decode_mp3(mp3)
    duration = pcm.shape[1] / rate
    assert 2.9 < duration < 3.1
    # the user's tone on the left, the other party's on the right, as recorded
    assert _covered(tone_spans(pcm[0], rate, USER_HZ), 0, duration) > duration - 0.2
    assert _covered(tone_spans(pcm[1], rate, OTHER_HZ), 0, duration) > duration - 0.2
    assert _covered(tone_spans(pcm[0], rate, OTHER_HZ), 0, duration) < 0.1
    recording, job = world.recording(), world.job()
    assert recording.mailed_at is not None and recording.mail_error is None
    assert recording.audio_deleted_at is None  # stored in the portal as well (the default)
    assert (job.state, job.attempts, job.result) == (
        "done",
        2,
        {"sent": True, "to": "aufnahmen@acme.example", "attached": True, "deleted": False},
    )


def test_550_fails_for_good_and_the_admin_sees_why(world: World) -> None:
    mailbox = Mailbox(refuse_rcpt="550 5.1.1 no such mailbox")
    with smtp_server(mailbox) as port:
        runner = world.runner(port)
        assert runner.run_due() == 1
        world.clock.now += timedelta(days=1)
        assert runner.run_due() == 0  # not retried
    job, recording = world.job(), world.recording()
    assert job.state == "failed" and "550" in (job.message or "")
    assert recording.mailed_at is None
    assert recording.mail_error == "550 5.1.1 no such mailbox"
    assert recording.audio_deleted_at is None  # nothing was accepted: nothing deleted


def test_a_server_that_is_down_is_temporary_until_the_last_attempt(world: World) -> None:
    world.tenant(store_in_portal=False)
    runner = world.runner(free_port())  # nobody listens there
    assert runner.run_due() == 1
    job = world.job()
    assert job.state == "queued" and "cannot reach the mail server" in (job.message or "")
    assert world.recording().mail_error is None  # still trying: not an error yet
    for attempt in range(2, job.max_attempts + 1):
        world.clock.now += queue.backoff(attempt - 1) + timedelta(seconds=1)
        assert runner.run_due() == 1
    job, recording = world.job(), world.recording()
    assert (job.state, job.attempts) == ("failed", job.max_attempts)
    assert (
        recording.mail_error is not None and "not delivered after 8 tries" in recording.mail_error
    )
    assert recording.audio_deleted_at is None  # never accepted: the portal keeps it


def _server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Certificate]:
    certificate = self_signed(tmp_path, "mail")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context, certificate


def test_starttls_with_a_self_signed_certificate_and_auth(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_context, certificate = _server_context(tmp_path)
    mailbox = Mailbox()
    settings = {"smtp_security": "starttls", "smtp_username": "acme", "smtp_password": "s3cret"}
    with smtp_server(
        mailbox, starttls=server_context, authenticator=Authenticator("acme", "s3cret")
    ) as port:
        runner = world.runner(port, **settings)
        # a certificate nobody vouches for is not trusted: retried, never sent in the clear
        assert runner.run_due() == 1
        job = world.job()
        assert job.state == "queued" and "CERTIFICATE_VERIFY_FAILED" in (job.message or "")
        assert not mailbox.received
        # the operator trusts it the OpenSSL way (SSL_CERT_FILE): the next try goes through
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
        world.clock.now += queue.backoff(1) + timedelta(seconds=1)
        assert runner.run_due() == 1
    assert world.job().state == "done"
    assert (mailbox.tls_seen, mailbox.auth_seen) == ([True], [True])
    [received] = mailbox.received
    assert _attachment(received.message)[2] == world.mp3


def test_send_starttls_auth_and_implicit_tls_with_a_client_context(tmp_path: Path) -> None:
    """``send`` itself: STARTTLS + AUTH, a wrong password (535, permanent), implicit TLS."""
    server_context, certificate = _server_context(tmp_path)
    client = ssl.create_default_context(cafile=str(certificate.cert))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.example", "b@y.example", "hi"
    message.set_content("hello")
    mailbox = Mailbox()
    with smtp_server(
        mailbox, starttls=server_context, authenticator=Authenticator("acme", "s3cret")
    ) as port:
        base: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "starttls",
        }
        send(load_settings(**base, smtp_username="acme", smtp_password="s3cret"), message, client)
        with pytest.raises(MailPermanentError, match="535"):
            send(load_settings(**base, smtp_username="acme", smtp_password="no"), message, client)
        with pytest.raises(MailPermanentError, match="530"):  # no AUTH: refused
            send(load_settings(**base), message, client)
    assert [r.message["Subject"] for r in mailbox.received] == ["hi"]
    implicit = Mailbox()
    with smtp_server(implicit, implicit_tls=server_context) as port:
        settings = load_settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="tls")
        send(settings, message, client)
        with pytest.raises(MailTemporaryError, match="CERTIFICATE_VERIFY_FAILED"):
            send(settings, message)  # the default trust store does not know it
    assert implicit.tls_seen == [True]


def test_over_the_size_limit_the_mail_carries_the_link_instead(world: World) -> None:
    world.tenant(language="en", timezone="America/New_York")
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        assert world.runner(port, mail_attachment_max_bytes=len(world.mp3) - 1).run_due() == 1
    [received] = mailbox.received
    message = received.message
    assert list(message.iter_attachments()) == []
    assert received.size < len(world.mp3)
    assert message["Subject"] == (
        "Call recording: Alice (+31201234501) → Kunde Müller (+31612345678), "
        "2026-12-03 08:05:12 EST"
    )
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    size = f"{len(world.mp3) / 1000:.0f} kB"
    assert f"The recording is too large to attach ({size}). Listen to it in the portal:" in body
    assert f"{PORTAL}/recordings/rec1" in body.splitlines()
    assert world.job().result == {
        "sent": True,
        "to": "aufnahmen@acme.example",
        "attached": False,
        "deleted": False,
    }


def test_do_not_store_deletes_the_audio_once_the_server_said_250(world: World) -> None:
    world.tenant(store_in_portal=False, language="nl")
    mailbox = Mailbox(replies=["451 4.7.1 greylisted"])
    with smtp_server(mailbox) as port:
        runner = world.runner(port)
        assert runner.run_due() == 1
        # not accepted yet: the portal's copy is the only one and stays
        assert world.recording().audio_deleted_at is None
        assert world.blobs.read(world.recording().blob_key) == world.mp3
        world.clock.now += queue.backoff(1) + timedelta(seconds=1)
        assert runner.run_due() == 1
    [received] = mailbox.received
    assert _attachment(received.message)[2] == world.mp3
    text = received.message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "Richting: uitgaand" in body and "Tijd: 03-12-2026 14:05:12 CET" in body
    assert "niet in het portaal bewaard" in body
    assert "/recordings/" not in body  # a link would lead nowhere
    recording = world.recording()
    assert recording.mailed_at == world.clock.now.replace(tzinfo=None)
    assert (recording.audio_deleted_at, recording.audio_deleted_reason) == (
        recording.mailed_at,
        "mailed",
    )
    with pytest.raises(BlobNotFound):
        world.blobs.read(recording.blob_key)
    with world.sessions() as session:
        [receipt] = session.scalars(select(DeletionReceipt)).all()
        assert (receipt.kind, receipt.actor, receipt.tenant_id) == (
            "mailed",
            "system:mail",
            world.tenant_id,
        )
        assert receipt.counts == {"recordings": 1, "bytes": len(world.mp3), "reason": "mailed"}
    assert world.job().result == {
        "sent": True,
        "to": "aufnahmen@acme.example",
        "attached": True,
        "deleted": True,
    }


def test_do_not_store_keeps_held_audio_and_a_recording_mailed_as_a_link(world: World) -> None:
    world.tenant(store_in_portal=False)
    with world.sessions() as session:
        session.add(
            LegalHold(
                tenant_id=world.tenant_id,
                scope="recording",
                recording_id=world.recording_id,
                reason="court order 12/2026",
                placed_by="operator",
            )
        )
        session.commit()
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        assert world.runner(port).run_due() == 1
    recording = world.recording()
    assert recording.mailed_at is not None and recording.audio_deleted_at is None
    assert world.blobs.read(recording.blob_key) == world.mp3
    assert "legal hold" in (world.job().message or "")
    # without the hold, but too large to attach: the link is all the mail has, so it stays
    with world.sessions() as session:
        session.execute(delete(LegalHold))
        session.execute(delete(Job))
        recording = session.get_one(Recording, world.recording_id)
        recording.mailed_at = None
        after_recording_stored(
            session, recording, session.get_one(Tenant, world.tenant_id), world.clock.now
        )
        session.commit()
    with smtp_server(mailbox) as port:
        assert world.runner(port, mail_attachment_max_bytes=100).run_due() == 1
    assert list(mailbox.received[-1].message.iter_attachments()) == []
    assert world.recording().audio_deleted_at is None
    assert world.job().result == {
        "sent": True,
        "to": "aufnahmen@acme.example",
        "attached": False,
        "deleted": False,
    }


def test_audio_that_is_no_longer_available_is_not_sent(world: World) -> None:
    world.clock.now = STARTED + timedelta(days=8)  # past expires_at, no hold
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        assert world.runner(port).run_due() == 1
    assert mailbox.received == [] and mailbox.answered == []
    job = world.job()
    assert job.state == "done" and job.message == "the audio is no longer available: not mailed"
    assert world.recording().mailed_at is None


def test_a_tenant_without_a_delivery_address_gets_no_job(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        tenant.delivery_email = None
        recording = session.get(Recording, world.recording_id)
        assert recording is not None
        session.execute(delete(Job))
        after_recording_stored(session, recording, tenant, world.clock.now)
        session.commit()
        assert session.scalars(select(Job)).all() == []
