"""LiveCenter's board: the calls in progress, per tenant, as they change (SPEC section 7).

``LiveBoard`` is told of every change a call makes that LiveCenter shows
(``CallContext.on_changed``: answer, capture gate, parties, end) and keeps a
view of each running call: its parties, when it started and was answered, its
recording state and modes, and who listens or coaches (``Presence``, joined by
the listen and coaching features). A call belongs to every tenant among its
parties; each tenant sees it, never a tenant that is not a party.

Subscribers (the portal's Server-Sent Events) get each change of their
tenant's calls through a bounded queue: a slow browser never blocks a call;
when its queue overflows it is dropped to a fresh snapshot (the calls it knew
that are gone as ``Removed``, then every current view).

Everything here runs on the event loop's thread (SIP, RTP and HTTP share it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from callvault.policy.modes import Mode

if TYPE_CHECKING:
    from callvault.siprec.call import RecordedCall

LiveState = Literal["ringing", "not-recording", "recording", "paused"]
PresenceKind = Literal["listen", "coach"]

QUEUE_LIMIT = 256
"""Changes a subscriber may have waiting before it is dropped to a fresh snapshot."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveParty:
    aor: str | None
    name: str | None
    number: str | None
    user_id: int | None
    side: Literal["user", "other"]


@dataclass(frozen=True)
class Presence:
    """Someone listening to or coaching a call (the manual: LiveCenter shows it)."""

    token: str
    call_id: str
    user_id: int
    name: str
    kind: PresenceKind
    since: datetime
    tenant_id: int | None = None  # shown only to this tenant (None: to every tenant of the call)


@dataclass(frozen=True)
class LiveCallView:
    id: str  # the call's uuid
    tenant_ids: frozenset[int]
    parties: tuple[LiveParty, ...]
    started_at: datetime
    answered_at: datetime | None
    state: LiveState
    modes: dict[int, str]  # recorded user id -> recording mode
    bridged: bool
    presences: tuple[Presence, ...]
    record_now: bool = False  # LiveCenter's record now is on


@dataclass(frozen=True)
class Removed:
    """The call left the board (ended), or no longer belongs to the subscriber's tenant."""

    call_id: str


BoardEvent = LiveCallView | Removed


class UnknownCall(LookupError):
    """No running call with that id."""


def call_state(call: RecordedCall) -> LiveState:
    """The recording state LiveCenter shows for a running call.

    Ringing before the answer. Paused when the SRC paused every stream of a
    call that is capturing, or when a recording's engine is paused by the
    user's code and nothing else captures. Recording while the capture gate
    is open. Otherwise not recording."""
    if call.answered_ms is None:
        return "ringing"
    live = call.live
    src_paused = bool(call.streams) and not any(s.layout.active for s in call.streams.values())
    if live.gate.is_open:
        return "paused" if src_paused else "recording"
    if live.paused_by_code:
        return "paused"
    return "not-recording"


def _modes(call: RecordedCall) -> dict[int, str]:
    modes: dict[int, str] = {}
    for slot, _snapshot in call.slots:
        mode = slot.mode.value if isinstance(slot.mode, Mode) else str(slot.mode)
        modes.setdefault(slot.user_id, mode)
    return modes


class BoardSubscription:
    """One subscriber's changes of one tenant's calls (an async iterator)."""

    def __init__(self, board: LiveBoard, tenant_id: int, limit: int = QUEUE_LIMIT) -> None:
        self.board = board
        self.tenant_id = tenant_id
        self._limit = limit
        self._queue: deque[BoardEvent] = deque()
        self._wake = asyncio.Event()
        self._resync = False
        self._known: set[str] = {view.id for view in board.views(tenant_id)}
        self.closed = False
        self.dropped = 0  # times the queue overflowed (tests, logs)

    def snapshot(self) -> list[LiveCallView]:
        """The tenant's calls now; what follows are changes after it."""
        views = self.board.views(self.tenant_id)
        self._known = {view.id for view in views}
        return views

    def _push(self, event: BoardEvent) -> None:
        if self.closed:
            return
        if len(self._queue) >= self._limit:
            self._queue.clear()
            self._resync = True
            self.dropped += 1
        elif not self._resync:
            self._queue.append(event)
        self._wake.set()

    def _take(self) -> BoardEvent | None:
        if self._resync:
            self._resync = False
            views = self.board.views(self.tenant_id)
            current = {view.id for view in views}
            self._queue.extend(Removed(gone) for gone in sorted(self._known - current))
            self._queue.extend(views)
        if not self._queue:
            self._wake.clear()
            return None
        event = self._queue.popleft()
        if isinstance(event, Removed):
            self._known.discard(event.call_id)
        else:
            self._known.add(event.id)
        return event

    async def get(self, timeout: float | None = None) -> BoardEvent | None:
        """The next change; None when ``timeout`` seconds pass without one or when closed."""
        while not self.closed:
            event = self._take()
            if event is not None:
                return event
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        return None

    def __aiter__(self) -> BoardSubscription:
        return self

    async def __anext__(self) -> BoardEvent:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._wake.set()
        self.board._unsubscribe(self)


@dataclass
class _Entry:
    call: RecordedCall
    shown_to: frozenset[int] = frozenset()
    presences: list[Presence] = field(default_factory=list)


class LiveBoard:
    """The running calls of every tenant, and who watches them (see the module doc)."""

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self.clock = clock
        self._calls: dict[str, _Entry] = {}  # by call uuid
        self._subscribers: dict[int, set[BoardSubscription]] = {}

    # -- calls -------------------------------------------------------------

    def changed(self, call: RecordedCall) -> None:
        """A call changed (wired as ``CallContext.on_changed``); an ended call leaves."""
        entry = self._calls.get(call.uuid)
        if call.ended:
            if entry is not None:
                del self._calls[call.uuid]
                for tenant in entry.shown_to:
                    self._publish(tenant, Removed(call.uuid))
            return
        if entry is None:
            entry = self._calls[call.uuid] = _Entry(call)
        self._broadcast(entry)

    def _broadcast(self, entry: _Entry) -> None:
        tenants = frozenset(entry.call._tenants)
        for gone in entry.shown_to - tenants:
            self._publish(gone, Removed(entry.call.uuid))
        entry.shown_to = tenants
        for tenant in tenants:
            if self._subscribers.get(tenant):
                self._publish(tenant, self._view(entry, tenant))

    def _view(self, entry: _Entry, tenant_id: int) -> LiveCallView:
        call = entry.call
        started = datetime.fromtimestamp(call.started_at_ms / 1000, UTC)
        answered = (
            started + timedelta(milliseconds=call.answered_ms)
            if call.answered_ms is not None
            else None
        )
        own_users = {slot.user_id for slot, _ in call.slots if slot.tenant_id == tenant_id}
        return LiveCallView(
            id=call.uuid,
            tenant_ids=frozenset(call._tenants),
            parties=tuple(
                LiveParty(p.aor, p.name, p.number, p.user_id, p.side) for p in call.parties
            ),
            started_at=started,
            answered_at=answered,
            state=call_state(call),
            # another tenant's users' modes are that tenant's business
            modes={u: m for u, m in _modes(call).items() if u in own_users},
            bridged=call.bridged,
            presences=tuple(
                p for p in entry.presences if p.tenant_id is None or p.tenant_id == tenant_id
            ),
            record_now=call.live.recording_now,
        )

    def views(self, tenant_id: int) -> list[LiveCallView]:
        """The tenant's running calls, oldest first."""
        views = [
            self._view(entry, tenant_id)
            for entry in self._calls.values()
            if tenant_id in entry.call._tenants and not entry.call.ended
        ]
        return sorted(views, key=lambda view: (view.started_at, view.id))

    def view(self, tenant_id: int, call_id: str) -> LiveCallView | None:
        entry = self._calls.get(call_id)
        if entry is None or entry.call.ended or tenant_id not in entry.call._tenants:
            return None
        return self._view(entry, tenant_id)

    def find(self, tenant_id: int, call_id: str) -> RecordedCall | None:
        """A running call of ``tenant_id``; None for any other (never another tenant's)."""
        entry = self._calls.get(call_id)
        if entry is None or entry.call.ended or tenant_id not in entry.call._tenants:
            return None
        return entry.call

    # -- presences ---------------------------------------------------------

    def join(
        self,
        call_id: str,
        *,
        user_id: int,
        name: str,
        kind: PresenceKind,
        tenant_id: int | None = None,
    ) -> Presence:
        """Someone starts listening or coaching; the call's views show it at once."""
        entry = self._calls.get(call_id)
        if entry is None or entry.call.ended:
            raise UnknownCall(call_id)
        presence = Presence(
            token=secrets.token_urlsafe(12),
            call_id=call_id,
            user_id=user_id,
            name=name,
            kind=kind,
            since=self.clock(),
            tenant_id=tenant_id,
        )
        entry.presences.append(presence)
        self._broadcast(entry)
        return presence

    def leave(self, presence: Presence) -> None:
        """Someone stops; leaving twice, or after the call ended, does nothing."""
        entry = self._calls.get(presence.call_id)
        if entry is None:
            return
        kept = [p for p in entry.presences if p.token != presence.token]
        if len(kept) != len(entry.presences):
            entry.presences = kept
            self._broadcast(entry)

    def presences(self, call_id: str) -> tuple[Presence, ...]:
        entry = self._calls.get(call_id)
        return tuple(entry.presences) if entry is not None else ()

    # -- subscribers -------------------------------------------------------

    def subscribe(self, tenant_id: int, *, limit: int = QUEUE_LIMIT) -> BoardSubscription:
        subscription = BoardSubscription(self, tenant_id, limit)
        self._subscribers.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: BoardSubscription) -> None:
        subscribers = self._subscribers.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.tenant_id]

    def subscribers(self, tenant_id: int) -> int:
        return len(self._subscribers.get(tenant_id, ()))

    def _publish(self, tenant_id: int, event: BoardEvent) -> None:
        for subscription in list(self._subscribers.get(tenant_id, ())):
            subscription._push(event)


__all__ = [
    "BoardEvent",
    "BoardSubscription",
    "LiveBoard",
    "LiveCallView",
    "LiveParty",
    "LiveState",
    "Presence",
    "Removed",
    "UnknownCall",
    "call_state",
]
