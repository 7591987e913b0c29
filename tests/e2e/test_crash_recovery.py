"""``kill -9`` during two live calls loses at most the last second of audio.

``callvault serve`` runs as a real process on loopback ports. Two SIPREC
calls (alice and bob, each with its own pair of tones) are streaming when
the process is killed with SIGKILL: no shutdown code runs. A new process on
the same data directory finds both spools at start-up, finishes them, and
both recordings appear in the API. Each MP3 must hold the right tone on the
right channel from the answer up to about one second before the kill, and
end within 1.2 s of the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

from callvault.demo.client import CallPlan, Participant, SiprecClient
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.recording.mp3 import decode_mp3
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from tests.e2e.harness import seed

CALL_S = 10.0
KILL_AFTER_S = 5.0
START_TIMEOUT_S = 90.0

TONES = {  # user -> (user's tone, other party's tone)
    "alice": (440.0, 1000.0),
    "bob": (700.0, 1300.0),
}
OTHER = {"alice": "+31612345678", "bob": "+31687654321"}


def _free_port() -> int:
    """A loopback port free for both UDP and TCP (SIP listens on both)."""
    for _ in range(200):
        port = random.randrange(21000, 60000)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind(("127.0.0.1", port))
            tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise RuntimeError("no free loopback port")


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


@dataclass
class Server:
    env: dict[str, str]
    log: Path
    http: str
    sip: tuple[str, int]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(b"\n===== callvault serve =====\n")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callvault", "serve"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, reaped by ``reap``
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    async def wait_healthy(self, client: httpx.AsyncClient) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            assert self.proc.poll() is None, f"server exited:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{self.http}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"server not up after {START_TIMEOUT_S} s:\n{self.output()}")

    def reap(self) -> None:
        """End this server's process group (worker and forkserver processes included)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _server_env(data: Path) -> tuple[dict[str, str], Path, str, tuple[str, int]]:
    """The environment of ``callvault serve`` on fresh loopback ports, and where it is."""
    sip_port, http_port = _free_port(), _free_port()
    base = random.randrange(20000, 50000, 1000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(
        CALLVAULT_DATA_DIR=str(data),
        CALLVAULT_SIP_PORT=str(sip_port),
        CALLVAULT_HTTP_PORT=str(http_port),
        CALLVAULT_RTP_PORT_MIN=str(base),
        CALLVAULT_RTP_PORT_MAX=str(base + 998),
        CALLVAULT_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    return env, data / "server.log", f"http://127.0.0.1:{http_port}", ("127.0.0.1", sip_port)


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


def _plan(user: str) -> CallPlan:
    mine, theirs = TONES[user]
    return CallPlan(
        caller=Participant(f"sip:{user}@acme.example", user.title(), sine(mine, CALL_S)),
        callee=Participant(f"sip:{OTHER[user]}@pstn.example", "Customer", sine(theirs, CALL_S + 1)),
        duration_s=CALL_S,
    )


def _utc(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_kill_9_during_two_calls_keeps_all_but_the_last_second(tmp_path: Path) -> None:
    data = tmp_path.resolve()
    token, tenant_id, users = await asyncio.to_thread(seed, f"sqlite:///{data}/callvault.db")
    user_of = {users[name]: name for name in TONES}
    env, log, http_url, sip = _server_env(data)
    first = Server(env, log, http_url, sip)
    second = Server(env, log, http_url, sip)
    endpoint = SipEndpoint(_refuse)
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        first.start()
        await first.wait_healthy(http)
        await endpoint.listen("127.0.0.1", 0, 0)
        client = SiprecClient(endpoint, sip)
        calls = [asyncio.ensure_future(client.place(_plan(user))) for user in TONES]
        await asyncio.sleep(KILL_AFTER_S)
        assert not any(c.done() for c in calls), [c.result() for c in calls if c.done()]
        assert first.proc is not None
        killed_at = time.time()
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(30)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await endpoint.close()
        first.reap()

        second.start()
        await second.wait_healthy(http)
        url = f"{http_url}/api/v1/tenants/{tenant_id}/recordings"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        items: list[dict] = []  # type: ignore[type-arg]
        while loop.time() < deadline:
            response = await http.get(url)
            response.raise_for_status()
            items = response.json()["items"]
            if len(items) >= 2:
                break
            await asyncio.sleep(0.5)
        assert len(items) == 2, (items, second.output())
        audio = {}
        for item in items:
            mp3 = await http.get(f"{http_url}{item['audio_url']}")
            mp3.raise_for_status()
            audio[item["id"]] = decode_mp3(mp3.content)
        calls_page = (await http.get(f"{http_url}/api/v1/tenants/{tenant_id}/calls")).json()
    finally:
        await http.aclose()
        with contextlib.suppress(Exception):
            await endpoint.close()
        first.reap()
        second.reap()

    assert {user_of.get(item["user_id"]) for item in items} == set(TONES), items
    for item in items:
        user = user_of[item["user_id"]]
        mine, theirs = TONES[user]
        pcm, rate = audio[item["id"]]
        assert isinstance(pcm, np.ndarray) and pcm.shape[0] == 2, (user, pcm.shape)
        left, right = pcm[0], pcm[1]
        duration = left.shape[0] / rate
        segment = item["segments"][0]
        file_start = _utc(item["started_at"]) + segment["call_start_ms"] / 1000
        kill = killed_at - file_start  # the kill, in file time
        assert 3.0 < kill < KILL_AFTER_S + 1.0, (user, kill, item)
        # the file ends at the last audio that reached the disk: within 1.2 s of the kill
        assert kill - 1.2 <= duration <= kill + 1.2, (user, duration, kill, second.output())
        # everything up to a second before the kill is there, on the right side
        kept = kill - 1.0
        left_tone = _covered(tone_spans(left, rate, mine), 0.3, kept)
        right_tone = _covered(tone_spans(right, rate, theirs), 0.3, kept)
        assert left_tone > kept - 0.3 - 0.5, (user, left_tone, kept)
        assert right_tone > kept - 0.3 - 0.5, (user, right_tone, kept)
        every = {freq for pair in TONES.values() for freq in pair}
        for channel, expected in ((left, mine), (right, theirs)):
            for freq in every - {expected}:  # nothing crossed sides, nor calls
                stray = _covered(tone_spans(channel, rate, freq), 0, duration)
                assert stray < 0.2, (user, freq, stray)
    assert {c["id"] for c in calls_page["items"]} == {item["call_id"] for item in items}
