"""``callvault demo``: a server with demo data, three real SIPREC calls, the results.

Starts callvault on a fresh data directory, seeds a tenant with users, places
three SIPREC calls over loopback with audio a person recognises (espeak-ng
speech on one call, a distinct tone per party on another, a call of a user
who is not on the recording list), waits for them to be finished and prints
where the MP3s are and how to fetch them over the API.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from callvault.admin import (
    accept_legal_notice,
    bootstrap_operator,
    create_tenant,
    create_user,
    enable_feature,
)
from callvault.app import Application
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Recording
from callvault.demo.client import CallPlan, Participant, SiprecClient
from callvault.media.sender import Impairments
from callvault.media.tones import SpeechUnavailable, sine, speech
from callvault.settings import Settings, load_settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sources.store import register_loopback_source

DOMAIN = "demo.callvault.test"


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


def _free_port(preferred: int, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def _seed(settings: Settings) -> tuple[str, dict[str, int]]:
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    with make_sessionmaker(engine)() as session:
        _operator, token = bootstrap_operator(session)
        tenant = create_tenant(  # users' numbers lie in the tenant's block (SPEC 2)
            session, "Demo Dakwerken BV", [DOMAIN], ["+31201234500"], blocks=["+312012345*"]
        )
        anna = create_user(
            session,
            tenant,
            "Anna de Vries",
            extension="201",
            aors=[f"anna@{DOMAIN}"],
            numbers=["+31201234501"],
            recorded=True,
            mode="always",
        )
        bram = create_user(
            session,
            tenant,
            "Bram Bakker",
            extension="202",
            aors=[f"bram@{DOMAIN}"],
            recorded=True,
            mode="always",
        )
        chris = create_user(
            session, tenant, "Chris Jansen", extension="203", aors=[f"chris@{DOMAIN}"]
        )
        admin = create_user(session, tenant, "Dirk Admin", extension="200", role="admin")
        enable_feature(session, tenant, reference="DEMO-DECLARATION")
        accept_legal_notice(session, tenant, admin)
        # the demo's SRC sends from loopback: a registered recording source
        register_loopback_source(session, [tenant.id])
        session.commit()
        ids = {"anna": anna.id, "bram": bram.id, "chris": chris.id}
    engine.dispose()
    return token or "", ids


def _voice(text: str, seconds: float, fallback_hz: float) -> np.ndarray:
    try:
        audio = speech(text)
    except SpeechUnavailable:
        audio = sine(fallback_hz, seconds)
    out = np.zeros(int(seconds * 8000), dtype=np.int16)
    n = min(len(out), len(audio))
    out[:n] = audio[:n]
    return out


def _plans() -> list[tuple[str, CallPlan]]:
    anna_text = "Good morning, this is Anna from Demo Dakwerken. You hear me on the left."
    customer_text = "Hello Anna. I am the customer, and you hear me on the right channel."
    seconds = 7.0
    left = _voice(anna_text, seconds, 440)
    right = np.zeros_like(left)
    spoken = _voice(customer_text, seconds, 1000)
    right[8000 * 3 :] = spoken[: len(right) - 8000 * 3]  # the customer answers after 3 s
    return [
        (
            "speech: Anna (left) and a customer (right)",
            CallPlan(
                caller=Participant(f"sip:anna@{DOMAIN}", "Anna de Vries", left),
                callee=Participant("sip:+31612345678@pstn.example", "Customer", right),
                duration_s=seconds,
            ),
        ),
        (
            "tones over TCP: Bram 440 Hz (left), caller 1000 Hz (right), "
            "paused 3-4 s, lossy network",
            CallPlan(
                caller=Participant(
                    "sip:+31687654321@pstn.example",
                    "Supplier",
                    sine(1000, 6.0),
                    impairments=Impairments(reorder_every=7, duplicate_every=11, drop_every=50),
                ),
                callee=Participant(
                    f"sip:bram@{DOMAIN}", "Bram Bakker", sine(440, 6.0), digits=[(1.0, "5")]
                ),
                duration_s=6.0,
                pause=(3.0, 4.0),
                payload_type=8,
                transport="tcp",
            ),
        ),
        (
            "Chris is not on the recording list: not recorded",
            CallPlan(
                caller=Participant(f"sip:chris@{DOMAIN}", "Chris Jansen", sine(600, 3.0)),
                callee=Participant("sip:+31611112222@pstn.example", "Someone", sine(700, 3.0)),
                duration_s=3.0,
            ),
        ),
    ]


async def _demo(settings: Settings, keep_running: bool) -> int:
    started = time.monotonic()
    token, _ids = await asyncio.to_thread(_seed, settings)
    app = Application(settings)
    await app.start()
    endpoint = SipEndpoint(_refuse)
    await endpoint.listen("127.0.0.1", 0, 0)
    client = SiprecClient(endpoint, ("127.0.0.1", app.sip_port))
    plans = await asyncio.to_thread(_plans)
    print(
        f"callvault demo: server on SIP 127.0.0.1:{app.sip_port}, HTTP http://127.0.0.1:{app.http_port}"
    )
    print(f"placing {len(plans)} SIPREC calls ...")
    results = await asyncio.gather(*(client.place(plan) for _title, plan in plans))
    for (title, _plan), result in zip(plans, results, strict=True):
        print(f"  {title}: SIP {result.status}, {result.packets_sent} RTP packets sent")
    finished = [await asyncio.wait_for(app.finisher.finished.get(), 60) for _ in plans]
    out_dir = settings.data_dir / "recordings"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"\nrecordings (ready {time.monotonic() - started:.1f} s after start):")
    with app.sessions() as session:
        for _call, recording_id in finished:
            if recording_id is None:
                continue
            recording = session.get(Recording, recording_id)
            assert recording is not None
            target = out_dir / f"{recording.id}.mp3"
            target.write_bytes(app.blobs.read(recording.blob_key))
            print(
                f"  {target}  {recording.duration_ms / 1000:.1f} s, {recording.channels} ch,"
                f" {len(recording.segments)} segment(s), sha256 {recording.sha256[:16]}..."
            )
    not_recorded = sum(1 for _c, r in finished if r is None)
    print(f"  ({not_recorded} call not recorded: no party on the recording list)")
    base = f"http://127.0.0.1:{app.http_port}"
    print(f"\nAPI token of the operator: {token}")
    print(f"  curl -H 'Authorization: Bearer {token}' {base}/api/v1/tenants/1/recordings")
    print(
        f"  curl -H 'Authorization: Bearer {token}' -o rec.mp3 {base}/api/v1/recordings/<id>/audio"
    )
    print(f"data directory: {settings.data_dir}")
    if keep_running:
        print("\nserver keeps running; Ctrl-C stops it")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    await endpoint.close()
    await app.stop()
    return 0


def run_demo(data_dir: Path | None, keep_running: bool) -> int:
    import uvloop

    logging.getLogger().setLevel(logging.WARNING)
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="callvault-demo-"))
    elif data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    rtp = _free_port(21000, socket.SOCK_DGRAM)
    settings = load_settings(
        data_dir=data_dir,
        sip_port=_free_port(5060, socket.SOCK_DGRAM),
        http_port=_free_port(8080),
        rtp_port_min=rtp - rtp % 2,
        rtp_port_max=rtp - rtp % 2 + 998,
    )
    return uvloop.run(_demo(settings, keep_running))
