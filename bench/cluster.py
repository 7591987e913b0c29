"""Kamailio in front of one callvault node, then of two: calls per second and calls at once.

Run: ``.venv/bin/python -m bench.cluster`` (from the repository root; about a
minute with the defaults). Issue 13's figure "two media nodes behind
Kamailio, against one node alone, in one run". Nothing asserts on it.

Each configuration starts Kamailio with ``deploy/kamailio/kamailio.cfg`` (as
``tests/cluster`` does: Kamailio on 127.0.0.2, registered as the one
recording source) and 1 or 2 ``callvault serve`` nodes, each on its own data
dir with SQLite and the local blob store (capture and finishing are what is
measured; the shared PostgreSQL and S3 are the cluster test's). The driver,
callvault's own SIPREC client on 127.0.0.1, keeps ``--concurrent`` calls of
``--call-s`` seconds each (two PCMU streams) in flight for ``--seconds``,
and prints per configuration: calls answered per second, the calls held at
once, failed calls and recordings stored. On a small machine the driver's own
RTP in Python is the ceiling: raise ``--concurrent`` until failures show.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import httpx
from tests.cluster.cluster import SBC_IP, Kamailio, Node, node_env, seed_cluster

from callvault.demo.client import CallPlan, Participant, SiprecClient
from callvault.media.tones import sine
from callvault.sip.endpoint import IncomingRequest, SipEndpoint


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


async def _recordings(http: httpx.AsyncClient, node: Node, tenant_id: int) -> int:
    r = await http.get(f"{node.http}/api/v1/tenants/{tenant_id}/recordings?limit=500")
    r.raise_for_status()
    return len(r.json()["items"])


async def measure(root: Path, nodes_wanted: int, args: argparse.Namespace) -> dict[str, float]:
    nodes = []
    tokens = []
    for n in range(nodes_wanted):
        data = root / f"node{n}"
        data.mkdir(parents=True)
        seeded = await asyncio.to_thread(seed_cluster, f"sqlite:///{data}/callvault.db")
        tokens.append(seeded)
        nodes.append(Node(f"node{n}", data, node_env(data, {})))
    kamailio = Kamailio(root / "kamailio", [n.sip for n in nodes])
    endpoint = SipEndpoint(_refuse)
    http = httpx.AsyncClient(timeout=30)
    try:
        for node in nodes:
            node.start()
            await node.wait_healthy(http)
        kamailio.start()
        await kamailio.wait_ready()
        await endpoint.listen(SBC_IP, 0, 0)
        client = SiprecClient(endpoint, kamailio.address, local_ip=SBC_IP)
        audio = sine(440.0, args.call_s + 1)

        def plan() -> CallPlan:
            return CallPlan(
                caller=Participant("sip:alice@acme.example", "Alice", audio),
                callee=Participant("sip:+31612345678@pstn.example", "Customer", audio),
                duration_s=args.call_s,
            )

        answered = failed = 0
        end = time.monotonic() + args.seconds

        async def lane() -> None:
            nonlocal answered, failed
            while time.monotonic() < end:
                result = await client.place(plan())
                if result.status == 200:
                    answered += 1
                else:
                    failed += 1

        started = time.monotonic()
        lanes = []
        for _ in range(args.concurrent):  # spread the first INVITEs over one call's length
            lanes.append(asyncio.ensure_future(lane()))
            await asyncio.sleep(args.call_s / args.concurrent)
        await asyncio.gather(*lanes)
        wall = time.monotonic() - started
        stored = 0
        deadline = time.monotonic() + 60  # the last calls' finishing
        while stored < answered and time.monotonic() < deadline:
            await asyncio.sleep(1)
            stored = 0
            for node, seeded in zip(nodes, tokens, strict=True):
                http.headers["Authorization"] = f"Bearer {seeded.token}"
                stored += await _recordings(http, node, seeded.tenant_id)
        return {
            "calls_per_s": answered / wall,
            "concurrent": args.concurrent,
            "answered": answered,
            "failed": failed,
            "stored": stored,
        }
    finally:
        await http.aclose()
        await endpoint.close()
        kamailio.stop()
        for node in nodes:
            node.stop()


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="callvault-cluster-bench-"))
    try:
        rows = []
        for count in (1, 2):
            result = await measure(root / f"n{count}", count, args)
            rows.append((f"Kamailio + {count} node{'s' if count > 1 else ''}", result))
        print(f"{'configuration':<22} {'calls/s':>8} {'at once':>8} {'answered':>9} "
              f"{'failed':>7} {'stored':>7}")  # fmt: skip
        for name, r in rows:
            print(
                f"{name:<22} {r['calls_per_s']:>8.1f} {r['concurrent']:>8.0f} "
                f"{r['answered']:>9.0f} {r['failed']:>7.0f} {r['stored']:>7.0f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--call-s", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
