"""The FastAPI application: routers, error mapping, OpenAPI."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from callvault.errors import ApiError
from callvault.portal import pages
from callvault.portal.api import (
    account,
    audio,
    audit_log,
    calls,
    operator,
    recording_settings,
    shares,
    teams,
    tenants,
)
from callvault.portal.api import annotations as recording_annotations
from callvault.portal.api import sources as recording_sources
from callvault.portal.context import PortalContext


def _error(
    status: int, error_id: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"id": error_id, "message": message}}, status_code=status, headers=headers
    )


def create_app(context: PortalContext) -> FastAPI:
    app = FastAPI(title="callvault", version="0.1.0", openapi_url="/openapi.json")
    app.state.context = context
    app.include_router(tenants.router)
    app.include_router(calls.router)
    app.include_router(audio.router)
    app.include_router(recording_settings.router)
    app.include_router(account.router)
    app.include_router(teams.router)
    app.include_router(recording_annotations.router)
    app.include_router(shares.router)
    app.include_router(audit_log.router)
    app.include_router(operator.router)
    app.include_router(recording_sources.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # e.g. Retry-After on 429 login-throttled
        headers: dict[str, str] | None = getattr(exc, "headers", None)
        return _error(exc.status, exc.error_id, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            422, "invalid-input", f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        )

    @app.get("/metrics", include_in_schema=False)
    def _metrics() -> PlainTextResponse:
        return PlainTextResponse(context.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz", include_in_schema=False)
    def _health() -> dict[str, str]:
        return {"status": "ok"}

    return app
