"""The issue's cluster: two media nodes behind Kamailio, a web node and a worker (issue 13).

PostgreSQL, moto's S3 server over HTTP (``blob_store = "s3"``) and four
``callvault serve`` processes sharing both, each with its own data dir and
ports, run as the units in deploy/systemd run them: two ``--roles media``
(SIP, RTP, finishing their own spools), one ``--roles web`` (portal and API:
it reads audio from S3 only, having no spool or outbox of the media nodes),
one ``--roles worker`` (jobs). Kamailio with the shipped
``deploy/kamailio/kamailio.cfg`` is in front of the media nodes. Every
process is waited for on ``/readyz``. SIPREC calls go to Kamailio only, from
the tests' SIPREC client and from sipp; a media node reached directly refuses
them (Kamailio is the source).

0. A change through the web node reaches both media nodes within a second:
   carol is not recorded (her call's streams are declined); the web node's
   API puts her on the recording list; a second later two calls of hers,
   one on each media node (round-robin; each node's metrics say so), are
   recorded.
1. Four calls (each with its own pair of tones) are spread over both media nodes.
2. One media node is killed with SIGKILL while they stream. Its calls are
   cut; new calls (client and sipp), placed at once, are all answered and
   recorded in full by the other node: a new call Kamailio still sends to
   the dead node fails over (408 after 2 s), and within seconds its OPTIONS
   probes have taken the node out of the set.
3. The killed node restarts on the same data dir and finishes its cut calls
   from its spool: each holds its own tones up to about a second before
   the kill and ends within 1.2 s of it.
4. The web node lists every call. Once both media nodes' outboxes have
   uploaded everything (``callvault_blob_outbox_files 0`` in their
   ``/metrics``) every recording plays through the web node, from S3, and a
   Range request is answered 206 with ranged GETs to S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from callvault.demo.client import CallPlan, CallResult, Participant, SiprecClient
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from callvault.recording.mp3 import decode_mp3
from callvault.recording.spool import is_unused
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from tests.cluster.cluster import (
    SBC_IP,
    Kamailio,
    Node,
    free_port,
    node_env,
    s3_env,
    seed_cluster,
    serve,
)
from tests.e2e.test_sipp_siprec import DTMF_PCAP, SCENARIO, _tone_file
from tests.peers import program, require
from tests.storage.s3_server import S3Server

pytestmark = pytest.mark.peer

CALL_S = 8.0  # the calls running when the node dies
KILL_AFTER_S = 4.0
AFTER_S = 4.0  # the calls placed after the kill
SIPP_S = 4.0  # the sipp scenario's pauses between ACK and BYE
SIPP_TONE = 1000.0
# (user's tone, other party's tone) per call: every call is told apart by its audio
BEFORE = [(440.0, 1300.0), (520.0, 1450.0), (600.0, 1600.0), (680.0, 1750.0)]
AFTER = [(760.0, 1900.0), (840.0, 2050.0)]
LATE = (920.0, 2200.0)  # a call once the dead node is out of the set
LATE_S = 2.0
CAROL_UNLISTED = (1000.0, 2350.0)  # declined: nobody recorded (no recording, no tones)
CAROL = [(1080.0, 2500.0), (1160.0, 2650.0)]  # after the web node listed her
CAROL_S = 1.5
DIRECTORY_S = 1.0  # issue 13: every node follows a change within a second


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


def _plan(tones: tuple[float, float], seconds: float, user: str = "alice") -> CallPlan:
    mine, theirs = tones
    return CallPlan(
        caller=Participant(f"sip:{user}@acme.example", user.title(), sine(mine, seconds)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(theirs, seconds + 1)),
        duration_s=seconds,
    )


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


def _utc(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _spooled(node: Node) -> int:
    """Calls' spools on the node (not the empty ones made ahead for its next calls)."""
    if not node.spool.is_dir():
        return 0
    return sum(1 for p in node.spool.iterdir() if not is_unused(p))


async def _sipp(workdir: Path, kamailio: tuple[str, int]) -> str:
    """One sipp SIPREC call through Kamailio: the shipped scenario, its ACK and BYE
    following the Record-Route (``[routes]``) as an SBC behind a proxy does."""
    sipp = program("sipp", "Debian package sip-tester")
    require(DTMF_PCAP, f"{DTMF_PCAP} (Debian package sip-tester)")
    workdir.mkdir()
    _tone_file(workdir / "tone.ulaw")
    shutil.copy(DTMF_PCAP, workdir / "dtmf.pcap")
    scenario = SCENARIO.read_text()
    routed = scenario.replace("CSeq: 1 ACK\n", "CSeq: 1 ACK\n      [routes]\n").replace(
        "CSeq: 2 BYE\n", "CSeq: 2 BYE\n      [routes]\n"
    )
    assert routed.count("[routes]") == 2
    (workdir / "siprec_routed.xml").write_text(routed)
    media = free_port()
    cmd = [
        sipp, f"{kamailio[0]}:{kamailio[1]}",
        "-sf", "siprec_routed.xml", "-t", "u1",
        "-i", SBC_IP, "-p", str(free_port()), "-mi", SBC_IP, "-mp", str(media),
        "-m", "1", "-timeout", "40s", "-timeout_error", "-nostdin", "-trace_err",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    logs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in
                   sorted(workdir.glob("*.log")))  # fmt: skip
    report = f"exit {proc.returncode}\n{err.decode(errors='replace')[-2000:]}{logs}"
    assert proc.returncode == 0, report
    return report


async def _uploaded(http: httpx.AsyncClient, nodes: list[Node], token: str) -> None:
    """Until every media node's outbox is empty: what they finished is in S3, where the
    web node reads it (it has none of their outbox files to serve from)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    waiting: dict[str, float] = {}
    while loop.time() < deadline:
        for node in nodes:
            waiting[node.name] = (await node.metrics(http, token))["callvault_blob_outbox_files"]
        if not any(waiting.values()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"outboxes not drained: {waiting}")


async def _listed(http: httpx.AsyncClient, url: str, count: int, why: str) -> list[dict]:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    items: list[dict] = []  # type: ignore[type-arg]
    while loop.time() < deadline:
        response = await http.get(url)
        response.raise_for_status()
        items = response.json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.5)
    raise AssertionError(f"{len(items)} of {count} listed: {why}")


async def _placed_on(
    http: httpx.AsyncClient, nodes: list[Node], token: str, before: list[dict[str, float]]
) -> list[tuple[float, float]]:
    """Per media node: (sessions accepted, sessions declined) since ``before``."""
    started, declined = "callvault_calls_started_total", "callvault_calls_declined_total"
    counts = []
    for node, earlier in zip(nodes, before, strict=True):
        now = await node.metrics(http, token)
        counts.append((now[started] - earlier[started], now[declined] - earlier[declined]))
    return counts


async def test_a_media_node_killed_mid_call_fails_over_and_finishes_its_calls_on_restart(
    tmp_path: Path, cluster_db: str, s3_server: S3Server
) -> None:
    program("kamailio", "the SIP dispatcher in front of the nodes (Debian kamailio)")
    program("sipp", "Debian package sip-tester")
    bucket = s3_server.new_bucket()
    seeded = await asyncio.to_thread(seed_cluster, cluster_db)
    token = secrets.token_urlsafe(32)  # metrics are internal: behind the metrics token
    shared = {
        "CALLVAULT_DATABASE_URL": cluster_db,
        "CALLVAULT_METRICS_TOKEN": token,
        **s3_env(s3_server.url, bucket),
    }

    def node(name: str, roles: str) -> Node:
        return Node(name, tmp_path / name, node_env(tmp_path / name, shared), argv=serve(roles))

    media = [node("media-1", "media"), node("media-2", "media")]
    web, worker = node("web", "web"), node("worker", "worker")
    everyone = [*media, web, worker]
    kamailio = Kamailio(tmp_path / "kamailio", [n.sip for n in media])
    endpoint = SipEndpoint(_refuse)
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {seeded.token}"}, timeout=30)
    api = f"{web.http}/api/v1/tenants/{seeded.tenant_id}"
    try:
        for each in everyone:  # together: the schema is there, so none migrates
            each.start()
        await asyncio.gather(*(each.wait_ready(http) for each in everyone))
        kamailio.start()
        await kamailio.wait_ready()
        await endpoint.listen(SBC_IP, 0, 0)
        client = SiprecClient(endpoint, kamailio.address, local_ip=SBC_IP)

        # a media node reached directly refuses the SBC: only Kamailio is a source
        direct = await SiprecClient(endpoint, media[0].sip, local_ip=SBC_IP).place(
            _plan(BEFORE[0], 1.0)
        )
        assert direct.status == 403, direct

        # 0. the directory: a change through the web node reaches both media nodes
        unlisted = await client.place(_plan(CAROL_UNLISTED, 1.0, "carol"))
        assert unlisted.status == 200 and unlisted.declined == 2, unlisted
        counted = [await n.metrics(http, token) for n in media]
        listed = await http.post(
            f"{api}/recording-list", json={"user_id": seeded.users["carol"], "mode": "always"}
        )
        assert listed.status_code == 201, listed.text
        await asyncio.sleep(DIRECTORY_S)
        carol = await asyncio.gather(*(client.place(_plan(t, CAROL_S, "carol")) for t in CAROL))
        assert [(r.status, r.declined) for r in carol] == [(200, 0), (200, 0)], carol
        # round-robin: one call on each media node, neither declined
        assert await _placed_on(http, media, token, counted) == [(1, 0), (1, 0)]

        # 1. four calls over both media nodes
        loop = asyncio.get_running_loop()
        before = []
        for tones in BEFORE:
            before.append(asyncio.ensure_future(client.place(_plan(tones, CALL_S))))
            await asyncio.sleep(0.2)
        await asyncio.sleep(KILL_AFTER_S - 0.2 * len(BEFORE))
        assert not any(c.done() for c in before), [c.result() for c in before if c.done()]
        spooled = [_spooled(n) for n in media]
        assert all(spooled), (spooled, kamailio.output())  # round-robin: both have calls
        victim, survivor = media

        # 2. kill -9 one media node; new calls at once
        killed_at = time.time()
        victim.kill()
        after_started = loop.time()
        after = [asyncio.ensure_future(client.place(_plan(t, AFTER_S))) for t in AFTER]
        sipp = asyncio.ensure_future(_sipp(tmp_path / "sipp", kamailio.address))
        results: list[CallResult] = await asyncio.gather(*after)
        assert [r.status for r in results] == [200, 200], (results, kamailio.output())
        # the failover took seconds, not a call's length
        assert loop.time() - after_started < AFTER_S + 8, loop.time() - after_started
        sipp_report = await sipp
        await asyncio.gather(*before, return_exceptions=True)
        # a node out of the set gets no new call: no 2 s wait for a failover (fr_timer)
        started = loop.time()
        late = await client.place(_plan(LATE, LATE_S))
        took = loop.time() - started
        assert late.status == 200 and took < LATE_S + 1.5, (late, took, kamailio.output())

        # 3. the killed node restarts on its data dir and finishes the cut calls
        victim.start()
        await victim.wait_ready(http)
        total = len(BEFORE) + len(AFTER) + len(CAROL) + 2  # + sipp + the late call
        items = await _listed(
            http, f"{api}/recordings?limit=100", total, victim.output() + survivor.output()
        )
        # + carol's declined call: a call row without a recording
        calls = await _listed(http, f"{api}/calls?limit=100", total + 1, "")

        # 4. through the web node, from S3 once the media nodes' outboxes drained
        await _uploaded(http, media, token)
        audio: dict[str, bytes] = {}
        for item in items:
            response = await http.get(f"{web.http}{item['audio_url']}")
            assert response.status_code == 200, (item, response.status_code, response.text)
            audio[item["id"]] = response.content
        first = items[0]
        s3_server.clear_log()
        ranged = await http.get(
            f"{web.http}{first['audio_url']}", headers={"Range": "bytes=100-1099"}
        )
        assert ranged.status_code == 206, ranged.text
        assert ranged.content == audio[first["id"]][100:1100]
        gets = [r for r in s3_server.requests("GET") if r.path.startswith(f"/{bucket}/")]
        assert gets and all(r.range for r in gets), gets
        # every process still up and ready, the worker included
        for each in everyone:
            assert (await http.get(f"{each.http}/readyz")).status_code == 200, each.output()
    finally:
        await http.aclose()
        with contextlib.suppress(Exception):
            await endpoint.close()
        kamailio.stop()
        for each in everyone:
            each.stop()

    unrecorded = [c for c in calls if not c["recording_ids"]]
    assert [c["from_aor"] for c in unrecorded] == ["sip:carol@acme.example"], unrecorded
    assert {c["id"] for c in calls} - {c["id"] for c in unrecorded} == {
        item["call_id"] for item in items
    }
    decoded = {item["id"]: decode_mp3(audio[item["id"]]) for item in items}
    played = [
        *((t, CALL_S) for t in BEFORE), *((t, AFTER_S) for t in AFTER), (LATE, LATE_S),
        ((SIPP_TONE, SIPP_TONE), SIPP_S), *((t, CAROL_S) for t in CAROL),
    ]  # fmt: skip
    by_tone: dict[float, list[tuple[dict, np.ndarray, int]]] = {}  # type: ignore[type-arg]
    for item in items:
        pcm, rate = decoded[item["id"]]
        assert isinstance(pcm, np.ndarray) and pcm.shape[0] == 2, pcm.shape
        duration = pcm.shape[1] / rate
        heard = [
            theirs
            for (_mine, theirs), _s in [*played, (CAROL_UNLISTED, 1.0)]
            if _covered(tone_spans(pcm[1], rate, theirs), 0, duration) > 0.5
        ]
        assert len(heard) == 1, (item, heard)  # nothing crossed calls
        by_tone.setdefault(heard[0], []).append((item, pcm, rate))
    assert all(len(found) == 1 for found in by_tone.values()), by_tone
    assert len(by_tone) == total and CAROL_UNLISTED[1] not in by_tone, (
        sorted(by_tone),
        sipp_report,
    )
    carols = {by_tone[theirs][0][0]["user_id"] for _mine, theirs in CAROL}
    assert carols == {seeded.users["carol"]}, carols

    cut = 0
    for (mine, theirs), seconds in played:
        [(item, pcm, rate)] = by_tone[theirs]
        duration = pcm.shape[1] / rate
        file_start = _utc(item["started_at"]) + item["segments"][0]["call_start_ms"] / 1000
        kill = killed_at - file_start
        if (mine, theirs) in BEFORE and duration < kill + 1.5:
            # the victim's: finished from its spool, up to about a second before the kill
            cut += 1
            assert kill - 1.2 <= duration <= kill + 1.2, (duration, kill)
            kept = kill - 1.0
        else:  # recorded in full by a living node
            assert seconds - 1.0 < duration < seconds + 1.5, (duration, seconds, item)
            kept = duration - 0.3
        assert _covered(tone_spans(pcm[0], rate, mine), 0.3, kept) > kept - 0.8, (mine, kept)
        assert _covered(tone_spans(pcm[1], rate, theirs), 0.3, kept) > kept - 0.8, (theirs, kept)
    assert cut == spooled[0] >= 1, (cut, spooled)
