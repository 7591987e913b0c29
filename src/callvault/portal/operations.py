"""Operations' routes: ``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` (issue 13).

Every process has them, whatever its roles: the portal adds them to its app,
and a process without the web role serves them alone (``roles/health.py``)
on ``http_host:http_port``.

- ``/livez``: the process answers (200, nothing checked): restart it if not.
- ``/readyz``: the database answers and the process's parts are started (SIP
  bound for media, the job runner running for worker): 200, else 503 with the
  checks that failed, so a balancer sends it nothing yet.
- ``/healthz``: the old name of ``/livez``, kept for existing probes.
- ``/metrics`` needs ``Authorization: Bearer`` with the ``metrics_token``
  setting or an operator's API token (metrics are internal: SPEC, trust issue).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from callvault.errors import ErrorId, Forbidden, Unauthorized
from callvault.jobs.queue import state_counts
from callvault.portal.auth import optional_principal
from callvault.portal.context import PortalContext

# name -> passed; the process is ready when every check passed
Readiness = Callable[[], dict[str, bool]]


def database_reachable(context: PortalContext) -> bool:
    try:
        with context.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def add_operations_routes(
    app: FastAPI, context: PortalContext, *, metrics_token: str | None
) -> None:
    @app.get("/metrics", include_in_schema=False)
    def _metrics(request: Request) -> PlainTextResponse:
        _authorise_metrics(request, metrics_token)
        return PlainTextResponse(
            context.metrics.render(jobs=_job_counts(context)),
            media_type="text/plain; version=0.0.4",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/healthz", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/livez", include_in_schema=False)
    def _live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def _ready() -> JSONResponse:  # a def: the checks query the database
        checks = {"database": database_reachable(context)}
        if context.readiness is not None:
            checks.update(context.readiness())
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )


def _authorise_metrics(request: Request, metrics_token: str | None) -> None:
    """A configured metrics token or an operator's credentials; 401/403 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if (
        metrics_token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), metrics_token.encode())
    ):
        return
    principal = optional_principal(request)
    if principal is None:
        raise Unauthorized("metrics need a bearer token", error_id=ErrorId.AUTH_REQUIRED)
    if not principal.is_operator:
        raise Forbidden("metrics are for the operator", error_id=ErrorId.ROLE_REQUIRED)


def _job_counts(context: PortalContext) -> dict[str, int] | None:
    """Jobs per state for ``/metrics`` (one GROUP BY); None while the database is away."""
    try:
        with context.sessions() as session:
            return state_counts(session)
    except SQLAlchemyError:
        return None
