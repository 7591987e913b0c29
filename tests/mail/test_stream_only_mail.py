"""Stream-only and mail (SPEC 5): a stream-only tenant is mailed the link, never the file.

A stream-only tenant forbade downloads; an attached MP3 would hand each
recording out anyway. The mail carries the link to the portal instead, so the
portal must keep the audio: the settings refuse stream-only together with "do
not store in the portal", whichever is set first (422
``stream-only-needs-portal``). Against a real SMTP server (aiosmtpd on
loopback) and the live portal app.
"""

from __future__ import annotations

from sqlalchemy import func, select

from callvault.db.models import AuditEvent, DeletionReceipt, Tenant
from tests.mail.smtp_server import Mailbox, smtp_server
from tests.mail.test_recording_mail_job import PORTAL, World, world  # noqa: F401  (fixture)
from tests.portal.conftest import Portal, portal  # noqa: F401  (the fixture)


def _body(received: object) -> str:
    message = received.message  # type: ignore[attr-defined]
    text = message.get_body(("plain",))
    assert text is not None
    return str(text.get_content())


def test_a_stream_only_tenant_is_mailed_the_link_and_no_attachment(world: World) -> None:  # noqa: F811
    world.tenant(stream_only=True)
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        # small enough to attach: only stream-only keeps the file out
        assert world.runner(port).run_due() == 1
    [received] = mailbox.received
    assert list(received.message.iter_attachments()) == []
    assert received.size < len(world.mp3)
    body = _body(received)
    assert "Aufzeichnungen Ihrer Organisation können nur im Kundenportal angehört werden:" in body
    assert f"{PORTAL}/recordings/rec1" in body
    assert "angehängt" not in body and "zu groß" not in body
    job, recording = world.job(), world.recording()
    assert job.result == {
        "sent": True,
        "to": "aufnahmen@acme.example",
        "attached": False,
        "deleted": False,
    }
    assert job.message == "mailed as link (stream-only: no attachment)"
    assert recording.mailed_at is not None and recording.audio_deleted_at is None


def test_stream_only_with_do_not_store_from_before_still_keeps_the_audio(world: World) -> None:  # noqa: F811
    """Both set before the settings refused it: the link is mailed and the portal keeps the
    audio it leads to (deleting it would leave the tenant with nothing)."""
    world.tenant(stream_only=True, store_in_portal=False)
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        assert world.runner(port).run_due() == 1
    [received] = mailbox.received
    assert list(received.message.iter_attachments()) == []
    assert f"{PORTAL}/recordings/rec1" in _body(received)
    assert world.recording().audio_deleted_at is None
    assert world.blobs.read(world.recording().blob_key) == world.mp3
    with world.sessions() as session:
        assert session.scalar(select(func.count(DeletionReceipt.id))) == 0


def _settings_changes(portal: Portal) -> int:  # noqa: F811
    with portal.sessions() as session:
        return int(
            session.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action == "settings.recording",
                    AuditEvent.tenant_id == portal.tenant_a,
                )
            )
            or 0
        )


def _switches(portal: Portal) -> tuple[bool, bool]:  # noqa: F811
    with portal.sessions() as session:
        tenant = session.get(Tenant, portal.tenant_a)
        assert tenant is not None
        return tenant.stream_only, tenant.store_in_portal


def test_stream_only_and_do_not_store_are_refused_together_in_either_order(
    portal: Portal,  # noqa: F811
) -> None:
    base = f"/api/v1/tenants/{portal.tenant_a}/recording-settings"
    admin = portal.client("a_admin")

    def refused(body: dict[str, object]) -> None:
        r = admin.patch(base, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["id"] == "stream-only-needs-portal"

    # stream-only first, then "do not store"
    assert admin.patch(base, json={"stream_only": True}).status_code == 200
    audited = _settings_changes(portal)
    refused({"store_in_portal": False})
    assert _switches(portal) == (True, True) and _settings_changes(portal) == audited
    # both in one request
    assert admin.patch(base, json={"stream_only": False}).status_code == 200
    refused({"stream_only": True, "store_in_portal": False})
    assert _switches(portal) == (False, True)
    # "do not store" first, then stream-only
    assert admin.patch(base, json={"store_in_portal": False}).status_code == 200
    audited = _settings_changes(portal)
    refused({"stream_only": True})
    assert _switches(portal) == (False, False) and _settings_changes(portal) == audited
    # the operator is held to it as well
    r = portal.client("operator").patch(base, json={"stream_only": True})
    assert (r.status_code, r.json()["error"]["id"]) == (422, "stream-only-needs-portal")
    # storing again and stream-only in one request is fine; other settings stay changeable
    r = admin.patch(base, json={"store_in_portal": True, "stream_only": True})
    assert r.status_code == 200 and (r.json()["stream_only"], r.json()["store_in_portal"]) == (
        True,
        True,
    )
    assert admin.patch(base, json={"language": "de"}).status_code == 200
