"""Headless baresip phones as real peers for the B2BUA tests (issue 10, "How it is checked").

A ``Phone`` runs one Debian baresip 1.0 (the test peers: see this module,
repeated here so the module stands alone):

- ``sip_listen <its own 127.0.0.x>:PORT`` binds SIP (UDP and TCP on PORT, TLS
  on PORT+1) to the phone's own loopback address, so callvault's source
  registry tells the phones apart by address (one /32 source each);
- ``net_interface 127.0.0.1``: baresip binds its RTP sockets to the wildcard,
  so its RTP leaves from 127.0.0.1 whatever address the phone has; the SDP's
  ``c=`` must name the address the RTP really comes from (a relay latches to
  it), hence 127.0.0.1 there, while SIP comes from 127.0.0.x;
- ``audio_source aufile,<wav>`` is the microphone (an 8 kHz mono WAV: each
  phone its own tone, or speech), and ``module sndfile.so`` leaves what the
  phone heard in ``dump-*-dec.wav`` and what it sent in ``dump-*-enc.wav``;
- the account answers by itself (``answermode=auto``) and needs no registrar;
- ``ctrl_tcp`` takes the commands (netstring JSON): ``dial``, ``hangup``,
  ``hold``, ``resume``, ``transfer`` (a blind REFER), ``sndcode`` (RFC 4733
  when negotiated, else SIP INFO) and reports events (``CALL_ESTABLISHED``,
  ``CALL_CLOSED``, ``CALL_DTMF_START``, ...). baresip 1.0 has no attended
  transfer: the sipp scenarios cover that.

The control channel is proven before a phone is used: baresip 1.0 keeps
running when ``ctrl_tcp`` cannot listen (its port taken: by the phone's own
SIP port, or another process), and a connection to that port then reaches
someone else (the phone's SIP TCP listener: no event ever comes; another
baresip: that phone's own channel is dropped, ctrl_tcp keeps one). So a
phone starts, waits for "baresip is ready.", restarts on another control
port if ctrl_tcp said it failed to listen, connects, and asks ``reginfo``:
the answer, naming its own account, comes once baresip has accepted the
connection, so every event from then on reaches the harness.

The dumps hold decoded audio in arrival order (no player clocks them), so a
sample index is the time since the first packet, give or take lost packets.
baresip 1.0 drops sndfile from the receive chain at the first re-INVITE that
changes the direction (hold): what a phone hears after a hold is not in its
dump. ``rtp_received`` (its RTCP counters) shows media still flows; the
recording shows what flowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from callvault.media.analysis import tone_spans
from tests.peers import program

RATE = 8000
Pcm = npt.NDArray[np.int16]

# what each phone says: a tone of its own, far from DTMF pairs, the user's
# 1400 Hz start beep and the 1000 Hz stop beep
TONE_A_HZ = 700.0
TONE_B_HZ = 1100.0
TONE_C_HZ = 500.0


def tone(freq_hz: float, seconds: float, amplitude: float = 0.3) -> Pcm:
    """A sine at ``amplitude`` of full scale, 8 kHz int16."""
    t = np.arange(round(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq_hz * t) * amplitude * 32767).round().astype(np.int16)


def write_wav(path: Path, pcm: Pcm, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def read_wav_data(path: Path) -> Pcm:
    """The samples of a 16-bit mono WAV, even one whose header was never finalised.

    baresip's sndfile writes the sizes at close; a phone killed mid-call leaves
    zeros there, so the data chunk is taken to the end of the file.
    """
    raw = path.read_bytes()
    at = raw.find(b"data", 12)
    if at < 0:
        return np.zeros(0, dtype=np.int16)
    body = raw[at + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)


def free_port(address: str, span: int = 2, avoid: Iterable[int] = ()) -> int:
    """A port free for UDP and TCP on ``address`` together with the ``span - 1`` above it
    (none of them in ``avoid``: ports drawn for the same program, not bound yet)."""
    avoided = set(avoid)
    for _ in range(200):
        port = random.randrange(30000, 60000, 4)
        if avoided.intersection(range(port, port + span)):
            continue
        taken: list[socket.socket] = []
        try:
            for candidate in range(port, port + span):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    taken.append(sock)
                    sock.bind((address, candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise RuntimeError(f"no free port on {address}")


READY = "baresip is ready."  # baresip 1.0 prints it just before its main loop
CTRL_FAILED = "ctrl_tcp: failed to listen"  # its port taken; baresip runs on without it
START_ATTEMPTS = 4
START_S = 20.0  # a loaded 2-core machine starts baresip in well under a second


class PhoneError(AssertionError):
    """A phone did not do what the test asked (the message carries its log)."""


@dataclass
class Phone:
    """One baresip as an async context manager; ``await phone.dial(uri)`` and so on.

    ``aor`` is the account (``sip:alice@acme.example``): it is the From of
    the calls it makes, and the user part an INVITE's Request-URI must carry
    for the phone to answer. ``mic`` is what it sends (looped by nothing:
    make it longer than the call).
    """

    workdir: Path
    aor: str
    address: str
    mic: Pcm
    codecs: str = "PCMU"
    outbound: str | None = None  # e.g. "sip:127.0.0.1:5060": every request through it
    answermode: str = "auto"
    sip_port: int = 0
    ctrl_port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _answers: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _tokens: int = 0
    _lost: str = ""  # why the control channel ended, once it has
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def uri(self) -> str:
        """Where to reach this phone directly: ``sip:<user>@<address>:<port>``."""
        user = self.aor.removeprefix("sip:").split("@", 1)[0]
        return f"sip:{user}@{self.address}:{self.sip_port}"

    @property
    def contact(self) -> str:
        """The ``sip:host:port;transport=udp`` a call route points at."""
        return f"sip:{self.address}:{self.sip_port};transport=udp"

    def configure(self) -> None:
        """Write the config, accounts and microphone (ports drawn now, so routes can name them)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.sip_port:
            self.sip_port = free_port(self.address, span=2)  # TLS binds PORT+1
        if not self.ctrl_port:
            self.ctrl_port = self._draw_ctrl_port()
        write_wav(self.workdir / "mic.wav", self.mic)
        self._write_config()
        params = f";regint=0;answermode={self.answermode};audio_codecs={self.codecs}"
        if self.outbound:
            params += f';outbound="{self.outbound}"'
        (self.workdir / "accounts").write_text(f"<{self.aor}>{params}\n")

    def _draw_ctrl_port(self) -> int:
        """A control port on the phone's address, never one of its SIP ports (UDP/TCP, TLS)."""
        return free_port(self.address, span=1, avoid=(self.sip_port, self.sip_port + 1))

    def _write_config(self) -> None:
        rtp = random.randrange(40000, 60000, 200)
        (self.workdir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {self.address}:{self.sip_port}",
                    "net_interface 127.0.0.1",  # see the module docstring: RTP's real source
                    f"rtp_ports {rtp}-{rtp + 199}",
                    "audio_player aufile,/dev/null",
                    f"audio_source aufile,{self.workdir / 'mic.wav'}",
                    "audio_alert aufile,/dev/null",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module g722.so",
                    "module aufile.so",
                    "module sndfile.so",
                    f"snd_path {self.workdir}",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen {self.address}:{self.ctrl_port}",
                    "",
                ]
            )
        )

    # -- lifetime ---------------------------------------------------------------
    async def __aenter__(self) -> Phone:
        self.configure()
        for attempt in range(START_ATTEMPTS):
            if attempt:  # the control port was taken meanwhile: another one
                self.ctrl_port = self._draw_ctrl_port()
                self._write_config()
            if CTRL_FAILED not in await self._start(attempt):
                break
            if self._proc is not None:
                self._proc.terminate()  # no channel to say quit on
            await self._end_process()
        else:
            raise PhoneError(f"{self.aor}: ctrl_tcp never listened\n{self.log()}")
        await self._connect()
        return self

    async def _start(self, attempt: int) -> str:
        """Start baresip and wait until it says it is ready; its log so far."""
        baresip = program("baresip", "Debian package baresip-core: the phones")
        path = self.workdir / "baresip.log"
        if attempt:  # kept for the record
            path.rename(self.workdir / f"baresip-{attempt}.log")
        with path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                baresip, "-f", str(self.workdir), "-s",  # -s: the SIP trace, for reports
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_S
        while True:
            text = path.read_text(errors="replace")
            if READY in text:
                return text
            if self._proc.returncode is not None:
                raise PhoneError(f"{self.aor}: baresip exited at start\n{self.log()}")
            if loop.time() > deadline:
                raise PhoneError(f"{self.aor}: baresip not ready in {START_S} s\n{self.log()}")
            await asyncio.sleep(0.05)  # baresip starting, not a timer

    async def _connect(self) -> None:
        """Connect to ctrl_tcp and prove the channel with one command (see the docstring)."""
        try:
            self._reader, self._writer = await asyncio.open_connection(
                self.address, self.ctrl_port
            )
        except OSError as exc:
            raise PhoneError(f"{self.aor}: ctrl_tcp refused ({exc})\n{self.log()}") from None
        self._lost = ""
        self._pump = asyncio.create_task(self._read())
        answer = await self.command("reginfo", timeout=START_S)
        if self.aor not in answer:
            raise PhoneError(f"{self.aor}: the control port answered {answer!r}\n{self.log()}")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Quit baresip (closing its dumps), killing it if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and self._writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._send("quit", "", "quit")
                await self._writer.drain()
        await self._end_process()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._writer is not None:
            self._writer.close()

    async def _end_process(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 3)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self._proc = None

    # -- ctrl_tcp ---------------------------------------------------------------
    def _send(self, command: str, params: str, token: str) -> None:
        assert self._writer is not None
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(b"%d:%s," % (len(body), body))

    async def _read(self) -> None:
        """Sort what ctrl_tcp sends: answers to their commands (by token), events in order."""
        assert self._reader is not None
        try:
            while True:
                length = int((await self._reader.readuntil(b":"))[:-1])
                body = await self._reader.readexactly(length + 1)
                message = json.loads(body[:-1])
                if message.get("response"):
                    waiting = self._answers.pop(str(message.get("token")), None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message)
                elif message.get("event"):
                    self.events.append(message)
                    self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._lost = f"ctrl_tcp closed the connection ({exc!r})"
        except Exception as exc:  # a message the harness cannot read: say so, not time out
            self._lost = f"the harness could not read ctrl_tcp ({exc!r})"
        finally:
            self._lost = self._lost or "the reader stopped"
            for waiting in self._answers.values():
                if not waiting.done():
                    waiting.set_exception(PhoneError(f"{self.aor}: {self._lost}"))
            self._answers.clear()
            self._changed.set()

    async def command(self, command: str, params: str = "", timeout: float = 5) -> str:
        """Run one baresip command (``/help`` lists them) and return its answer text."""
        if self._proc is None or self._proc.returncode is not None:
            raise PhoneError(f"{self.aor}: baresip is not running\n{self.log()}")
        if self._lost:
            raise PhoneError(f"{self.aor}: {self._lost}\n{self.log()}")
        self._tokens += 1
        token = f"{command}-{self._tokens}"  # a late answer is never taken for another's
        answer = asyncio.get_running_loop().create_future()
        self._answers[token] = answer
        self._send(command, params, token)
        try:
            message = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise PhoneError(
                f"{self.aor}: no answer to {command} within {timeout} s\n{self.log()}"
            ) from None
        finally:
            self._answers.pop(token, None)
        return str(message.get("data", ""))

    async def dial(self, uri: str) -> None:
        await self.command("dial", uri)

    async def hangup(self) -> None:
        await self.command("hangup")

    async def hold(self) -> None:
        await self.command("hold")

    async def resume(self) -> None:
        await self.command("resume")

    async def transfer(self, uri: str) -> None:
        """A blind transfer: REFER with Refer-To ``uri``."""
        await self.command("transfer", uri)

    async def press(self, keys: str, gap: float = 0.3) -> None:
        """Press ``keys`` one by one (each released before the next, ``gap`` apart)."""
        for key in keys:
            await self.command("sndcode", key)
            await asyncio.sleep(gap)

    # -- what happened ------------------------------------------------------------
    def seen(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def wait_event(self, kind: str, timeout: float = 10, after: int = 0) -> dict[str, Any]:
        """The first event ``kind`` (``CALL_ESTABLISHED``, ...) from index ``after`` on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("type") == kind:
                    return event
            left = deadline - loop.time()
            if self._lost or left <= 0:
                why = self._lost or f"not within {timeout} s"
                raise PhoneError(
                    f"{self.aor}: no {kind} ({why}); events "
                    f"{[e.get('type') for e in self.events]}; "
                    f"its calls now: {await self._calls_now()}\n{self.log()}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _calls_now(self) -> str:
        """baresip's own list of its calls (for a report: a call it has, no event said)."""
        try:
            return " ".join((await self.command("listcalls", timeout=3)).split())
        except PhoneError as exc:
            return f"unknown ({str(exc).splitlines()[0]})"

    async def rtp_received(self) -> int:
        """RTP packets this phone's call has received so far (baresip's RTCP member count)."""
        found = re.findall(r"rcvd=(\d+)", await self.command("audio_debug"))
        return sum(int(n) for n in found)

    def sip_trace(self) -> str:
        """The SIP messages this phone sent and received (``baresip -s``)."""
        path = self.workdir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def digits_heard(self) -> list[str]:
        """The keys whose RFC 4733 events (or INFO) reached this phone."""
        return [str(e.get("param", "")) for e in self.seen("CALL_DTMF_START")]

    def _dumps(self, kind: str) -> list[Path]:
        return sorted(self.workdir.glob(f"dump-*-{kind}.wav"))

    def heard(self) -> Pcm:
        """What the phone heard (all its calls' decoded audio, in order), 8 kHz int16."""
        return _joined(self._dumps("dec"))

    def sent(self) -> Pcm:
        """What the phone sent (before encoding), 8 kHz int16."""
        return _joined(self._dumps("enc"))

    def log(self, tail: int = 6000) -> str:
        path = self.workdir / "baresip.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- baresip {self.aor} @ {self.address}:{self.sip_port}\n{text[-tail:]}"


def _joined(paths: Iterable[Path]) -> Pcm:
    parts = [read_wav_data(p) for p in paths]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def spans(pcm: Pcm, freq_hz: float) -> list[tuple[float, float]]:
    """Where ``freq_hz`` dominates ``pcm`` (seconds), as the recorder's tests locate tones."""
    return tone_spans(pcm, RATE, freq_hz)


def covered(found: list[tuple[float, float]], start: float = 0.0, end: float = 1e9) -> float:
    """Seconds of ``found`` inside ``[start, end]``."""
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in found)


def locate(heard: Pcm, reference: Pcm) -> tuple[float, float]:
    """Where ``reference`` (a prompt) best matches in ``heard``: (start in s, score 0..1).

    The score is the normalised cross-correlation at the best lag: about 1.0
    for the prompt through G.711, about 0.7 with an equally loud tone mixed
    in, near 0 for a tone or silence alone (checked by content, not by size).
    """
    x = np.asarray(heard, dtype=np.float64)
    p = np.asarray(reference, dtype=np.float64)
    n = len(p)
    if n == 0 or len(x) < n:
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    dot = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(p, size)), size)[
        : len(x) - n + 1
    ]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9))
    score = dot / (window * np.sqrt(float(p @ p)))
    best = int(np.argmax(score))
    return best / RATE, float(score[best])
