"""Types of the native batched-UDP module (``_batchudp.c``)."""

from collections.abc import Sequence
from typing import Any

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
def recv_batch(fd: int, max_packets: int = ..., /) -> list[tuple[bytes, Address]]: ...
def send_batch(fd: int, packets: Sequence[tuple[Buffer, Address]], /) -> int: ...
def set_peer(fd: int, address: Address | None, /) -> None: ...

Sums = tuple[int, int, int, int, tuple[int, int, int, int], bytes | None]
"""(fast, sent, errors, held, (spooled, spooled bytes, malformed, rtcp), last)."""

Handoff = tuple[Any, list[tuple[bytes, Address]] | None, list[bytes] | None, int]
"""(leg, packets from another source, RFC 4733 packets, arrival ms); (leg, None,
None, 0): the leg reads its socket itself."""

class Pump:
    def __init__(self, *, uring: bool = True) -> None: ...
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
        /,
    ) -> None: ...
    def unconfigure(self, fd: int, /) -> None: ...
    def collect(self, fd: int, /) -> Sums | None: ...
    def collect_all(self) -> list[tuple[Any, Sums]]: ...
    def run(self, now_ms: int, /) -> tuple[int, list[Handoff]]: ...
