"""An HTTP listener inside our event loop (uvicorn), for the portal or the health routes.

The web role serves the portal here; a process without the web role serves
only the operations routes (``/livez``, ``/readyz``, ``/metrics``:
``portal/operations.py``) on the same ``http_host:http_port``, so every
process can be probed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from callvault.errors import ApiError
from callvault.portal.context import PortalContext
from callvault.portal.operations import add_operations_routes


class _EmbeddedHttp(uvicorn.Server):
    """uvicorn inside our loop; signals are ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpListener:
    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        self.asked_port = port
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self.server = _EmbeddedHttp(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self.server.serve())
        while not self.server.started:
            if self._task.done():  # e.g. the port is taken: say so, not wait forever
                self._task.result()
                raise OSError("the HTTP listener stopped while starting")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """The bound port (the asked one until bound; differs when asked for 0)."""
        if self.server.servers:
            sockets = self.server.servers[0].sockets
            if sockets:
                return int(sockets[0].getsockname()[1])
        return self.asked_port

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def operations_app(context: PortalContext, *, metrics_token: str | None) -> FastAPI:
    """``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` only: no web role here."""
    app = FastAPI(title="callvault", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.context = context  # /metrics reads an operator's token through it
    add_operations_routes(app, context, metrics_token=metrics_token)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # the portal's error body (401 auth-required, 403 role-required for /metrics)
        return JSONResponse(
            {"error": {"id": exc.error_id, "message": str(exc)}}, status_code=exc.status
        )

    return app
