"""Jobs' progress in the API, on the portal's jobs page and in /metrics: a tenant
sees its own jobs only (a foreign id is 404), the operator sees every job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from callvault.db.models import Job
from callvault.jobs import queue
from callvault.jobs.registry import HANDLERS, JobContext, JobFailed, JobServices, handler
from callvault.jobs.runner import JobRunner
from callvault.settings import load_settings
from tests.api.conftest import World, portal_session

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _seed(world: World) -> dict[str, int]:
    """Three jobs of tenant A, one of B, one of nobody (the hourly clean-up)."""
    with world.sessions() as session:
        ids = {
            "a_export": queue.enqueue(
                session, "exports.build", {"month": "2026-11"}, at=AT, tenant_id=world.tenant_a
            ).id,
            "a_mail": queue.enqueue(
                session, "recording.mail", at=AT + timedelta(minutes=1), tenant_id=world.tenant_a
            ).id,
            "a_mail2": queue.enqueue(
                session, "recording.mail", at=AT + timedelta(minutes=2), tenant_id=world.tenant_a
            ).id,
            "b_export": queue.enqueue(session, "exports.build", at=AT, tenant_id=world.tenant_b).id,
            "cleanup": queue.enqueue(session, "sessions.cleanup", at=AT).id,
        }
        session.commit()
    return ids


def _get(world: World, who: str, path: str, **params: Any) -> Any:
    return world.client.get(f"/api/v1{path}", headers=world.auth(who), params=params)


def test_a_tenant_admin_sees_the_tenants_jobs_newest_first_paged(world: World) -> None:
    ids = _seed(world)
    a = f"/tenants/{world.tenant_a}/jobs"
    first = _get(world, "a_admin", a, limit=2)
    assert first.status_code == 200
    body = first.json()
    assert [j["id"] for j in body["items"]] == [ids["a_mail2"], ids["a_mail"]]
    rest = _get(world, "a_admin", a, limit=2, cursor=body["next_cursor"]).json()
    assert [j["id"] for j in rest["items"]] == [ids["a_export"]] and rest["next_cursor"] is None
    export = rest["items"][0]
    assert export == {
        "id": ids["a_export"],
        "kind": "exports.build",
        "tenant_id": world.tenant_a,
        "state": "queued",
        "attempts": 0,
        "max_attempts": 8,
        "progress": {"done": 0, "total": None},
        "message": None,
        "created_at": "2026-12-01T09:00:00+00:00",
        "created_by": None,
        "run_after": "2026-12-01T09:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "result": {},
    }
    only_mail = _get(world, "a_admin", a, kind="recording.mail").json()["items"]
    assert {j["id"] for j in only_mail} == {ids["a_mail"], ids["a_mail2"]}
    assert _get(world, "a_admin", a, state="failed").json()["items"] == []
    one = _get(world, "a_admin", f"{a}/{ids['a_export']}")
    assert one.status_code == 200 and one.json() == export
    # the operator reads the tenant's list the same way
    assert _get(world, "operator", a).json()["items"] == _get(world, "a_admin", a).json()["items"]


def test_foreign_jobs_and_tenants_are_404_and_other_roles_403(world: World) -> None:
    ids = _seed(world)
    a, b = f"/tenants/{world.tenant_a}/jobs", f"/tenants/{world.tenant_b}/jobs"
    for path in (f"{a}/{ids['b_export']}", f"{a}/{ids['cleanup']}", f"{a}/999999"):
        r = _get(world, "a_admin", path)
        assert (r.status_code, r.json()["error"]["id"]) == (404, "job-not-found"), path
    r = _get(world, "a_admin", b)
    assert (r.status_code, r.json()["error"]["id"]) == (404, "tenant-not-found")
    assert _get(world, "a_admin", f"{b}/{ids['b_export']}").status_code == 404
    for who in ("a_user", "a_listener"):
        assert _get(world, who, a).status_code == 403
    assert _get(world, "a_admin", "/jobs").status_code == 403
    assert _get(world, "a_admin", f"/jobs/{ids['a_export']}").status_code == 403
    bad = _get(world, "a_admin", a, cursor="x1")
    assert (bad.status_code, bad.json()["error"]["id"]) == (422, "bad-cursor")
    assert _get(world, "a_admin", a, state="bogus").status_code == 422
    assert _get(world, "a_admin", a, limit=201).status_code == 422


def test_the_operator_sees_every_job_and_filters_them(world: World) -> None:
    ids = _seed(world)
    everything = _get(world, "operator", "/jobs").json()["items"]
    assert sorted(j["id"] for j in everything) == sorted(ids.values())
    exports = _get(world, "operator", "/jobs", kind="exports.build").json()["items"]
    assert {j["id"] for j in exports} == {ids["a_export"], ids["b_export"]}
    of_b = _get(world, "operator", "/jobs", tenant_id=world.tenant_b).json()["items"]
    assert [j["id"] for j in of_b] == [ids["b_export"]]
    cleanup = _get(world, "operator", f"/jobs/{ids['cleanup']}")
    assert cleanup.status_code == 200 and cleanup.json()["tenant_id"] is None
    assert _get(world, "operator", "/jobs/999999").status_code == 404


def test_progress_failures_and_results_show_as_the_runner_goes(world: World) -> None:
    now = [AT]
    services = JobServices(world.sessions, world.blobs, load_settings(), clock=lambda: now[0])

    @handler("test.report")
    def report(ctx: JobContext) -> dict[str, Any]:
        ctx.progress(2, 5, "2 of 5 files")
        if ctx.payload.get("fail"):
            raise JobFailed("the month is empty")
        return {"files": 5, "bytes": 1234, "ids": ["r1", "r2"], "note": "x" * 500}

    try:
        with world.sessions() as session:
            good = queue.enqueue(session, "test.report", at=AT, tenant_id=world.tenant_a).id
            bad = queue.enqueue(
                session, "test.report", {"fail": True}, at=AT, tenant_id=world.tenant_a
            ).id
            session.commit()
        now[0] = AT + timedelta(minutes=1)
        assert JobRunner(services).run_due() == 2
    finally:
        HANDLERS.pop("test.report", None)
    path = f"/tenants/{world.tenant_a}/jobs"
    done = _get(world, "a_admin", f"{path}/{good}").json()
    assert (done["state"], done["progress"], done["message"], done["attempts"]) == (
        "done",
        {"done": 2, "total": 5},
        "2 of 5 files",
        1,
    )
    assert done["result"] == {"files": 5, "bytes": 1234, "ids": 2, "note": "x" * 200}
    assert done["started_at"] == done["finished_at"] == "2026-12-01T09:01:00+00:00"
    failed = _get(world, "a_admin", f"{path}/{bad}").json()
    assert (failed["state"], failed["message"], failed["result"]) == (
        "failed",
        "the month is empty",
        {},
    )


def test_the_jobs_page_lists_the_tenants_jobs_in_the_users_language(world: World) -> None:
    ids = _seed(world)
    with world.sessions() as session:
        job = session.get(Job, ids["a_export"])
        assert job is not None
        job.state, job.progress_done, job.progress_total = "running", 3, 7
        job.message = "3 of 7 recordings"
        session.commit()
    admin = portal_session(world, "a_admin")
    page = admin.get("/jobs")
    assert page.status_code == 200
    html = page.text
    assert f'data-job="{ids["a_export"]}" data-state="running"' in html
    assert '<progress value="3" max="7"></progress>' in html and "3 of 7 recordings" in html
    assert "Achtergrondtaken" in html and "Bezig" in html  # Dutch, the default
    assert f'data-job="{ids["b_export"]}"' not in html and "sessions.cleanup" not in html
    assert 'href="/jobs"' in html  # in the menu
    assert f'data-job="{ids["a_mail"]}"' not in admin.get("/jobs?state=running").text
    assert admin.get("/jobs?state=nonsense&cursor=abc").status_code == 200

    operator = portal_session(world, "operator").get("/jobs").text
    assert all(f'data-job="{i}"' in operator for i in ids.values())
    assert portal_session(world, "a_user").get("/jobs").status_code == 403


def test_metrics_count_jobs_by_state(world: World) -> None:
    ids = _seed(world)
    with world.sessions() as session:
        job = session.get(Job, ids["b_export"])
        assert job is not None
        job.state = "failed"
        session.commit()
    text = world.client.get("/metrics", headers=world.auth("operator")).text
    assert "# TYPE callvault_jobs gauge" in text
    assert 'callvault_jobs{state="queued"} 4' in text
    assert 'callvault_jobs{state="running"} 0' in text
    assert 'callvault_jobs{state="failed"} 1' in text
