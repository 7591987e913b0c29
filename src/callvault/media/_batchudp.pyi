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
