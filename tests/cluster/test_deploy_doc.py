"""docs/deploy.md, run: every ``sh`` block in order, with the units of deploy/systemd.

The doc and the units are read as they are; only the site's values (``SITE``:
paths, the database URL, the bucket, addresses and ports) are swapped for
throw-away ones. systemd is not running here, so ``systemctl`` inside a
block is recorded, and after the block the test does what systemd would:
``enable --now UNIT`` runs the unit's ``ExecStart`` with its
``EnvironmentFile`` and ``Environment`` lines (``%i`` filled in), ``restart
kamailio`` runs Kamailio on the installed config as Debian's unit does (in
the foreground). When the last block has seen every process ready, a SIPREC
call sent to Kamailio's address is answered by a media node.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callvault.demo.client import SiprecClient
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from tests.cluster.cluster import KAMAILIO_IP, ROOT, SBC_IP, free_port
from tests.cluster.test_kamailio_cluster import _plan
from tests.peers import program
from tests.storage.s3_server import S3Server

pytestmark = pytest.mark.peer

DOC = ROOT / "docs" / "deploy.md"
UNITS = ROOT / "deploy" / "systemd"
PORTS = ("5060", "5071", "5072", "8080", "8081", "8082", "8090")  # the doc's, swapped
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


def sh_blocks(text: str) -> list[str]:
    return [match.group(1) for match in _BLOCK.finditer(text)]


def site(tmp: Path, database_url: str, s3_url: str, bucket: str) -> dict[str, str]:
    """The doc's site values and what this run uses instead (longest first when applied)."""
    values = {
        "/etc/callvault": str(tmp / "etc" / "callvault"),
        "/etc/kamailio": str(tmp / "etc" / "kamailio"),
        "/etc/systemd/system": str(tmp / "etc" / "systemd" / "system"),
        "/var/lib/callvault": str(tmp / "var" / "lib" / "callvault"),
        "/opt/callvault/bin/callvault": str(Path(sys.executable).parent / "callvault"),
        "/opt/callvault/deploy": str(ROOT / "deploy"),
        "postgresql+psycopg://callvault@db.internal:5432/callvault": database_url,
        "http://s3.internal:9000": s3_url,
        "callvault-recordings": bucket,
        "192.0.2.10": KAMAILIO_IP,
        "198.51.100.0/24": f"{SBC_IP}/32",
    }
    for port in PORTS:
        values[port] = str(free_port(KAMAILIO_IP if port == "5060" else "127.0.0.1"))
    return values


def localise(text: str, values: dict[str, str]) -> str:
    for old in sorted(values, key=len, reverse=True):
        if old.isdigit():  # a port: never part of a longer number
            text = re.sub(rf"(?<![\d.]){old}(?!\d)", values[old], text)
        else:
            text = text.replace(old, values[old])
    return text


@dataclass
class Unit:
    """What systemd would run for one ``[Service]``."""

    exec_start: str
    environment: dict[str, str] = field(default_factory=dict)


def read_unit(path: Path, instance: str, values: dict[str, str]) -> Unit:
    text = localise(path.read_text().replace("%i", instance), values)
    section = ""
    exec_start = ""
    environment: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        if key == "ExecStart":
            exec_start = value
        elif key == "EnvironmentFile":
            optional = value.startswith("-")
            file = Path(value.lstrip("-"))
            if optional and not file.exists():
                continue
            environment.update(_env_file(file))
        elif key == "Environment":
            for assignment in shlex.split(value):
                name, _, setting = assignment.partition("=")
                environment[name] = setting
    assert exec_start, f"{path} has no ExecStart"
    return Unit(exec_start, environment)


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


class Systemd:
    """What ``systemctl`` asked for, done: each unit a process, Kamailio as Debian runs it."""

    def __init__(self, tmp: Path, values: dict[str, str]) -> None:
        self.tmp = tmp
        self.values = values
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def handle(self, request: str) -> None:
        words = request.split()
        if words == ["daemon-reload"]:
            return
        if words[:2] == ["enable", "--now"]:
            for name in words[2:]:
                self.start_unit(name)
            return
        if words == ["restart", "kamailio"]:
            self.start_kamailio()
            return
        raise AssertionError(f"the test does not know what systemd does for: {request}")

    def start_unit(self, name: str) -> None:
        base, _, instance = name.partition("@")
        file = f"{base}@.service" if instance else f"{base}.service"
        installed = Path(self.values["/etc/systemd/system"]) / file
        assert installed.exists(), f"{file} was not installed by the doc's steps"
        unit = read_unit(installed, instance, self.values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
        env.update(unit.environment)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p
        )
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs.append((name, subprocess.Popen(
            shlex.split(unit.exec_start), env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )))  # fmt: skip

    def start_kamailio(self) -> None:
        kamailio = program("kamailio", "the SIP dispatcher (Debian kamailio)")
        config = Path(self.values["/etc/kamailio"]) / "kamailio.cfg"
        run = self.tmp / "run-kamailio"
        run.mkdir()
        # Debian's kamailio.service, in the foreground: -f $CFGFILE -m 64 -M 8
        argv = [kamailio, "-DD", "-E", "-f", str(config), "-m", "64", "-M", "8"]
        argv += ["-P", str(run / "kamailio.pid"), "-Y", str(run), "-w", str(run)]
        log = (self.tmp / "kamailio.log").open("ab")
        self.procs.append(("kamailio", subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )))  # fmt: skip

    def logs(self) -> str:
        return "".join(
            f"\n--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
            for p in sorted(self.tmp.glob("*.log"))
        )

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


def test_deploy_md_lists_its_steps_as_sh_blocks() -> None:
    blocks = sh_blocks(DOC.read_text())
    assert len(blocks) >= 6, blocks
    assert any("systemctl enable --now" in block for block in blocks)
    for unit in ("callvault-media@.service", "callvault-web.service", "callvault-worker.service"):
        assert (UNITS / unit).exists(), unit


def test_localise_swaps_ports_only_as_whole_numbers() -> None:
    values = {"5071": "40001", "/etc/callvault": "/tmp/x"}
    text = "sip:127.0.0.1:5071 50710 15071 /etc/callvault/media-1.env PORT=5071"
    assert localise(text, values) == "sip:127.0.0.1:40001 50710 15071 /tmp/x/media-1.env PORT=40001"


async def test_every_step_of_deploy_md_runs(
    tmp_path: Path, cluster_db: str, s3_server: S3Server
) -> None:
    program("kamailio", "the SIP dispatcher (Debian kamailio)")
    program("curl", "the doc's readiness checks (Debian curl)")
    values = site(tmp_path, cluster_db, s3_server.url, s3_server.new_bucket())
    systemd = Systemd(tmp_path, values)
    requests = tmp_path / "systemctl.requests"
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    shell_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), shell_env.get("PYTHONPATH")) if p
    )
    # systemd is not running here: systemctl is recorded and done by ``Systemd``
    record = f'printf "%s\\n" "$*" >> {shlex.quote(str(requests))}'
    prelude = f"set -euo pipefail\nsystemctl() {{ {record}; }}\n"
    Path(values["/etc/systemd/system"]).mkdir(parents=True)  # there on any systemd host
    try:
        for n, block in enumerate(sh_blocks(DOC.read_text()), 1):
            script = prelude + localise(block, values)
            done = await asyncio.to_thread(
                subprocess.run, ["bash", "-c", script], env=shell_env, cwd=tmp_path,
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, (
                f"step {n} failed:\n{script}\n--- out\n{done.stdout[-3000:]}\n"
                f"--- err\n{done.stderr[-3000:]}{systemd.logs()}"
            )
            if requests.exists():
                for request in requests.read_text().splitlines():
                    systemd.handle(request)
                requests.unlink()
        for name, proc in systemd.procs:
            assert proc.poll() is None, f"{name} exited{systemd.logs()}"

        # SBCs send SIPREC to Kamailio's address: a media node answers
        endpoint = SipEndpoint(_refuse)
        await endpoint.listen(SBC_IP, 0, 0)
        try:
            kamailio = (KAMAILIO_IP, int(values["5060"]))
            client = SiprecClient(endpoint, kamailio, local_ip=SBC_IP)
            result = await client.place(_plan((440.0, 1000.0), 1.0))
        finally:
            await endpoint.close()
        assert result.status == 200, (result, systemd.logs())
    finally:
        systemd.stop()
