"""Silent coaching's media over real UDP on 127.0.0.1 (media/conference.py).

Three "phones" (customer, agent, supervisor), each one socket sending its own
tone as G.711 every 20 ms (paced like a phone, by the loop's clock) and
keeping what it receives; a real ``MediaRelay`` between customer and agent, a
``CoachingBridge`` for the supervisor. Who hears whom is read from the tones
in what each phone received. Waits are bounded and wait for packets, never
for a time. Both ways of reading the relay's sockets are run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pytest

from callvault.media.codec import Codec
from callvault.media.codecs import ULAW_TABLE, encode_pcmu
from callvault.media.conference import CoachingBridge
from callvault.media.dtmf import DIGIT_EVENTS, TelephoneEvent
from callvault.media.mixer import CoachMode, Party
from callvault.media.ports import RtpPortPool
from callvault.media.pump import BATCHED
from callvault.media.relay import MediaRelay, Side
from callvault.media.rtp import RtpPacket

HOST = "127.0.0.1"
WAIT = 10.0
N = 160
LEVEL = 6000.0
PCMU = {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}
TONES: dict[Party, float] = {"customer": 500.0, "agent": 1000.0, "supervisor": 1500.0}
SSRC: dict[Party, int] = {"customer": 0xC0C0, "agent": 0xA9E7, "supervisor": 0x5DE5}
CUSTOMER: Side = "a"  # the relay's sides
AGENT: Side = "b"


def tone_frame(party: Party, k: int) -> np.ndarray:
    t = (np.arange(N) + N * k) / 8000.0
    return (np.sin(2 * np.pi * TONES[party] * t) * LEVEL).astype(np.int16)


def levels(payloads: list[bytes]) -> dict[Party, float]:
    pcm = np.concatenate([ULAW_TABLE[np.frombuffer(p, dtype=np.uint8)] for p in payloads])
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) * 2 / len(pcm)
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    return {p: float(spectrum[np.argmin(np.abs(freqs - f))]) for p, f in TONES.items()}


def heard(payloads: list[bytes]) -> set[Party]:
    """The parties whose tone is in ``payloads``; a tone at neither level fails."""
    got = levels(payloads)
    out: set[Party] = set()
    for party, level in got.items():
        if level > 0.5 * LEVEL:
            out.add(party)
        else:
            assert level < 0.05 * LEVEL, got
    return out


class Phone(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[RtpPacket] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's (uvloop's does not subclass asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(RtpPacket.parse(data))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))


@dataclass
class Talker:
    """A phone talking its tone, one G.711 frame per 20 ms."""

    phone: Phone
    party: Party
    port: int
    sent: list[bytes] = field(default_factory=list)
    seq: int = 100
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            payload = encode_pcmu(tone_frame(self.party, k))
            packet = RtpPacket(0, (self.seq + k) & 0xFFFF, 1000 + N * k, SSRC[self.party], payload)
            self.sent.append(payload)
            self.phone.send(bytes(packet), self.port)
            k += 1
            await asyncio.sleep(max(0.0, start + 0.02 * k - loop.time()))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)


async def more(phones: list[Phone], count: int) -> list[int]:
    """Wait until each phone received ``count`` more packets; their marks before."""
    marks = [len(p.got) for p in phones]
    await until(lambda: all(len(p.got) >= m + count for p, m in zip(phones, marks, strict=True)))
    return marks


@pytest.fixture(
    params=[pytest.param(True, id="batched"), pytest.param(False, id="asyncio")]
    if BATCHED
    else [pytest.param(False, id="asyncio")]
)
def batched(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@dataclass
class Call:
    relay: MediaRelay
    pool: RtpPortPool
    phones: dict[Party, Phone]
    talkers: dict[Party, Talker]


@pytest.fixture
async def call(batched: bool) -> AsyncIterator[Call]:
    """Customer and agent talking through a relay; the supervisor's phone idle."""
    loop = asyncio.get_running_loop()
    pool = RtpPortPool(45000, 46998)
    relay = MediaRelay(loop, HOST, pool, batched=batched)
    await relay.open()
    phones: dict[Party, Phone] = {}
    for party in ("customer", "agent", "supervisor"):
        _, phones[party] = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote(CUSTOMER, HOST, phones["customer"].port)
    relay.set_remote(AGENT, HOST, phones["agent"].port)
    relay.set_codecs(CUSTOMER, PCMU)
    relay.set_codecs(AGENT, PCMU)
    talkers: dict[Party, Talker] = {
        "customer": Talker(phones["customer"], "customer", relay.local_port(CUSTOMER)),
        "agent": Talker(phones["agent"], "agent", relay.local_port(AGENT), seq=65500),
    }
    for talker in talkers.values():
        talker.start()
    try:
        yield Call(relay, pool, phones, talkers)
    finally:
        for talker in talkers.values():
            await talker.stop()
        relay.close()
        for phone in phones.values():
            assert phone.transport is not None
            phone.transport.close()


async def join(call: Call, **options: bool) -> tuple[CoachingBridge, Talker]:
    bridge = CoachingBridge(
        asyncio.get_running_loop(), call.relay, AGENT, HOST, call.pool, **options
    )
    port = await bridge.open()
    bridge.set_supervisor(HOST, call.phones["supervisor"].port, PCMU)
    talker = Talker(call.phones["supervisor"], "supervisor", port)
    talker.start()
    return bridge, talker


def assert_one_continuous_stream(packets: list[RtpPacket]) -> None:
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert (after.sequence - before.sequence) & 0xFFFF == 1, (before, after)
        step = (after.timestamp - before.timestamp) & 0xFFFFFFFF
        assert 0 < step <= 20 * N, (before, after)


async def test_each_mode_lets_each_party_hear_exactly_whom_it_should(call: Call) -> None:
    customer, agent, supervisor = (call.phones[p] for p in ("customer", "agent", "supervisor"))
    await more([customer, agent], 5)  # plain relaying first
    bridge, sup_talker = await join(call)
    expected: dict[CoachMode, dict[Party, set[Party]]] = {
        "silent": {"customer": {"agent"}, "agent": {"customer"}},
        "customer": {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"}},
        "whisper": {"customer": {"agent"}, "agent": {"customer", "supervisor"}},
        "conference": {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"}},
    }
    try:
        await more([customer, agent, supervisor], 6)  # the jitter buffers fill
        for mode in ("silent", "customer", "whisper", "conference", "silent"):
            bridge.set_mode(mode)
            phones = [customer, agent, supervisor]
            marks = await more(phones, 16)
            # from 4 frames after the change: the ramp and the buffers are behind us
            window = {
                p: phone.got[m + 4 : m + 16]
                for p, phone, m in zip(
                    ("customer", "agent", "supervisor"), phones, marks, strict=True
                )
            }
            got = {p: heard([x.payload for x in packets]) for p, packets in window.items()}
            assert got["customer"] == expected[mode]["customer"], (mode, got)
            assert got["agent"] == expected[mode]["agent"], (mode, got)
            assert got["supervisor"] == {"customer", "agent"}, (mode, got)  # never itself
        assert bridge.stats()["undecodable"] == 0
    finally:
        await sup_talker.stop()
        bridge.close()
    marks = await more([customer, agent], 8)
    # plain relaying again: what the other phone sent, bit-exact
    assert {p.payload for p in customer.got[marks[0] + 2 :]} <= set(call.talkers["agent"].sent)
    assert {p.payload for p in agent.got[marks[1] + 2 :]} <= set(call.talkers["customer"].sent)
    # one stream before, during and after the coaching, for both phones
    assert_one_continuous_stream(customer.got)
    assert_one_continuous_stream(agent.got)
    assert customer.got[0].ssrc == SSRC["agent"] and agent.got[0].ssrc == SSRC["customer"]
    assert all(p.payload_type == 0 for p in customer.got + agent.got)


async def test_the_supervisor_s_digits_are_reported_and_reach_nobody(call: Call) -> None:
    customer, agent, supervisor = (call.phones[p] for p in ("customer", "agent", "supervisor"))
    bridge, sup_talker = await join(call)
    digits: list[str] = []
    bridge.on_digit = digits.append
    try:
        await more([supervisor], 3)
        for n, (duration, end) in enumerate(
            [(160, False), (320, False), (480, True)] * 1
            + [
                (480, True),
                (480, True),
            ]
        ):
            event = TelephoneEvent(DIGIT_EVENTS["2"], end, 10, duration)
            packet = RtpPacket(101, 40000 + n, 777_000, SSRC["supervisor"], bytes(event))
            supervisor.send(bytes(packet), bridge.port)
        await until(lambda: digits == ["2"])
        await more([customer, agent], 5)
    finally:
        await sup_talker.stop()
        bridge.close()
    assert digits == ["2"]  # once, for the three end packets
    assert all(p.payload_type == 0 for p in customer.got + agent.got)  # no event forwarded
    assert bridge.stats()["digits"] == 1


async def test_a_stranger_cannot_talk_to_the_supervisor_s_port(call: Call) -> None:
    bridge, sup_talker = await join(call)
    _, stranger = await asyncio.get_running_loop().create_datagram_endpoint(
        Phone, local_addr=(HOST, 0)
    )
    try:
        await until(lambda: bridge.stats()["from_supervisor"] >= 2)  # latched
        stranger.send(bytes(RtpPacket(0, 1, 160, 0x6666, b"\x00" * N)), bridge.port)
        await until(lambda: bridge.stats()["supervisor_foreign"] == 1)
    finally:
        await sup_talker.stop()
        bridge.close()
        assert stranger.transport is not None
        stranger.transport.close()


async def test_close_gives_the_supervisor_s_port_back(call: Call) -> None:
    in_use = call.pool.in_use
    bridge = CoachingBridge(asyncio.get_running_loop(), call.relay, AGENT, HOST, call.pool)
    await bridge.open()
    assert call.pool.in_use == in_use + 1
    bridge.close()
    bridge.close()  # twice is harmless
    await until(lambda: call.pool.in_use == in_use)


@pytest.mark.parametrize("in_recording", [False, True], ids=["not-recorded", "recorded"])
async def test_the_recording_tap_and_the_supervisor(call: Call, in_recording: bool) -> None:
    """The tap sees each party's own packets; with the tenant's option the
    agent's recorded packets carry the supervisor's voice while the call hears it."""
    customer, agent = call.phones["customer"], call.phones["agent"]
    taps: dict[Side, list[bytes]] = {CUSTOMER: [], AGENT: []}
    call.relay.set_tap(CUSTOMER, lambda data, addr: taps[CUSTOMER].append(data))
    call.relay.set_tap(AGENT, lambda data, addr: taps[AGENT].append(data))
    bridge, sup_talker = await join(call, supervisor_in_recording=in_recording)
    try:
        await more([customer, agent], 6)
        silent_mark = len(taps[AGENT])
        await more([customer, agent], 10)
        silent = taps[AGENT][silent_mark:]
        bridge.set_mode("whisper")
        await more([customer, agent], 6)
        whisper_mark = len(taps[AGENT])
        await more([customer, agent], 12)
        whisper = taps[AGENT][whisper_mark:]
    finally:
        await sup_talker.stop()
        bridge.close()
    payload = [RtpPacket.parse(d).payload for d in whisper]
    assert heard([RtpPacket.parse(d).payload for d in silent]) == {"agent"}
    assert heard(payload) == ({"agent", "supervisor"} if in_recording else {"agent"})
    if not in_recording:  # untouched: exactly what the agent sent
        assert set(payload) <= set(call.talkers["agent"].sent)
    assert {RtpPacket.parse(d).ssrc for d in taps[AGENT]} == {SSRC["agent"]}
    customer_tapped = [RtpPacket.parse(d).payload for d in taps[CUSTOMER]]
    assert set(customer_tapped) <= set(call.talkers["customer"].sent)
    assert bridge.stats()["recorded_with_supervisor"] > 0 if in_recording else True


async def test_a_prompt_and_the_agent_s_keys_during_coaching_keep_one_stream(call: Call) -> None:
    """A prompt to the customer (the relay's ``play``) is heard instead of the
    mix, and the agent's RFC 4733 keys still reach the customer, numbered into
    the same stream as the mixed frames around them."""
    customer = call.phones["customer"]
    bridge, sup_talker = await join(call)
    done = asyncio.Event()
    try:
        await more([customer], 4)
        prompt = (np.sin(2 * np.pi * 2000 * np.arange(5 * N) / 8000) * LEVEL).astype("<i2")
        call.relay.play(CUSTOMER, prompt.tobytes(), on_done=done.set)
        async with asyncio.timeout(WAIT):
            await done.wait()
        agent = call.phones["agent"]
        for n, (duration, end) in enumerate([(160, False), (320, False), (480, True)]):
            event = TelephoneEvent(DIGIT_EVENTS["5"], end, 10, duration)
            agent.send(
                bytes(RtpPacket(101, 30000 + n, 555_000, SSRC["agent"], bytes(event))),
                call.relay.local_port(AGENT),
            )
            await more([customer], 2)  # mixed frames between the event's packets
        await more([customer], 4)
    finally:
        await sup_talker.stop()
        bridge.close()
    await more([customer], 4)
    assert sum(p.payload_type == 101 for p in customer.got) == 3
    assert len({p.ssrc for p in customer.got}) == 1
    sequences = [p.sequence for p in customer.got]
    assert len(set(sequences)) == len(sequences)  # events took numbers of their own
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequences))
    audio = [p.timestamp for p in customer.got if p.payload_type == 0]
    assert all(0 < (b - a) & 0xFFFFFFFF <= 20 * N for a, b in itertools.pairwise(audio))
