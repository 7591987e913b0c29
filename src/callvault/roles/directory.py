"""The directory follows changes on every node within a second (issue 13).

Migration 0023 keeps one counter, ``directory_version``, bumped by triggers in
the same transaction as every change of tenants, users, modes, sources and
call routes, whoever makes it. ``DirectoryWatcher`` reads it every
``poll_s`` (one primary-key SELECT) and reloads when it moved; on PostgreSQL
it also LISTENs on ``callvault_directory`` (psycopg), which the triggers
NOTIFY at commit, so a change is usually seen at once and the poll only
covers a lost connection.

The version is read before the reload, so a change that commits during a
reload is picked up by the next look rather than lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.models import DirectoryVersion

log = logging.getLogger(__name__)

CHANNEL = "callvault_directory"  # migration 0023's NOTIFY channel
POLL_S = 0.5


def directory_version(sessions: sessionmaker[Session]) -> int:
    """The directory's version now (0 before migration 0023 ran)."""
    with sessions() as session:
        return session.scalar(select(DirectoryVersion.version).where(DirectoryVersion.id == 1)) or 0


class DirectoryWatcher:
    """Calls ``reload`` (in a thread) whenever the directory's version moved."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        reload: Callable[[], None],
        *,
        db_url: str,
        seen: int,
        poll_s: float = POLL_S,
    ) -> None:
        self.sessions = sessions
        self.reload = reload
        self.db_url = db_url
        self.seen = seen  # the version the caller's directory was loaded at (or after)
        self.poll_s = poll_s
        self.reloads = 0
        self.listening = False  # PostgreSQL: LISTEN is in place
        self._nudge = asyncio.Event()

    async def run(self) -> None:
        listener = None
        if make_url(self.db_url).get_backend_name() == "postgresql":
            listener = asyncio.ensure_future(self._listen())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._nudge.wait()
                self._nudge.clear()
                try:
                    await self.check()
                except Exception:  # the database may be away for a moment: look again
                    log.exception("directory version")
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def check(self) -> bool:
        """Reload if the version moved since the last load; True if it did."""
        version = await asyncio.to_thread(directory_version, self.sessions)
        if version == self.seen:
            return False
        await asyncio.to_thread(self.reload)
        self.seen = version
        self.reloads += 1
        log.debug("directory reloaded at version %d", version)
        return True

    async def _listen(self) -> None:
        """LISTEN for the triggers' NOTIFY; reconnects, the poll covering the gaps."""
        import psycopg

        dsn = make_url(self.db_url).set(drivername="postgresql")
        conninfo = dsn.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._nudge.set()  # a change while we were not listening
                    async for _notify in connection.notifies():
                        self._nudge.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll goes on meanwhile
                log.warning("directory LISTEN lost (%s); polling until it is back", exc)
            self.listening = False
            await asyncio.sleep(5)
