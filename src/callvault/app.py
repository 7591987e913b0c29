"""The composition root: the roles this process runs, built from typed settings.

``callvault serve`` runs all three roles in one process (the default); with
``roles`` (``CALLVAULT_ROLES=media,worker``, ``callvault serve --roles
media,worker``) a process runs only some, and several processes on one or
more machines share the database (see ``roles/`` and docs/deploy.md). Every
part is built complete by its role (``roles/media.py``, ``roles/web.py``,
``roles/worker.py``); this module only says which roles run and connects the
in-process short cuts between them (a directory change reloads this
process's media role at once, an enqueued job wakes this process's worker),
which across processes the database carries instead.

A process without the web role still listens on ``http_host:http_port``
for ``/livez``, ``/readyz`` and ``/metrics`` (``roles/http.py``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Operator
from callvault.gc_policy import tune_after_startup
from callvault.logs import configure_logging
from callvault.metrics import Metrics
from callvault.portal.context import PortalContext
from callvault.roles.http import HttpListener, operations_app
from callvault.roles.media import MediaRole
from callvault.roles.web import WebRole
from callvault.roles.worker import WorkerRole
from callvault.settings import ALL_ROLES, Settings
from callvault.storage.factory import make_blob_store, start_drain

log = logging.getLogger(__name__)

# pg_advisory_lock key: nodes starting together migrate one after the other
_MIGRATION_LOCK = 0x63766D67  # "cvmg"


def migrate_once(url: str) -> None:
    """Bring the schema up to date; on PostgreSQL under an advisory lock, since several
    nodes of a cluster may start at once and Alembic's steps must not run twice."""
    if make_url(url).get_backend_name() != "postgresql":
        migrate(url)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                migrate(url)
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
    finally:
        engine.dispose()


class Application:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.roles = settings.roles
        self.metrics = Metrics(live=self._live_metrics)
        self.media_role: MediaRole | None = None
        self.web_role: WebRole | None = None
        self.worker_role: WorkerRole | None = None
        self.health: HttpListener | None = None  # without the web role: /livez, /readyz

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(migrate_once, settings.db_url)
        self.engine = make_engine(settings.db_url)
        self.sessions = make_sessionmaker(self.engine)
        # blob_store: local directory or S3 bucket (behind this node's outbox, drained here)
        self.blobs = make_blob_store(settings, self.metrics)
        self._stop_drain = start_drain(self.blobs)
        if "worker" in self.roles:
            self.worker_role = WorkerRole(
                settings, self.sessions, self.blobs, on_directory_change=self._directory_changed
            )
        if "media" in self.roles:
            self.media_role = MediaRole(
                settings, self.sessions, self.blobs, self.metrics, on_stored=self._job_enqueued
            )
            await self.media_role.start()
        if self.worker_role is not None:
            await self.worker_role.start()
        if "web" in self.roles:
            media = self.media_role
            self.web_role = WebRole(
                settings,
                self.sessions,
                self.blobs,
                self.metrics,
                on_directory_change=self._directory_changed,
                on_job_enqueued=self._job_enqueued,
                live=media.live if media else None,
                coach=media.b2bua.coaching.call_supervisor if media else None,
                readiness=self.readiness,
            )
            await self.web_role.start()
        else:
            context = PortalContext(
                self.sessions, self.blobs, metrics=self.metrics, readiness=self.readiness
            )
            self.health = HttpListener(
                operations_app(context, metrics_token=settings.metrics_token),
                host=settings.http_host,
                port=settings.http_port,
            )
            await self.health.start()
        log.info("%s", self.startup_line())

    # -- the roles' parts, for tests and the demo (each only where its role runs) ------
    @property
    def media(self) -> MediaRole:
        if self.media_role is None:
            raise RuntimeError("this process runs no media role")
        return self.media_role

    @property
    def worker(self) -> WorkerRole:
        if self.worker_role is None:
            raise RuntimeError("this process runs no worker role")
        return self.worker_role

    @property
    def calls(self) -> Any:
        return self.media.calls

    @property
    def live(self) -> Any:
        return self.media.live

    @property
    def endpoint(self) -> Any:
        return self.media.endpoint

    @property
    def finisher(self) -> Any:
        return self.media.finisher

    @property
    def siprec(self) -> Any:
        return self.media.siprec

    @property
    def b2bua(self) -> Any:
        return self.media.b2bua

    @property
    def sip_port(self) -> int:
        return self.media.sip_port

    @property
    def jobs(self) -> Any:
        return self.worker.jobs

    def reload_directory(self) -> None:
        self.media.reload_directory()

    @property
    def http_port(self) -> int:
        """The bound HTTP port: the portal's, or the health listener's without the web role."""
        listener = self.web_role.http if self.web_role else self.health
        return listener.port if listener else self.settings.http_port

    def readiness(self) -> dict[str, bool]:
        """This process's parts for ``/readyz`` (the database is checked there)."""
        checks: dict[str, bool] = {}
        if self.media_role is not None:
            checks.update(self.media_role.readiness())
        if self.worker_role is not None:
            checks.update(self.worker_role.readiness())
        return checks

    def startup_line(self) -> str:
        """The one line that says where callvault listens (the bound ports, not the asked)."""
        settings = self.settings
        parts = []
        if self.media_role is not None:
            endpoint, port = self.media_role.endpoint, self.media_role.sip_port
            sip = [f"udp {settings.sip_host}:{port}"]
            if endpoint.tcp_port:
                sip.append(f"tcp {settings.sip_host}:{endpoint.tcp_port}")
            if endpoint.tls_port:
                sip.append(f"tls {settings.sip_host}:{endpoint.tls_port}")
            parts.append(
                f"SIP {', '.join(sip)}; RTP {settings.media_address}"
                f" ports {settings.rtp_port_min}-{settings.rtp_port_max}"
            )
        http = f"http://{settings.http_host}:{self.http_port}"
        parts.append(f"HTTP {http}" if self.web_role else f"health {http}")
        if self.roles == ALL_ROLES:
            return f"callvault serving: {'; '.join(parts)}"
        roles = ", ".join(sorted(self.roles))
        return f"callvault serving ({roles}): {'; '.join(parts)}"

    # -- in-process short cuts between roles -------------------------------------------
    def _directory_changed(self) -> None:
        """A change through this process: its media role reloads now (others by version)."""
        if self.media_role is not None:
            self.media_role.reload_directory()

    def _job_enqueued(self) -> None:
        """A job was enqueued here: this process's worker looks now (others poll)."""
        if self.worker_role is not None:
            self.worker_role.jobs.wake()

    def _live_metrics(self) -> dict[str, int]:
        return self.media_role.live_stats() if self.media_role is not None else {}

    async def stop(self) -> None:
        if self.media_role is not None:
            await self.media_role.stop()
        if self.web_role is not None:
            await self.web_role.stop()
        if self.health is not None:
            await self.health.stop()
        if self.worker_role is not None:
            await self.worker_role.stop()
        self._stop_drain()
        self.engine.dispose()


# asks a person at the terminal for the operator's login and password
AskOperator = Callable[[], tuple[str, str]]


def first_run_operator(
    sessions: sessionmaker[Session], ask: AskOperator | None = None
) -> str | None:
    """On a database without an operator: create it, with a portal login and an API token.

    Returns the one line to show (the password and token appear nowhere else),
    or None when an operator exists, so later starts say nothing about it.
    Without ``ask`` the login is ``operator`` with a random password; with it
    (a terminal) the person's answers.
    """
    from callvault.admin import bootstrap_operator

    with sessions() as session:
        if session.scalar(select(Operator.id).limit(1)) is not None:
            return None
        if ask is None:
            login, password = "operator", secrets.token_urlsafe(12)
        else:
            login, password = ask()
        operator, token = bootstrap_operator(session, login=login, password=password)
    if token is None:  # another process created it first
        return None
    shown = "the password you chose" if ask else f"password {password}"
    return (
        f"first start: operator created; portal login {operator.login}, {shown},"
        f" API token {token} (shown once only; change the password under Account)"
    )


def run_server(settings: Settings, ask: AskOperator | None = None) -> None:
    import uvloop

    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate_once(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        first = first_run_operator(make_sessionmaker(engine), ask)
    finally:
        engine.dispose()
    if first:
        print(first, flush=True)

    async def main() -> None:
        app = Application(settings)
        await app.start()
        tune_after_startup()  # start-up's heap frozen, a larger young generation
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: finishing active calls")
        await app.stop()

    uvloop.run(main())
