"""Transaction timer values (RFC 3261 section 17 and table 4 of appendix A)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timers:
    """Base timer values in seconds; the lettered timers derive from them."""

    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0  # maximum duration a message remains in the network
    timer_d: float = 32.0  # wait time for response retransmits (client INVITE, unreliable)

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H and J (unreliable)."""
        return 64 * self.t1
