"""The German manual's "do not store in the portal" checkbox: API, audit, page."""

from __future__ import annotations

from sqlalchemy import select

from callvault.db.models import AuditEvent, Recording, Tenant
from tests.portal.conftest import Portal, portal  # noqa: F401  (the fixture)


def test_the_admin_turns_storing_off_audited_and_nobody_else_can(portal: Portal) -> None:  # noqa: F811
    base = f"/api/v1/tenants/{portal.tenant_a}/recording-settings"
    admin = portal.client("a_admin")
    assert admin.get(base).json()["store_in_portal"] is True
    r = admin.patch(base, json={"store_in_portal": False})
    assert r.status_code == 200 and r.json()["store_in_portal"] is False
    assert admin.patch(base, json={"store_in_portal": "maybe"}).status_code == 422
    # another tenant's admin: that tenant does not exist for them; a user may not
    other = portal.client("b_admin").patch(base, json={"store_in_portal": True})
    assert other.status_code == 404
    assert portal.client("a_user").patch(base, json={"store_in_portal": True}).status_code == 403
    with portal.sessions() as session:
        tenant = session.get(Tenant, portal.tenant_a)
        assert tenant is not None and tenant.store_in_portal is False
        [event] = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "settings.recording",
                AuditEvent.tenant_id == portal.tenant_a,
            )
        ).all()
        assert event.details["store_in_portal"] is False
        assert event.details["old"] == {"store_in_portal": True}


def test_the_settings_page_has_the_manuals_checkbox_in_german(portal: Portal) -> None:  # noqa: F811
    admin = portal.client("a_admin", language="de")
    page = admin.get("/settings/recording").text
    assert 'data-field="store_in_portal" data-inverted >' in page  # unticked: stored
    assert "Aufnahmen nicht im Kundenzugang speichern" in page
    assert "Wenn Sie dies nicht möchten, aktivieren Sie bitte die Checkbox" in page
    admin.patch(
        f"/api/v1/tenants/{portal.tenant_a}/recording-settings", json={"store_in_portal": False}
    )
    page = admin.get("/settings/recording").text
    assert 'data-field="store_in_portal" data-inverted checked>' in page


def test_the_recording_page_says_mailed_and_not_stored_or_why_not_sent(portal: Portal) -> None:  # noqa: F811
    client = portal.client("a_admin", language="en")
    with portal.sessions() as session:
        recording = session.get(Recording, portal.recording_a)
        assert recording is not None
        recording.mail_error = "550 5.1.1 no such user"
        session.commit()
    page = client.get(f"/recordings/{portal.recording_a}").text
    assert '<span class="error">not sent: 550 5.1.1 no such user</span>' in page
    with portal.sessions() as session:
        recording = session.get(Recording, portal.recording_a)
        assert recording is not None and recording.started_at is not None
        recording.mail_error = None
        recording.mailed_at = recording.audio_deleted_at = recording.started_at
        recording.audio_deleted_reason = "mailed"
        session.commit()
    page = client.get(f"/recordings/{portal.recording_a}").text
    assert 'id="mail-state">mailed on ' in page
    assert '<span id="not-stored">not stored in the portal</span>' in page
