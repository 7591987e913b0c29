"""Retransmission of a 2xx to INVITE by the UAS core (RFC 3261 section 13.3.1.4).

The INVITE server transaction ends when it sends a 2xx; the UAS core then
resends the 2xx at T1, 2*T1, ... capped at T2 until the ACK arrives, and gives
up after 64*T1 (``Timeout("ack")``, after which the core should end the
dialog with BYE). On reliable transports only the give-up timer runs.
"""

from __future__ import annotations

import enum
import logging

from sipmessage import Response

from callvault.errors import LocalProtocolError
from callvault.sip.timers import Timers
from callvault.sip.transaction import Action, Send, Timeout

__all__ = ["Pending2xx", "Pending2xxState", "ack_key"]

logger = logging.getLogger(__name__)


class Pending2xxState(enum.Enum):
    WAITING = "Waiting"
    ACKED = "Acked"
    TIMED_OUT = "Timed out"


_TRANSITIONS: dict[Pending2xxState, dict[str, Pending2xxState]] = {
    Pending2xxState.WAITING: {
        "retransmit": Pending2xxState.WAITING,
        "ack": Pending2xxState.ACKED,
        "give_up": Pending2xxState.TIMED_OUT,
    },
    Pending2xxState.ACKED: {"ack": Pending2xxState.ACKED},
    Pending2xxState.TIMED_OUT: {"ack": Pending2xxState.TIMED_OUT},  # a late ACK
}


def ack_key(call_id: str, cseq_number: int) -> tuple[str, int]:
    """How an ACK for a 2xx finds its pending 2xx: same Call-ID and CSeq number."""
    return (call_id, cseq_number)


class Pending2xx:
    """One 2xx to INVITE waiting for its ACK."""

    def __init__(
        self, response: Response, data: bytes, *, reliable: bool, timers: Timers, now: float
    ) -> None:
        self.response = response
        self.key = ack_key(response.headers["Call-ID"], response.cseq.sequence)
        self.state = Pending2xxState.WAITING
        self._data = data
        self._timers = timers
        self._interval = timers.t1
        self._retransmit_at: float | None = None if reliable else now + timers.t1
        self._give_up_at = now + timers.timeout

    @property
    def done(self) -> bool:
        return self.state is not Pending2xxState.WAITING

    def _set_state(self, event: str) -> None:
        new = _TRANSITIONS[self.state].get(event)
        if new is None:
            raise LocalProtocolError(f"pending 2xx: {event} not allowed in {self.state.value}")
        if new is not self.state:
            logger.debug("pending 2xx %s: %s -> %s", self.key, self.state.value, new.value)
        self.state = new

    def next_timer(self) -> float | None:
        if self.done:
            return None
        if self._retransmit_at is None:
            return self._give_up_at
        return min(self._retransmit_at, self._give_up_at)

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.done:
            return actions
        if now >= self._give_up_at:
            self._set_state("give_up")
            return [Timeout("ack")]
        while self._retransmit_at is not None and self._retransmit_at <= now:
            self._set_state("retransmit")
            self._interval = min(2 * self._interval, self._timers.t2)
            self._retransmit_at += self._interval
            actions.append(Send(self._data))
        return actions

    def ack_received(self) -> None:
        self._set_state("ack")

    def retransmit(self) -> list[Action]:
        """A retransmitted INVITE arrived: answer it with the same 2xx."""
        return [Send(self._data)] if not self.done else []
