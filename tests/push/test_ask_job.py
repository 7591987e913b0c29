"""The ``playback.ask`` job against a real push service (``push_service.py``) on loopback.

Each device gets one message encrypted to its keys (RFC 8291) with a VAPID
token the push service checks (RFC 8292); the push service decrypts it and
the test reads what a phone would show. Time is a fake clock handed to the
job runner (starting now: the VAPID token's ``exp`` is checked against the
push service's real clock); retries are driven by moving it, never by sleeping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import callvault.playback.ask  # noqa: F401  (registers the handler)
from callvault.admin import create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, CallParty, Job, PushSubscription, Recording, Tenant, User
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.playback.answers import action_key, verify_action_token
from callvault.push.subscriptions import subscribe
from callvault.push.vapid import VapidKey, vapid_key
from callvault.recording.after import ASK_PLAYBACK, MAIL_RECORDING, after_recording_stored
from callvault.settings import load_settings
from callvault.storage.blobs import LocalBlobStore
from tests.mail.smtp_server import Mailbox, smtp_server
from tests.push.push_service import PushService, Subscription, push_service

PORTAL = "https://portal.acme.example"
AUDIO = b"ID3" + bytes(range(256)) * 64  # what an MP3 blob would be; never in a push


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
    other_tenant_id: int
    users: dict[str, int]

    def runner(self, **settings: Any) -> JobRunner:
        values: dict[str, Any] = {
            "data_dir": self.tmp,
            "public_url": PORTAL,
            "push_allow_http_loopback": True,
            "push_timeout_s": 5,
            "smtp_from": "recorder@callvault.example",
        }
        services = JobServices(
            self.sessions, self.blobs, load_settings(**(values | settings)), clock=self.clock
        )
        return JobRunner(services)

    def device(self, service: PushService, user: str, name: str = "phone") -> Subscription:
        """A browser of ``user`` subscribes at ``service`` with the server's key, as the
        portal's page does (the API itself is tested in test_push_api)."""
        key = vapid_key(self.sessions, self.clock.now).public_key_b64
        browser = service.subscribe(key)
        info = browser.as_json()
        with self.sessions() as session:
            account = session.get(User, self.users[user])
            assert account is not None
            subscribe(
                session,
                account,
                endpoint=info["endpoint"],
                p256dh=info["keys"]["p256dh"],
                auth=info["keys"]["auth"],
                device_name=name,
                user_agent="test",
                at=self.clock.now,
                allow_http_loopback=True,
            )
            session.commit()
        return browser

    def playback_call(self, user: str = "anna", *, saved: bool = False, n: int = 1) -> str:
        """A stored Playback recording of ``user`` with Customer, stored the way the
        finisher stores it (``after_recording_stored`` in the same transaction)."""
        started = self.clock.now - timedelta(minutes=5)
        with self.sessions() as session:
            account = session.get(User, self.users[user])
            assert account is not None
            tenant = session.get(Tenant, account.tenant_id)
            assert tenant is not None
            call = Call(
                tenant_id=tenant.id,
                sip_call_id=f"call-{user}-{n}",
                direction="outbound",
                from_name=account.name,
                from_number="+31201234501",
                to_name="Customer",
                to_number="+31612345678",
                started_at=started,
                answered_at=started,
                ended_at=started + timedelta(seconds=30),
                duration_ms=30000,
            )
            call.parties = [
                CallParty(
                    tenant_id=tenant.id,
                    participant_id="p-user",
                    name=account.name,
                    number="+31201234501",
                    user_id=account.id,
                    side="user",
                ),
                CallParty(
                    tenant_id=tenant.id,
                    participant_id="p-other",
                    name="Customer",
                    number="+31612345678",
                    side="other",
                ),
            ]
            session.add(call)
            session.flush()
            key = f"{tenant.id}/{call.id}.mp3"
            self.blobs.put(key, AUDIO)
            recording = Recording(
                id=call.id,
                tenant_id=tenant.id,
                call_id=call.id,
                user_id=account.id,
                blob_key=key,
                sha256=hashlib.sha256(AUDIO).hexdigest(),
                size_bytes=len(AUDIO),
                duration_ms=30000,
                channels=2,
                sample_rate=8000,
                codecs="PCMU",
                started_at=started,
                mode="playback",
                saved=saved,
                kept_reason="whitelisted contact" if saved else "playback: unsaved",
                expires_at=None if saved else started + timedelta(days=3),
            )
            session.add(recording)
            after_recording_stored(session, recording, tenant, self.clock.now)
            session.commit()
            return recording.id

    def job(self) -> Job:
        with self.sessions() as session:
            job = session.scalar(select(Job).where(Job.kind == ASK_PLAYBACK))
            assert job is not None
            session.expunge(job)
            return job

    def devices(self) -> dict[int, PushSubscription]:
        with self.sessions() as session:
            rows = session.scalars(select(PushSubscription)).all()
            for row in rows:
                session.expunge(row)
            return {row.id: row for row in rows}


@pytest.fixture
def ask(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        acme = create_tenant(session, "Acme", ["acme.example"], ["+31201234500"])
        acme.timezone = "Europe/Amsterdam"
        other = create_tenant(session, "Other", ["other.example"], ["+31301234500"])
        users = {
            "anna": create_user(
                session, acme, "Anna", extension="201", recorded=True, mode="playback"
            ),
            "bob": create_user(
                session, acme, "Bob", extension="202", recorded=True, mode="playback"
            ),
            "otto": create_user(
                session, other, "Otto", extension="201", recorded=True, mode="playback"
            ),
        }
        session.commit()
        ids = {name: user.id for name, user in users.items()}
        ask = World(
            tmp_path,
            sessions,
            LocalBlobStore(tmp_path / "blobs"),
            Clock(datetime.now(UTC).replace(microsecond=0)),
            acme.id,
            other.id,
            ids,
        )
    yield ask
    engine.dispose()


@pytest.fixture
def service() -> Iterator[PushService]:
    with push_service() as running:
        yield running


def test_each_device_of_the_user_gets_one_encrypted_push_naming_the_call(
    ask: World, service: PushService
) -> None:
    phone, laptop = ask.device(service, "anna", "phone"), ask.device(service, "anna", "laptop")
    colleague = ask.device(service, "bob")  # same tenant, another user
    stranger = ask.device(service, "otto")  # another tenant
    recording_id = ask.playback_call("anna")
    runner = ask.runner()
    assert runner.run_due() == 1
    job = ask.job()
    assert job.state == "done", job.message
    assert job.result is not None and job.result["pushed"] == 2
    assert service.received_by(colleague) == [] and service.received_by(stranger) == []
    assert service.refused == []
    for device in (phone, laptop):
        [push] = service.received_by(device)
        message = push.payload
        assert set(message) == {
            "type",
            "recording_id",
            "title",
            "body",
            "expires_at",
            "actions",
            "answer_url",
            "token",
        }
        assert message["type"] == "playback.ask" and message["recording_id"] == recording_id
        assert message["title"] == "Gesprek opslaan?"  # the tenant's language: nl
        local = (ask.clock.now - timedelta(minutes=5)).astimezone(ZoneInfo("Europe/Amsterdam"))
        assert message["body"] == f"Customer (+31612345678), {local:%d-%m %H:%M}"
        assert message["actions"] == [
            {"action": "keep", "title": "Opslaan"},
            {"action": "discard", "title": "Verwijderen"},
        ]
        assert message["answer_url"] == "/api/v1/playback/answer"
        assert datetime.fromisoformat(message["expires_at"]) == ask.clock.now - timedelta(
            minutes=5
        ) + timedelta(days=3)
        with ask.sessions() as session:
            claim = verify_action_token(action_key(session), message["token"], ask.clock.now)
        assert claim.recording_id == recording_id and claim.user_id == ask.users["anna"]
        # encrypted on the wire: neither the party nor the audio is readable in the body
        assert b"Customer" not in push.body and b"+316" not in push.body
        assert AUDIO[:64] not in push.body and len(push.body) < 1024
        assert push.headers["Content-Encoding"] == "aes128gcm"
        assert 3 * 86400 - 400 < int(push.headers["TTL"]) <= 3 * 86400
        assert push.claims["aud"] == service.origin
        assert push.claims["sub"] == "mailto:recorder@callvault.example"
    # done means done: nothing is sent twice
    ask.clock.now += timedelta(hours=1)
    assert runner.run_due() == 0
    assert len(service.received) == 2
    sent = [d for d in ask.devices().values() if d.last_sent_at is not None]
    assert sorted(d.device_name for d in sent) == ["laptop", "phone"]


def test_the_users_language_names_the_actions(ask: World, service: PushService) -> None:
    with ask.sessions() as session:
        anna = session.get(User, ask.users["anna"])
        assert anna is not None
        anna.language = "de"
        session.commit()
    phone = ask.device(service, "anna")
    ask.playback_call("anna")
    ask.runner().run_due()
    [push] = service.received_by(phone)
    assert push.payload["title"] == "Gespräch speichern?"
    assert [a["title"] for a in push.payload["actions"]] == ["Speichern", "Löschen"]


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_removed(ask: World, service: PushService, status: int) -> None:
    gone, alive = ask.device(service, "anna", "old"), ask.device(service, "anna", "new")
    gone.answer = status
    ask.playback_call("anna")
    ask.runner().run_due()
    job = ask.job()
    assert job.state == "done" and job.result is not None
    assert job.result["gone"] == 1 and job.result["pushed"] == 1
    assert [d.device_name for d in ask.devices().values()] == ["new"]
    assert len(service.received_by(alive)) == 1 and service.received_by(gone) == []


def test_a_push_service_that_is_down_is_retried_later_and_no_device_gets_two(
    ask: World, service: PushService
) -> None:
    with push_service() as flaky:
        sent = ask.device(service, "anna", "phone")
        later = ask.device(flaky, "anna", "tablet")
        flaky.down()
        recording_id = ask.playback_call("anna")
        runner = ask.runner()
        runner.run_due()
        job = ask.job()
        assert job.state == "queued" and job.attempts == 1
        assert "try again" in (job.message or "")
        assert job.payload["recording_id"] == recording_id
        assert len(service.received_by(sent)) == 1
        [tablet] = [d for d in ask.devices().values() if d.device_name == "tablet"]
        assert tablet.failures == 1 and tablet.last_sent_at is None
        # not before the backoff, whatever the runner is asked
        assert runner.run_due() == 0
        flaky.up()
        ask.clock.now += timedelta(seconds=31)
        assert runner.run_due() == 1
        job = ask.job()
        assert job.state == "done", job.message
        assert len(service.received_by(sent)) == 1  # not sent again
        assert len(flaky.received_by(later)) == 1
        assert flaky.received_by(later)[0].payload["recording_id"] == recording_id
        assert job.result is not None and job.result["pushed"] == 2


def test_a_5xx_is_retried_with_the_services_retry_after(ask: World, service: PushService) -> None:
    phone = ask.device(service, "anna")
    phone.answer = 500
    ask.playback_call("anna")
    runner = ask.runner()
    runner.run_due()
    job = ask.job()
    assert job.state == "queued" and service.received == [] and len(service.refused) == 1
    phone.answer = 201
    ask.clock.now += timedelta(seconds=31)
    runner.run_due()
    assert ask.job().state == "done" and len(service.received_by(phone)) == 1


def test_nothing_is_asked_when_answered_expired_or_the_user_is_gone(
    ask: World, service: PushService
) -> None:
    phone = ask.device(service, "anna")
    answered = ask.playback_call("anna", n=1)
    with ask.sessions() as session:
        row = session.get(Recording, answered)
        assert row is not None
        row.answered_at, row.answer, row.saved = ask.clock.now, "keep", True
        session.commit()
    runner = ask.runner()
    runner.run_due()
    assert ask.job().result == {
        "asked": False,
        "note": "answered already: not asked",
        "recording_id": answered,
    }
    # the user is removed before the job runs
    ask.device(service, "bob")
    ask.playback_call("bob", n=2)
    with ask.sessions() as session:
        session.delete(session.get(User, ask.users["bob"]))
        session.commit()
    runner.run_due()
    # the audio expired before anyone ran the job (a runner that was down for days)
    ask.playback_call("anna", n=3)
    ask.clock.now += timedelta(days=3, minutes=1)
    runner.run_due()
    with ask.sessions() as session:
        notes = sorted(
            (job.result or {}).get("note", "")
            for job in session.scalars(select(Job).where(Job.kind == ASK_PLAYBACK))
        )
    assert notes == [
        "answered already: not asked",
        "the audio is no longer available: not asked",
        "the user is gone: not asked",
    ]
    assert service.received == [] and service.received_by(phone) == []


def test_only_unsaved_playback_recordings_of_a_user_are_asked(ask: World) -> None:
    ask.playback_call("anna", saved=True, n=1)  # a whitelisted contact: never asked
    unsaved = ask.playback_call("anna", n=2)
    with ask.sessions() as session:
        jobs = session.scalars(select(Job).where(Job.kind.in_((ASK_PLAYBACK, MAIL_RECORDING))))
        assert [(j.kind, j.key, j.payload) for j in jobs] == [
            (ASK_PLAYBACK, f"{ASK_PLAYBACK}:{unsaved}", {"recording_id": unsaved})
        ]
        # stored again (a crashed call finished twice): still one question
        recording = session.get(Recording, unsaved)
        tenant = session.get(Tenant, ask.tenant_id)
        assert recording is not None and tenant is not None
        after_recording_stored(session, recording, tenant, ask.clock.now)
        session.commit()
        assert len(session.scalars(select(Job).where(Job.kind == ASK_PLAYBACK)).all()) == 1


def test_asked_by_e_mail_too_when_the_user_chose_it_and_only_once(
    ask: World, service: PushService
) -> None:
    with ask.sessions() as session:
        anna = session.get(User, ask.users["anna"])
        assert anna is not None
        anna.email, anna.playback_email = "anna@acme.example", True
        session.commit()
    phone = ask.device(service, "anna")
    service.down()  # the push is retried; the e-mail went already and does not go again
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        recording_id = ask.playback_call("anna")
        runner = ask.runner(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_s=10)
        runner.run_due()
        assert ask.job().state == "queued"
        service.up()
        ask.clock.now += timedelta(seconds=31)
        runner.run_due()
    job = ask.job()
    assert job.state == "done" and job.result is not None and job.result["mailed"] is True
    assert len(service.received_by(phone)) == 1
    [received] = mailbox.received
    assert received.rcpt_tos == ["anna@acme.example"]
    message = received.message
    assert message["Subject"].startswith("Gesprek opslaan? Customer (+31612345678), ")
    assert message["Message-ID"] == f"<playback.{recording_id}@callvault.example>"
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert f"{PORTAL}/playback/{recording_id}" in body
    assert "opslaan of verwijderen" in body and "Customer" in body
    assert not list(message.iter_attachments())  # a question, never the audio


def test_a_long_name_is_cut_so_the_payload_stays_small(ask: World, service: PushService) -> None:
    phone = ask.device(service, "anna")
    ask.playback_call("anna")
    with ask.sessions() as session:
        party = session.scalar(select(CallParty).where(CallParty.side == "other"))
        assert party is not None
        party.name = "X" * 200  # a display name far longer than a notification shows
        session.commit()
    ask.runner().run_due()
    [push] = service.received_by(phone)
    assert push.payload["body"].startswith("X" * 64 + ", ")
    assert len(json.dumps(push.payload)) < 1000


def test_a_device_subscribed_with_another_servers_key_is_refused_and_not_retried(
    ask: World, service: PushService
) -> None:
    """The push service checks the VAPID signature against the key the browser
    subscribed with (RFC 8292 section 4.1): a mismatch is 403, for good."""
    phone = ask.device(service, "anna")
    phone.application_server_key = VapidKey.generate().public_key_b64
    ask.playback_call("anna")
    ask.runner().run_due()
    job = ask.job()
    assert job.state == "done" and job.result is not None and job.result["refused"] == 1
    [refused] = service.refused
    assert refused.status == 403 and "application server key" in refused.reason
    assert service.received == []
