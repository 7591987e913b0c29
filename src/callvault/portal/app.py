"""The FastAPI application: routers, error mapping, OpenAPI, the edge's security rules.

``SecurityHeaders`` wraps every answer (pages, API, static files, errors):
a Content-Security-Policy allowing this origin only and no framing,
``nosniff``, ``Referrer-Policy``, and HSTS when the request came over HTTPS.
It also answers 415 to any multipart body before a route or the CSRF check
could try to parse one (no route takes multipart; parsing it needs a library
we do not ship, which used to end in a 500).

``/metrics``, ``/livez``, ``/readyz`` and ``/healthz`` are ``operations.py``'s
(``/metrics`` needs ``Authorization: Bearer`` with the ``metrics_token``
setting or an operator's API token). ``/docs`` and ``/redoc`` need a login
(their Swagger/ReDoc assets come from cdn.jsdelivr.net, so these two pages
get a CSP of their own). ``/openapi.json`` stays public: it describes the
routes of this open-source server, which anyone can read in its source, holds
no data, and API clients and tools fetch it before they have a token.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callvault.errors import ApiError, ErrorId
from callvault.portal import pages
from callvault.portal.announcements import http as announcements
from callvault.portal.api import (
    account,
    audio,
    audit_log,
    call_routes,
    operator,
    recording_settings,
    shares,
    teams,
    tenants,
    tokens,
    usage,
    users_csv,
)
from callvault.portal.api import annotations as recording_annotations
from callvault.portal.api import sources as recording_sources
from callvault.portal.auth import SAFE_METHODS, optional_principal
from callvault.portal.context import PortalContext
from callvault.portal.exports import http as exports
from callvault.portal.exports import pages as exports_page
from callvault.portal.jobs import http as background_jobs
from callvault.portal.jobs import pages as jobs_page
from callvault.portal.live import coach_http as live_coach
from callvault.portal.live import http as livecenter
from callvault.portal.live import listen_ws as live_listen
from callvault.portal.live import pages as livecenter_page
from callvault.portal.nul_text import RefuseNulText
from callvault.portal.operations import add_operations_routes
from callvault.portal.pages.render import login_redirect
from callvault.portal.playback import http as playback_answers
from callvault.portal.playback import pages as playback_pages
from callvault.portal.push import http as push_devices
from callvault.portal.reports import http as calls_report
from callvault.portal.retention import holds as legal_holds
from callvault.portal.retention import plans as retention_plans
from callvault.portal.retention import receipts as deletion_receipts
from callvault.portal.retention import termination as tenant_termination
from callvault.portal.retention import termination_pages

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc: FastAPI's pages load their bundles from jsDelivr and start them
# with an inline script; only these two pages (behind a login) get this policy.
_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {_CDN}; "
    f"style-src 'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    f"{_CDN}; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})
HSTS = "max-age=31536000; includeSubDomains"


def _error(
    error_id: ErrorId,
    message: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"id": error_id, "message": message}},
        status_code=error_id.status if status is None else status,
        headers=headers,
    )


class SecurityHeaders:
    """ASGI middleware: security headers on every answer, 415 for multipart bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        https = scope.get("scheme") == "https"
        content_type = Headers(scope=scope).get("content-type", "")
        if scope["method"] not in SAFE_METHODS and content_type.lower().lstrip().startswith(
            "multipart/"
        ):
            refusal = _error(
                ErrorId.UNSUPPORTED_MEDIA_TYPE, "multipart bodies are not accepted; send JSON"
            )
            await self._send_with_headers(refusal, scope, receive, send, path, https)
            return
        await self._send_with_headers(self.app, scope, receive, send, path, https)

    @staticmethod
    async def _send_with_headers(
        app: ASGIApp, scope: Scope, receive: Receive, send: Send, path: str, https: bool
    ) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault(
                    "Content-Security-Policy", DOCS_CSP if path in DOCS_PATHS else CSP
                )
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await app(scope, receive, with_headers)


def create_app(context: PortalContext, *, metrics_token: str | None = None) -> FastAPI:
    app = FastAPI(
        title="callvault",
        version="0.1.0",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    # signs play links (``audio``); per process, so links die with a restart (they last minutes)
    app.state.play_key = secrets.token_bytes(32)
    app.add_middleware(RefuseNulText)  # PostgreSQL's text holds no NUL: 422 on both engines
    app.add_middleware(SecurityHeaders)
    app.include_router(tenants.router)
    app.include_router(calls_report.router)
    app.include_router(audio.router)
    app.include_router(recording_settings.router)
    app.include_router(account.router)
    app.include_router(tokens.router)
    app.include_router(teams.router)
    app.include_router(recording_annotations.router)
    app.include_router(shares.router)
    app.include_router(audit_log.router)
    app.include_router(operator.router)
    app.include_router(usage.router)
    app.include_router(recording_sources.router)
    app.include_router(call_routes.router)
    app.include_router(users_csv.router)
    app.include_router(retention_plans.router)
    app.include_router(legal_holds.router)
    app.include_router(exports.router)
    app.include_router(deletion_receipts.router)
    app.include_router(tenant_termination.router)
    app.include_router(background_jobs.router)
    app.include_router(jobs_page.router)
    app.include_router(exports_page.router)
    app.include_router(termination_pages.router)
    app.include_router(playback_pages.router)
    app.include_router(push_devices.router)
    app.include_router(playback_answers.router)
    app.include_router(announcements.router)
    app.include_router(livecenter.router)
    app.include_router(live_coach.router)
    app.include_router(livecenter_page.router)
    app.include_router(live_listen.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # e.g. Retry-After on 429 login-throttled
        headers: dict[str, str] | None = getattr(exc, "headers", None)
        return _error(exc.error_id, str(exc), status=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            ErrorId.INVALID_INPUT,
            f"{where}: {first.get('msg')}" if where else str(first.get("msg")),
        )

    @app.get("/docs", include_in_schema=False)
    def _docs(request: Request) -> Response:
        if optional_principal(request) is None:
            return login_redirect(request)
        return _no_store(get_swagger_ui_html(openapi_url="/openapi.json", title="callvault API"))

    @app.get("/redoc", include_in_schema=False)
    def _redoc(request: Request) -> Response:
        if optional_principal(request) is None:
            return login_redirect(request)
        return _no_store(get_redoc_html(openapi_url="/openapi.json", title="callvault API"))

    add_operations_routes(app, context, metrics_token=metrics_token)

    return app


def _no_store(page: HTMLResponse) -> HTMLResponse:
    page.headers["Cache-Control"] = "no-store"
    return page
