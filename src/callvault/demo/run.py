"""``callvault demo``: a server with demo data, three real SIPREC calls, the results.

Starts callvault on a fresh data directory, seeds a tenant with users, places
three SIPREC calls over loopback with audio a person recognises (espeak-ng
speech on one call, a distinct tone per party on another, a call of a user
who is not on the recording list), waits for them to be finished and prints
where the MP3s are and how to fetch them over the API.

The portal gets its demo too (SPEC sections 1 and 5): an admin, a listener
leading a team with a recorded user in it, and a user, each with a login and
a random password printed once; the recordings get labels, a comment and a
share link. All of it goes through the portal's own route functions (the
same checks and audit rows as a click), acted by the operator or the admin.
Then it prints the portal's address with the logins and serves until Ctrl-C
(``--exit``: records, prints and stops, for tests).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from callvault.admin import accept_legal_notice, bootstrap_operator, enable_feature
from callvault.app import Application
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Operator, Recording, Tenant, User
from callvault.demo.client import CallPlan, Participant, SiprecClient
from callvault.media.sender import Impairments
from callvault.media.tones import SpeechUnavailable, sine, speech
from callvault.portal.api.annotations import CommentIn, LabelIn, add_comment, add_label
from callvault.portal.api.shares import ShareIn, create_share
from callvault.portal.api.teams import MemberIn, TeamIn, create_team, put_member
from callvault.portal.api.tenants import CredentialsIn, set_user_credentials
from callvault.portal.auth import operator_principal, user_principal
from callvault.settings import Settings, load_settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sources.store import register_loopback_source
from callvault.tenants.service import create_tenant, create_user

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


@dataclass(frozen=True)
class Account:
    """A portal login of the demo, printed once."""

    role: str
    login: str
    password: str
    sees: str


@dataclass
class Seeded:
    token: str
    tenant_id: int
    admin_id: int
    ids: dict[str, int]
    accounts: list[Account] = field(default_factory=list)


def _no_client() -> Request:
    """The request the route functions audit: the demo's own, from no remote address."""
    return Request({"type": "http", "method": "POST", "path": "/", "headers": []})


def _seed(settings: Settings) -> Seeded:
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    with make_sessionmaker(engine)() as session:
        operator, token = bootstrap_operator(session)
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
        lotte = create_user(
            session,
            tenant,
            "Lotte Leider",
            extension="204",
            aors=[f"lotte@{DOMAIN}"],
            role="listener",
        )
        admin = create_user(session, tenant, "Dirk Admin", extension="200", role="admin")
        enable_feature(session, tenant, reference="DEMO-DECLARATION")
        accept_legal_notice(session, tenant, admin)
        # the demo's SRC sends from loopback: a registered recording source
        register_loopback_source(session, [tenant.id])
        session.commit()
        seeded = Seeded(
            token or "",
            tenant.id,
            admin.id,
            {"anna": anna.id, "bram": bram.id, "chris": chris.id, "lotte": lotte.id},
        )
        seeded.accounts = _portal_accounts(session, operator, tenant, admin, lotte, anna, bram)
    engine.dispose()
    return seeded


def _portal_accounts(
    session: Session,
    operator: Operator,
    tenant: Tenant,
    admin: User,
    listener: User,
    member: User,
    user: User,
) -> list[Account]:
    """Logins for three roles (set as the operator would) and the listener's team."""
    as_operator, request = operator_principal(operator), _no_client()
    accounts = [
        Account("admin", "dirk", secrets.token_urlsafe(12), "all calls, settings, audit log"),
        Account(
            "listener",
            "lotte",
            secrets.token_urlsafe(12),
            f"own and team 'Service desk' ({member.name}) calls",
        ),
        Account("user", "bram", secrets.token_urlsafe(12), "own calls"),
    ]
    for account, who in zip(accounts, (admin, listener, user), strict=True):
        body = CredentialsIn(login=account.login, password=account.password)
        set_user_credentials(who.id, body, tenant, as_operator, session, request)
    # the admin sets up the team, as on the Teams page
    as_admin = user_principal(session, admin)
    team = create_team(TeamIn(name="Service desk"), tenant, as_admin, session, request)
    put_member(team.id, listener.id, MemberIn(is_lead=True), tenant, as_admin, session, request)
    put_member(team.id, member.id, MemberIn(), tenant, as_admin, session, request)
    return accounts


def _annotate(
    sessions: sessionmaker[Session], seeded: Seeded, recordings: dict[int, str]
) -> str | None:
    """Labels, a comment and a share link, as the admin adds them; the link's path."""
    request, at = _no_client(), datetime.now(UTC)
    with sessions() as session:
        admin = session.get(User, seeded.admin_id)
        assert admin is not None
        as_admin = user_principal(session, admin)
        anna = recordings.get(seeded.ids["anna"])
        bram = recordings.get(seeded.ids["bram"])
        if bram is not None:
            add_label(bram, LabelIn(text="supplier"), as_admin, session, request)
        if anna is None:
            return None
        for label in ("quote request", "call back"):
            add_label(anna, LabelIn(text=label), as_admin, session, request)
        comment = CommentIn(text="The customer wants a quote for the roof; Anna calls back Monday.")
        add_comment(anna, comment, as_admin, session, request, at)
        share = create_share(anna, ShareIn(expires_in_hours=168), as_admin, session, request, at)
        return share.url


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
    seeded = await asyncio.to_thread(_seed, settings)
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
    done = app.finisher.subscribe()
    results = await asyncio.gather(*(client.place(plan) for _title, plan in plans))
    for (title, _plan), result in zip(plans, results, strict=True):
        print(f"  {title}: SIP {result.status}, {result.packets_sent} RTP packets sent")
    finished = [await asyncio.wait_for(done.get(), 60) for _ in plans]
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
    with app.sessions() as session:
        by_user = {
            rec.user_id: rec.id
            for _c, rid in finished
            if rid is not None and (rec := session.get(Recording, rid)) and rec.user_id
        }
    share = await asyncio.to_thread(_annotate, app.sessions, seeded, by_user)
    base = f"http://127.0.0.1:{app.http_port}"
    print(f"\nportal: {base}/login  (passwords shown once; change them under Account)")
    for account in seeded.accounts:
        print(f"  {account.role:<9} {account.login:<6} {account.password}  sees {account.sees}")
    if share:
        print(f"  share link of Anna's call (no login, 7 days): {base}{share}")
    token = seeded.token
    print(f"\nAPI token of the operator: {token}")
    print(f"  curl -H 'Authorization: Bearer {token}' {base}/api/v1/tenants/1/recordings")
    print(
        f"  curl -H 'Authorization: Bearer {token}' -o rec.mp3 {base}/api/v1/recordings/<id>/audio"
    )
    print(f"data directory: {settings.data_dir}")
    if keep_running:
        print("\nserver keeps running; Ctrl-C stops it", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    sys.stdout.flush()
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
