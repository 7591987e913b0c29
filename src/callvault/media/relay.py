"""The B2BUA's media relay: RTP between a call's two legs, tapped for recording.

Issue 10 (SPEC section 2, mode 2; section 3, announcements). callvault
anchors a bridged call's media: one UDP socket faces each leg ("a": the
party whose INVITE came in, "b": the party we called) and every packet one
party sends is forwarded to the other, codec-transparent, RFC 4733
telephone events included. On the way:

* source latching (RTP injection): a side's packets are accepted only from
  the host its SDP names, from the first port seen (symmetric RTP, RFC 4961:
  we then send to that address); anything else is dropped and counted. On
  the batched path the latched socket is connected to that address
  (``_Leg.settle``): the kernel drops the rest unread and uncounted, and
  sends to it on the socket's cached route;
* the tap: every accepted packet goes, untouched, to the recording's
  receiver before it is forwarded;
* prompts (``play``): the party hears a prompt instead of the other side,
  paced at 20 ms by the relay and numbered so that its phone sees one
  continuous stream (``media/announce.py``);
* short-code hiding (``hide_code``): the user's RFC 4733 digits of the
  short code do not reach the other party (``media/code_filter.py``);
* mixing (``set_mixing``, issue 11's silent coaching): each side's audio
  goes to a hook instead of the other side, and the hook sends each side its
  mix (``send_mixed``), numbered as one stream with what came before and
  after (``media/conference.py``); ``set_tap_filter`` lets the recording see
  a side's packets with another payload (the supervisor in the recording).

The per-packet path of an untouched call (no prompt ever, no code hidden)
is a latch check, the tap and the forwarding; everything else takes the slow
path, which parses the header.

Two ways to read the sockets, the same behaviour (``BATCHED`` says which one
is in use):

* batched (the native ``media/_batchudp.c``, built with the package): each
  leg's socket joins the loop's native pump (``media/pump.py``). A leg not
  yet configured there is read here (``_Leg.readable``): one C call receives
  a batch (recvmmsg) and forwards the packets from the latched source with
  one sendmmsg straight from the receive buffers; when the tap is a
  recording receiver in its common case (``RtpReceiver.fast_tap``) it spools
  them too, returning only the counts and the RFC 4733 packets
  (``RtpReceiver.absorb``). It then configures the pump with the same
  state, and the pump serves the next batches in C with no Python at all,
  until the state changes (``_Leg.invalidate``, called before every change:
  latch, address, tap, prompt, hidden code, mixing, the receiver's own).
  Packets from anyone else, and every packet of a leg on the slow path, go
  through the per-packet Python path below. A state change made by the tap
  (a prompt started on a DTMF key) applies from the next batch;
* asyncio (where the extension could not be built): a ``DatagramProtocol``
  per leg, one recvfrom and one sendto per packet.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np

from callvault.media.announce import PromptPacer, StreamRewriter
from callvault.media.code_filter import CodeFilter
from callvault.media.codec import Codec
from callvault.media.codecs import STATIC_PAYLOAD_TYPES, encode_pcma, encode_pcmu
from callvault.media.ports import RtpPortPool, bind_from_pool
from callvault.media.pump import BATCHED, Engine, drain, engine_for
from callvault.media.receiver import RtpReceiver

if BATCHED:
    from callvault.media import _batchudp

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
Address = tuple[Any, ...]
Tap = Callable[[bytes, Address], None]
TapFilter = Callable[[bytes], bytes]
MixHook = Callable[["Side", bytes, int], None]

_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # RFC 3264 section 8.4: hold
CONNECT_LATCHED = True
"""Whether the batched path connects a leg's socket to its latched source
(``_Leg.settle``); False only to measure the difference (bench/relay.py
``--no-connect``)."""
READ_ERRORS = 8
"""Socket errors in a row one ``_Leg.readable`` reads past (each reported to one
read and cleared: the ICMP errors of a connected leg, see there) before it
gives up with 0 packets; bounded, so an error that keeps coming cannot hold
the loop (or ``drain``) there."""
_NUMBERS = struct.Struct("!HII")  # seq, timestamp, ssrc at offset 2
_HEADER = struct.Struct("!BBHII")
_G711: dict[str, Callable[[Any], bytes]] = {"pcmu": encode_pcmu, "pcma": encode_pcma}


def other(side: Side) -> Side:
    return "b" if side == "a" else "a"


def _nowhere(data: bytes | bytearray, addr: Address) -> None:
    """The send function of a leg whose socket is not open (or closed)."""


def _is_rtcp(data: bytes) -> bool:
    return 200 <= data[1] <= 204  # SR/RR/SDES/BYE/APP multiplexed (RFC 5761)


class _Leg(asyncio.DatagramProtocol):
    """The socket facing one side: receives from that party, sends to it."""

    def __init__(self, relay: MediaRelay, side: Side) -> None:
        self.relay = relay
        self.side = side
        self.peer: _Leg = self  # set by MediaRelay
        self.transport: asyncio.DatagramTransport | None = None  # the asyncio path
        self.sock: socket.socket | None = None  # the batched path
        self.fd = -1  # the batched path's socket, while open
        self.is_open = False
        # the transport's (or the socket's, batched), once open
        self.sendto: Callable[[bytes | bytearray, Address], None] = _nowhere
        self.port = 0
        self.host: str | None = None  # packets are accepted from this host only
        self.latched: Address | None = None
        self.sdp_port: int | None = None  # the port its SDP names
        self.dest: Address | None = None  # where packets to this side go (None: hold)
        self.tap: Tap | None = None  # what is called: the user's tap, filtered
        self.user_tap: Tap | None = None
        # the tap is this receiver's datagram_received, unfiltered: the batched
        # path may let the native code spool for it (RtpReceiver.fast_tap)
        self.recorder: RtpReceiver | None = None
        self.tap_filter: TapFilter | None = None
        self.mixing: Callable[[bytes, int], None] | None = None  # audio FROM this side
        self.mixed = 0  # mixed frames sent to this side
        self._last: bytes | None = None  # the last packet received from this side
        self.engine: Engine | None = None  # the batched path's pump, while attached
        # the batched path connects its socket to the latched source (``settle``)
        self.connectable = False
        self.connected: Address | None = None
        # False while packets from this side need more than a sendto: a code is
        # hidden on this side, or the peer hears (or heard) a prompt.
        self.fast = True
        self.codecs: dict[int, Codec] = {}
        self.filter: CodeFilter | None = None  # on packets FROM this side
        self.rewriter = StreamRewriter()  # on packets TO this side
        self.pacer = PromptPacer()  # prompts TO this side
        self.out_pt = 0  # the payload type of prompts to this side
        self.play_timer: asyncio.TimerHandle | None = None
        self.filter_timer: asyncio.TimerHandle | None = None
        self.relayed = 0  # packets from this side forwarded
        self.foreign = 0
        self.on_hold = 0  # packets to this side not sent: it is on hold
        self.muted = 0  # audio to this side not sent: a prompt plays
        self.skipped_prompts = 0
        self.send_errors = 0
        self.hidden_before = 0  # digits hidden by filters replaced since
        self.released_before = 0

    # -- asyncio.DatagramProtocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.sendto = self.transport.sendto
        self.is_open = True

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if addr != self.latched and not self._accept(addr):
            return
        tap = self.tap
        if tap is not None:
            tap(data, addr)
        self._last = data
        peer = self.peer
        if not self.fast:
            self.relay._forward_slow(self, peer, data)
            return
        dest = peer.dest
        if dest is not None:
            peer.sendto(data, dest)
            self.relayed += 1
        else:
            peer.on_hold += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a phone that went away: not ours to fix
        self.send_errors += 1
        log.debug("relay leg %s: socket error %s", self.side, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        # the socket is closed only now: a port given back earlier could be
        # drawn, fail to bind, and be lost to the pool
        self.transport = None
        self.sendto = _nowhere
        self.is_open = False
        self.relay._release(self)

    # -- the batched path --

    @property
    def last(self) -> bytes | None:
        """The last packet received from this side."""
        self.collect()
        return self._last

    def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        # connect() on a socket bound to the wildcard would also fix its local
        # address: only a socket bound to one address is connected
        self.connectable = CONNECT_LATCHED and sock.getsockname()[0] not in _UNSPECIFIED
        self.sendto = self._sock_sendto
        self.is_open = True
        self.engine = engine_for(loop)
        self.engine.add(self)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None:
            if self.engine is not None:
                self.engine.remove(self)  # collects what the pump summed
                self.engine = None
            self.sock.close()  # at once: the port can go back now
            self.sock = None
        self.fd = -1
        self.sendto = _nowhere
        self.is_open = False
        self.relay._release(self)

    def _sock_sendto(self, data: bytes | bytearray, addr: Address) -> None:
        try:
            cast(socket.socket, self.sock).sendto(data, addr)
        except OSError as exc:  # a full send buffer drops the packet, as RTP may
            self.error_received(exc)

    # -- the pump's part --

    def collect(self) -> None:
        """The pump's sums for this socket reach the counters (and ``last``)."""
        if self.engine is not None:
            self.absorb(self.engine.pump.collect(self.fd))

    def absorb(self, sums: _batchudp.Sums | None) -> None:
        """What the pump did with this side's packets since it last said."""
        if sums is None:
            return
        _fast, sent, errors, held, counts, last = sums
        if last is not None:
            self._last = last
        self.relayed += sent
        self.peer.send_errors += errors
        self.peer.on_hold += held
        if self.recorder is not None and counts[0] + counts[2] + counts[3]:
            self.recorder.absorb(counts, [], 0)

    def invalidate(self) -> None:
        """This side's state changes: the pump hands its socket back to Python
        (which reads the next batch and configures the pump again) after its
        sums are collected, so they count under the state they were made in."""
        if self.engine is not None:
            self.collect()
            self.engine.pump.unconfigure(self.fd)

    def readable(self) -> int:
        """The socket has datagrams: one batch is received, the packets from the
        latched source forwarded in C while this side is on the fast path (and
        spooled in C when the tap is a recording receiver in its common case).
        Then the pump is told to serve the next batches itself, the same way,
        until the state changes (``invalidate``). Returns the packets read.

        A socket error is reported to one read and then cleared: on a connected
        socket an ICMP port unreachable (the party's port closed for a while:
        a phone restarting its media, or gone after its BYE) comes as
        ECONNREFUSED before the packets queued behind it, and another may
        have come by the next read (the replies to several packets relayed to
        a closed port, late over a network). So the socket is read again while
        errors come, up to ``READ_ERRORS`` in a row: 0 is returned only for a
        socket that has nothing (or still errors), where ``drain`` stops. A
        send to this side refused for such an error counts in its
        ``send_errors``."""
        if self.fd < 0:
            return 0  # closed by what an earlier socket of the same run did
        for _ in range(READ_ERRORS):
            try:
                fast, rest = self._receive()
                break
            except OSError as exc:
                # not counted in send_errors: the send it answers went out (and
                # counts as relayed), as where the pump reads the socket
                log.debug("relay leg %s: socket error %s", self.side, exc)
        else:
            log.warning("relay leg %s: %d socket errors in a row, not read", self.side, READ_ERRORS)
            return 0
        for data, addr in rest:
            self.datagram_received(data, addr)
        return fast + len(rest)

    def _receive(self) -> tuple[int, list[tuple[bytes, Address]]]:
        """One batch: relayed (and spooled) in C where it can be; returns the
        packets handled so and the rest, for ``datagram_received``."""
        latched = self.latched
        if not self.fast or latched is None:
            return 0, _batchudp.recv_batch(self.fd)
        try:
            return self._relay(latched)
        except ValueError:  # an address that is a name, not a number: per packet
            return 0, _batchudp.recv_batch(self.fd)

    def _relay(self, latched: Address) -> tuple[int, list[tuple[bytes, Address]]]:
        engine = self.engine
        peer = self.peer
        dest = peer.dest
        out = peer.fd if dest is not None else -1
        recorder = self.recorder
        spool = recorder.fast_tap(latched) if recorder is not None else None
        if spool is not None:
            records, arrival_ms, te_map = spool
            fast, sent, errors, last, events, counts, rest = _batchudp.relay_record(
                self.fd, latched, out, dest, records, arrival_ms, te_map
            )
            if engine is not None:
                offset = arrival_ms - engine.now_ms()
                engine.pump.configure(self.fd, latched, out, dest, records, offset, te_map)
            if fast:
                self._last = last
                if out >= 0:
                    self.relayed += sent
                    peer.send_errors += errors
                else:
                    peer.on_hold += fast
                cast(RtpReceiver, recorder).absorb(counts, events, arrival_ms)
            return fast, rest
        tap = self.tap
        fast, sent, errors, packets, rest = _batchudp.relay(
            self.fd, latched, out, dest, tap is not None
        )
        if engine is not None and tap is None:
            engine.pump.configure(self.fd, latched, out, dest, None, 0, None)
        if fast:
            self._last = packets[-1]
            if out >= 0:
                self.relayed += sent
                peer.send_errors += errors
            else:
                peer.on_hold += fast
            if tap is not None:
                for data in packets:
                    tap(data, latched)
        return fast, rest

    # -- latching --

    def settle(self) -> None:
        """The batched path lets the kernel enforce the latch: the socket is
        connected to the latched source (``_batchudp.set_peer``) while there is
        one, and disconnected when the latch is dropped. Connected, the kernel
        queues only the latched source's packets (anything else is dropped
        before it is read, so ``foreign`` no longer counts packets from
        elsewhere after the latch: the kernel drops them silently and answers
        them with ICMP port unreachable) and the peer's relaying sends to it
        with no address, on the socket's cached route instead of a route
        lookup per packet. This side's destination is then the latch or None
        (hold), so the socket's peer is where its packets go too. Called after
        every change of ``latched`` (and of ``dest`` with it), with the pump's
        slots already invalidated. ``connected`` is always what the kernel
        has: a connect that fails changes nothing there."""
        want = self.latched if self.connectable else None
        if want == self.connected or self.fd < 0:
            return
        try:
            _batchudp.set_peer(self.fd, want)
        except (OSError, ValueError) as exc:
            if want is None:
                self._not_disconnected(exc)
            else:  # not connected: the latch stays ours to check
                log.warning("relay leg %s: socket not connected to %s: %s", self.side, want, exc)
            return
        self.connected = want

    def _not_disconnected(self, exc: Exception) -> None:
        """The latch is dropped (a re-INVITE's new address) but the socket could
        not be disconnected: still connected to the old latch, the kernel would
        drop every packet of the party's new address unread (one-way audio,
        unrecorded). It is connected to the address the party's SDP names
        instead (where symmetric RTP comes from: the next packet from it
        latches there, with the connection already right); where there is
        none (hold) or that fails too, it stays connected where it was."""
        old, dest = self.connected, self.dest
        if dest is not None:
            try:
                _batchudp.set_peer(self.fd, dest)
            except (OSError, ValueError) as again:
                exc = again
            else:
                self.connected = dest
                log.error(
                    "relay leg %s: socket not disconnected from %s (%s): connected to %s,"
                    " the address its SDP names",
                    self.side,
                    old,
                    exc,
                    dest,
                )
                return
        log.error(
            "relay leg %s: socket still connected to %s (%s): packets from elsewhere are dropped",
            self.side,
            old,
            exc,
        )

    def _accept(self, addr: Address) -> bool:
        if self.host is None or addr[0] != self.host or self.latched is not None:
            if self.foreign & 0x3FF == 0:  # the first, then 1 in 1024
                log.info(
                    "relay leg %s: RTP from %s:%s dropped (expecting %s, latched %s)",
                    self.side,
                    addr[0],
                    addr[1],
                    self.host,
                    self.latched,
                )
            self.foreign += 1
            return False
        self.relay._invalidate()
        self.latched = addr
        if self.dest is not None:
            self.dest = addr  # symmetric RTP: answer where it comes from
        self.settle()
        log.debug("relay leg %s: latched to %s:%s", self.side, addr[0], addr[1])
        return True


class MediaRelay:
    """One bridged call's media: two sockets, relaying, prompts, code hiding."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        ports: RtpPortPool,
        *,
        batched: bool = BATCHED,
    ) -> None:
        if batched and not BATCHED:
            raise RuntimeError("the batched relay needs callvault.media._batchudp")
        self._loop = loop
        self._batched = batched
        self.host = host
        self._ports = ports
        a, b = _Leg(self, "a"), _Leg(self, "b")
        a.peer, b.peer = b, a
        self._legs: dict[Side, _Leg] = {"a": a, "b": b}
        self._te_pts: frozenset[int] = frozenset()
        self._closed = False
        self._mixing = False

    # -- set-up --

    async def open(self) -> None:
        """Bind one UDP socket per side on pool ports; ports that cannot be bound
        (another process holds them) are skipped and kept out of the pool.

        Raises ``PortsExhausted`` when no port can be had."""
        try:
            for leg in self._legs.values():
                await self._bind(leg)
        except BaseException:
            self.close()
            raise

    async def _bind(self, leg: _Leg) -> None:
        port, sock = bind_from_pool(self._ports, self.host)  # raises PortsExhausted
        if self._batched:
            leg.port = port
            leg.attach(self._loop, sock)
            return
        try:
            await self._loop.create_datagram_endpoint(lambda: leg, sock=sock)
        except BaseException:
            sock.close()
            self._ports.release(port)
            raise
        leg.port = port

    def local_port(self, side: Side) -> int:
        """The port facing ``side`` (what the SDP we send to ``side`` names)."""
        return self._legs[side].port

    def set_remote(self, side: Side, host: str | None, port: int | None) -> None:
        """Where ``side`` receives, from the SDP it sent.

        An unspecified host (None, 0.0.0.0) or port 0 is hold: nothing is sent
        to it. A changed host drops the latch; on hold the host packets are
        accepted from stays the one before (a party on hold may resume)."""
        self._invalidate()
        leg = self._legs[side]
        unspecified = host is None or host in _UNSPECIFIED
        # another host, or another port on it (a transfer to a phone on the same
        # host): the party changed, so the next packet from that host latches again
        moved = host != leg.host or (bool(port) and leg.sdp_port not in (None, port))
        relatch = not unspecified and moved
        if relatch:
            if leg.latched is not None:
                log.info("relay leg %s: moves to %s:%s", side, host, port)
            leg.latched = None
            leg.host = host
        if not unspecified and port:
            leg.sdp_port = port
        if unspecified or not port:
            leg.dest = None
        else:
            leg.dest = leg.latched if leg.latched is not None else (host, port)
        if relatch:
            leg.settle()

    def set_tap(self, side: Side, tap: Tap | None) -> None:
        """``tap(packet, source)`` sees every accepted packet from ``side``,
        before it is forwarded or rewritten."""
        leg = self._legs[side]
        leg.user_tap = tap
        self._compose_tap(leg)

    def set_tap_filter(self, side: Side, tap_filter: TapFilter | None) -> None:
        """The tap of ``side`` sees ``tap_filter(packet)`` instead of the packet
        (the relayed packet is not changed); None: the packet itself again."""
        leg = self._legs[side]
        leg.tap_filter = tap_filter
        self._compose_tap(leg)

    def _compose_tap(self, leg: _Leg) -> None:
        self._invalidate()
        tap, tap_filter = leg.user_tap, leg.tap_filter
        owner = getattr(tap, "__self__", None)
        plain = getattr(tap, "__func__", None) is RtpReceiver.datagram_received
        if leg.recorder is not None:
            leg.recorder.fast_changed = None
        leg.recorder = owner if plain and tap_filter is None else None
        if leg.recorder is not None:
            # what fast_tap answers changes (latch, SRTP, a listener): the pump
            # must ask again
            leg.recorder.fast_changed = self._invalidate
        if tap is None or tap_filter is None:
            leg.tap = tap
            return

        def filtered(data: bytes, addr: Address) -> None:
            tap(tap_filter(data), addr)

        leg.tap = filtered

    def set_codecs(self, side: Side, codecs: dict[int, Codec]) -> None:
        """The payload types ``side`` receives (its SDP), for ``play``."""
        self._legs[side].codecs = dict(codecs)
        self._te_pts = frozenset(
            pt
            for leg in self._legs.values()
            for pt, codec in leg.codecs.items()
            if codec.name.lower() == "telephone-event"
        )

    def hide_code(self, side: Side, code: str | None) -> None:
        """Keep the RFC 4733 digits of ``code`` sent by ``side`` from the other
        party (None: forward everything; what is held is released)."""
        leg = self._legs[side]
        old = leg.filter
        leg.filter = CodeFilter(code) if code else None
        if old is not None:
            leg.hidden_before += old.hidden_digits
            leg.released_before += old.released_packets
            self._send_events(leg, old.due(1 << 62))  # whatever it held goes on
        self._refresh()

    # -- prompts --

    def play(self, to: Side, pcm: bytes, *, on_done: Callable[[], None] | None = None) -> None:
        """``to`` hears ``pcm`` (8 kHz mono s16le) instead of the other side,
        then the relayed audio again; prompts queue one after another."""
        leg = self._legs[to]
        pt = self._g711_pt(to)
        if pt is None or self._closed:
            leg.skipped_prompts += 1
            log.info("prompt to leg %s skipped: the stream is not G.711", to)
            if on_done is not None:
                self._loop.call_soon(on_done)
            return
        now = self._now_ms()
        if not leg.pacer.active:
            leg.out_pt = pt
            self._take_numbering(leg, now)
        leg.pacer.add(pcm, now, on_done)
        self._refresh()
        self._schedule_play(leg)

    def _take_numbering(self, leg: _Leg, now: int) -> None:
        """From now on the relay numbers what ``leg`` receives, continuing the
        stream it has received so far."""
        last = leg.peer.last
        fresh = not leg.rewriter.rewriting and last is not None
        if fresh and last is not None and len(last) >= 12 and not _is_rtcp(last):
            seq, ts, ssrc = _NUMBERS.unpack_from(last, 2)
            if (last[1] & 0x7F) in self._te_pts and len(last) >= 16:
                ts += int.from_bytes(last[14:16], "big")  # event start + duration
            leg.rewriter.seen(ssrc, seq, ts, now)
        leg.rewriter.start_prompt()

    # -- mixing (silent coaching) --

    def set_mixing(self, hook: MixHook | None) -> None:
        """While set, ``hook(side, packet, now_ms)`` gets every audio packet from
        either side instead of the other side (RTCP and RFC 4733 events are
        still relayed, numbered into the stream); the hook sends each side its
        audio with ``send_mixed``. None: plain relaying again, the numbers
        going on from the mixed stream's."""
        if hook is not None and self._closed:
            return
        now = self._now_ms()
        self._mixing = hook is not None
        for leg in self._legs.values():
            if hook is not None:
                side = leg.side
                leg.mixing = lambda data, at, side=side: hook(side, data, at)
                if not leg.pacer.active:
                    self._take_numbering(leg, now)
            else:
                leg.mixing = None
                if not leg.pacer.active and leg.rewriter.generating:
                    leg.rewriter.end_prompt()
        self._refresh()

    def send_mixed(self, to: Side, pcm: Any, now_ms: int, *, first: bool = False) -> bool:
        """Send ``to`` one frame of its mix (int16 samples), G.711 in the
        payload type it has been receiving; False when not sent (a prompt
        plays, on hold, not G.711, closed). ``first``: the first frame after a
        pause in sending (the timestamp jumps by the real time passed)."""
        leg = self._legs[to]
        if self._closed or leg.pacer.active:
            return False  # the prompt is heard instead
        pt = self._g711_pt(to)
        name = self._g711_name(leg, pt) if pt is not None else None
        ssrc, seq, ts = leg.rewriter.generate(now_ms, first)
        if pt is None or name is None:
            return False
        if leg.dest is None or not leg.is_open:
            leg.on_hold += 1
            return False
        second = (0x80 if first else 0) | pt
        leg.sendto(_HEADER.pack(0x80, second, seq, ts, ssrc) + _G711[name](pcm), leg.dest)
        leg.mixed += 1
        return True

    def audio_codec(self, side: Side, pt: int) -> str | None:
        """``pcmu``/``pcma`` when payload type ``pt`` of ``side``'s SDP (or the
        static table) is G.711, else None."""
        return self._g711_name(self._legs[side], pt)

    def _g711_pt(self, to: Side) -> int | None:
        """The payload type prompts to ``to`` are sent in, if it is G.711."""
        leg = self._legs[to]
        last = leg.peer.last
        if last is not None and len(last) >= 12 and not _is_rtcp(last):
            pt = last[1] & 0x7F
            if pt not in self._te_pts:
                return pt if self._g711_name(leg, pt) else None
        for pt in leg.codecs:
            if self._g711_name(leg, pt):
                return pt
        return None

    @staticmethod
    def _g711_name(leg: _Leg, pt: int) -> str | None:
        codec = leg.codecs.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        name = codec.name.lower() if codec is not None else ""
        return name if name in _G711 else None

    def _schedule_play(self, leg: _Leg) -> None:
        due = leg.pacer.next_due_ms
        if leg.play_timer is not None or due is None or self._closed:
            return
        leg.play_timer = self._loop.call_at(due / 1000.0, self._play_tick, leg)

    def _play_tick(self, leg: _Leg) -> None:
        leg.play_timer = None
        now = self._now_ms()
        frames, done = leg.pacer.due(now)
        name = self._g711_name(leg, leg.out_pt)
        for frame in frames:
            ssrc, seq, ts = leg.rewriter.generate(now, frame.first)
            if name is None or leg.dest is None or not leg.is_open:
                continue  # on hold, or the codec changed under the prompt: paced, not heard
            payload = _G711[name](np.frombuffer(frame.pcm, dtype="<i2"))
            second = (0x80 if frame.first else 0) | leg.out_pt
            leg.sendto(_HEADER.pack(0x80, second, seq, ts, ssrc) + payload, leg.dest)
        if not leg.pacer.active:
            if not self._mixing:  # the mixer goes on numbering this stream
                leg.rewriter.end_prompt()
            self._refresh()
        for callback in done:
            try:
                callback()
            except Exception:
                log.exception("prompt callback failed")
        self._schedule_play(leg)

    # -- the slow path --

    def _invalidate(self) -> None:
        """A leg's state changes: both sockets go back to Python for a batch."""
        for leg in self._legs.values():
            leg.invalidate()

    def collect(self) -> None:
        """The counters (the relay's, the recording receivers') brought up to
        date with what the native pump did (it reports every ``COLLECT_S``)."""
        for leg in self._legs.values():
            leg.collect()

    def drain(self) -> None:
        """Relay (and record) what the kernel still holds for either side
        (``pump.drain``), then ``collect``."""
        for leg in self._legs.values():
            if leg.engine is not None:
                leg.invalidate()  # read here, not by the pump
                drain(leg)
        self.collect()

    def _refresh(self) -> None:
        self._invalidate()
        for leg in self._legs.values():
            peer = leg.peer
            leg.fast = (
                leg.filter is None
                and leg.mixing is None
                and not peer.rewriter.rewriting
                and not peer.pacer.active
            )

    def _forward_slow(self, src: _Leg, dst: _Leg, data: bytes) -> None:
        if len(data) < 12 or _is_rtcp(data):
            self._send(src, dst, data)  # not ours to number
            return
        now = self._now_ms()
        if (data[1] & 0x7F) in self._te_pts:
            if src.filter is not None:
                self._send_events(src, src.filter.feed(data, now), now)
                self._schedule_filter(src)
            else:
                self._send_numbered(src, dst, data, now, audio=False)
            return
        if src.mixing is not None:
            src.mixing(data, now)  # the mixer sends each side its mix
            return
        if dst.pacer.active:
            dst.muted += 1  # the prompt is heard instead (the tap has it)
            return
        self._send_numbered(src, dst, data, now, audio=True)

    def _send_events(self, src: _Leg, packets: list[bytes], now: int | None = None) -> None:
        if packets:
            now = self._now_ms() if now is None else now
            for packet in packets:
                self._send_numbered(src, src.peer, packet, now, audio=False)

    def _send_numbered(self, src: _Leg, dst: _Leg, data: bytes, now: int, *, audio: bool) -> None:
        rewriter = dst.rewriter
        if not rewriter.rewriting:
            self._send(src, dst, data)
            return
        seq, ts, ssrc = _NUMBERS.unpack_from(data, 2)
        out_seq, out_ts = rewriter.relay(ssrc, seq, ts, now, audio=audio)
        packet = bytearray(data)
        _NUMBERS.pack_into(packet, 2, out_seq, out_ts, rewriter.ssrc)
        self._send(src, dst, packet)

    def _send(self, src: _Leg, dst: _Leg, data: bytes | bytearray) -> None:
        if dst.dest is None or not dst.is_open:
            dst.on_hold += 1
            return
        dst.sendto(data, dst.dest)
        src.relayed += 1

    def _schedule_filter(self, leg: _Leg) -> None:
        if leg.filter_timer is not None:
            leg.filter_timer.cancel()
            leg.filter_timer = None
        deadline = leg.filter.deadline_ms if leg.filter is not None else None
        if deadline is not None and not self._closed:
            leg.filter_timer = self._loop.call_at(deadline / 1000.0, self._filter_due, leg)

    def _filter_due(self, leg: _Leg) -> None:
        leg.filter_timer = None
        if leg.filter is not None:
            self._send_events(leg, leg.filter.due(self._now_ms()))
            self._schedule_filter(leg)

    def _now_ms(self) -> int:
        # ceil: a timer set for t ms may fire a fraction of a ms early
        return -int(-self._loop.time() * 1000 // 1)

    # -- reporting, tear-down --

    def stats(self) -> dict[str, int]:
        self.collect()
        a, b = self._legs["a"], self._legs["b"]
        legs = (a, b)
        return {
            "relayed_a_to_b": a.relayed,
            "relayed_b_to_a": b.relayed,
            "foreign": a.foreign + b.foreign,
            "played_frames": a.pacer.frames + b.pacer.frames,
            "muted": a.muted + b.muted,
            "on_hold": a.on_hold + b.on_hold,
            "skipped_prompts": a.skipped_prompts + b.skipped_prompts,
            "hidden_digits": sum(
                leg.hidden_before + (leg.filter.hidden_digits if leg.filter else 0) for leg in legs
            ),
            "released_digit_packets": sum(
                leg.released_before + (leg.filter.released_packets if leg.filter else 0)
                for leg in legs
            ),
            "send_errors": a.send_errors + b.send_errors,
        }

    def close(self) -> None:
        """Close both sockets, cancel the timers (queued prompts are dropped and
        their ``on_done`` not called). The ports go back to the pool once the
        sockets are closed (the loop's next turn)."""
        self._closed = True
        self._mixing = False
        for leg in self._legs.values():
            leg.mixing = None
            for timer in (leg.play_timer, leg.filter_timer):
                if timer is not None:
                    timer.cancel()
            leg.play_timer = leg.filter_timer = None
            leg.pacer.clear()
            if leg.transport is not None:
                leg.transport.close()  # the port goes back in connection_lost
            elif leg.sock is not None:
                leg.detach(self._loop)
            else:
                self._release(leg)

    def _release(self, leg: _Leg) -> None:
        if leg.port:
            self._ports.release(leg.port)
            leg.port = 0
