"""sipp as UAC and UAS through callvault's B2BUA (issue 10, "How it is checked").

The near leg is sipp as the PBX (127.0.0.4, a ``pbx`` source, calling as
alice@acme.example, a recorded user), the far leg sipp as the carrier
(127.0.0.6, a ``trunk`` source), the route "" from the PBX to it. Each pair of
scenarios (tests/b2bua/sipp/) must end with every call successful on both
sides: that is what sipp's exit code 0 says, and each scenario checks the
messages it gets (401/407 credentials, sendonly/recvonly, sipfrag NOTIFYs).

The scenario pairs are first run against each other directly (no callvault),
so a failure through callvault is callvault's, not the scenario's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.db.models import CallParty
from tests.b2bua.harness import (
    SIPP_PBX_ADDRESS,
    SIPP_TRUNK_ADDRESS,
    THIRD_ADDRESS,
    Leg,
    running_b2bua,
)
from tests.b2bua.sippx import pair, start, uas

pytestmark = pytest.mark.peer("sipp", why="Debian package sip-tester")

B_NUMBER = "+31612345678"
C_NUMBER = "+31699999999"
AUTH = ("-au", "alice", "-ap", "secret")

# (UAC scenario, UAS scenario, extra UAC arguments)
PAIRS = {
    "ring-answer": ("uac_call", "uas_ring_answer", ()),
    "glare-491": ("uac_glare", "uas_glare", ()),
    "auth-407": ("uac_auth", "uas_auth", AUTH),
    "hold-resume": ("uac_hold", "uas_hold", ()),
}


@pytest.mark.parametrize("case", ["ring-answer", "glare-491", "auth-407", "hold-resume"])
async def test_scenario_pairs_directly(tmp_path: Path, case: str) -> None:
    uac_name, uas_name, extra = PAIRS[case]
    server = await uas(tmp_path, uas_name, SIPP_TRUNK_ADDRESS)
    client = await start(
        tmp_path, uac_name, SIPP_PBX_ADDRESS, remote=(server.address, server.port),
        service=B_NUMBER, extra=extra,
    )  # fmt: skip
    codes, report = await pair(client, server)
    assert codes == [0, 0], report


def legs(far: str, third: str | None = None) -> list[Leg]:
    routes = {"": far}
    if third is not None:
        routes[C_NUMBER] = third
    return [
        Leg("sipp-pbx", "pbx", SIPP_PBX_ADDRESS, routes),
        Leg("sipp-trunk", "trunk", SIPP_TRUNK_ADDRESS, dict(routes)),
        Leg("sipp-third", "trunk", THIRD_ADDRESS, {}),
    ]


@pytest.mark.parametrize(
    "case", ["ring-answer", "glare-491", "auth-407", "hold-resume", "cancel-race-200"]
)
async def test_scenarios_through_callvault(tmp_path: Path, case: str) -> None:
    uac_name, uas_name, extra = PAIRS.get(case, ("uac_cancel", "uas_answer_on_cancel", ()))
    server = await uas(tmp_path, uas_name, SIPP_TRUNK_ADDRESS)
    async with running_b2bua(tmp_path, legs(server.contact)) as cv:
        client = await start(
            tmp_path, uac_name, SIPP_PBX_ADDRESS, remote=cv.sip, service=B_NUMBER, extra=extra
        )
        codes, report = await pair(client, server)
        assert codes == [0, 0], report
        # the call was bridged and finished (sipp sends no RTP: nothing to record)
        if case != "cancel-race-200":
            [(call_id, _recording)] = await cv.rec.wait_finished(timeout=60)
            assert call_id, report


@pytest.mark.parametrize("outcome", ["answered", "busy"], ids=["blind", "failed-486"])
async def test_refer_blind_and_failed_transfer(tmp_path: Path, outcome: str) -> None:
    target_name = "uas_answer_then_bye" if outcome == "answered" else "uas_busy"
    target = await uas(tmp_path, target_name, THIRD_ADDRESS)
    far = await start(tmp_path, "uas_refer_blind", SIPP_TRUNK_ADDRESS, keys={"target": C_NUMBER})
    # the route names the far UAS's port, drawn at its start: seed after it
    async with running_b2bua(
        tmp_path,
        legs(far.contact, target.contact),
        tenant_options={"announce_after_transfer": True},
    ) as cv:
        client = await start(
            tmp_path, "uac_long_call", SIPP_PBX_ADDRESS, remote=cv.sip, service=B_NUMBER
        )
        codes, report = await pair(client, far, target)
        assert codes == [0, 0, 0], report
        [(call_id, _recording)] = await cv.rec.wait_finished(timeout=60)
        # sipp sends no RTP, so there is no recording to read: the call's parties
        # (its timeline of who was in it) are read where the finisher stored them
        with cv.rec.app.sessions() as session:
            parties = [
                p.aor or ""
                for p in session.scalars(select(CallParty).where(CallParty.call_id == call_id))
            ]
    if outcome == "answered":  # one conversation, the new party in it
        assert any(C_NUMBER in aor for aor in parties), (parties, report)
        assert any(B_NUMBER in aor for aor in parties), (parties, report)
    else:  # the failed transfer resumed the original call: B is there, C never was
        assert not any(C_NUMBER in aor for aor in parties), (parties, report)
        assert any(B_NUMBER in aor for aor in parties), (parties, report)


@pytest.mark.slow
async def test_session_timer_expiry_ends_the_call(tmp_path: Path) -> None:
    """A UAC offering Session-Expires 90 as refresher never refreshes: callvault BYEs both."""
    server = await uas(tmp_path, "uas_answer_wait_bye", SIPP_TRUNK_ADDRESS, timeout_s=110)
    async with running_b2bua(tmp_path, legs(server.contact)) as cv:
        client = await start(
            tmp_path, "uac_session_timer", SIPP_PBX_ADDRESS, remote=cv.sip, service=B_NUMBER,
            timeout_s=110,
        )  # fmt: skip
        codes, report = await pair(client, server, timeout=120)
        assert codes == [0, 0], report
