"""Bulk download end to end through the API (SPEC 5, issue 8 section 3): asking for a
month, the job on a fake clock, the mail at a real SMTP server, every ZIP opened and
every MP3 checked against its manifest's SHA-256, expiry, refusals."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from callvault.db.models import AuditEvent, Call, Export, ExportFile, Job, Recording, Tenant
from tests.api.conftest import World, portal_session, seed_recording
from tests.exports.conftest import ExportWorld, bulk_on


def _seed(world: World, user: str, started: datetime, size: int = 4000, **row: Any) -> str:
    """A recording of ``user`` (tenant A) starting at ``started``; its audio: ``size`` bytes."""
    with world.sessions() as session:
        audio = hashlib.sha256(started.isoformat().encode()).digest() * (size // 32 + 1)
        rec_id = seed_recording(
            session, world.blobs, world.tenant_a, world.users[user], audio[:size], 0
        )
        recording = session.get(Recording, rec_id)
        assert recording is not None
        recording.started_at = started
        c = session.get(Call, recording.call_id)
        assert c is not None
        c.started_at = started
        c.answered_at = started + timedelta(seconds=2)
        c.ended_at = started + timedelta(seconds=32)
        c.sip_call_id = f"call-{rec_id}"
        for key, value in row.items():
            setattr(recording, key, value)
        session.commit()
        return rec_id


def _ask(ew: ExportWorld, body: dict[str, Any], who: str = "a_admin") -> Any:
    w = ew.world
    return w.client.post(f"/api/v1/tenants/{w.tenant_a}/exports", json=body, headers=w.auth(who))


def _export(ew: ExportWorld, export_id: str) -> dict[str, Any]:
    w = ew.world
    r = w.client.get(f"/api/v1/tenants/{w.tenant_a}/exports/{export_id}", headers=w.auth("a_admin"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _zips(ew: ExportWorld, export: dict[str, Any]) -> list[zipfile.ZipFile]:
    w = ew.world
    zips = []
    for f in export["files"]:
        r = w.client.get(f["url"], headers=w.auth("a_admin"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        assert hashlib.sha256(r.content).hexdigest() == f["sha256"]
        assert len(r.content) == f["size_bytes"]
        zips.append(zipfile.ZipFile(io.BytesIO(r.content)))
    return zips


def _checked_members(zf: zipfile.ZipFile) -> dict[str, dict[str, Any]]:
    """Every MP3 of the ZIP against both manifests; the JSON entries by recording id."""
    manifest = json.loads(zf.read("manifest.json"))
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8-sig"))))
    assert [r["sha256"] for r in rows] == [e["sha256"] for e in manifest["files"]]
    assert zf.testzip() is None  # every member's CRC
    mp3s = [n for n in zf.namelist() if n.endswith(".mp3")]
    assert sorted(mp3s) == sorted(e["file"] for e in manifest["files"])
    for entry in manifest["files"]:
        assert hashlib.sha256(zf.read(entry["file"])).hexdigest() == entry["sha256"]
    assert manifest["recordings"] == len(mp3s)
    return {e["recording_id"]: e for e in manifest["files"]}


def test_a_month_in_the_tenants_time_zone_as_zip_with_manifest_mailed_link_and_audit(
    ew: ExportWorld,
) -> None:
    w = ew.world
    # Amsterdam: 2026-10-31 23:30 UTC is 1 November 00:30, 2026-11-30 23:30 UTC is 1 December
    first_local = _seed(w, "a_user", datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    december = _seed(w, "a_user", datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    expired = _seed(
        w,
        "a_user",
        datetime(2026, 11, 5, 9, tzinfo=UTC),
        expires_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    deleted = _seed(
        w,
        "a_user",
        datetime(2026, 11, 6, 9, tzinfo=UTC),
        audio_deleted_at=datetime(2026, 11, 7, tzinfo=UTC),
    )
    r = _ask(ew, {"month": "2026-11"})
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    assert r.json()["state"] == "queued" and r.json()["page_url"] == f"/exports/{export_id}"
    assert ew.runner.run_due() >= 2  # build, then the mail
    out = _export(ew, export_id)
    assert out["state"] == "ready" and out["error"] is None
    assert out["progress_done"] == out["progress_total"] == 3
    assert out["mail"] == {"state": "sent", "to": "ada@alpha.example", "reason": None}
    assert out["recordings"] == 3
    got: dict[str, dict[str, Any]] = {}
    for zf in _zips(ew, out):
        got |= _checked_members(zf)
    assert set(got) == {w.recording_a, w.recording_a2, first_local}
    assert december not in got and expired not in got and deleted not in got
    with w.sessions() as session:
        for rec_id, entry in got.items():
            recording = session.get(Recording, rec_id)
            assert recording is not None and entry["sha256"] == recording.sha256
    first = got[first_local]
    assert first["started_at"] == "2026-11-01T00:30:00+01:00"
    assert first["answered_at"] == "2026-11-01T00:30:02+01:00"
    assert first["ended_at"] == "2026-11-01T00:30:32+01:00"
    assert first["user"] == "Anna" and first["direction"] == "inbound"
    assert first["from_number"] == "+31201234567" and first["call_duration_s"] == 30.0
    assert first["file"].startswith("2026-11-01/20261101-003000_inbound_Anna_")
    # the mail: the tenant's language (nl), the page's link, nothing to download without login
    [message] = ew.mail.mailbox.messages
    assert message["To"] == "ada@alpha.example"
    assert "2026-11" in message["Subject"] and "staan klaar" in message["Subject"]
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert f"https://portal.example/exports/{export_id}" in body
    assert "/files/" not in body
    with w.sessions() as session:
        actions = [
            (a.action, a.target, (a.details or {}).get("ordinal"))
            for a in session.scalars(select(AuditEvent).where(AuditEvent.action.like("export.%")))
        ]
    assert actions[0] == ("export.request", f"export:{export_id}", None)
    assert actions[1:] == [
        ("export.download", f"export:{export_id}", f["ordinal"]) for f in out["files"]
    ]


def test_parts_are_split_at_the_configured_size_and_each_carries_its_own_manifest(
    ew: ExportWorld,
) -> None:
    w = ew.world
    ew.runner.services.settings = ew.settings.model_copy(
        update={"export_part_max_bytes": 1_000_000}
    )
    ids = {
        _seed(w, "a_colleague", datetime(2026, 11, 10, 8, n, tzinfo=UTC), 300_000) for n in range(7)
    }
    r = _ask(ew, {"month": "2026-11", "user_ids": [w.users["a_colleague"]]})
    assert r.status_code == 202, r.text
    ew.runner.run_due()
    out = _export(ew, r.json()["id"])
    assert out["state"] == "ready" and len(out["files"]) >= 3
    seen: dict[str, dict[str, Any]] = {}
    for f, zf in zip(out["files"], _zips(ew, out), strict=True):
        assert f["size_bytes"] <= 1_000_000
        members = _checked_members(zf)
        assert len(members) == f["recordings"]
        assert json.loads(zf.read("manifest.json"))["part"] == f["ordinal"]
        seen |= members
    assert set(seen) == ids | {w.recording_a2}  # only Arie's, the seeded one included
    assert all(e["user"] == "Arie" for e in seen.values())


def test_a_recording_whose_audio_differs_from_its_sha256_fails_the_export_and_says_which(
    ew: ExportWorld,
) -> None:
    w = ew.world
    with w.sessions() as session:
        recording = session.get(Recording, w.recording_a2)
        assert recording is not None
        w.blobs.put(recording.blob_key, b"tampered" * 100)
    r = _ask(ew, {"month": "2026-11"})
    ew.runner.run_due()
    out = _export(ew, r.json()["id"])
    assert out["state"] == "failed" and out["files"] == [] and out["mail"] is None
    assert w.recording_a2 in out["error"] and "SHA-256" in out["error"]
    with w.sessions() as session:
        assert session.scalars(select(ExportFile)).all() == []
    assert not list((ew.settings.data_dir / "tmp").glob("*"))  # no temp file left
    assert not any(w.blobs.root.rglob("*.zip"))


def test_a_mail_server_that_is_down_delays_only_the_mail_and_never_rebuilds_the_zips(
    ew: ExportWorld,
) -> None:
    w = ew.world
    ew.mail.stop()
    r = _ask(ew, {"month": "2026-11"})
    export_id = r.json()["id"]
    ew.runner.run_due()
    out = _export(ew, export_id)
    assert out["state"] == "ready" and out["mail"]["state"] == "retrying"
    files_before = [(f["ordinal"], f["sha256"]) for f in out["files"]]
    page = portal_session(w, "a_admin").get(f"/exports/{export_id}")
    assert page.status_code == 200 and 'data-mail="retrying"' in page.text
    ew.mail.start()
    ew.clock.advance(minutes=5)
    ew.runner.run_due()
    out = _export(ew, export_id)
    assert out["mail"]["state"] == "sent"
    assert [(f["ordinal"], f["sha256"]) for f in out["files"]] == files_before
    with w.sessions() as session:
        build = session.scalar(select(Job).where(Job.key == f"exports.build:{export_id}"))
        assert build is not None and (build.state, build.attempts) == ("done", 1)
    assert len(ew.mail.mailbox.messages) == 1


def test_without_any_address_the_page_shows_the_export_and_says_no_mail_was_sent(
    ew: ExportWorld,
) -> None:
    w = ew.world
    bulk_on(w, w.tenant_a, admin_email=None)
    r = _ask(ew, {"month": "2026-11"})
    ew.runner.run_due()
    out = _export(ew, r.json()["id"])
    assert out["state"] == "ready"
    assert out["mail"] == {"state": "not-sent", "to": None, "reason": "no-address"}
    page = portal_session(w, "a_admin").get(f"/exports/{r.json()['id']}")
    assert "Er is geen e-mail verstuurd" in page.text and 'data-download="1"' in page.text
    assert ew.mail.mailbox.messages == []
    # the tenant's delivery address is the fallback
    with w.sessions() as session:
        tenant = session.get(Tenant, w.tenant_a)
        assert tenant is not None
        tenant.delivery_email = "records@alpha.example"
        session.commit()
    r = _ask(ew, {"month": "2026-10"})
    ew.runner.run_due()
    assert _export(ew, r.json()["id"])["mail"]["to"] == "records@alpha.example"


def test_an_empty_month_gives_a_zip_whose_manifest_says_so(ew: ExportWorld) -> None:
    r = _ask(ew, {"month": "2026-06"})
    assert r.status_code == 202, r.text
    ew.runner.run_due()
    out = _export(ew, r.json()["id"])
    assert out["state"] == "ready" and out["recordings"] == 0 and len(out["files"]) == 1
    [zf] = _zips(ew, out)
    assert sorted(zf.namelist()) == ["manifest.csv", "manifest.json"]
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["recordings"] == 0 and manifest["files"] == [] and "note" in manifest


def test_the_link_expires_then_answers_410_and_the_daily_job_deletes_the_files(
    ew: ExportWorld,
) -> None:
    w = ew.world
    r = _ask(ew, {"month": "2026-11"})
    export_id = r.json()["id"]
    ew.runner.run_due()
    out = _export(ew, export_id)
    url = out["files"][0]["url"]
    partial = w.client.get(url, headers={**w.auth("a_admin"), "Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100
    assert partial.headers["content-range"].startswith("bytes 0-99/")
    with w.sessions() as session:
        keys = [f.blob_key for f in session.scalars(select(ExportFile))]
    ew.clock.advance(days=ew.settings.export_keep_days, seconds=1)
    gone = w.client.get(url, headers=w.auth("a_admin"))
    assert gone.status_code == 410 and gone.json()["error"]["id"] == "export-expired"
    assert (w.blobs.root / keys[0]).exists()  # the daily job has not run yet
    ew.runner.run_due()  # the day's exports.expire
    with w.sessions() as session:
        export = session.get(Export, export_id)
        assert export is not None and export.state == "expired"
    assert not any((w.blobs.root / k).exists() for k in keys)
    assert _export(ew, export_id)["state"] == "expired"
    page = portal_session(w, "a_admin").get(f"/exports/{export_id}")
    assert page.status_code == 410 and 'id="export-expired"' in page.text


def test_refusals_are_precise_and_never_reveal_another_tenant(ew: ExportWorld) -> None:
    w = ew.world

    def error(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["id"]

    assert error(_ask(ew, {"month": "2026-13"})) == (422, "export-month-invalid")
    assert error(_ask(ew, {"month": "nov 2026"})) == (422, "export-month-invalid")
    # 2 December 2026 09:00 UTC: December has begun, January not
    assert error(_ask(ew, {"month": "2027-01"})) == (422, "export-month-future")
    assert _ask(ew, {"month": "2026-12"}).status_code == 202
    foreign = _ask(ew, {"month": "2026-11", "user_ids": [w.users["b_user"]]})
    unknown = _ask(ew, {"month": "2026-11", "user_ids": [999_999]})
    assert error(foreign) == error(unknown) == (422, "export-users-unknown")
    assert foreign.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert _ask(ew, {"month": "2026-11"}, who="a_listener").status_code == 403
    assert _ask(ew, {"month": "2026-11"}, who="a_user").status_code == 403
    assert _ask(ew, {"month": "2026-11"}, who="operator").status_code == 403
    assert _ask(ew, {"month": "2026-11"}, who="b_admin").status_code == 404
    # B's admin on B's own path: bulk download is off there
    r = w.client.post(
        f"/api/v1/tenants/{w.tenant_b}/exports",
        json={"month": "2026-11"},
        headers=w.auth("b_admin"),
    )
    assert error(r) == (422, "export-bulk-off")
    # A's export through B's path, and B's admin on A's export page: 404
    mine = _ask(ew, {"month": "2026-11"}).json()["id"]
    ew.runner.run_due()
    r = w.client.get(f"/api/v1/tenants/{w.tenant_b}/exports/{mine}", headers=w.auth("b_admin"))
    assert error(r) == (404, "export-not-found")
    r = w.client.get(
        f"/api/v1/tenants/{w.tenant_b}/exports/{mine}/files/1", headers=w.auth("b_admin")
    )
    assert error(r) == (404, "export-not-found")
    assert portal_session(w, "b_admin").get(f"/exports/{mine}").status_code == 404
    assert portal_session(w, "a_user").get(f"/exports/{mine}").status_code == 403
    anonymous = w.client.get(f"/exports/{mine}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    with w.sessions() as session:
        requests = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "export.request")
        ).all()
        assert len(requests) == 2  # refusals leave no export and no audit row
        assert len(session.scalars(select(Export)).all()) == 2


def test_the_reports_page_shows_the_button_only_to_admins_with_bulk_download_on(
    ew: ExportWorld,
) -> None:
    w = ew.world
    admin = portal_session(w, "a_admin").get("/reports/calls")
    assert 'id="bulk-download"' in admin.text
    assert 'id="bulk-download"' not in portal_session(w, "a_listener").get("/reports/calls").text
    assert 'id="bulk-download"' not in portal_session(w, "b_admin").get("/reports/calls").text
