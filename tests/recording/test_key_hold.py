"""Audio from a key still being pressed waits in memory (the gate may close at
the key's start: a pause key), and the spool tick reads the capture pump first.

Scenario: the user presses the pause key at 1000 ms; its RFC 4733 packets come
until 1120 ms, and only the end packet reports the digit. A spool flush at
1060 ms must not write the other stream's audio from 1000 ms on, which the
pause then forbids.
"""

from __future__ import annotations

from pathlib import Path

from callvault.media.dtmf import DtmfDigit, TelephoneEvent
from callvault.media.receiver import RtpReceiver, RtpStreamSet
from callvault.media.rtp import RtpPacket
from callvault.policy.live import CaptureGate
from callvault.recording.spool import RECORD_HEADER, SpoolWriter

TE = 101


def audio(seq: int) -> bytes:
    return bytes(
        RtpPacket(payload_type=0, sequence=seq, timestamp=seq * 160, ssrc=1, payload=b"\xff" * 160)
    )


def key_packet(end: bool, duration: int) -> bytes:
    event = bytes(TelephoneEvent(event=11, end=end, volume=10, duration=duration))  # '#'
    return bytes(RtpPacket(payload_type=TE, sequence=900, timestamp=48000, ssrc=2, payload=event))


def written(path: Path) -> list[int]:
    data = path.read_bytes() if path.exists() else b""
    out, pos = [], 0
    while pos + RECORD_HEADER.size <= len(data):
        arrival, length = RECORD_HEADER.unpack_from(data, pos)
        out.append(arrival)
        pos += RECORD_HEADER.size + length
    return out


def test_a_flush_during_a_key_holds_back_audio_from_its_start(tmp_path: Path) -> None:
    clock = [0]
    writer = SpoolWriter(tmp_path / "call")
    digits: list[DtmfDigit] = []
    user = RtpReceiver(writer.stream(0), lambda: clock[0], digits.append, frozenset({TE}))
    other = RtpReceiver(writer.stream(1), lambda: clock[0])
    streams = RtpStreamSet.__new__(RtpStreamSet)  # no sockets: receivers fed directly
    streams.receivers = {0: user, 1: other}
    gate = CaptureGate()
    gate.set(0, True)
    src_user, src_other = ("127.0.0.1", 4000), ("127.0.0.1", 4002)

    def at(t: int, receiver: RtpReceiver, data: bytes, source: tuple[str, int]) -> None:
        clock[0] = t  # read when it came (a late read is the capture tests' subject)
        receiver.datagram_received(data, source, t)

    for t in range(900, 1060, 20):  # the other party talks throughout
        at(t, other, audio(t // 20), src_other)
    at(1000, user, key_packet(False, 160), src_user)  # the key begins
    at(1040, user, key_packet(False, 480), src_user)
    assert streams.key_pending_since() == 1000 and digits == []

    clock[0] = 1060
    writer.flush(gate, 1060, until=streams.key_pending_since())
    assert written(writer.stream(1).path) == [900, 920, 940, 960, 980]  # before the key only

    at(1120, user, key_packet(True, 960), src_user)  # its end: the digit is known
    assert [d.digit for d in digits] == ["#"] and streams.key_pending_since() is None
    gate.set(digits[0].start_ms, False)  # the pause key: closed from its start
    for t in range(1060, 1140, 20):
        at(t, other, audio(t // 20), src_other)
    clock[0] = 1140
    writer.flush(gate, 1140, until=streams.key_pending_since())
    assert written(writer.stream(1).path) == [900, 920, 940, 960, 980]  # nothing after 1000
    assert writer.stream(1).dropped == 7  # 1000..1120 held, then dropped by the gate
    writer.close(gate, 1140)


def test_without_a_key_everything_buffered_is_written(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "call")
    spool = writer.stream(0)
    for t in (0, 20, 40):
        spool.append(t, audio(t // 20))
    writer.flush(None, 40, until=None)
    assert written(spool.path) == [0, 20, 40]
    spool.append(60, audio(3))
    writer.flush(None, 80, until=60)  # held from 60: nothing older left to write
    assert written(spool.path) == [0, 20, 40]
    writer.flush(None, 100)
    assert written(spool.path) == [0, 20, 40, 60]
    writer.close()
