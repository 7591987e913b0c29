"""The finisher skips in-band key search on audio the live listener already searched.

Issue 12, "Make finishing cheap": in the code modes the live listener
(``media/live_keys.py``) runs the in-band detector over the user's stream during
the call and journals the keys it hears; at hang-up (or when it stops) the call
journals which stretches it heard (``InbandListened``). The finisher then runs
its whole-stream gate only outside those stretches and around the keys the
listener heard, so every key keeps the start and length the timeline gives it.

Each call here goes through ``siprec.call.RecordedCall`` itself (its flush
ticks feed the listener, its ``end`` journals the stretches) on a clock the
test moves, with keys in the user's audio over a tone, jitter, reordering and
loss; then the same spool is finished twice: as written, and as an older
recorder would have left it (no ``inband_listened`` lines: searched whole).
Keys, cuts, segments and the MP3 must be identical, and the skip must
actually skip.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from tests.recording.callbuilder import EVENT, G722, PCMA, PCMU, layout

from callvault.media import inband_dtmf
from callvault.media.codecs import encode_pcma, encode_pcmu
from callvault.media.inband_dtmf import DETECTOR_VERSION, detect_keys
from callvault.media.live_keys import InbandKeyListener
from callvault.media.ports import RtpPortPool
from callvault.media.receiver import RtpReceiver
from callvault.media.rtp import RtpPacket
from callvault.media.tones import dtmf_tone
from callvault.policy.live import RecordingSlot
from callvault.policy.modes import Mode, ShortCode
from callvault.recording import finisher
from callvault.recording.finisher import FinishedAudio, finish
from callvault.recording.journal import (
    InbandListened,
    Party,
    PolicySnapshot,
    Start,
    read_lines,
)
from callvault.recording.spool import SpoolReader
from callvault.siprec.call import ActiveStream, CallContext, RecordedCall
from callvault.tenants.directory import Directory

RATE = 8000
END_MS = 16_000
USER_ID = 7
# the user's keys (call time s): the code *1 (keep the recording), digits, and *1
# again (stop it) with its 1 still sounding when the call hangs up: only the
# listener's last flush, at hang-up, reports that one live
KEYS = [(1.0, "*"), (1.3, "1"), (4.0, "5"), (7.0, "6"), (10.5, "9"), (15.63, "*"), (15.93, "1")]


def _user_audio() -> npt.NDArray[np.int16]:
    t = np.arange(END_MS * RATE // 1000) / RATE
    pcm = (1500 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)  # the user's voice, say
    for at, digit in KEYS:
        tone = dtmf_tone(digit, 0.09, RATE, -12.0)
        start = int(at * RATE)
        tone = tone[: len(pcm) - start]
        pcm[start : start + len(tone)] = tone
    return pcm


def _packets(
    payload: bytes, pt: int, ssrc: int, rng: np.random.Generator, jitter_ms: int, loss: float
) -> list[tuple[int, bytes]]:
    """(arrival_ms, packet) in arrival order: 20 ms packets sent at their call time."""
    out = []
    for k in range(len(payload) // 160):
        if rng.random() < loss:
            continue
        packet = RtpPacket(pt, k & 0xFFFF, 1000 + k * 160, ssrc, payload[k * 160 : (k + 1) * 160])
        out.append((k * 20 + int(rng.integers(0, jitter_ms + 1)), bytes(packet)))
    out.sort(key=lambda record: record[0])  # jitter reorders them
    return out


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _record_call(
    loop: asyncio.AbstractEventLoop,
    root: Path,
    *,
    listening: list[tuple[int, int]],
    jitter_ms: int = 30,
    loss: float = 0.0,
    seed: int = 1,
) -> Path:
    """A call in ``on_demand_keep`` mode through ``RecordedCall``: flush ticks every
    250 ms on the test's clock; the user's stream is listened to during ``listening``
    (call ms); returns the spool directory."""
    clock = _Clock()
    loop.time = clock.time  # type: ignore[method-assign]
    ctx = CallContext(
        loop=loop,
        spool_root=root,
        media_address="127.0.0.1",
        ports=RtpPortPool(40000, 40100),
        directory=Directory,
        on_ended=lambda call: None,
    )
    call = RecordedCall(ctx, "skip-test")
    call.parties = [
        Party("alice", "sip:alice@a.example", "Alice", "+31201234567", USER_ID, "user"),
        Party("bob", "sip:bob@b.example", "Bob", "+4930123456", None, "other"),
    ]
    slot = RecordingSlot("1.0", 1, USER_ID, "alice", Mode.ON_DEMAND_KEEP, ShortCode.parse("*1"))
    call.live.set_slots(0, [slot])
    layouts = (
        layout(0, "left", {0: PCMU, 101: EVENT}, participant_id="alice"),
        layout(1, "right", {8: PCMA}, participant_id="bob"),
    )
    policy = PolicySnapshot.of("*1", "cut", "both", {str(USER_ID): "on_demand_keep"}, {})
    call._journal(
        Start(
            t=0,
            call_uuid=call.uuid,
            started_at=1_700_000_000_000,
            streams=layouts,
            parties=tuple(call.parties),
            tenant_id=1,
            recorded_user_id=USER_ID,
            policy=policy,
        )
    )
    for item in layouts:
        call.streams[item.index] = ActiveStream(item, 0, cast(RtpReceiver, None))
    call.answered()

    rng = np.random.default_rng(seed)
    t = np.arange(END_MS * RATE // 1000) / RATE
    other = (4000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    records = sorted(
        [(a, 0, p) for a, p in _packets(encode_pcmu(_user_audio()), 0, 1, rng, jitter_ms, loss)]
        + [(a, 1, p) for a, p in _packets(encode_pcma(other), 8, 2, rng, jitter_ms, loss)],
        key=lambda record: record[0],
    )
    starts = {a for a, _b in listening}
    stops = {b for _a, b in listening}
    cursor = 0
    for tick in range(250, END_MS + 250, 250):
        clock.now = tick / 1000
        while cursor < len(records) and records[cursor][0] < tick:
            arrival, index, packet = records[cursor]
            call.spool.stream(index).append(arrival, packet)
            cursor += 1
        if tick - 250 in starts:
            call._listen_for_keys()  # what a re-offer does when the user's keys matter
        if tick - 250 in stops and tick - 250 < END_MS:
            call._stop_listening(call.streams[0])  # and when they stop mattering
        call.flush()
    call.end("bye")
    return root / call.uuid


def _without_listened(spool: Path, copy: Path) -> Path:
    """The same spool as an older recorder leaves it: no ``inband_listened`` lines."""
    shutil.copytree(spool, copy)
    journal = copy / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if "inband_listened" not in line))
    return copy


def _gate_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the 20 ms frames the whole-stream gate looks at."""
    looked: list[int] = []
    gate = inband_dtmf._gate_hits

    def counted(samples: Any, rate: int, at: Any = None) -> Any:
        looked.append(len(samples) // (rate // 50) if at is None else len(at))
        return gate(samples, rate, at)

    monkeypatch.setattr(inband_dtmf, "_gate_hits", counted)
    return looked


def _summary(result: FinishedAudio) -> tuple[Any, ...]:
    assert result.policy is not None
    return (
        result.policy.keys,
        result.policy.code_spans,
        result.policy.segments,
        result.policy.keep,
        [(s.call_start_ms, s.call_end_ms, s.file_start_ms) for s in result.segments],
        result.dtmf,
        result.sha256,
    )


def _inband(spool: Path) -> list[tuple[str, int, int]]:
    """The finisher's in-band keys of the user's stream."""
    decoded = finisher._decode(SpoolReader(spool))
    return [(d.digit, d.start_ms, d.duration_ms) for d in decoded.inband_keys(0)]


@pytest.mark.parametrize(
    ("listening", "jitter_ms", "loss"),
    [
        ([(0, END_MS)], 30, 0.0),  # the whole call, jitter reorders packets
        ([(0, END_MS)], 60, 0.01),  # more jitter, 1 % loss
        ([(3000, END_MS)], 30, 0.0),  # named late: the first code press only in the spool
        ([(0, 9000), (12000, END_MS)], 20, 0.0),  # off for a while: the 9 between
    ],
)
def test_skipping_what_the_listener_heard_finds_the_same_keys_and_cuts(
    loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    listening: list[tuple[int, int]],
    jitter_ms: int,
    loss: float,
) -> None:
    spool = _record_call(
        loop, tmp_path / "spool", listening=listening, jitter_ms=jitter_ms, loss=loss
    )
    old = _without_listened(spool, tmp_path / "old")
    events = read_lines((spool / "journal.jsonl").read_text().splitlines()).events
    heard = [e for e in events if isinstance(e, InbandListened)]
    assert heard and all(e.stream == 0 and e.detector == DETECTOR_VERSION for e in heard)
    assert len(heard) == len(listening)
    for event, (start, stop) in zip(heard, listening, strict=True):  # within a flush tick
        assert abs(event.from_ms - start) <= 300 and abs(event.to_ms - stop) <= 300

    looked = _gate_frames(monkeypatch)
    skipped = finish(SpoolReader(spool))
    looked_skipping = sum(looked)
    looked.clear()
    whole = finish(SpoolReader(old))
    assert sum(looked) == END_MS // 20  # the old spool: the user's stream, every frame
    # keys every few seconds here, each looked at again 1 s either side: less saved
    # than in a call of minutes with a key or two, but a skip all the same
    assert looked_skipping < 0.85 * END_MS // 20

    assert _summary(skipped) == _summary(whole)
    assert _inband(spool) == _inband(old)
    digits = "".join(d for d, _t, _ms in _inband(old))
    assert digits == "".join(digit for _at, digit in KEYS)
    assert whole.policy is not None and len(whole.policy.code_spans) == 2  # *1 twice


def test_an_old_spool_is_searched_whole_as_before(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """Without ``inband_listened`` (an older recorder), or with another detector's
    stretches, the finisher's keys are those of the whole-stream search."""
    spool = _record_call(loop, tmp_path / "spool", listening=[(0, END_MS)])
    old = _without_listened(spool, tmp_path / "old")
    other = _without_listened(spool, tmp_path / "other")
    with (other / "journal.jsonl").open("a") as journal:
        stretch = InbandListened(t=END_MS, stream=0, from_ms=0, to_ms=END_MS, detector="q24/0")
        journal.write(stretch.to_json() + "\n")
    for reader in (old, other):
        decoded = finisher._decode(SpoolReader(reader))
        audio = decoded.audios[0]
        whole = detect_keys(audio.samples, audio.rate, 0)
        assert decoded.inband_keys(0) == whole
        assert "".join(d.digit for d in whole) == "".join(digit for _at, digit in KEYS)


def test_a_skip_without_a_hint_leaves_the_listened_audio_alone(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """The skip is real: a key the journal does not name inside what was heard is
    the listener's to report (it heard it there), not searched again."""
    spool = _record_call(loop, tmp_path / "spool", listening=[(0, END_MS)])
    journal = spool / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(
        "".join(line for line in lines if not ('"source":"inband"' in line and '"5"' in line))
    )
    digits = "".join(d for d, _t, _ms in _inband(spool))
    assert digits == "".join(digit for _at, digit in KEYS if digit != "5")


def test_the_listener_keeps_what_it_heard_and_where_it_could_not() -> None:
    """Stretches of arrival time: one while packets flow, broken by a wait of more
    than 200 ms, by audio it cannot decode, and at a new sample rate; events and
    comfort noise break nothing."""
    codecs = {0: PCMU, 101: EVENT, 9: G722}
    listener = InbandKeyListener(0, codecs)
    silence = encode_pcmu(np.zeros(160, dtype=np.int16))

    def packet(pt: int, k: int, payload: bytes = silence) -> bytes:
        return bytes(RtpPacket(pt, k, k * 160, 1, payload))

    listener.feed([(k * 20, packet(0, k)) for k in range(50)])  # 0 .. 1000 ms
    listener.feed([(1000 + k * 20, packet(0, 50 + k)) for k in range(10)])  # goes on
    listener.feed([(1200, packet(101, 60, b"\x01\x0a\x00\xa0"))])  # an event: no audio
    listener.feed([(1600 + k * 20, packet(0, 61 + k)) for k in range(5)])  # after 400 ms
    listener.feed([(1700, packet(77, 66)), (1720, packet(0, 67))])  # unknown payload type
    listener.feed([(1740, b"\x00\x01")])  # not RTP
    listener.feed([(1760, packet(0, 68))])
    listener.feed([(1780, packet(9, 69, bytes(160)))])  # G.722: 16 kHz, a new detector
    assert listener.heard == [(0, 1200), (1600, 1700), (1720, 1740), (1760, 1780), (1780, 1800)]
    assert listener.finish() == []
