"""Types of the native batched-UDP module (``_batchudp.c``)."""

from collections.abc import Sequence
from typing import Any, Literal, overload

from typing_extensions import Buffer

Address = tuple[Any, ...]

MAX_BATCH: int

def relay(
    fd: int, latched: Address, out_fd: int, dest: Address | None, copy_all: bool, /
) -> tuple[int, int, int, list[bytes], list[tuple[bytes, Address]]]: ...
def relay_record(
    fd: int,
    latched: Address,
    out_fd: int,
    dest: Address | None,
    spool: bytearray,
    arrival_ms: int,
    te_map: bytes,
    /,
) -> tuple[
    int, int, int, bytes | None, list[bytes], tuple[int, int, int, int], list[tuple[bytes, Address]]
]: ...
@overload
def recv_batch(
    fd: int, max_packets: int = ..., stamps: Literal[False] = ..., /
) -> list[tuple[bytes, Address]]: ...
@overload
def recv_batch(
    fd: int, max_packets: int, stamps: Literal[True], /
) -> list[tuple[bytes, Address, int]]: ...
def send_batch(fd: int, packets: Sequence[tuple[Buffer, Address]], /) -> int: ...
def set_peer(fd: int, address: Address | None, /) -> None: ...

Sums = tuple[int, int, int, int, tuple[int, int, int, int], bytes | None]
"""(fast, sent, errors, held, (spooled, spooled bytes, malformed, rtcp), last)."""

Handoff = tuple[Any, list[tuple[bytes, Address]] | None, list[bytes] | None, int, list[int] | None]
"""(leg, packets from another source, RFC 4733 packets, arrival ms, each RFC 4733
packet's own arrival ms (a stamped pump's) or None); (leg, None, None, 0, None):
the leg reads its socket itself."""

class Pump:
    def __init__(self, *, uring: bool = True, stamps: bool = False) -> None: ...
    def fileno(self) -> int: ...
    def uring(self) -> bool: ...
    def add(self, fd: int, leg: Any, /) -> None: ...
    def remove(self, fd: int, /) -> Sums | None: ...
    def configure(
        self,
        fd: int,
        latched: Address,
        out_fd: int,
        dest: Address | None,
        spool: bytearray | None,
        offset_ms: int,
        te_map: bytes | None,
        floor_ms: int = ...,
        /,
    ) -> None: ...
    def unconfigure(self, fd: int, /) -> int: ...
    def collect(self, fd: int, /) -> Sums | None: ...
    def collect_all(self) -> list[tuple[Any, Sums]]: ...
    def run(self, now_ms: int, /) -> tuple[int, list[Handoff]]: ...
