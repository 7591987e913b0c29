"""The media role: SIP, RTP capture, the B2BUA, and finishing this node's spools.

A spool lives on the disk of the node that captured it, so the node that
captured a call also finishes it (and, at start-up, every spool a crash left
there): a worker on another machine cannot read it. Finishing stays off the
capture loop: decoding and encoding run in the finisher's process pool at
lower CPU priority (``recording/pipeline.py`` ``lower_priority``: nice 10 and
SCHED_BATCH), so a burst of hang-ups never delays RTP; the store's database
and blob work runs in threads.

The spool flush stays on the event loop: each 250 ms tick appends what the
capture gate let through with ``os.write`` to the page cache (no fsync), a
few microseconds per stream, ordered with the gate's decisions; a thread hop
per tick would cost more than the write.

Everything is built from settings in ``start``; nothing is wired after
construction. SIP is bound first, so the SIPREC server and the B2BUA are
built with the bound port in their Contact (``sip_port = 0`` in tests); no
request is handled before they exist (no await between the bind and them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sipmessage import Request
from sqlalchemy.orm import Session, sessionmaker

from callvault.announcements.library import Kind, PromptLibrary
from callvault.announcements.tones import user_stop_tone, user_tone
from callvault.b2bua.call import BridgeContext
from callvault.b2bua.routes import RouteTable
from callvault.b2bua.server import B2buaServer
from callvault.live.board import LiveBoard
from callvault.media.ports import RtpPortPool
from callvault.media.pump import read_captured
from callvault.metrics import Metrics
from callvault.portal.audit import record
from callvault.recording.pipeline import Finisher
from callvault.recording.ready_spools import DEPTH as SPOOLS_AHEAD
from callvault.roles.directory import DirectoryWatcher, directory_version
from callvault.settings import Settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.transport import Flow, server_ssl_context, stream_limits
from callvault.siprec.call import CallContext, RecordedCall
from callvault.siprec.server import SiprecServer
from callvault.sources.registry import SourceRegistry
from callvault.storage.blobs import BlobStore
from callvault.tenants.directory import Directory

log = logging.getLogger(__name__)


class MediaRole:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        metrics: Metrics,
        *,
        on_stored: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.blobs = blobs
        self.metrics = metrics
        self.on_stored = on_stored  # a recording was stored (the worker's wake, if here)
        self.directory = Directory()
        self.sources = SourceRegistry()
        self.routes = RouteTable()
        self.live = LiveBoard()  # LiveCenter: told of every change of a running call
        self.prompts = PromptLibrary(blobs)
        self._tasks: set[asyncio.Task[None]] = set()  # loops, cancelled by stop
        self._kept: set[asyncio.Task[None]] = set()  # audit rows, awaited by stop
        self._open = True

    # -- the directory ------------------------------------------------------------
    def reload_directory(self) -> None:
        """Who is who: tenants and users, the registered recording sources, call routes."""
        with self.sessions() as session:
            directory = Directory.load(session)
            sources = SourceRegistry.load(session)
            routes = RouteTable.load(session)
        self.directory, self.sources, self.routes = directory, sources, routes

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        # the version first: a change during the load is seen by the watcher's first look
        seen = await asyncio.to_thread(directory_version, self.sessions)
        await asyncio.to_thread(self.reload_directory)
        self.watcher = DirectoryWatcher(
            self.sessions, self.reload_directory, db_url=settings.db_url, seen=seen
        )
        self.finisher = Finisher(
            settings.spool_dir,
            self.sessions,
            self.blobs,
            workers=settings.finish_workers,
            metrics=self.metrics,
            on_stored=self.on_stored,
        )
        self.finisher.recover(active=set())
        self.calls = CallContext(
            loop=loop,
            spool_root=settings.spool_dir,
            media_address=settings.media_address,
            ports=RtpPortPool(settings.rtp_port_min, settings.rtp_port_max),
            directory=lambda: self.directory,
            on_ended=self._call_ended,
            on_changed=self.live.changed,
            sources=lambda: self.sources,
            spools_ahead=SPOOLS_AHEAD,
        )
        self.finisher.done_with_spool = self.calls.spools.recycle
        self.endpoint = SipEndpoint(
            self._sip_request,
            user_agent="callvault",
            stream_limits=stream_limits(settings),
            screen=self._screen,
        )
        tls = server_ssl_context(settings)  # None unless a certificate and key are set
        await self.endpoint.listen(
            settings.sip_host,
            settings.sip_port,
            settings.sip_port if settings.sip_tcp else None,
            tls_port=settings.sip_tls_port if tls else None,
            ssl_context=tls,
        )
        self.sip_port = self.endpoint.udp_port or settings.sip_port
        # no await from here to the end of the two servers: no request comes before them
        self.siprec = SiprecServer(
            self.calls,
            contact_host=settings.media_address,
            contact_port=self.sip_port,
            metrics=self.metrics,
            endpoint=self.endpoint,
            session_expires_s=settings.session_expires_s,
        )
        self.b2bua = B2buaServer(
            BridgeContext(
                calls=self.calls,
                endpoint=self.endpoint,
                contact=f"<sip:callvault@{settings.media_address}:{self.sip_port}>",
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
        self._spawn(self._flush_spools())
        self._spawn(self.watcher.run())

    def readiness(self) -> dict[str, bool]:
        """For ``/readyz``: SIP is bound and not closing."""
        endpoint: SipEndpoint | None = getattr(self, "endpoint", None)
        return {"sip": endpoint is not None and endpoint.udp_port is not None and self._open}

    async def stop(self) -> None:
        self._open = False
        await self.b2bua.close()
        for call in list(self.calls.calls.values()):
            call.end("shutdown")
        await self.endpoint.close()
        await self.finisher.drain()
        self.calls.spools.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._kept, return_exceptions=True)
        self.finisher.close()

    def live_stats(self) -> dict[str, int]:
        totals = {"packets": 0, "bytes": 0, "malformed": 0, "foreign": 0, "unauthenticated": 0}
        calls = list(self.calls.calls.values()) if hasattr(self, "calls") else []
        for call in calls:
            for key, value in call.live_stats().items():
                totals[key] += value
        totals["calls"] = len(calls)
        totals["pending"] = self.finisher.pending if hasattr(self, "finisher") else 0
        return totals

    # -- SIP ----------------------------------------------------------------------
    def _screen(self, message: Request, flow: Flow) -> bool:
        """Only registered sources get past (the SIPREC server's screen serves both modes)."""
        return self.siprec.screen(message, flow)

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

        self._spawn_kept(run())

    def _call_ended(self, call: RecordedCall) -> None:
        metrics, stats = self.metrics, call.final_stats
        metrics.calls_ended += 1
        metrics.rtp_packets_done += stats.get("packets", 0)
        metrics.rtp_bytes_done += stats.get("bytes", 0)
        metrics.rtp_malformed_done += stats.get("malformed", 0)
        metrics.rtp_foreign_done += stats.get("foreign", 0)
        metrics.rtp_unauthenticated_done += stats.get("unauthenticated", 0)
        metrics.calls_declined += call.declined
        self.finisher.submit(call.uuid)

    async def _flush_spools(self) -> None:
        interval = self.settings.spool_flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            read_captured(asyncio.get_running_loop())  # keys read before audio is written
            for call in list(self.calls.calls.values()):
                call.flush()

    # -- tasks --------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A loop that runs until ``stop`` cancels it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_kept(self, coro: Coroutine[Any, Any, None]) -> None:
        """Work that ``stop`` lets finish (an audit row), not cancels."""
        task = asyncio.ensure_future(coro)
        self._kept.add(task)
        task.add_done_callback(self._kept.discard)
