"""Spool directories made ahead of the calls that will take them (issue 12).

A new call's spool is a directory and its journal file (``SpoolWriter``). On
this ext4 VM ``mkdir`` and the journal's ``open(O_CREAT)`` took about 0.3 ms
each on the event loop during the set-up bench (``strace -c -w`` on
``callvault serve``, 100 calls in flight), most of it waiting on the
filesystem, not computing: the loop sat idle while calls queued. A thread
keeps ``depth`` spools made, each named by the uuid its call will have, so a
call's set-up takes one from a deque. With ``depth`` 0 (tests, tools) every
spool is made when it is taken, as before.

A stored call's spool is recycled (``recycle``): emptied and renamed to the
next call's uuid rather than removed and made again. Spools made and never
taken are removed at ``close``; after a crash they are empty directories,
which ``Finisher.recover`` removes without a word (``is_unused``).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import uuid
from pathlib import Path

from callvault.recording.spool import JOURNAL, SpoolWriter, remove_spool

log = logging.getLogger(__name__)

DEPTH = 32
"""Spools kept made by a running server: more than the calls that arrive in the
time the thread needs to make half of them (a few ms) at any set-up rate here."""


class ReadySpools:
    """Hands out (call uuid, its open spool); made ahead by a thread when ``depth`` > 0."""

    def __init__(self, root: Path, depth: int = 0) -> None:
        self.root = root
        self.depth = depth
        self._ready: collections.deque[tuple[str, SpoolWriter]] = collections.deque()
        self._wanted = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def take(self) -> tuple[str, SpoolWriter]:
        """A new call's uuid and spool; made here when none is ready.

        Raises ``OSError`` when the spool cannot be made (the disk)."""
        try:
            ready = self._ready.popleft()  # deque's ends are thread-safe
        except IndexError:
            ready = make_spool(self.root)
        if self.depth and not self._closed and len(self._ready) <= self.depth // 2:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._fill, name="callvault-spools", daemon=True
                )
                self._thread.start()
            self._wanted.set()
        return ready

    def recycle(self, directory: Path) -> None:
        """A stored call's spool (any thread; the rows are committed): made the
        next call's instead of removed and made again, which saves a directory
        and a journal file's removal and creation (ext4 metadata work, about
        0.3 ms of CPU each on this VM). Its stream files are removed and its
        journal emptied first, so a crash after that leaves an unused spool
        (``is_unused``), then it is renamed to a new call's uuid. Removed
        instead when enough spools are ready, when none are kept ahead, or
        when anything fails."""
        if self._closed or not self.depth or len(self._ready) >= self.depth * 2:
            remove_spool(directory)
            return
        fd = -1
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name != JOURNAL:
                        os.unlink(entry.path)  # a directory (never ours): OSError
            fd = os.open(
                directory / JOURNAL,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                0o640,
            )
            name = uuid.uuid4().hex
            os.rename(directory, self.root / name)
        except OSError as exc:
            log.debug("spool %s not recycled (%s): removed", directory.name, exc)
            if fd >= 0:
                os.close(fd)
            remove_spool(directory)
            return
        self._ready.append((name, SpoolWriter(self.root / name, journal_fd=fd)))

    def _fill(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            while not self._closed and len(self._ready) < self.depth:
                try:
                    self._ready.append(make_spool(self.root))
                except Exception:  # the disk: calls make their own meanwhile
                    log.warning("could not make a spool ahead", exc_info=True)
                    break
            if self._closed:
                return

    def close(self) -> None:
        """Stop making spools and remove the ones nobody took."""
        self._closed = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        while self._ready:
            _, writer = self._ready.popleft()
            writer.discard()
            remove_spool(writer.directory)


def make_spool(root: Path) -> tuple[str, SpoolWriter]:
    name = uuid.uuid4().hex
    return name, SpoolWriter(root / name)
