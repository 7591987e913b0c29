"""The composition root: one process running SIP, RTP, HTTP and the finisher.

Everything is wired here and nowhere else; the parts only know the small
context objects they are handed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
from collections.abc import Callable, Coroutine, Generator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callvault.announcements.library import Kind, PromptLibrary
from callvault.announcements.tones import user_stop_tone, user_tone
from callvault.b2bua.call import BridgeContext
from callvault.b2bua.routes import RouteTable
from callvault.b2bua.server import B2buaServer
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Operator
from callvault.jobs.kinds import SCHEDULES, load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.live.board import LiveBoard
from callvault.logs import configure_logging
from callvault.media.ports import RtpPortPool
from callvault.metrics import Metrics
from callvault.portal.app import create_app
from callvault.portal.audit import record
from callvault.portal.context import PortalContext
from callvault.recording.pipeline import Finisher
from callvault.settings import Settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.transport import server_ssl_context, stream_limits
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.server import SiprecServer
from callvault.sources.registry import SourceRegistry
from callvault.storage.factory import make_blob_store
from callvault.tenants.directory import Directory

log = logging.getLogger(__name__)


class _EmbeddedHttp(uvicorn.Server):
    """uvicorn inside our loop; signals are ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Application:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = Directory()
        self.sources = SourceRegistry()
        self.routes = RouteTable()
        self._tasks: set[asyncio.Task[None]] = set()
        self.http: _EmbeddedHttp | None = None
        self.metrics = Metrics(live=self._live_metrics)

    # -- parts ------------------------------------------------------------------
    def reload_directory(self) -> None:
        """Who is who: tenants and users, the registered recording sources, call routes."""
        with self.sessions() as session:
            self.directory = Directory.load(session)
            self.sources = SourceRegistry.load(session)
            self.routes = RouteTable.load(session)

    async def start(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(migrate, settings.db_url)
        self.engine = make_engine(settings.db_url)
        self.sessions = make_sessionmaker(self.engine)
        self.blobs = make_blob_store(settings)  # blob_store: local directory or S3 bucket
        await asyncio.to_thread(self.reload_directory)
        load_handlers()
        self.jobs = JobRunner(
            JobServices(
                self.sessions,
                self.blobs,
                settings,
                clock=lambda: datetime.now(UTC),
                on_directory_change=self.reload_directory,
            ),
            schedules=SCHEDULES,
        )
        self.finisher = Finisher(
            settings.spool_dir,
            self.sessions,
            self.blobs,
            workers=settings.finish_workers,
            metrics=self.metrics,
            on_stored=self.jobs.wake,
        )
        self.finisher.recover(active=set())
        self.live = LiveBoard()  # LiveCenter: told of every change of a running call
        self.calls = CallContext(
            loop=loop,
            spool_root=settings.spool_dir,
            media_address=settings.media_address,
            ports=RtpPortPool(settings.rtp_port_min, settings.rtp_port_max),
            directory=lambda: self.directory,
            on_ended=self._call_ended,
            on_changed=self.live.changed,
            sources=lambda: self.sources,
        )
        self.siprec = SiprecServer(
            self.calls,
            contact_host=settings.media_address,
            contact_port=settings.sip_port,
            metrics=self.metrics,
        )
        self.siprec.session_expires_s = settings.session_expires_s
        self.endpoint = SipEndpoint(
            self._sip_request, user_agent="callvault", stream_limits=stream_limits(settings)
        )
        self.siprec.endpoint = self.endpoint
        self.prompts = PromptLibrary(self.blobs)
        self.b2bua = B2buaServer(
            BridgeContext(
                calls=self.calls,
                endpoint=self.endpoint,
                contact=f"<sip:callvault@{settings.media_address}:{settings.sip_port}>",
                routes=lambda: self.routes,
                prompt=self._prompt,
                user_tone=lambda kind: user_tone() if kind == "start" else user_stop_tone(),
                on_closed=lambda call: self.b2bua.closed(call),
                on_legs_changed=lambda call: self.b2bua.legs_changed(call),
                on_challenged=lambda call, leg: self.b2bua.challenged_leg(call, leg),
                audit=self._audit,
                live=self.live,
            ),
            metrics=self.metrics,
        )
        self.endpoint.screen = self.siprec.screen
        tls = server_ssl_context(settings)  # None unless a certificate and key are set
        await self.endpoint.listen(
            settings.sip_host,
            settings.sip_port,
            settings.sip_port if settings.sip_tcp else None,
            tls_port=settings.sip_tls_port if tls else None,
            ssl_context=tls,
        )
        self.sip_port = self.endpoint.udp_port or settings.sip_port
        self.siprec.contact = f"<sip:srs@{settings.media_address}:{self.sip_port}>"
        self.b2bua.ctx.contact = f"<sip:callvault@{settings.media_address}:{self.sip_port}>"
        self._spawn(self._flush_spools())
        self._spawn(self.jobs.run_forever())
        portal = PortalContext(
            self.sessions,
            self.blobs,
            on_directory_change=self.reload_directory,
            metrics=self.metrics,
            on_job_enqueued=self.jobs.wake,
            push_allow_http_loopback=settings.push_allow_http_loopback,
            live=self.live,
            coach=self.b2bua.coaching.call_supervisor,
        )
        config = uvicorn.Config(
            create_app(portal, metrics_token=settings.metrics_token),
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self.http = _EmbeddedHttp(config)
        self._spawn(self.http.serve())
        while not self.http.started:
            await asyncio.sleep(0.02)
        log.info("%s", self.startup_line())

    def startup_line(self) -> str:
        """The one line that says where callvault listens (the bound ports, not the asked)."""
        settings, endpoint = self.settings, self.endpoint
        sip = [f"udp {settings.sip_host}:{self.sip_port}"]
        if endpoint.tcp_port:
            sip.append(f"tcp {settings.sip_host}:{endpoint.tcp_port}")
        if endpoint.tls_port:
            sip.append(f"tls {settings.sip_host}:{endpoint.tls_port}")
        return (
            f"callvault serving: SIP {', '.join(sip)}; RTP {settings.media_address}"
            f" ports {settings.rtp_port_min}-{settings.rtp_port_max};"
            f" HTTP http://{settings.http_host}:{self.http_port}"
        )

    @property
    def http_port(self) -> int:
        if self.http and self.http.servers:
            sockets = self.http.servers[0].sockets
            if sockets:
                return int(sockets[0].getsockname()[1])
        return self.settings.http_port

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sip_request(self, request: IncomingRequest) -> None:
        """Both modes share one SIP port: bridged calls go to the B2BUA, the rest to SIPREC."""
        if self.b2bua.owns(request):
            self.b2bua.handle(request)
        else:
            self.siprec.handle(request)

    def _prompt(self, tenant_id: int, kind: Kind) -> bytes | None:
        """The announcement ``kind`` (start, stop) in the tenant's language or its own."""
        policy = self.directory.policy(tenant_id)
        try:
            return self.prompts.prompt(tenant_id, kind, policy.language, policy.prompts)
        except Exception:  # a prompt must never take a call down
            log.exception("announcement %s of tenant %s unavailable", kind, tenant_id)
            return None

    def _audit(
        self,
        tenant_id: int | None,
        actor: str,
        action: str,
        target: str | None,
        details: dict[str, Any],
    ) -> None:
        """An audit row from the SIP side (coaching), written off the event loop."""

        def write() -> None:
            with self.sessions() as session:
                record(session, None, actor, action, tenant_id, target=target, **details)
                session.commit()

        async def run() -> None:
            try:
                await asyncio.to_thread(write)
            except Exception:  # an audit row must never take a call down
                log.exception("audit %s of %s not written", action, actor)

        self._spawn(run())

    def _call_ended(self, call: RecordedCall) -> None:
        self.metrics.calls_ended += 1
        self.metrics.rtp_packets_done += call.final_stats.get("packets", 0)
        self.metrics.rtp_bytes_done += call.final_stats.get("bytes", 0)
        self.metrics.rtp_malformed_done += call.final_stats.get("malformed", 0)
        self.metrics.rtp_foreign_done += call.final_stats.get("foreign", 0)
        self.metrics.rtp_unauthenticated_done += call.final_stats.get("unauthenticated", 0)
        self.metrics.calls_declined += call.declined
        self.finisher.submit(call.uuid)

    def _live_metrics(self) -> dict[str, int]:
        totals = {"packets": 0, "bytes": 0, "malformed": 0, "foreign": 0, "unauthenticated": 0}
        calls = list(self.calls.calls.values()) if hasattr(self, "calls") else []
        for call in calls:
            for key, value in call.live_stats().items():
                totals[key] += value
        totals["calls"] = len(calls)
        totals["pending"] = self.finisher.pending if hasattr(self, "finisher") else 0
        return totals

    async def _flush_spools(self) -> None:
        interval = self.settings.spool_flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for call in list(self.calls.calls.values()):
                call.flush()

    async def stop(self) -> None:
        await self.b2bua.close()
        for call in list(self.calls.calls.values()):
            call.end("shutdown")
        await self.endpoint.close()
        await self.finisher.drain()
        if self.http is not None:
            self.http.should_exit = True
        for task in list(self._tasks):
            name = task.get_coro().__qualname__  # type: ignore[union-attr]
            if name.startswith(("Application._flush", "JobRunner.run_forever")):
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.finisher.close()
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
    migrate(settings.db_url)
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
        # Everything loaded so far (the web framework, the ORM, codecs) lives as long
        # as the process: keep it out of the cyclic collector's full passes, which
        # otherwise scan it all and stall the capture loop (hundreds of ms at 1,000
        # calls).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: finishing active calls")
        await app.stop()

    uvloop.run(main())
