"""A callvault cluster on loopback: Kamailio's dispatcher in front of ``callvault serve`` nodes.

Kamailio runs the shipped ``deploy/kamailio/kamailio.cfg`` unchanged, its
installation values given as ``-A`` defines (where it listens, the
dispatcher list, the SBCs' network), and a dispatcher list made from the
shipped ``dispatcher.list`` with the nodes' real ports. It listens on
127.0.0.2, so the nodes see every request from 127.0.0.2: the one recording
source the cluster registers (docs/kamailio.md, "Who is the source"). The
SBCs (the tests' SIPREC client and sipp) send from 127.0.0.1.

Nodes are real ``callvault serve --roles ...`` processes (a ``kill -9`` must
leave a spool behind), each with its own data directory, SIP and HTTP ports
and RTP range, sharing one PostgreSQL database and one S3 bucket. A node is
ready when its ``/readyz`` answers 200; its ``/metrics`` need the metrics
token (metrics are internal).

Ports: a node's SIP and HTTP ports, Kamailio's and sipp's are drawn from
``FIXED_PORTS``, above both the kernel's ephemeral range (32768-60999) and
every test's RTP ranges (20000-60000), so nothing takes a killed node's SIP
port before it restarts on it; RTP ranges are 1000-port blocks below, a
different one per node (a node's pool skips a port someone else holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from callvault.admin import (
    accept_legal_notice,
    bootstrap_operator,
    create_tenant,
    create_user,
    enable_feature,
)
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.portal.auth import issue_token
from callvault.sources.store import SourceSpec, add_source
from tests.peers import program

ROOT = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
DISPATCHER_LIST = ROOT / "deploy" / "kamailio" / "dispatcher.list"
KAMAILIO_IP = "127.0.0.2"  # what the nodes see as the source of every request
SBC_IP = "127.0.0.1"
START_TIMEOUT_S = 90.0
FIXED_PORTS = (61000, 65500)  # SIP, HTTP, Kamailio, sipp: see the module docstring
RTP_BLOCKS = range(20000, 50000, 1000)
_handed_out: set[int] = set()  # ports given to this process's clusters
_rtp_given: set[int] = set()  # RTP blocks given, likewise


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for UDP and TCP on ``host`` (SIP listens on both), never handed out
    twice by this process (a node binds its ports only when it starts)."""
    for _ in range(200):
        port = random.randrange(*FIXED_PORTS)
        if port in _handed_out:
            continue
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.bind((host, port))
            _handed_out.add(port)
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise RuntimeError("no free loopback port")


def dispatcher_list(nodes: list[tuple[str, int]]) -> str:
    """The shipped dispatcher.list with its nodes' addresses replaced, in order.

    The shipped file must name at least as many nodes as the cluster has; the
    lines beyond are dropped, comments kept."""
    out: list[str] = []
    left = list(nodes)
    entry = re.compile(r"^(\s*\d+\s+sip:)([^\s;]+)(.*)$")
    for line in DISPATCHER_LIST.read_text().splitlines():
        match = entry.match(line)
        if match is None:
            out.append(line)
            continue
        if left:
            host, port = left.pop(0)
            out.append(f"{match.group(1)}{host}:{port}{match.group(3)}")
    assert not left, f"{DISPATCHER_LIST} names fewer nodes than the cluster has"
    return "\n".join(out) + "\n"


@dataclass
class Kamailio:
    """Kamailio in the foreground on ``KAMAILIO_IP``, with the shipped config."""

    workdir: Path
    nodes: list[tuple[str, int]]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (KAMAILIO_IP, self.port)

    @property
    def log(self) -> Path:
        return self.workdir / "kamailio.log"

    def command(self) -> list[str]:
        kamailio = program("kamailio", "the SIP dispatcher in front of the nodes (Debian kamailio)")
        listing = self.workdir / "dispatcher.list"
        listing.write_text(dispatcher_list(self.nodes))
        defines = {
            "LISTEN_UDP": f"udp:{KAMAILIO_IP}:{self.port}",
            "LISTEN_TCP": f"tcp:{KAMAILIO_IP}:{self.port}",
            "DISPATCHER_LIST": f'"{listing}"',
            "SBC_NETWORK": f'"{SBC_IP}/32"',
        }
        args = [kamailio, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-e"]
        for name, value in defines.items():
            args += ["-A", f"{name}={value}"]
        args += ["-Y", str(self.workdir), "-P", str(self.workdir / "kamailio.pid")]
        args += ["-w", str(self.workdir), "-m", "64", "-M", "8"]
        return args

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(KAMAILIO_IP)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    async def wait_ready(self) -> None:
        """Until Kamailio answers an OPTIONS for itself."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((SBC_IP, 0))
        sock.setblocking(False)
        try:
            while loop.time() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.output()
                sock.sendto(_options(self.address, sock.getsockname()), self.address)
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.3)
                    if data.startswith(b"SIP/2.0 200"):
                        return
            raise AssertionError(f"kamailio not up:\n{self.output()}")
        finally:
            sock.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _options(to: tuple[str, int], local: tuple[str, int]) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    return (
        f"OPTIONS sip:{to[0]}:{to[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{local[0]}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{to[0]}:{to[1]}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@{local[0]}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def serve(roles: str | None = None) -> list[str]:
    """``callvault serve``, with ``--roles`` (e.g. ``"media"``) as the units run it."""
    argv = [sys.executable, "-m", "callvault", "serve"]
    return [*argv, "--roles", roles] if roles else argv


@dataclass
class Node:
    """One ``callvault serve`` process: its environment and argv say all it is."""

    name: str
    data_dir: Path
    env: dict[str, str]
    argv: list[str] = field(default_factory=serve)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.env["CALLVAULT_SIP_PORT"]))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.env['CALLVAULT_HTTP_PORT']}"

    @property
    def log(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n===== {self.name}: {' '.join(self.argv)} =====\n".encode())
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, reaped by ``stop``
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        """Until ``/readyz`` answers 200: the database reached and the roles' parts
        running (SIP bound on a media node, the job runner on a worker)."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        last = "no answer"
        while loop.time() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{self.http}/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"{self.name} not ready after {START_TIMEOUT_S} s ({last}):\n{self.output()}"
        )

    async def metrics(self, client: httpx.AsyncClient, token: str) -> dict[str, float]:
        """``/metrics`` as name -> value (the unlabelled samples callvault exposes)."""
        response = await client.get(
            f"{self.http}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        samples: dict[str, float] = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # its finisher pool too

    def stop(self) -> None:
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


def node_env(data_dir: Path, shared: dict[str, str], **more: str) -> dict[str, str]:
    """A node's environment: fresh loopback ports, its own data dir and RTP range."""
    base = random.choice([b for b in RTP_BLOCKS if b not in _rtp_given])
    _rtp_given.add(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(shared)
    env.update(
        CALLVAULT_DATA_DIR=str(data_dir),
        CALLVAULT_SIP_PORT=str(free_port()),
        CALLVAULT_HTTP_PORT=str(free_port()),
        CALLVAULT_RTP_PORT_MIN=str(base),
        CALLVAULT_RTP_PORT_MAX=str(base + 998),
        CALLVAULT_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(more)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def s3_env(url: str, bucket: str) -> dict[str, str]:
    return {
        "CALLVAULT_BLOB_STORE": "s3",
        "CALLVAULT_S3_ENDPOINT_URL": url,
        "CALLVAULT_S3_BUCKET": bucket,
        "CALLVAULT_S3_REGION": "us-east-1",
        "CALLVAULT_S3_ACCESS_KEY_ID": "testing",
        "CALLVAULT_S3_SECRET_ACCESS_KEY": "testing-secret",
        "CALLVAULT_S3_PREFIX": "rec/",
    }


@dataclass(frozen=True)
class Seeded:
    token: str
    tenant_id: int
    users: dict[str, int]


def seed_cluster(url: str) -> Seeded:
    """The schema, an operator, tenant Acme (alice and bob recorded "always", carol
    not recorded) and Kamailio as the one recording source: the nodes only ever see
    Kamailio's address. ``token`` is the tenant admin's API token."""
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        bootstrap_operator(session)
        tenant = create_tenant(
            session, "Acme", ["acme.example"], ["+31201234500"], blocks=["+312012345*"]
        )
        users = {
            "alice": create_user(
                session, tenant, "Alice", extension="201", aors=["alice@acme.example"],
                recorded=True,
            ),
            "bob": create_user(
                session, tenant, "Bob", extension="202", aors=["bob@acme.example"], recorded=True
            ),
        }  # fmt: skip
        for user in users.values():
            user.recording_mode = "always"
        # not on the recording list: a test puts her on it through the web node
        users["carol"] = create_user(
            session, tenant, "Carol", extension="203", aors=["carol@acme.example"]
        )
        admin = create_user(session, tenant, "Admin", extension="299", role="admin")
        enable_feature(session, tenant, reference="DECL-TEST")
        accept_legal_notice(session, tenant, admin)
        add_source(
            session,
            SourceSpec(name="kamailio", networks=[f"{KAMAILIO_IP}/32"], tenant_ids=[tenant.id]),
            created_by="seed",
        )
        token = issue_token(session, "tests", user=admin)
        session.commit()
        seeded = Seeded(token, tenant.id, {name: user.id for name, user in users.items()})
    engine.dispose()
    return seeded
