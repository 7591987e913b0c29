"""Running sipp scenarios (tests/b2bua/sipp/*.xml) as the B2BUA's UAC and UAS legs.

``uas(...)`` starts a sipp UAS on its own loopback address and port (the far
leg callvault routes to); ``uac(...)`` runs a sipp UAC from another address
(the near leg) and waits; ``finish`` waits for a UAS. Each returns a report
(command line, exit code, stderr/stdout tails, the error and message logs)
to put in an assertion, and an exit code: 0 when every call of the
scenario succeeded. Bounded: ``-timeout`` in sipp and a wait_for around it.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.b2bua.phones import free_port
from tests.peers import program

SCENARIOS = Path(__file__).resolve().parent / "sipp"
BIND_S = 20.0  # a loaded 2-core machine starts sipp in well under a second


@dataclass
class Sipp:
    name: str
    workdir: Path
    cmd: list[str]
    proc: asyncio.subprocess.Process
    address: str
    port: int

    @property
    def contact(self) -> str:
        return f"sip:{self.address}:{self.port};transport=udp"

    async def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            out, err = await self.proc.communicate()
        logs = "".join(
            f"\n--- {log.name}\n{log.read_text(errors='replace')[-5000:]}"
            for log in sorted(self.workdir.glob("*.log"))
        )
        code = self.proc.returncode if self.proc.returncode is not None else -1
        report = (
            f"=== sipp {self.name}: {' '.join(self.cmd[1:])}\nexit {code}\n--- stderr\n"
            f"{err.decode(errors='replace')[-2000:]}\n--- stdout\n"
            f"{out.decode(errors='replace')[-1500:]}{logs}"
        )
        return code, report


async def start(
    workdir: Path,
    scenario: str,
    address: str,
    *,
    remote: tuple[str, int] | None = None,
    service: str = "",
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    timeout_s: int = 30,
) -> Sipp:
    """Start sipp with ``sipp/<scenario>.xml`` on ``address`` (one call, ``-m 1``)."""
    sipp = program("sipp", "Debian package sip-tester")
    work = workdir / scenario
    work.mkdir(parents=True, exist_ok=True)
    port = free_port(address, span=1)
    cmd = [sipp]
    if remote is not None:
        cmd.append(f"{remote[0]}:{remote[1]}")
    cmd += [
        "-sf", str(SCENARIOS / f"{scenario}.xml"),
        "-t", "u1",
        "-i", address, "-p", str(port),
        "-mi", address, "-mp", str(free_port(address, span=2)),
        "-m", "1",
        "-timeout", f"{timeout_s}s", "-timeout_error",
        "-nostdin", "-trace_err", "-trace_msg",
    ]  # fmt: skip
    if service:
        cmd += ["-s", service]
    for key, value in (keys or {}).items():
        cmd += ["-key", key, value]
    cmd += list(extra)
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    return Sipp(scenario, work, cmd, proc, address, port)


async def uas(workdir: Path, scenario: str, address: str, **kw: object) -> Sipp:
    """A sipp UAS, returned once its SIP port is bound (a call sent earlier would meet
    a closed port: on a loaded machine sipp takes more than a fixed moment to start)."""
    server = await start(workdir, scenario, address, **kw)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BIND_S
    while not udp_bound(address, server.port):
        if server.proc.returncode is not None or loop.time() > deadline:
            _code, report = await server.finish(timeout=1)
            raise AssertionError(f"sipp UAS never bound {address}:{server.port}\n{report}")
        await asyncio.sleep(0.02)  # sipp starting, not a timer
    return server


def udp_bound(address: str, port: int) -> bool:
    """Whether some socket is bound to UDP ``address:port`` (Linux ``/proc/net/udp``,
    read without binding: a probe bind could itself make sipp's fail)."""
    packed = socket.inet_aton(address)[::-1].hex().upper()  # the kernel's little-endian
    wanted = f"{packed}:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in list(table)[1:])


async def pair(uac_run: Sipp, *uas_runs: Sipp, timeout: float = 60) -> tuple[list[int], str]:
    """Wait for the UAC, then the UASs; exit codes and one report for all."""
    codes: list[int] = []
    reports: list[str] = []
    for run in (uac_run, *uas_runs):
        code, report = await run.finish(timeout)
        codes.append(code)
        reports.append(report)
    return codes, "\n".join(reports)
