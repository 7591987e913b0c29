"""The web role: the portal and API (FastAPI under uvicorn, ``portal/``).

Its hand-offs to the other roles work across processes: a directory change
is seen by every media node through the database (``roles/directory.py``),
an enqueued job by the worker's poll. In one process with the media role the
portal also reloads that role's directory at once, and wakes the worker.

LiveCenter, listening in and coaching need the running calls, which live in
the media role's memory: they work where web and media run in one process.
A web-only process shows LiveCenter with no calls and refuses coaching
(``coaching-not-bridged``); run ``--roles media,web`` on a node for them.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from callvault.b2bua.coaching import CoachStarted
from callvault.live.board import LiveBoard
from callvault.metrics import Metrics
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.roles.http import HttpListener
from callvault.settings import Settings
from callvault.storage.blobs import BlobStore


class WebRole:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        metrics: Metrics,
        *,
        on_directory_change: Callable[[], None],
        on_job_enqueued: Callable[[], None],
        live: LiveBoard | None,
        coach: Callable[[int, str, int], CoachStarted] | None,
        readiness: Callable[[], dict[str, bool]],
    ) -> None:
        self.context = PortalContext(
            sessions,
            blobs,
            on_directory_change=on_directory_change,
            metrics=metrics,
            on_job_enqueued=on_job_enqueued,
            push_allow_http_loopback=settings.push_allow_http_loopback,
            live=live if live is not None else LiveBoard(),
            coach=coach,
            readiness=readiness,
        )
        self.http = HttpListener(
            create_app(self.context, metrics_token=settings.metrics_token),
            host=settings.http_host,
            port=settings.http_port,
        )

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()
